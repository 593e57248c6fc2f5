/* tp_group: the processes of tensor parallelism, one per GPU.  Rank 0 is the
 * calling process (it keeps the scheduler, the block manager and sampling);
 * ranks 1..N-1 are forked workers that run a caller's function.  Each worker
 * talks with rank 0 over one Unix socket pair (SOCK_SEQPACKET: whole messages;
 * commands one way, replies and error texts the other), and reads the step's
 * arrays from a shared mailbox that rank 0 writes.  A worker whose parent
 * dies is killed by the kernel (PR_SET_PDEATHSIG); rank 0 notices a worker
 * that exits or is killed (waitpid) and says which one and how, so that no
 * rank waits forever for another.  Plain POSIX: no GPU; NCCL comes on top
 * (engine/tp_comm.h).  Forks: call tp_group_start before anything in the
 * process initialises CUDA or starts threads. */
#ifndef ENGINE_TP_GROUP_H
#define ENGINE_TP_GROUP_H
#include <stddef.h>
#include <stdint.h>

#define TP_MSG_TEXT 512
typedef struct tp_msg {          /* one message between rank 0 and a worker */
    int32_t  kind;               /* TP_MSG_* or a caller's kind >= TP_MSG_USER */
    int32_t  rank;               /* the sender */
    int64_t  seq;                /* rank 0's message counter (set by tp_group_post) */
    int64_t  arg[6];
    char     text[TP_MSG_TEXT];  /* a short payload: an error message, a NCCL unique id */
} tp_msg;

/* kinds: quit (rank 0 -> workers), ready and error (workers -> rank 0), the
 * NCCL unique id (tp_comm_init), then the engine's own (tp_worker.h) */
enum { TP_MSG_QUIT = 0, TP_MSG_READY = 1, TP_MSG_ERROR = 2, TP_MSG_NCCL_ID = 3, TP_MSG_USER = 16 };

typedef struct tp_group tp_group;

/* Runs in worker `tp_group_rank(g)` after the fork; 0 when it ends well
 * (after TP_MSG_QUIT), else -1 with a message that rank 0 will report. */
typedef int (*tp_worker_fn)(tp_group *g, void *ctx, char *err, size_t errlen);

/* Forks size - 1 workers running fn(g, ctx) (the worker exits when fn
 * returns) and returns in rank 0 with *out; mailbox_bytes of memory shared
 * by all.  size 1: no fork.  -1 and a message when a fork or socket fails. */
int   tp_group_start(tp_group **out, int size, size_t mailbox_bytes, tp_worker_fn fn, void *ctx,
                     char *err, size_t errlen);
int   tp_group_rank(const tp_group *g);
int   tp_group_size(const tp_group *g);
/* Rank 0: the process id of worker `rank` (0 for rank 0 or out of range). */
long  tp_group_pid(const tp_group *g, int rank);
/* The shared mailbox: rank 0 writes, workers read (bytes in *n). */
void *tp_group_mailbox(tp_group *g, size_t *n);
/* Rank 0: sends *m (m->seq and m->rank set here) to every worker.  -1 and a
 * message naming the rank when one is gone. */
int   tp_group_post(tp_group *g, tp_msg *m, char *err, size_t errlen);
/* Worker: the next message from rank 0 (blocks); -1 when rank 0 is gone. */
int   tp_group_recv(tp_group *g, tp_msg *m, char *err, size_t errlen);
/* Worker: sends *m to rank 0 (m->rank set here). */
int   tp_group_reply(tp_group *g, tp_msg *m);
/* Rank 0: waits for one message of `kind` from every worker and keeps each
 * one's arg[0] in vals[rank] (vals[0] untouched).  -1 and a message naming
 * the rank when a worker reports an error, dies, or is silent timeout_s. */
int   tp_group_gather(tp_group *g, int kind, int64_t *vals, double timeout_s, char *err, size_t errlen);
/* Rank 0: 0 while every worker lives; else -1 and a message such as
 * "tensor-parallel rank 2 (pid 4711) was killed by signal 9 (Killed)", with
 * the worker's own error text when it sent one.  Cheap (one waitpid per
 * worker): call it while waiting for a collective. */
int   tp_group_check(tp_group *g, char *err, size_t errlen);
/* Rank 0: tells the workers to quit, waits up to grace_s, then kills those
 * left (SIGKILL; at once when a rank has failed) and reaps them.  0 when
 * every worker exited with status 0.  Frees g (any rank). */
int   tp_group_stop(tp_group *g, double grace_s);
#endif
