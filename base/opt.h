/* opt.h: command-line options, one table per command (opt_).  A command lists
 * its options once, as opt_spec rows; opt_next (getopt_long underneath) then
 * reads "--name value", "--name=value", "-k value" and flags alike, and hands
 * back each option's key, or a positional argument, in the order given.
 * Renaming an option, or accepting an old name beside a new one, is a row:
 *     { "num-gpu-blocks", O_BLOCKS, OPT_VALUE },
 *     { "num-blocks",     O_BLOCKS, OPT_VALUE },   (the old name, same key)
 * A unique prefix of a name is accepted, as GNU tools do.  A row whose name
 * starts with '-' is a single-dash long option, as vLLM's "-tp": its table
 * then also reads "-name" for every long option (getopt_long_only).  The value helpers
 * (opt_int, opt_num, opt_u64) check whole strings and ranges.  Everything
 * returns errors (a message in err naming the option); nothing prints or
 * exits: that is the front end's part (apps/).  Not reentrant (getopt's
 * state): parse one command line at a time. */
#ifndef BASE_OPT_H
#define BASE_OPT_H
#include <getopt.h>
#include <stddef.h>

#define OPT_MAX 128          /* rows of one table */

typedef enum { OPT_FLAG, OPT_VALUE } opt_kind;

typedef struct opt_spec {
    const char *name;        /* long name without the dashes ("max-model-len"), or "-tp" for
                                a single-dash one; NULL ends the table */
    int         key;         /* what opt_next returns: > 0; a letter also names the short option -k */
    opt_kind    kind;        /* OPT_VALUE takes a value, OPT_FLAG none */
} opt_spec;

enum { OPT_END = -1, OPT_ERROR = -2, OPT_ARG = -3 };

typedef struct opt_parser {
    int argc;
    char **argv;             /* (argc,) argv[0] is the command, not parsed */
    const opt_spec *specs;
    int nspecs;
    struct option longopts[OPT_MAX + 1];   /* getopt's table, built by opt_begin (no heap) */
    char shortopts[96];      /* "-:" then the letters, ':' after those taking a value */
    char name[72];           /* the last option as "--name" (or "-k"), for messages */
    int done;                /* getopt has finished: what is left is positional */
    int long_only;           /* a single-dash row: getopt_long_only */
} opt_parser;

/* Starts reading argv[1..argc) by the table specs.  0, or -1 with err (a bad
 * table: a key <= 1, '?' or ':', an empty name, more than OPT_MAX rows).
 * Allocates nothing: a front end may return or exit at any point. */
int  opt_begin(opt_parser *p, int argc, char **argv, const opt_spec *specs, char *err, size_t errlen);
/* The next option: its key, with *val its value (NULL for a flag); OPT_ARG
 * for a positional argument (in *val; everything after "--" is one); OPT_END
 * when all is read; OPT_ERROR with err: "unknown option '--x'", "ambiguous
 * option '--ma' (--max-a, --max-b)", "--x needs a value", "--x takes no value". */
int  opt_next(opt_parser *p, const char **val, char *err, size_t errlen);
/* The option opt_next returned last, as "--name", for messages. */
const char *opt_name(const opt_parser *p);
/* Ends the parse (nothing to free; kept so that a parse reads as a pair). */
void opt_end(opt_parser *p);

/* The integer in v (the whole string), in [lo, hi], into *out.  0, or -1 with
 * err: "NAME wants an integer in [LO, HI], got 'V'". */
int  opt_int(const char *name, const char *v, long lo, long hi, int *out, char *err, size_t errlen);
/* The same for a long. */
int  opt_long(const char *name, const char *v, long lo, long hi, long *out, char *err, size_t errlen);
/* The finite number in v, in [lo, hi] ("NAME wants a number in [LO, HI], got 'V'"). */
int  opt_num(const char *name, const char *v, double lo, double hi, double *out, char *err, size_t errlen);
/* A non-negative integer of up to 64 bits (seeds): "NAME wants a non-negative integer, got 'V'". */
int  opt_u64(const char *name, const char *v, unsigned long long *out, char *err, size_t errlen);
#endif
