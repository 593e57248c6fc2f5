#!/usr/bin/env bash
# Issue 19 in one device call: CUDA graphs of decode steps and preemption by
# swap, built, tested and measured, before and after side by side in the
# same binary (eager = before, --cuda-graphs = after; graphs are now the default, so the
# eager runs pass --enforce-eager):
#   run(command="BUDGET=570 bash scripts/gpu/graphs_run.sh", carry=[".debs"], timeout_s=600)
# on nvidia-h200.  STAGES, a comma list (default build,test,decode,bias,b1,swap,regress):
#   build    scripts/gpu/build.sh: build/gpu/run, bench, test_*
#   test     the new GPU tests: test_cuda_graph (graph = eager padded, bit for bit, at 14
#            batch sizes on two models; the engine with --cuda-graphs = eager at bucket edges;
#            memory set aside), test_swap (pool round trip; swapped blocks give memcmp-equal
#            logits; a tiny pool swaps and, with one graph bucket, equals an unconstrained run)
#   decode   decode-heavy: Qwen3-0.6B dummy, 256 requests uniform 100..1024, eager then
#            --cuda-graphs (today 20.4k output tok/s, 57% of the per-step roofline; target 80%)
#   bias     bias shape: Qwen2.5-7B dummy, 1024 x 512 + 96, 1024 seqs / 16,384 tokens, eager then
#            graphs (must be no slower; decode-only steps at 49% of their roofline today)
#   b1       batch-1 decode latency: Qwen2.5-7B, 1 request of 128 + 512, eager then graphs,
#            mean TPOT against the weight-read limit (15.2 GB per token at PEAK_G GB/s)
#   swap     memory pressure: Qwen3-0.6B, a 256-request trace (100..1024 each way) on 8,000 KV
#            blocks, by recompute and by swap (4 GiB), each with engine/bench --simulate (the
#            simulator on the same trace, pool, limits and the H200 operator profile:
#            tests/test_bench_sim checks it equals `pagesim run`); then swap with graphs
#   regress  the project's other GPU tests (kernels, engine, MoE, samples, score, serve, tp)
# Each stage is time-limited within BUDGET seconds (default 570).  $OUT: SUMMARY.txt (verdicts,
# figures, the before/after table), tests.txt (the GPU tests' output), logs.tar.gz (every log
# and JSON).  NVLink multicast stays off.
set -u
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1 PYTHONUNBUFFERED=1
OUT=${OUT:-out}; mkdir -p "$OUT"
L=/tmp/graphs-logs; rm -rf $L; mkdir -p $L
STAGES=${STAGES:-${1:-build,test,decode,bias,b1,swap,regress}}
BUDGET=${BUDGET:-570}; T0=$(date +%s)
PEAK_T=${PEAK_T:-799}; PEAK_G=${PEAK_G:-4257}
S=$OUT/SUMMARY.txt; : > "$S"; : > "$OUT/tests.txt"
has() { [[ ",$STAGES," == *",$1,"* ]]; }
say() { echo "[$(( $(date +%s) - T0 )) s] $*" | tee -a "$S"; }
left() { echo $(( BUDGET - ($(date +%s) - T0) )); }
lim() { local l w=$1; l=$(left); [ "$w" -gt $((l - 20)) ] && w=$((l - 20)); [ "$w" -lt 5 ] && w=5; echo $w; }
table() {  # the before/after figures from the runs' JSON files
  python3 - "$L" "$PEAK_G" <<'EOF' 2>&1 | tee -a "$S"
import json, os, sys
d, peak_g = sys.argv[1], float(sys.argv[2])
def get(n):
    p = os.path.join(d, n + ".json")
    try: return json.load(open(p))
    except Exception: return None
def row(name, key, fmt, a, b):
    va = a.get(key) if a else None; vb = b.get(key) if b else None
    f = lambda v: (fmt % v) if isinstance(v, (int, float)) else "-"
    ratio = ("  x%.3f" % (vb / va)) if isinstance(va, (int, float)) and isinstance(vb, (int, float)) and va else ""
    print("  %-44s %14s %14s%s" % (name, f(va), f(vb), ratio))
print("  %-44s %14s %14s" % ("before / after, same binary", "eager", "--cuda-graphs"))
for tag, title in (("decode", "decode-heavy Qwen3-0.6B, 256 x 100..1024"), ("bias", "bias shape Qwen2.5-7B, 1024 x 512/96"),
                   ("b1", "batch 1, Qwen2.5-7B, 128 + 512")):
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
print("  swap against recompute, Qwen3-0.6B trace on 8,000 blocks (measured | simulated)")
for tag in ("swap_recompute", "swap_swap", "swap_swap_graphs"):
    r = get(tag)
    if not r: continue
    print("  %-18s wall %7.2f s | %7.2f s, %7.0f | %7.0f output tok/s, preemptions %5d | %5s, swap-outs %5d, "
          "preempted %3d: mean latency %6.2f s | %6.2f s" % (tag[5:], r["wall_s"], r.get("sim_seconds", float("nan")),
          r["output_tok_s"], r.get("sim_output_tok_s", float("nan")), r["preemptions"], r.get("sim_preemptions", "-"),
          r["swap_outs"], r["preempted_requests"], r["preempted_latency_s"], r.get("sim_preempted_latency_s", float("nan"))))
EOF
}
TABLED=0
finish() {
  [ $TABLED = 1 ] || { say "before / after"; table > /dev/null; }
  say "done"; tar -czf "$OUT/logs.tar.gz" -C /tmp graphs-logs 2>/dev/null; exit "${1:-0}"
}
M=data/models; BIN=build/gpu/bench

say "graphs_run.sh $STAGES: $(git rev-parse --short HEAD 2>/dev/null || echo '?'), budget $BUDGET s"
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
    grep -E "bit for bit|identical|rel L2|graphs:|pool |swap-outs|not ok|failed in|Assert|error" $L/$t.txt \
      | grep -v "# SKIP" | head -40 | sed 's/^/    /' >> "$S"
  done
}
bench() {  # tag, seconds, args...: one engine/bench run, its figures
  local tag=$1 t=$2; shift 2
  [ "$(left)" -gt 25 ] || { say "$tag: no time left"; return; }
  timeout "$(lim "$t")" $BIN --peak-tflops "$PEAK_T" --peak-gbps "$PEAK_G" --json $L/$tag.json "$@" > $L/$tag.txt 2>&1
  say "$tag rc=$?"
  grep -E "wall|roofline|decode-only steps|TPOT|CUDA graphs|Preemption|preemption by|measured|simulated|host busy|steps:|forward launch|schedule|upload|wait for|postprocess|batch build|sample launch|record" \
    $L/$tag.txt | head -30 | sed 's/^/    /' >> "$S"
}

if has test; then gtest test_cuda_graph test_swap; fi

DEC=(--dummy-weights $M/qwen3-0.6b.json --workload uniform --num-requests 256 --min-len 100 --max-len 1024)
if has decode; then
  bench decode_eager 90 "${DEC[@]}" --enforce-eager
  bench decode_graphs 90 "${DEC[@]}" --cuda-graphs
fi
BIAS=(--dummy-weights $M/qwen2.5-7b.json --workload fixed --num-requests 1024 --prompt-len 512 --output-len 96
      --max-num-seqs 1024 --max-num-batched-tokens 16384)
if has bias; then
  bench bias_eager 100 "${BIAS[@]}" --enforce-eager
  bench bias_graphs 100 "${BIAS[@]}" --cuda-graphs
fi
B1=(--dummy-weights $M/qwen2.5-7b.json --workload fixed --num-requests 1 --prompt-len 128 --output-len 512
    --max-num-seqs 1 --max-num-batched-tokens 2048 --max-model-len 1024)
if has b1; then
  bench b1_eager 60 "${B1[@]}" --enforce-eager
  bench b1_graphs 60 "${B1[@]}" --cuda-graphs
fi
if has swap; then
  TR=$L/swap_trace.csv       # 256 requests, prompt and output uniform in 100..1024 (an LCG: the same on any machine)
  awk 'BEGIN { s = 12345; print "arrival,prompt_len,output_len";
               for (i = 0; i < 256; i++) { s = (s * 1103515245 + 12345) % 2147483648; p = 100 + int(s / 2147483648 * 925);
                 s = (s * 1103515245 + 12345) % 2147483648; o = 100 + int(s / 2147483648 * 925); print "0," p "," o } }' > $TR
  SW=(--dummy-weights $M/qwen3-0.6b.json --trace $TR --max-num-seqs 256 --max-num-batched-tokens 8192
      --max-model-len 4096 --num-gpu-blocks 8000 --no-prefix-caching --simulate
      --op-profile data/profiles/H200/qwen3-0.6b.json)
  bench swap_recompute 90 "${SW[@]}" --preemption-mode recompute --enforce-eager
  bench swap_swap 90 "${SW[@]}" --preemption-mode swap --swap-space 4 --enforce-eager
  bench swap_swap_graphs 90 "${SW[@]}" --preemption-mode swap --swap-space 4 --cuda-graphs
fi
say "before / after"
table > /dev/null; TABLED=1
if has regress; then
  gtest test_kernels test_engine test_engine_samples test_engine_score test_moe test_serve_engine test_tp_engine \
        test_tp_load test_tp_shard
fi
finish 0
