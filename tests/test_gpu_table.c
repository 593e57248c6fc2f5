/* Tests of sim/gpu_table.c: the one reader of data/gpus.json, by name, by
 * size, and by the name CUDA gives a device (what engine/bench and the lab's
 * real runs used to match by hand, each its own way); the table's path set by
 * a front end, not read from the environment by the library. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include "tests/test_util.h"
#include "sim/gpu_table.h"
#include <sys/stat.h>

static void test_device_names(void **st) {
    (void)st;
    const double GiB = 1024.0 * 1024 * 1024;
    struct { const char *device; double mem_gib; const char *want; double bw_gbs; } cases[] = {
        { "NVIDIA H200", 140, "H200", 4800 },
        { "NVIDIA H100 80GB HBM3", 79.6, "H100-SXM", 3350 },
        { "NVIDIA H100 PCIe", 79.6, "H100-PCIe", 2000 },
        { "NVIDIA A100-SXM4-40GB", 39.4, "A100-40GB", 1555 },
        { "NVIDIA A100-SXM4-80GB", 79.2, "A100-80GB", 2039 },
        { "NVIDIA A100 80GB PCIe", 79.2, "A100-80GB", 2039 },
        { "NVIDIA L4", 22, "L4", 300 },
        { "NVIDIA GeForce RTX 4090", 23.6, "RTX-4090", 1008 },
        { "NVIDIA GeForce RTX 4070", 11.7, "RTX-4070", 504 },
    };
    char err[512];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        cm_gpu g;
        if (cm_gpu_for_device(&g, cases[i].device, cases[i].mem_gib * GiB, err, sizeof err))
            fail_msg("%s: %s", cases[i].device, err);
        if (strcmp(g.name, cases[i].want)) fail_msg("%s -> %s, want %s", cases[i].device, g.name, cases[i].want);
        assert_true(g.mem_bw == cases[i].bw_gbs * 1e9);
        cm_gpu by_name;                              /* the same entry as by its table name */
        assert_int_equal(cm_gpu_find(&by_name, cases[i].want, err, sizeof err), 0);
        assert_memory_equal(&g, &by_name, sizeof g);
    }
    const char *unknown[] = { "NVIDIA GeForce RTX 3090", "NVIDIA L40S", "Tesla V100-SXM2-16GB", "", NULL };
    for (int i = 0; i < 5; i++) {
        cm_gpu g;
        err[0] = 0;
        assert_int_equal(cm_gpu_for_device(&g, unknown[i], 24 * GiB, err, sizeof err), -1);
        assert_non_null(strstr(err, "no GPU for the device"));
        assert_int_equal(g.name[0], 0);
    }
}

static void test_table_path(void **st) {
    (void)st;
    mkdir("build", 0777);
    mkdir("build/tmp", 0777);
    FILE *f = fopen("build/tmp/gpus_one.json", "w");
    assert_non_null(f);
    fputs("{\"gpus\": [{\"name\": \"Z9\", \"aliases\": [\"Zeta 9\"], \"mem_mib\": 2048, \"mem_bw_gbs\": 7, "
          "\"tflops_16\": 3, \"link_gbs\": 1}]}", f);
    fclose(f);
    char err[512];
    cm_gpu g;
    setenv("PAGESIM_GPUS", "build/tmp/absent.json", 1);   /* the library does not read it */
    assert_int_equal(cm_gpu_find(&g, "H100", err, sizeof err), 0);
    unsetenv("PAGESIM_GPUS");
    cm_gpu_table_path("build/tmp/gpus_one.json");
    assert_int_equal(cm_gpu_find(&g, "H100", err, sizeof err), -1);
    assert_non_null(strstr(err, "known: Z9"));
    assert_int_equal(cm_gpu_for_device(&g, "ACME Zeta 9 Pro", 0, err, sizeof err), 0);
    assert_string_equal(g.name, "Z9");
    assert_true(g.mem_bw == 7e9);
    cm_gpu_table_path(NULL);                            /* back to data/gpus.json */
    assert_int_equal(cm_gpu_find(&g, "H100", err, sizeof err), 0);
    assert_string_equal(g.name, "H100-SXM");
}

/* a size: the nearest GPU lends its speeds; absurd sizes are refused, not overflowed */
static void test_sizes(void **st) {
    (void)st;
    char err[512];
    cm_gpu g;
    assert_int_equal(cm_gpu_find(&g, "24GB", err, sizeof err), 0);
    assert_true(g.mem_bytes == 24.0 * 1024 * 1024 * 1024);
    assert_int_equal(cm_gpu_find(&g, "16TiB", err, sizeof err), 0);
    static const char *const big[] = { "1e30GB", "1e300GB", "17TiB", "1e9TB" };
    for (int i = 0; i < 4; i++) {
        err[0] = 0;
        assert_int_equal(cm_gpu_find(&g, big[i], err, sizeof err), -1);
        if (!strstr(err, big[i]) || !strstr(err, "too large")) fail_msg("%s: %s", big[i], err);
        assert_int_equal(g.name[0], 0);
    }
    assert_int_equal(cm_gpu_find(&g, "-5GB", err, sizeof err), -1);
    assert_non_null(strstr(err, "positive"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_device_names),
        cmocka_unit_test(test_table_path),
        cmocka_unit_test(test_sizes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
