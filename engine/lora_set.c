/* lora_set: see lora_set.h.  Owns the adapters it opens. */
#include "engine/lora_set.h"
#include "base/errbuf.h"
#include <stdlib.h>
#include <string.h>

int lora_set_init(lora_set *s, int max_loras, int max_rank, char *err, size_t errlen) {
    memset(s, 0, sizeof *s);
    if (max_loras < 1 || max_loras > 1024)
        return errbuf_fail(err, errlen, "--max-loras %d: at least 1 GPU slot (at most 1024)", max_loras);
    if (max_rank < 1 || max_rank > LORA_MAX_RANK)
        return errbuf_fail(err, errlen, "--max-lora-rank %d: 1..%d", max_rank, LORA_MAX_RANK);
    s->max_loras = max_loras;
    s->max_rank = max_rank;
    return 0;
}

/* room for one more adapter named name: 0, or -1 (a name twice, memory) */
static int grow(lora_set *s, const char *name, char *err, size_t errlen) {
    if (!name[0] || strchr(name, '='))
        return errbuf_fail(err, errlen, "LoRA adapter name '%s': give name=path", name);
    if (lora_set_find(s, name))
        return errbuf_fail(err, errlen, "LoRA adapter name '%s' is given twice", name);
    lora_adapter *a = realloc(s->a, sizeof *a * (size_t)(s->n + 1));
    if (!a) return errbuf_fail(err, errlen, "out of memory");
    s->a = a;
    return 0;
}

int lora_set_add(lora_set *s, const char *name, const char *dir, const mc_config *c, char *err, size_t errlen) {
    if (grow(s, name, err, errlen) || lora_adapter_open(&s->a[s->n], name, dir, c, s->max_rank, err, errlen))
        return -1;
    return ++s->n;
}

int lora_set_add_dummy(lora_set *s, const char *name, const mc_config *c, uint64_t seed, char *err, size_t errlen) {
    if (grow(s, name, err, errlen) || lora_adapter_dummy(&s->a[s->n], name, c, s->max_rank, seed, err, errlen))
        return -1;
    return ++s->n;
}

int lora_set_find(const lora_set *s, const char *name) {
    for (int i = 0; i < s->n; i++) if (!strcmp(s->a[i].name, name)) return i + 1;
    return 0;
}

void lora_set_free(lora_set *s) {
    for (int i = 0; i < s->n; i++) lora_adapter_close(&s->a[i]);
    free(s->a);
    memset(s, 0, sizeof *s);
}
