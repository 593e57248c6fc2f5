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
#include <sys/wait.h>

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

/* data/... paths: from the current directory first, then from the data folder */
static void test_data_dir(void **st) {
    (void)st;
    char err[512] = "", buf[4200];
    put(DIR_ "/dd/models/only-in-dd.json", "{\"dd\": 1}", 10);
    put(DIR_ "/dd/gpus.json", "not the repository's", 20);
    assert_null(file_data_dir());
    assert_null(file_read_all("data/models/only-in-dd.json", 0, NULL, err, sizeof err));
    assert_non_null(strstr(err, "data/models/only-in-dd.json: No such file"));
    file_set_data_dir(DIR_ "/dd/");
    assert_string_equal(file_data_dir(), DIR_ "/dd");           /* the trailing '/' dropped */
    char *s = file_read_all("data/models/only-in-dd.json", 0, NULL, err, sizeof err);
    assert_non_null(s);
    assert_string_equal(s, "{\"dd\": 1}");
    free(s);
    s = file_read_all("data/gpus.json", 0, NULL, err, sizeof err);   /* the current directory's wins */
    assert_non_null(s);
    assert_null(strstr(s, "not the repository's"));
    free(s);
    assert_string_equal(file_data_path("data/models/only-in-dd.json", buf, sizeof buf),
                        DIR_ "/dd/models/only-in-dd.json");
    assert_string_equal(file_data_path("models/only-in-dd.json", buf, sizeof buf), "models/only-in-dd.json");
    assert_null(file_read_all("data/models/absent.json", 0, NULL, err, sizeof err));
    assert_non_null(strstr(err, "data/models/absent.json: No such file or directory (nor in the data folder "));
    file_set_data_dir(NULL);
    assert_null(file_data_dir());
    assert_null(file_read_all("data/models/only-in-dd.json", 0, NULL, err, sizeof err));
}

/* an atomic write: the whole new file or the old one, never a temporary left */
static void test_write_atomic(void **st) {
    (void)st;
    char err[512] = "";
    assert_int_equal(file_mkdirs(DIR_ "/aw"), 0);
    assert_int_equal(file_write_atomic(DIR_ "/aw/out.json", "{\"a\": 1}\n", 9, err, sizeof err), 0);
    char *s = tu_slurp(DIR_ "/aw/out.json");
    assert_non_null(s);
    assert_string_equal(s, "{\"a\": 1}\n");
    free(s);
    assert_int_equal(file_write_atomic(DIR_ "/aw/out.json", "new", 3, err, sizeof err), 0);
    s = tu_slurp(DIR_ "/aw/out.json");
    assert_string_equal(s, "new");
    free(s);
    char tmp[512];
    snprintf(tmp, sizeof tmp, DIR_ "/aw/out.json.tmp.%ld", (long)getpid());
    assert_int_not_equal(access(tmp, F_OK), 0);
    /* a folder that is not there: an error naming the temporary, nothing left */
    assert_int_equal(file_write_atomic(DIR_ "/aw/no/out.json", "x", 1, err, sizeof err), -1);
    assert_non_null(strstr(err, DIR_ "/aw/no/out.json.tmp."));
    /* a FIFO (as /dev/stdout): written in place, still a FIFO after */
    const char *fifo = DIR_ "/aw/fifo";
    unlink(fifo);
    assert_int_equal(mkfifo(fifo, 0600), 0);
    pid_t kid = fork();
    assert_true(kid >= 0);
    if (kid == 0) {                              /* the reader: exits 0 when it got "piped" */
        char b[16] = "";
        FILE *r = fopen(fifo, "rb");
        size_t n = r ? fread(b, 1, sizeof b - 1, r) : 0;
        _exit(n == 5 && !memcmp(b, "piped", 5) ? 0 : 1);
    }
    assert_int_equal(file_write_atomic(fifo, "piped", 5, err, sizeof err), 0);
    int ws = 0;
    assert_int_equal(waitpid(kid, &ws, 0), kid);
    assert_true(WIFEXITED(ws) && WEXITSTATUS(ws) == 0);
    struct stat sb;
    assert_int_equal(stat(fifo, &sb), 0);
    assert_true(S_ISFIFO(sb.st_mode));
    unlink(fifo);
    file_atomic_cleanup();                       /* nothing in progress: nothing happens */
    s = tu_slurp(DIR_ "/aw/out.json");
    assert_string_equal(s, "new");
    free(s);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_read_small_with_nul),
        cmocka_unit_test(test_read_large_and_limit),
        cmocka_unit_test(test_read_errors_name_the_path),
        cmocka_unit_test(test_read_stream),
        cmocka_unit_test(test_mkdirs),
        cmocka_unit_test(test_data_dir),
        cmocka_unit_test(test_write_atomic),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
