#!/usr/bin/env bash
# Fuzzes the safetensors header parser (engine/safetensors.c) with libFuzzer.
#   tests/fuzz/run_st_fuzz.sh [SECONDS]   (default 60; needs clang with libFuzzer)
# Seeds: a few valid files; findings land in build/fuzz/crash-*.
set -eu
secs=${1:-60}
out=build/fuzz
mkdir -p "$out/corpus"
clang -g -O1 -fsanitize=fuzzer,address,undefined -I. -D_GNU_SOURCE \
  tests/fuzz/st_fuzz.c engine/safetensors.c -lcjson -o "$out/st_fuzz"
python3 - "$out/corpus" <<'PY'
import json, struct, sys, os
d = sys.argv[1]
def w(name, hdr, data):
    h = json.dumps(hdr).encode()
    open(os.path.join(d, name), "wb").write(struct.pack("<Q", len(h)) + h + data)
w("seed1", {"__metadata__": {"format": "pt"}, "a": {"dtype": "BF16", "shape": [2, 3], "data_offsets": [0, 12]}}, bytes(12))
w("seed2", {"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]},
            "h": {"dtype": "F16", "shape": [1, 2], "data_offsets": [16, 20]}}, bytes(range(20)))
w("seed3", {"e": {"dtype": "I64", "shape": [], "data_offsets": [0, 8]}}, bytes(8))
PY
"$out/st_fuzz" -max_total_time="$secs" -max_len=4096 -print_final_stats=1 -artifact_prefix="$out/" \
  "$out/corpus" 2>&1 | tail -25
