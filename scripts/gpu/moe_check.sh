#!/usr/bin/env bash
# Issue 11's checks in one device call, from the root of a checkout of the moe
# branch (unpacked from .carry/moe.tar, with .debs/ beside it):
#   build    scripts/gpu/build.sh (engine, GPU tests)
#   moetest  test_moe: every MoE kernel against its C reference
#   layer    engine/bench --moe-layer $LAYER_T (8192,256,64) at Qwen3-30B-A3B's shape, both GEMM
#            paths, and tests/gpu/bench_moe_torch.py (torch._grouped_mm) on the same routing
#   plan     engine/run on dummy 30B-A3B weights: the memory plan (vLLM's log lines)
#   e2e      engine/bench on dummy 30B-A3B weights: a bias-shaped run with PAGESIM_PROFILE=1
#            (GPU time per step class, expert loads); decode: a decode-heavy one
#   compare  tests/gpu/compare_hf.py --only qwen3moe (3 random-weight Qwen3-MoE models)
#   tests    test_engine (with a small Qwen3-MoE: batch = single, mma = cuBLAS), test_kernels
# Usage: STAGES="build moetest layer compare tests plan e2e" BUDGET=520 bash scripts/gpu/moe_check.sh
# Every stage is time-limited; $OUT/SUMMARY.txt gets the lines that matter, $OUT/log.txt all.
set -u
O=${OUT:-out}; mkdir -p "$O"; LOG=/tmp/moe-logs; rm -rf $LOG; mkdir -p $LOG   # $OUT takes 8 files: logs go in a tarball
STAGES=${STAGES:-build moetest layer compare tests plan e2e decode}
LAYER_T=${LAYER_T:-8192,1024,512,256,64}
T0=$(date +%s); BUDGET=${BUDGET:-520}
left() { echo $(( BUDGET - ($(date +%s) - T0) )); }
say() { echo "== [$(( $(date +%s) - T0 )) s] $*" | tee -a "$O/SUMMARY.txt"; }
has() { case " $STAGES " in *" $1 "*) return 0;; esac; return 1; }
lim() { local l=$(left); local w=$1; [ $w -gt $((l - 10)) ] && w=$((l - 10)); [ $w -lt 5 ] && w=5; echo $w; }
M=data/models
M30=$M/qwen3-30b-a3b-instruct-2507.json
main() {
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm --format=csv,noheader | tee -a "$O/SUMMARY.txt"
if has build; then
  say "build"
  timeout $(lim 200) bash scripts/gpu/build.sh > $LOG/build.log 2>&1; rc=$?
  tail -3 $LOG/build.log; grep -E "error" $LOG/build.log | head -20
  say "build rc=$rc"
  [ $rc = 0 ] || return
  echo "HGMMA in moe.cu's SASS: $(cuobjdump --dump-sass build/gpu/obj/engcu/moe.cu.o 2>/dev/null | grep -c HGMMA)" | tee -a "$O/SUMMARY.txt"
fi
gpu_tests() {
  for t in "$@"; do
    say "$t"
    PAGESIM_GPU=1 timeout $(lim 150) build/gpu/$t > $LOG/$t.log 2>&1; rc=$?
    grep -E "rel L2|route|permute|MoE|PASSED|FAILED|SKIPPED|Error|error" $LOG/$t.log | grep -vE "^\[ *RUN|^\[ *OK" | head -60 >> "$O/SUMMARY.txt"
    say "$t rc=$rc"
    [ $t = test_moe ] && MOE_RC=$rc
  done
}
MOE_RC=1
if has moetest; then gpu_tests test_moe; fi
if has layer; then
  say "layer: engine/bench --moe-layer $LAYER_T (30B-A3B shape) and torch._grouped_mm"
  timeout $(lim 120) build/gpu/bench --dummy-weights $M30 --moe-layer $LAYER_T --peak-tflops 790 --peak-gbps 4250 \
    --save-routing /tmp/routing.bin --json $LOG/moe_layer.json 2>&1 | tee -a "$O/SUMMARY.txt"
  timeout $(lim 120) python3 tests/gpu/bench_moe_torch.py --routing /tmp/routing.bin --ours $LOG/moe_layer.json \
    --peak-tflops 790 --peak-gbps 4250 --json $LOG/moe_layer_torch.json 2>&1 | tee -a "$O/SUMMARY.txt"
fi
if has compare; then
  say "compare: tests/gpu/compare_hf.py --only qwen3moe"
  PYTHONUNBUFFERED=1 timeout $(lim 300) python3 tests/gpu/compare_hf.py --engine build/gpu/run --only qwen3moe \
    --out $LOG > $LOG/compare.log 2>&1; rc=$?
  grep -vE '^\s*"|^\{|^\}|^ *\]|^ *\[' $LOG/compare.log | tail -30 >> "$O/SUMMARY.txt"
  say "compare rc=$rc"
fi
if has tests; then gpu_tests test_engine test_kernels; fi
if has plan; then
  say "plan: engine/run --dummy-weights 30B-A3B, --max-num-batched-tokens 8192, --max-model-len 4096"
  timeout $(lim 120) build/gpu/run --dummy-weights $M30 --max-num-batched-tokens 8192 --max-model-len 4096 \
    --prompt-ids 1,2,3,4,5,6,7,8 --max-tokens 8 --ignore-eos 2>&1 | tee $LOG/plan.log | grep -vE "^\s*$" | head -30 >> "$O/SUMMARY.txt"
fi
if has e2e; then
  say "e2e: bias shape on 30B-A3B dummy (1024 x 512 + 96, 1024 seqs, 16384 tokens), PAGESIM_PROFILE=1"
  PAGESIM_PROFILE=1 timeout $(lim 150) build/gpu/bench --dummy-weights $M30 --num-requests 1024 --prompt-len 512 \
    --output-len 96 --max-num-seqs 1024 --max-num-batched-tokens 16384 --max-model-len 1024 --peak-tflops 790 \
    --peak-gbps 4250 --json $LOG/e2e_bias.json 2>&1 | tail -45 | tee -a "$O/SUMMARY.txt"
fi
if has decode; then
  say "decode: decode-heavy on 30B-A3B dummy (256 requests, 100..1024), PAGESIM_PROFILE=1"
  PAGESIM_PROFILE=1 timeout $(lim 120) build/gpu/bench --dummy-weights $M30 --workload uniform --num-requests 256 \
    --max-model-len 2048 --peak-tflops 790 --peak-gbps 4250 --json $LOG/e2e_decode.json 2>&1 | tail -40 | tee -a "$O/SUMMARY.txt"
fi
say "done"
tar czf $O/logs.tgz -C $LOG . 2>/dev/null
}
main 2>&1 | tee "$O/log.txt"
