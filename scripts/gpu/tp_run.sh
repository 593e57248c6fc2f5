#!/usr/bin/env bash
# Tensor parallelism on the GPU machine (issues 13 and 14) in one device call.
#   run(command="bash scripts/gpu/tp_run.sh [STAGES]", carry=[".debs"])
#     kind nvidia-h200 (one GPU: the sharding and comm-of-one checks; the
#     multi-GPU cases skip, saying so) or nvidia-h200-x2 / -x4 (everything).
# STAGES, a comma list (default build,test,cli,bench):
#   build  scripts/gpu/build.sh (finds NCCL: /usr/include/nccl.h there)
#   test   build/gpu/test_tp_shard: the N = 2, 4 shards of a dense, a Qwen3-like
#          and a MoE layer run one after another on one GPU, summed where the
#          all-reduce goes, against the whole layer; vocabulary-parallel embedding
#          and lm_head; NCCL with a communicator of one bit-identical to none.
#          build/gpu/test_tp_comm (2+ GPUs): the collectives across processes,
#          SIGKILL to a worker named by rank 0 within seconds, a worker's
#          start-up error reported
#   cli    engine/run --tensor-parallel-size N with more GPUs than present: a
#          clear error, no hang
#   bench  build/gpu/bench_tp_allreduce (2+ GPUs): NCCL's all-reduce at the
#          engine's message sizes, and the cost model's two coefficients
#   all    every GPU test of the project (tests/gpu/test_*), as make test-gpu
# Every stage has its own timeout; NVLink multicast stays off in every command.
# Results under $OUT: SUMMARY.txt (figures and verdicts), logs.txt, tp_tests.txt,
# bench_tp_allreduce.txt, gpu_tests.txt.
set -u
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
export NCCL_DEBUG=${NCCL_DEBUG:-WARN}
OUT=${OUT:-out}; mkdir -p "$OUT"
STAGES=${1:-build,test,cli,bench}
S=$OUT/SUMMARY.txt; L=$OUT/logs.txt
: > "$S"; : > "$L"
has() { [[ ",$STAGES," == *",$1,"* ]]; }
say() { echo "$*" | tee -a "$S"; }
T0=$(date +%s)
say "tp_run.sh $STAGES on $(hostname): $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
nvidia-smi --query-gpu=index,name,memory.total,driver_version --format=csv,noheader >> "$S" 2>&1
NGPU=$(nvidia-smi -L 2>/dev/null | wc -l)
say "GPUs: $NGPU; NCCL headers: $(ls /usr/include/nccl.h /usr/local/cuda/include/nccl.h 2>/dev/null | tr '\n' ' ')"

if has build || [ ! -x build/gpu/test_tp_shard ]; then
  timeout 420 bash scripts/gpu/build.sh > "$OUT/build.txt" 2>&1; rc=$?
  say "build rc=$rc ($(( $(date +%s) - T0 )) s): $(grep -E '^NCCL' "$OUT/build.txt" | head -1)"
  [ $rc = 0 ] || { tail -40 "$OUT/build.txt" | tee -a "$S"; exit 1; }
fi

if has test; then
  PAGESIM_GPU=1 timeout 300 bash tests/run.sh --gpu -- build/gpu/test_tp_shard build/gpu/test_tp_comm \
    > "$OUT/tp_tests.txt" 2>&1; rc=$?
  say "tp tests rc=$rc: $(tail -1 "$OUT/tp_tests.txt")"
  grep -E "rel L2|bit-identical|not ok|skip:|killed|reported|ranks:|failed in" "$OUT/tp_tests.txt" | sed 's/^/  /' >> "$S"
fi

if has cli; then
  for n in $((NGPU < 1 ? 2 : NGPU + 1)) 3; do
    timeout 60 build/gpu/run --dummy-weights data/models/qwen2.5-0.5b.json --tensor-parallel-size $n \
      --prompt-ids 1,2,3 --max-tokens 2 > "$OUT/tmp.txt" 2>&1; rc=$?
    say "engine/run -tp $n on $NGPU GPU(s): rc=$rc: $(head -c 400 "$OUT/tmp.txt")"
  done
  rm -f "$OUT/tmp.txt"
fi

if has bench; then
  timeout 240 build/gpu/bench_tp_allreduce > "$OUT/bench_tp_allreduce.txt" 2>&1; rc=$?
  say "bench_tp_allreduce rc=$rc"
  grep -E "^TP|cost model|skipped" "$OUT/bench_tp_allreduce.txt" | sed 's/^/  /' >> "$S"
fi

if has all; then
  PAGESIM_GPU=1 timeout 400 bash tests/run.sh --gpu -- build/gpu/test_* > "$OUT/gpu_tests.txt" 2>&1; rc=$?
  say "all GPU tests rc=$rc: $(tail -1 "$OUT/gpu_tests.txt")"
  grep -E "not ok|failed in" "$OUT/gpu_tests.txt" | grep -v SKIP | sed 's/^/  /' >> "$S"
fi
say "done in $(( $(date +%s) - T0 )) s"
