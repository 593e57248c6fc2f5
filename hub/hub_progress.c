/* hub_progress: the download's progress bar on stderr, drawn only when the
 * caller asked for one (hub_opts.progress, which front ends set when stderr
 * is a terminal).  Writes only to stderr. */
#include "hub/hub_internal.h"
#include "base/clock.h"
#include <stdio.h>

void hub_progress_start(hub_progress *p, const char *name, long long total) {
    p->name = name;
    p->total = total;
    p->t0 = clock_now_s();
    p->last = 0;
}

void hub_progress_draw(hub_progress *s, long long have, int done) {
    double t = clock_now_s();
    if (!done && t - s->last < 0.1) return;
    s->last = t;
    double mb = (double)have / 1e6, tot = (double)s->total / 1e6, rate = mb / (t - s->t0 > 1e-3 ? t - s->t0 : 1e-3);
    int pct = s->total > 0 ? (int)(100.0 * (double)have / (double)s->total) : 0;
    char bar[21]; int fill = pct / 5;
    for (int i = 0; i < 20; i++) bar[i] = i < fill ? '#' : '.';
    bar[20] = 0;
    fprintf(stderr, "\r%-32.32s [%s] %3d%% %8.1f/%.1f MB %7.1f MB/s", s->name, bar, pct, mb, tot, rate);
    if (done) fputc('\n', stderr);
}

