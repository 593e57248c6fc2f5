#!/usr/bin/env bash
# Issue 11's speed items 1 and 2 in one device call, from the repository root with
# the binaries and inputs scripts/gpu/moe_pack.sh put in .carry/moe-run/{bin,lib,seed}:
#   peaks  torch.matmul 8192^3 bf16 and a device copy (tests/gpu/bench_hf.py --peaks): the ceilings
#   full   the study's experiment on one H200: labs/bias --real --dummy-weights Qwen3-30B-A3B on the
#          study's inputs (tickers, evidence), 3 sets = 12,810 prompts, reply lengths from the
#          profile, every prompt in flight (--max-workers 12810)
#   w200   the same with the study's --max-workers 200
#   hf     transformers generate() at the same shape: 64 prompts of 512 + 96 tokens
#          (engine/bench --save-workload, then bench_hf.py --batches 64, time-limited, extrapolated)
# SUMMARY.txt: wall time, tokens/s, the share of the active-parameter compute roofline
# (FLOPs at the measured GEMM rate), and our ratio over transformers.  Each stage is
# time-limited; STAGES picks them.  Usage: BUDGET=520 bash .carry/moe-run/run.sh
set -u
O=${OUT:-out}; mkdir -p "$O"; W=/tmp/moe; rm -rf $W; mkdir -p $W
STAGES=${STAGES:-peaks full w200 hf}   # run in the order peaks, full, w200, hf
T0=$(date +%s); BUDGET=${BUDGET:-520}
left() { echo $(( BUDGET - ($(date +%s) - T0) )); }
say() { echo "== [$(( $(date +%s) - T0 )) s] $*" | tee -a "$O/SUMMARY.txt"; }
has() { case " $STAGES " in *" $1 "*) return 0;; esac; return 1; }
main() {
L=$PWD/.carry/moe-run; B=$L/bin
NV=$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)
E="env LD_LIBRARY_PATH=$L/lib:${NV%/bin/nvcc}/lib64"
M30=data/models/qwen3-30b-a3b-instruct-2507.json; ID=Qwen/Qwen3-30B-A3B-Instruct-2507
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee -a "$O/SUMMARY.txt"
$E $B/labs/bias --help > /dev/null || { echo "labs/bias does not start here"; $E ldd $B/labs/bias | grep "not found"; exit 1; }
TF=790
if has peaks; then
  say "peaks"
  timeout 60 python3 tests/gpu/bench_hf.py --peaks 2>&1 | tee $W/peaks.json | tee -a "$O/SUMMARY.txt"
  TF=$(python3 -c "import json;print(round([json.loads(l) for l in open('$W/peaks.json') if l.startswith('{')][-1]['gemm_tflops']))" 2>/dev/null || echo 790)
fi
# SMOKE_TICKERS=N: a quick check of the path (the first N tickers, 1 set) instead of the study's run
TICKERS=$L/seed/sp500_final.csv; SETS=3
if [ -n "${SMOKE_TICKERS:-}" ]; then head -n $(( SMOKE_TICKERS + 1 )) $TICKERS > $W/tickers.csv; TICKERS=$W/tickers.csv; SETS=1; fi
R="$E $B/labs/bias --real --dummy-weights $M30 --model-id $ID --quiet --gpu H200
   --tickers $TICKERS --qual $L/seed/evidence_corpus_qual_mixed.csv
   --quant $L/seed/evidence_corpus_quant_mixed.csv --max-num-seqs 1024 --max-num-batched-tokens 16384"
run_lab() {     # name workers seconds [sets]
  local sets=${4:-$SETS}
  say "$1: labs/bias --real, 30B-A3B dummy, $sets sets, --max-workers $2 (limit $3 s)"
  local t=$(date +%s)
  timeout $3 $R --num-sets $sets --max-workers $2 --output-dir $W/$1 > $W/$1.log 2>&1; echo "rc=$?" | tee -a "$O/SUMMARY.txt"
  tail -5 $W/$1.log
  # the steps too (pagesim calibrate --measured, the operator profile's step-by-step check)
  for f in $W/$1/*_att_compare.json $W/$1/*_att_metrics.json $W/$1/*_att_steps.csv; do [ -f "$f" ] && cp "$f" "$O/$1_$(basename "$f" | sed 's/.*_att_/att_/')"; done
  python3 - "$W/$1" $(( $(date +%s) - t )) $TF <<'PY' 2>&1 | tee -a "$O/SUMMARY.txt"
import glob, json, sys
d, secs, tf = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
m = json.load(open(glob.glob(d + "/*_att_metrics.json")[0]))
n, tin, tout = m["total_prompts"], m["total_input_tokens"], m["total_output_tokens"]
wall = m["total_time_seconds"]
# active-parameter FLOPs of Qwen3-30B-A3B: per token 2 x (q,k,v,o + 8 experts x 3 x 2048 x 768 + router) x 48
H, L, q, kv, k, Im, E, V = 2048, 48, 32 * 128, 4 * 128, 8, 768, 128, 151936
body = L * (2 * H * q + 2 * H * kv + k * 3 * H * Im + H * E)
P, G = tin / n, tout / n                          # mean prompt and reply
pairs = n * (P * P / 2 + P * G + G * G / 2)       # causal (query, key) pairs
fl = 2 * body * (tin + tout) + 2 * V * H * (n + tout) + 4 * L * q * pairs
print("%s: %d prompts, %d + %d tokens in %.1f s (process %.0f s): %.0f tokens/s; %.2f PFLOP = %.1f s at %.0f TFLOP/s: "
      "%.1f%% of the compute roofline; study (4 x H200, vLLM): 152.4 s -> %.2fx" % (
      d.split("/")[-1], n, tin, tout, wall, secs, (tin + tout) / wall, fl / 1e15, fl / tf / 1e12, tf,
      100 * fl / tf / 1e12 / wall, 152.4 / wall))
PY
}
if has full; then run_lab full 12810 $(( $(left) > 260 ? 240 : $(left) - 20 )); fi
# W200_SETS: sets of the --max-workers 200 run (default all; 1 set = 4,270 prompts fits a shorter call)
if has w200; then run_lab w200 200 $(( $(left) > 200 ? 180 : $(left) - 20 )) ${W200_SETS:-$SETS}; fi
if has hf; then
  say "hf: transformers generate(), 64 prompts of 512 + 96, 30B-A3B shape (random weights)"
  $E $B/engine/bench --dummy-weights $M30 --num-requests 64 --prompt-len 512 --output-len 96 \
    --save-workload $W/w64.txt --peak-tflops $TF 2>&1 | tail -4 | tee -a "$O/SUMMARY.txt"
  lim=$(( $(left) - 40 )); [ $lim -gt 110 ] && lim=110
  timeout $(( lim + 90 )) python3 tests/gpu/bench_hf.py --config $M30 --workload $W/w64.txt --batches 64 \
    --time-limit $lim --out $W/hf.jsonl 2>&1 | tail -3 | tee -a "$O/SUMMARY.txt"
  python3 - $W <<'PY' 2>&1 | tee -a "$O/SUMMARY.txt"
import glob, json, sys
w = sys.argv[1]
hf = [json.loads(l) for l in open(w + "/hf.jsonl")]
best = [r for r in hf if "best_total_tok_s" in r][-1]["best_total_tok_s"]
for name in ("full", "w200"):
    for f in glob.glob(w + "/%s/*_att_metrics.json" % name):
        m = json.load(open(f))
        ours = m["total_tokens"] / m["total_time_seconds"]
        print("%s: %.0f tokens/s against transformers' %.0f (batch 64): %.1fx (target 20x); transformers would take "
              "%.0f min for the study's %d tokens" % (name, ours, best, ours / best, m["total_tokens"] / best / 60,
                                                      m["total_tokens"]))
PY
fi
say "done"
}
main 2>&1 | tee "$O/log.txt"
