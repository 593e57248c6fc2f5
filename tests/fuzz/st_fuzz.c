/* libFuzzer harness for the safetensors reader: the input is a whole file
 * image.  Every tensor the reader accepts is read in full and converted, so
 * an accepted lie about offsets or sizes shows up as an ASan error.
 * Build and run: tests/fuzz/run_st_fuzz.sh (clang -fsanitize=fuzzer,address). */
#include "engine/safetensors.h"
#include <stdint.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    st_file f;
    char err[512];
    if (st_open_mem(&f, data, size, "fuzz", err, sizeof err)) return 0;
    volatile unsigned sum = 0;
    for (int i = 0; i < f.n; i++) {
        const st_tensor *t = &f.t[i];
        const unsigned char *p = t->data;
        for (uint64_t b = 0; b < t->nbytes; b++) sum += p[b];
        if (t->numel <= (1 << 20)) {
            uint16_t *out = malloc((size_t)t->numel * 2 + 2);
            if (out) { st_to_bf16(t, out, err, sizeof err); free(out); }
        }
        if (st_find(&f, t->name) == NULL) abort();
    }
    st_close(&f);
    return 0;
}
