#!/usr/bin/env bash
# Issues 16 (LoRA), 17 (AWQ) and 19 (CUDA graphs, swap) checked and measured in one device
# call, after every GPU test of the merged tree:
#   run(command="BUDGET=570 bash scripts/gpu/wave2_run.sh", carry=[".debs"], timeout_s=600)
# Stages (STAGES, a comma list; default build,tests,lora,graphs,awq), each time-limited
# within BUDGET seconds:
#   build   scripts/gpu/build.sh (build/gpu/run, bench, merge, every tests/gpu/test_*)
#   tests   every GPU test (test_awq, test_lora, test_cuda_graph, test_swap among them)
#   lora    tests/gpu/lora_check.py: the engine's LoRA against PEFT (runtime, merged)
#   graphs  scripts/gpu/graphs_run.sh decode,bias,b1,swap (eager vs --cuda-graphs, swap vs
#           recompute, each beside the simulator)
#   awq     scripts/gpu/awq_run.sh compare,gemm,decode,prefill,mem12
# $OUT: SUMMARY.txt (every stage's verdicts and figures) and wave2.tgz (every log and JSON).
set -u
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1 PYTHONUNBUFFERED=1
OUT=${OUT:-out}; mkdir -p "$OUT"; OUT=$(cd "$OUT" && pwd)
W=/tmp/wave2; rm -rf $W; mkdir -p $W
STAGES=${STAGES:-${1:-build,tests,lora,graphs,awq}}
BUDGET=${BUDGET:-570}; T0=$(date +%s)
S=$OUT/SUMMARY.txt; : > "$S"
has() { [[ ",$STAGES," == *",$1,"* ]]; }
say() { echo "[$(( $(date +%s) - T0 )) s] $*" | tee -a "$S"; }
left() { echo $(( BUDGET - ($(date +%s) - T0) )); }
lim() { local l w=$1; l=$(left); [ "$w" -gt $((l - 10)) ] && w=$((l - 10)); [ "$w" -lt 5 ] && w=5; echo $w; }
finish() { say "done"; tar -czf "$OUT/wave2.tgz" -C /tmp wave2 2>/dev/null; exit 0; }
trap finish TERM
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv,noheader >> "$S" 2>&1
say "wave2_run.sh $STAGES: $(git rev-parse --short HEAD 2>/dev/null || echo '?'), budget $BUDGET s"

if has build; then
  timeout "$(lim 200)" bash scripts/gpu/build.sh > $W/build.txt 2>&1; rc=$?
  say "build rc=$rc"
  [ $rc = 0 ] || { grep -E "error|failed" $W/build.txt | head -30 | tee -a "$S"; finish; }
fi

if has tests; then
  PAGESIM_GPU=1 timeout "$(lim 170)" bash tests/run.sh --gpu -- $(ls build/gpu/test_* | grep -v '\.o$') \
    > $W/test_gpu.txt 2>&1
  say "GPU tests rc=$?: $(tail -1 $W/test_gpu.txt)"
  grep -E "not ok [0-9]+ [^#]*$" $W/test_gpu.txt | head -30 | sed 's/^/  /' | tee -a "$S"
  grep -E "^test_(awq|lora|cuda_graph|swap): +[A-Za-z0-9]" $W/test_gpu.txt | grep -v "^.*: ok\|# SKIP" | head -60 \
    | cut -c1-400 | sed 's/^/  /' >> "$S"
fi

if has lora; then
  timeout "$(lim 120)" python3 tests/gpu/lora_check.py --engine build/gpu/run --merge build/gpu/merge \
    --out $W/lora > $W/lora_check.txt 2>&1
  say "lora_check rc=$?"
  grep -E "^(family|qwen2 |llama )|lora_check:|ERROR|Error" $W/lora_check.txt | cut -c1-300 | sed 's/^/  /' | tee -a "$S"
fi

if has graphs; then
  b=$(lim 170)
  OUT=$W/graphs BUDGET=$b STAGES=decode,bias,b1,swap timeout "$((b + 10))" bash scripts/gpu/graphs_run.sh \
    > $W/graphs.txt 2>&1
  say "graphs_run rc=$? (budget $b s)"
  sed 's/^/  /' $W/graphs/SUMMARY.txt >> "$S" 2>/dev/null
fi

if has awq; then
  b=$(lim 300)
  OUT=$W/awq BUDGET=$b STAGES=compare,gemm,decode,prefill,mem12 timeout "$((b + 10))" bash scripts/gpu/awq_run.sh \
    > $W/awq.txt 2>&1
  say "awq_run rc=$? (budget $b s)"
  sed 's/^/  /' $W/awq/SUMMARY.txt >> "$S" 2>/dev/null
fi
finish
