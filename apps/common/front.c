/* front: what every command shares about being a command (see front.h).
 * Reads the environment and /proc/self/exe, prints, exits, installs signal
 * handlers: front-end things only. */
#include "apps/common/front.h"
#include "base/file.h"
#include "sim/gpu_table.h"
#include <errno.h>
#include <libgen.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *g_prog = "pagesim";

static int is_dir(const char *p) {
    struct stat st;
    return p && stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

/* The data/ folder beside the executable: ./pagesim, labs/x and engine/x sit
 * at most two levels below the repository root (build-nocuda/bin/ one more). */
static int data_beside_exe(char *out, size_t n) {
    char exe[4096];
    ssize_t len = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (len <= 0) return 0;
    exe[len] = '\0';
    for (int up = 0; up < 4; up++) {
        char *slash = strrchr(exe, '/');
        if (!slash) return 0;
        *slash = '\0';
        char probe[4200];
        snprintf(probe, sizeof probe, "%s/data/gpus.json", exe);
        if (access(probe, R_OK) == 0) { snprintf(out, n, "%s/data", exe); return 1; }
    }
    return 0;
}

static void set_dir(const char *how, const char *dir) {
    if (!is_dir(dir)) {
        fprintf(stderr, "%s: %s %s: %s\n", g_prog, how, dir, errno ? strerror(errno) : "not a directory");
        exit(FRONT_USAGE);
    }
    file_set_data_dir(dir);
}

/* At exit: stdout flushed and closed without error, or the status is 1
 * (a full disk, a closed pipe, `> /dev/full`). */
static void close_stdout(void) {
    int bad = fflush(stdout) != 0 || ferror(stdout);
    int e = errno;
    if (fclose(stdout) != 0 && !bad) { bad = 1; e = errno; }
    if (bad && e != EPIPE) {
        fprintf(stderr, "%s: error writing the output: %s\n", g_prog, strerror(e ? e : EIO));
        _exit(FRONT_FAIL);
    }
    if (bad) _exit(FRONT_FAIL);
}

static void on_signal(int sig) {
    file_atomic_cleanup();                         /* no half-written file.tmp.PID left */
    signal(sig, SIG_DFL);
    raise(sig);
}

void front_init(const char *prog) {
    g_prog = prog;
    char dir[4200];
    const char *env = getenv("PAGESIM_DATA");
    errno = 0;
    if (env && *env) set_dir("PAGESIM_DATA=", env);
    else if (data_beside_exe(dir, sizeof dir)) file_set_data_dir(dir);
    cm_gpu_table_path(getenv("PAGESIM_GPUS"));     /* the GPU table: data/gpus.json unless set */
    atexit(close_stdout);
    static const int sigs[] = { SIGINT, SIGTERM, SIGHUP };
    for (size_t i = 0; i < sizeof sigs / sizeof *sigs; i++) {
        struct sigaction old;
        if (sigaction(sigs[i], NULL, &old) == 0 && old.sa_handler == SIG_DFL) signal(sigs[i], on_signal);
    }
}

void front_version(FILE *f, const char *prog) {
#ifdef PAGESIM_HAVE_CUDA
    const char *cuda = "yes";
#else
    const char *cuda = "no (built without nvcc)";
#endif
#ifdef PAGESIM_HAVE_NCCL
    const char *nccl = "yes";
#else
    const char *nccl = "no";
#endif
    fprintf(f, "%s (pagesim) %s\nCUDA engine: %s; NCCL (--tensor-parallel-size): %s\n", prog, PAGESIM_VERSION,
            cuda, nccl);
    const char *d = file_data_dir();
    fprintf(f, "data folder: %s\n", d ? d : "data/ of the current directory");
}

int front_option(const char *prog, int key, const char *v) {
    switch (key) {
    case FRONT_VERSION: front_version(stdout, prog); exit(FRONT_OK);
    case FRONT_DATA_DIR: errno = 0; set_dir("--data-dir", v); return 1;
    default: return 0;
    }
}

int front_check_output(const char *opt, const char *path, char *err, size_t errlen) {
    if (!path) return 0;
    if (!*path) { snprintf(err, errlen, "%s: an empty file name", opt); return -1; }
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", path);
    const char *d = dirname(dir);
    if (access(d, W_OK) != 0) {
        snprintf(err, errlen, "%s %s: cannot write into %s: %s", opt, path, d, strerror(errno));
        return -1;
    }
    return 0;
}
