#!/usr/bin/env bash
# Sampling by radix select (engine/sampling.cu) on the GPU machine, one device call:
#   run(command="BUDGET=400 bash scripts/gpu/topp_run.sh", carry=[".debs"], timeout_s=480)
# (.debs: the -dev packages scripts/gpu/build.sh unpacks; copy /work/main/.debs into the
# checkout first when it lacks them.)  STAGES, a comma list (default build,test,bench):
#   build  scripts/gpu/build.sh (build/gpu/test_*), then nvcc tests/gpu/bench_sample.cu
#          against build/gpu/obj/lib{engcu,engine}.a -> build/gpu/bench_sample
#   test   build/gpu/test_sample: k_sample = kref_sample_row on EVERY row (V = 151,936 and
#          small V; greedy, T, top-k, top-p, both; ties, dominant, near-uniform, masked;
#          misaligned rows; a row alone = in the batch; two launches agree), then
#          build/gpu/test_kernels (the other kernels; its sampling case now exact too)
#   bench  build/gpu/bench_sample: the old kernel (bisection, kept only in the benchmark)
#          and the new one, ms per call and GB/s at R = 1, 64, 256, 1024, V = 151,936,
#          T 0.6 / top-p 0.8, near-uniform and spread rows; top-k, both, T only, greedy
# Every stage is time-limited within BUDGET seconds (default 400).
# $OUT: SUMMARY.txt (verdicts and the benchmark table) and logs.tar.gz (every log).
set -u
OUT=${OUT:-out}; mkdir -p "$OUT"
LOG=/tmp/topp-logs; rm -rf $LOG; mkdir -p $LOG
STAGES=${STAGES:-${1:-build,test,bench}}
S=$OUT/SUMMARY.txt; : > "$S"
T0=$(date +%s); BUDGET=${BUDGET:-400}
has() { [[ ",$STAGES," == *",$1,"* ]]; }
say() { echo "[$(( $(date +%s) - T0 )) s] $*" | tee -a "$S"; }
left() { echo $(( BUDGET - ($(date +%s) - T0) )); }
lim() { local l; l=$(left); local w=$1; [ "$w" -gt $((l - 10)) ] && w=$((l - 10)); [ "$w" -lt 5 ] && w=5; echo $w; }
finish() { say "done"; tar -czf "$OUT/logs.tar.gz" -C /tmp topp-logs 2>/dev/null; exit "${1:-0}"; }
NVCC=${NVCC:-$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)}

say "topp_run.sh $STAGES on $(hostname): $(git rev-parse --short HEAD 2>/dev/null || echo '?'), budget $BUDGET s"
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv,noheader >> "$S" 2>&1

if has build || [ ! -x build/gpu/test_sample ]; then
  timeout "$(lim 240)" bash scripts/gpu/build.sh > $LOG/build.txt 2>&1; rc=$?
  say "build rc=$rc"
  [ $rc = 0 ] || { grep -E "error|failed" $LOG/build.txt | head -20 | tee -a "$S"; finish 1; }
  timeout "$(lim 120)" "$NVCC" -O3 -gencode=arch=compute_90a,code=sm_90a -lineinfo -I. tests/gpu/bench_sample.cu \
    -o build/gpu/bench_sample build/gpu/obj/libengcu.a build/gpu/obj/libengine.a > $LOG/build_bench.txt 2>&1; rc=$?
  say "bench_sample build rc=$rc"
  [ $rc = 0 ] || head -20 $LOG/build_bench.txt | tee -a "$S"
fi

if has test; then
  for t in test_sample test_kernels; do
    PAGESIM_GPU=1 timeout "$(lim 150)" bash tests/run.sh --gpu -- build/gpu/$t > $LOG/$t.txt 2>&1; rc=$?
    say "$t rc=$rc: $(tail -1 $LOG/$t.txt)"
    grep -E "rows equal|alone|kernel .* reference|not ok|failed in" $LOG/$t.txt | sed 's/^/  /' | head -60 >> "$S"
  done
fi

if has bench && [ -x build/gpu/bench_sample ]; then
  timeout "$(lim 240)" build/gpu/bench_sample "${BENCH_ITERS:-10}" > $LOG/bench.txt 2>&1; rc=$?
  say "bench_sample rc=$rc"
  cat $LOG/bench.txt >> "$S"
fi
finish 0
