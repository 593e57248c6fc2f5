/* labs/bias: the command.  Runs the investment-bias experiment (simulated
 * replies by default) and the study's aggregation; only this file prints. */
#include "labs/bias_aggregate.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage_analyze(FILE *f) {
    fprintf(f, "usage: labs/bias analyze --model-id ID [--output-dir DIR] [--rebuild]\n"
               "  Aggregates DIR/ID_att_combined.csv (or, when absent or with --rebuild,\n"
               "  the set files DIR/ID_att_set_N.csv) into DIR/ID_att_result.json.\n");
}

static const char *short_model(const char *id) {
    const char *s = strrchr(id, '/');
    return s ? s + 1 : id;
}

static int cmd_analyze(int argc, char **argv) {
    const char *model = NULL, *dir = "./result";
    int rebuild = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) { usage_analyze(stdout); return 0; }
        else if (!strcmp(argv[i], "--model-id") && i + 1 < argc) model = argv[++i];
        else if (!strcmp(argv[i], "--output-dir") && i + 1 < argc) dir = argv[++i];
        else if (!strcmp(argv[i], "--rebuild")) rebuild = 1;
        else { fprintf(stderr, "labs/bias analyze: unknown or incomplete option %s\n", argv[i]); usage_analyze(stderr); return 2; }
    }
    if (!model) { fprintf(stderr, "labs/bias analyze: --model-id is required\n"); usage_analyze(stderr); return 2; }
    char err[1024];
    bias_result r;
    if (bias_aggregate(dir, short_model(model), rebuild, &r, err, sizeof err)) {
        fprintf(stderr, "labs/bias analyze: %s\n", err); return 1;
    }
    printf("Bias result saved to %s/%s_att_result.json\n", dir, short_model(model));
    printf("Bias Index: %d\n", r.bias_index);
    return 0;
}

int main(int argc, char **argv) {
    if (argc > 1 && !strcmp(argv[1], "analyze")) return cmd_analyze(argc - 1, argv + 1);
    fprintf(stderr, "labs/bias: only `analyze` so far\n");
    return 2;
}
