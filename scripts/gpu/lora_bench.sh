#!/usr/bin/env bash
# Runtime LoRA's kernels (engine/lora.cu, engine/lora_shrink.cu) on the GPU machine, one
# device call:
#   run(command="BUDGET=420 bash scripts/gpu/lora_bench.sh", carry=[".debs"], timeout_s=480)
# (.debs: the -dev packages scripts/gpu/build.sh unpacks; copy /work/main/.debs into the
# checkout first when it lacks them.)  STAGES, a comma list (default build,test,bench):
#   build  scripts/gpu/build.sh (build/gpu/test_*), then nvcc tests/gpu/bench_lora.cu
#          against build/gpu/obj/lib{engine,engcu,base}.a -> build/gpu/bench_lora
#   test   build/gpu/test_lora: shrink (split over blocks = looped, bit for bit; K off the
#          split; one row), expand (slice ends off the fragments, ranks 8..64), SwiGLU, a
#          batch = each sequence alone, a prefill-sized batch (looped shrink, blocks of several
#          tiles), the runtime with evictions; against the C references
#   bench  build/gpu/bench_lora: old and new shrink / expand / SwiGLU at Qwen2.5-7B shapes,
#          T = 16384 (prefill) and 256, 839 (decode), 1 and 8 adapters: us per call, GB/s
#          of the ideal bytes, new vs the references on sampled rows
# Every stage is time-limited within BUDGET seconds (default 420).
# $OUT: SUMMARY.txt (verdicts and the benchmark table) and logs.tar.gz (every log).
set -u
OUT=${OUT:-out}; mkdir -p "$OUT"
LOG=/tmp/lora-logs; rm -rf $LOG; mkdir -p $LOG
STAGES=${STAGES:-${1:-build,test,bench}}
S=$OUT/SUMMARY.txt; : > "$S"
T0=$(date +%s); BUDGET=${BUDGET:-420}
has() { [[ ",$STAGES," == *",$1,"* ]]; }
say() { echo "[$(( $(date +%s) - T0 )) s] $*" | tee -a "$S"; }
left() { echo $(( BUDGET - ($(date +%s) - T0) )); }
lim() { local l; l=$(left); local w=$1; [ "$w" -gt $((l - 10)) ] && w=$((l - 10)); [ "$w" -lt 5 ] && w=5; echo $w; }
finish() { say "done"; tar -czf "$OUT/logs.tar.gz" -C /tmp lora-logs 2>/dev/null; exit "${1:-0}"; }
NVCC=${NVCC:-$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)}

say "lora_bench.sh $STAGES on $(hostname): $(git rev-parse --short HEAD 2>/dev/null || echo '?'), budget $BUDGET s"
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv,noheader >> "$S" 2>&1

if has build || [ ! -x build/gpu/test_lora ]; then
  timeout "$(lim 240)" bash scripts/gpu/build.sh > $LOG/build.txt 2>&1; rc=$?
  say "build rc=$rc"
  [ $rc = 0 ] || { grep -E "error|failed" $LOG/build.txt | head -20 | tee -a "$S"; finish 1; }
  O=build/gpu/obj
  timeout "$(lim 120)" "$NVCC" -O3 -gencode=arch=compute_90a,code=sm_90a -lineinfo -I. tests/gpu/bench_lora.cu \
    -o build/gpu/bench_lora $O/libengine.a $O/libengcu.a $O/libbase.a > $LOG/build_bench.txt 2>&1; rc=$?
  say "bench_lora build rc=$rc"
  [ $rc = 0 ] || head -20 $LOG/build_bench.txt | tee -a "$S"
fi

if has test; then
  PAGESIM_GPU=1 timeout "$(lim 150)" bash tests/run.sh --gpu -- build/gpu/test_lora > $LOG/test_lora.txt 2>&1; rc=$?
  say "test_lora rc=$rc: $(tail -1 $LOG/test_lora.txt)"
  grep -E "rel L2|bit for bit|alone|not ok|failed in|FAILED|Error|error" $LOG/test_lora.txt | sed 's/^/  /' | head -60 >> "$S"
fi

if has bench && [ -x build/gpu/bench_lora ]; then
  timeout "$(lim 240)" build/gpu/bench_lora "${BENCH_ITERS:-20}" > $LOG/bench.txt 2>&1; rc=$?
  say "bench_lora rc=$rc"
  cat $LOG/bench.txt >> "$S"
fi
finish 0
