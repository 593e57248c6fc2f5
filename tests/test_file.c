/* Tests of base/file.c: whole-file reads (contents with NULs, a file larger
 * than the 64 KiB first buffer, the size limit, a missing file, a directory,
 * a stream) and mkdir -p.  Writes under build/tmp/file/. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include "tests/test_util.h"
#include "base/file.h"
#include <sys/stat.h>

#define DIR_ "build/tmp/file"

static void put(const char *path, const char *data, size_t n) {
    assert_int_equal(file_mkparent(path), 0);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, n, f), n);
    assert_int_equal(fclose(f), 0);
}

static void test_read_small_with_nul(void **st) {
    (void)st;
    put(DIR_ "/a.bin", "ab\0cd", 5);
    char err[256] = "";
    size_t n = 0;
    char *s = file_read_all(DIR_ "/a.bin", 0, &n, err, sizeof err);
    assert_non_null(s);
    assert_int_equal(n, 5);
    assert_memory_equal(s, "ab\0cd", 5);
    assert_int_equal(s[5], 0);                   /* NUL after the contents */
    free(s);
    put(DIR_ "/empty", "", 0);
    s = file_read_all(DIR_ "/empty", 0, &n, err, sizeof err);
    assert_non_null(s);
    assert_int_equal(n, 0);
    assert_int_equal(s[0], 0);
    free(s);
}

static void test_read_large_and_limit(void **st) {
    (void)st;
    size_t big = 300000;                         /* several doublings of the first 64 KiB */
    char *d = malloc(big);
    assert_non_null(d);
    for (size_t i = 0; i < big; i++) d[i] = (char)(i * 7 + 3);
    put(DIR_ "/big.bin", d, big);
    char err[256] = "";
    size_t n = 0;
    char *s = file_read_all(DIR_ "/big.bin", 0, &n, err, sizeof err);
    assert_non_null(s);
    assert_int_equal(n, big);
    assert_memory_equal(s, d, big);
    free(s);
    s = file_read_all(DIR_ "/big.bin", big, &n, err, sizeof err);   /* exactly the limit: read */
    assert_non_null(s);
    free(s);
    s = file_read_all(DIR_ "/big.bin", big - 1, &n, err, sizeof err);
    assert_null(s);
    assert_non_null(strstr(err, "big.bin: larger than"));
    free(d);
}

static void test_read_errors_name_the_path(void **st) {
    (void)st;
    char err[256] = "";
    assert_null(file_read_all(DIR_ "/absent", 0, NULL, err, sizeof err));
    assert_non_null(strstr(err, DIR_ "/absent: No such file"));
    assert_int_equal(file_mkdirs(DIR_ "/adir"), 0);
    err[0] = 0;
    assert_null(file_read_all(DIR_ "/adir", 0, NULL, err, sizeof err));
    assert_non_null(strstr(err, "adir: Is a directory"));
}

static void test_read_stream(void **st) {
    (void)st;
    put(DIR_ "/s.txt", "hello\nworld\n", 12);
    FILE *f = fopen(DIR_ "/s.txt", "rb");
    assert_non_null(f);
    assert_int_equal(fgetc(f), 'h');             /* reads from where the stream is */
    char err[256] = "";
    size_t n = 0;
    char *s = file_read_stream(f, "stdin", 0, &n, err, sizeof err);
    fclose(f);
    assert_non_null(s);
    assert_string_equal(s, "ello\nworld\n");
    assert_int_equal(n, 11);
    free(s);
}

static void test_mkdirs(void **st) {
    (void)st;
    struct stat sb;
    assert_int_equal(file_mkdirs(DIR_ "/x/y/z"), 0);
    assert_int_equal(stat(DIR_ "/x/y/z", &sb), 0);
    assert_true(S_ISDIR(sb.st_mode));
    assert_int_equal(file_mkdirs(DIR_ "/x/y/z"), 0);        /* again: fine */
    assert_int_equal(file_mkparent(DIR_ "/p/q/file.txt"), 0);
    assert_int_equal(stat(DIR_ "/p/q", &sb), 0);
    put(DIR_ "/plain", "x", 1);
    assert_int_equal(file_mkdirs(DIR_ "/plain/sub"), -1);    /* a file in the way */
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_read_small_with_nul),
        cmocka_unit_test(test_read_large_and_limit),
        cmocka_unit_test(test_read_errors_name_the_path),
        cmocka_unit_test(test_read_stream),
        cmocka_unit_test(test_mkdirs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
