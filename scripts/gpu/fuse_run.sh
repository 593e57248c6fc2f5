#!/usr/bin/env bash
# Issue 19, fewer kernels per decode layer and CUDA graphs on by default, in one
# device call on nvidia-h200:
#   run(command="BUDGET=570 bash scripts/gpu/fuse_run.sh", carry=[".debs"], timeout_s=600)
# STAGES, a comma list (default build,test,decode,bias,b1):
#   build    scripts/gpu/build.sh: build/gpu/run, bench, test_*
#   test     test_kernels (k_qkv_prep = the unfused kernels bit for bit, and its reference;
#            attention with the split merge in the last block), test_cuda_graph (graph =
#            eager), test_engine (every engine case now with graphs by default)
#   decode   decode-heavy: Qwen3-0.6B dummy, 256 requests uniform 100..1024, --enforce-eager
#            then the default (graphs); before: 57% eager, 64.5% graphs of the per-step
#            roofline (5.51 ms per decode-only step); target 80%
#   bias     bias shape: Qwen2.5-7B dummy, 1024 x 512 + 96, both ways (no slower than eager)
#   b1       batch-1 decode: Qwen2.5-7B, 128 + 512, both ways, TPOT against the weight-read
#            limit (15.2 GB per token at PEAK_G GB/s)
# Each stage time-limited within BUDGET seconds (default 570).  $OUT: SUMMARY.txt (verdicts,
# wall, output tok/s, % of the per-step roofline, eager | graphs side by side), tests.txt,
# logs.tar.gz.  NVLink multicast stays off.
set -u
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1 PYTHONUNBUFFERED=1
OUT=${OUT:-out}; mkdir -p "$OUT"
L=/tmp/fuse-logs; rm -rf $L; mkdir -p $L
STAGES=${STAGES:-${1:-build,test,decode,bias,b1}}
BUDGET=${BUDGET:-570}; T0=$(date +%s)
PEAK_T=${PEAK_T:-799}; PEAK_G=${PEAK_G:-4257}
S=$OUT/SUMMARY.txt; : > "$S"; : > "$OUT/tests.txt"
has() { [[ ",$STAGES," == *",$1,"* ]]; }
say() { echo "[$(( $(date +%s) - T0 )) s] $*" | tee -a "$S"; }
left() { echo $(( BUDGET - ($(date +%s) - T0) )); }
lim() { local l w=$1; l=$(left); [ "$w" -gt $((l - 20)) ] && w=$((l - 20)); [ "$w" -lt 5 ] && w=5; echo $w; }
table() {  # eager | graphs from the runs' JSON files
  python3 - "$L" "$PEAK_G" <<'EOF' 2>&1 | tee -a "$S"
import json, os, sys
d, peak_g = sys.argv[1], float(sys.argv[2])
def get(n):
    try: return json.load(open(os.path.join(d, n + ".json")))
    except Exception: return None
def row(name, key, fmt, a, b):
    va = a.get(key) if a else None; vb = b.get(key) if b else None
    f = lambda v: (fmt % v) if isinstance(v, (int, float)) else "-"
    ratio = ("  x%.3f" % (vb / va)) if isinstance(va, (int, float)) and isinstance(vb, (int, float)) and va else ""
    print("  %-44s %14s %14s%s" % (name, f(va), f(vb), ratio))
print("  %-44s %14s %14s" % ("this tree", "--enforce-eager", "default (graphs)"))
for tag, title in (("decode", "decode-heavy Qwen3-0.6B, 256 x 100..1024 (before: 20,731 | 23,478 tok/s, 57.0 | 64.5%)"),
                   ("bias", "bias shape Qwen2.5-7B, 1024 x 512/96 (before: 14.96 | 14.80 s)"),
                   ("b1", "batch 1, Qwen2.5-7B, 128 + 512 (before: TPOT 5.03 | 4.73 ms)")):
    a, b = get(tag + "_eager"), get(tag + "_graphs")
    if not a and not b: continue
    print("  " + title)
    row("wall s", "wall_s", "%.2f", a, b)
    row("output tokens/s", "output_tok_s", "%.0f", a, b)
    row("% of the per-step roofline max(FLOPs, bytes)", "roofline_pct", "%.1f", a, b)
    row("% of the compute roofline", "compute_roofline_pct", "%.1f", a, b)
    row("mean TPOT ms", "mean_tpot_ms", "%.3f", a, b)
    row("graph replays", "graph_replays", "%d", a, b)
    if tag == "b1":
        lim_ms = 15.2e9 / (peak_g * 1e9) * 1e3
        for n, r in (("eager", a), ("graphs", b)):
            if r: print("  %s: TPOT %.3f ms = %.1f%% of the weight-read limit (15.2 GB at %.0f GB/s = %.3f ms)" %
                        (n, r["mean_tpot_ms"], 100 * lim_ms / r["mean_tpot_ms"], peak_g, lim_ms))
    if tag == "decode" and b: print("  decode target 80%% of the per-step roofline: %s" % ("met" if b["roofline_pct"] >= 80 else "NOT met"))
    if tag == "bias" and a and b: print("  bias no slower with graphs: %s" % ("yes" if b["wall_s"] <= a["wall_s"] * 1.02 else "NO"))
EOF
}
finish() { say "done"; tar -czf "$OUT/logs.tar.gz" -C /tmp fuse-logs 2>/dev/null; exit "${1:-0}"; }
M=data/models; BIN=build/gpu/bench

say "fuse_run.sh $STAGES: $(git rev-parse --short HEAD 2>/dev/null || echo '?'), budget $BUDGET s"
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv,noheader >> "$S" 2>&1

if has build || [ ! -x $BIN ]; then
  timeout "$(lim 300)" bash scripts/gpu/build.sh > $L/build.txt 2>&1; rc=$?
  say "build rc=$rc: $(tail -1 $L/build.txt | cut -c1-160)"
  [ $rc = 0 ] || { grep -E "error|failed" $L/build.txt | head -20 | tee -a "$S"; finish 1; }
fi

gtest() {  # GPU test binaries: rc, the closing line, the figures
  for t in "$@"; do
    [ "$(left)" -gt 30 ] || { say "$t: no time left"; continue; }
    PAGESIM_GPU=1 timeout "$(lim 200)" bash tests/run.sh --gpu -- build/gpu/$t > $L/$t.txt 2>&1; rc=$?
    cat $L/$t.txt >> "$OUT/tests.txt"
    say "$t rc=$rc: $(tail -1 $L/$t.txt)"
    grep -E "qkv_prep|differ|bit for bit|identical|graphs:|not ok|failed in|Assert|error" $L/$t.txt \
      | grep -v "# SKIP" | head -40 | sed 's/^/    /' >> "$S"
  done
}
bench() {  # tag, seconds, args...: one engine/bench run, its figures
  local tag=$1 t=$2; shift 2
  [ "$(left)" -gt 25 ] || { say "$tag: no time left"; return; }
  timeout "$(lim "$t")" $BIN --peak-tflops "$PEAK_T" --peak-gbps "$PEAK_G" --json $L/$tag.json "$@" > $L/$tag.txt 2>&1
  say "$tag rc=$?"
  grep -E "wall|roofline|decode-only steps|TPOT|CUDA graphs|host busy|steps:" $L/$tag.txt | head -20 \
    | sed 's/^/    /' >> "$S"
}

if has test; then gtest test_kernels test_cuda_graph test_engine; fi

DEC=(--dummy-weights $M/qwen3-0.6b.json --workload uniform --num-requests 256 --min-len 100 --max-len 1024)
if has decode; then
  bench decode_eager 90 "${DEC[@]}" --enforce-eager
  bench decode_graphs 90 "${DEC[@]}"
fi
BIAS=(--dummy-weights $M/qwen2.5-7b.json --workload fixed --num-requests 1024 --prompt-len 512 --output-len 96
      --max-num-seqs 1024 --max-num-batched-tokens 16384)
if has bias; then
  bench bias_eager 100 "${BIAS[@]}" --enforce-eager
  bench bias_graphs 100 "${BIAS[@]}"
fi
B1=(--dummy-weights $M/qwen2.5-7b.json --workload fixed --num-requests 1 --prompt-len 128 --output-len 512
    --max-num-seqs 1 --max-num-batched-tokens 2048 --max-model-len 1024)
if has b1; then
  bench b1_eager 60 "${B1[@]}" --enforce-eager
  bench b1_graphs 60 "${B1[@]}"
fi
say "eager | graphs"
table > /dev/null
finish 0
