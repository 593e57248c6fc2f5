#!/usr/bin/env python3
"""ncu_sum.py CSV [TITLE]: sums an `ncu --csv --metrics gpu__time_duration.sum` log by kernel.

Prints, per kernel name (template arguments cut), the calls, total and mean microseconds and
the share of the window's GPU time, largest first; then the window's total.  Lines that are not
ncu's CSV (the profiled program's own output) are skipped."""
import csv
import re
import sys


def short(name):
    name = re.sub(r"<.*>", "<>", name)          # template arguments
    name = re.sub(r"\(.*\)$", "", name)          # parameter list
    return name.replace("void ", "")[:70]


def main():
    path = sys.argv[1]
    title = sys.argv[2] if len(sys.argv) > 2 else path
    rows = []
    with open(path, errors="replace") as f:
        lines = [l for l in f if l.startswith('"')]
    rd = csv.reader(lines)
    head = next(rd, None)
    if not head or "Kernel Name" not in head:
        print("%s: no ncu rows" % title)
        return 1
    ki, mi, vi, ui = (head.index(c) for c in ("Kernel Name", "Metric Name", "Metric Value", "Metric Unit"))
    for r in rd:
        if len(r) <= vi or r[mi] != "gpu__time_duration.sum":
            continue
        v = float(r[vi].replace(",", ""))
        unit = r[ui]
        us = v / 1e3 if unit in ("nsecond", "ns") else v * 1e3 if unit in ("msecond", "ms") else \
            v * 1e6 if unit in ("second", "s") else v
        rows.append((short(r[ki]), us))
    tot = sum(u for _, u in rows)
    agg = {}
    for n, u in rows:
        c, s = agg.get(n, (0, 0.0))
        agg[n] = (c + 1, s + u)
    print("%s: %d kernels, %.1f us of GPU time" % (title, len(rows), tot))
    print("  %-70s %6s %10s %9s %6s" % ("kernel", "calls", "total us", "mean us", "share"))
    for n, (c, s) in sorted(agg.items(), key=lambda kv: -kv[1][1]):
        print("  %-70s %6d %10.1f %9.2f %5.1f%%" % (n, c, s, s / c, 100 * s / tot if tot else 0))
    return 0


if __name__ == "__main__":
    sys.exit(main())
