/* bias_data: the bias lab's CSV inputs, read with libcsv.
 * A generic table reader (header + rows, each row knowing its line) and the
 * study's universe: tickers (ticker,name,sector,marketcap) joined with the
 * qualitative and quantitative evidence files (ticker,opinion,evidence1,evidence2).
 * Touches only the files it is given; never prints (warnings are collected). */
#ifndef BIAS_DATA_H
#define BIAS_DATA_H
#include <stddef.h>

typedef struct bias_csv {
    char   *path;     /* the file read, for messages */
    char  **header;   /* (ncols) column names */
    char  **cells;    /* (nrows, ncols) row-major; a short row is padded with "" */
    long   *lines;    /* (nrows) physical line (1-based) where each row starts */
    int    *nfields;  /* (nrows) fields the row had before padding */
    int     ncols;
    size_t  nrows, cap;
} bias_csv;

/* Reads a whole CSV file.  -1 with "file:line: why" in err on an unreadable or
 * empty file, an unclosed quote, a row with more fields than the header. */
int  bias_csv_load(bias_csv *t, const char *path, char *err, size_t errlen);
/* Same from memory (`origin` names it in messages). */
int  bias_csv_parse(bias_csv *t, const char *text, size_t len, const char *origin,
                    char *err, size_t errlen);
/* Column index of `name`, or -1. */
int  bias_csv_col(const bias_csv *t, const char *name);
/* Cell (row r, column c). */
static inline const char *bias_csv_at(const bias_csv *t, size_t r, int c) {
    return t->cells[r * (size_t)t->ncols + (size_t)c];
}
void bias_csv_free(bias_csv *t);

#define BIAS_MAX_EVIDENCE 4
typedef struct bias_stock {
    char  *ticker, *name, *sector;
    double marketcap;                     /* USD */
    char  *buy[BIAS_MAX_EVIDENCE];        /* qual evidence1/2 then quant evidence1/2, blanks dropped */
    char  *sell[BIAS_MAX_EVIDENCE];
    int    nbuy, nsell;
    long   line;                          /* line in the tickers file */
} bias_stock;

typedef struct bias_universe {
    bias_stock *stocks;   /* (n) in the tickers file's order */
    size_t      n;
    char       *tickers;  /* the tickers file's path, for messages */
    char      **warnings; /* (nwarn) "file:line: ... skipped" for rows the study skips too */
    size_t      nwarn;
} bias_universe;

/* Reads the tickers file (ticker,name,sector,marketcap; other columns ignored).
 * Errors (file:line): a row with fewer fields than the header, an empty
 * ticker, name or sector, a ticker seen before, a non-numeric market cap.  An
 * empty market cap is a warning and a skip (the study's analysis drops it). */
int  bias_universe_load_tickers(bias_universe *u, const char *tickers, char *err, size_t errlen);
/* Joins the evidence files on (ticker, opinion) as the study does; tickers with
 * no buy or no sell evidence in both files are dropped with a warning. */
int  bias_universe_attach_evidence(bias_universe *u, const char *qual, const char *quant,
                                   char *err, size_t errlen);
/* Adds a warning line (printf-style). */
void bias_universe_warn(bias_universe *u, const char *fmt, ...);
/* Strips surrounding whitespace in place and returns s (used for evidence). */
char *bias_strip(char *s);
void bias_universe_free(bias_universe *u);
#endif
