/* bias_reply: first-"{"-to-last-"}" JSON extraction and the decision field,
 * with cJSON (see bias_reply.h).  Pure computation. */
#include "labs/bias_reply.h"
#include <cjson/cJSON.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int bias_reply_parse(const char *text, char *answer, size_t n) {
    if (n) answer[0] = 0;
    if (!text) return 0;
    const char *a = strchr(text, '{'), *b = strrchr(text, '}');
    if (!a || !b || b < a) return 0;
    const char *end = NULL;
    cJSON *j = cJSON_ParseWithLengthOpts(a, (size_t)(b - a) + 1, &end, 0);
    if (!j) return 0;
    while (end && end <= b && isspace((unsigned char)*end)) end++;
    if (!end || end != b + 1) { cJSON_Delete(j); return 0; }   /* json.loads: "Extra data" */
    int got = 0;
    const cJSON *d = NULL, *it;
    if (cJSON_IsObject(j))
        for (it = j->child; it; it = it->next)          /* Python keeps the last duplicate */
            if (it->string && strcmp(it->string, "decision") == 0) d = it;
    if (d && !cJSON_IsNull(d)) {
        got = 1;
        if (cJSON_IsString(d)) snprintf(answer, n, "%s", d->valuestring);
        else if (cJSON_IsTrue(d)) snprintf(answer, n, "True");
        else if (cJSON_IsFalse(d)) snprintf(answer, n, "False");
        else {
            char *p = cJSON_PrintUnformatted(d);
            snprintf(answer, n, "%s", p ? p : "");
            free(p);
        }
    }
    cJSON_Delete(j);
    return got;
}
