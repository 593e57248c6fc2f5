#!/usr/bin/env bash
# Session 6, one device call: every GPU test of main, LoRA against PEFT again (the scheduler
# now skips requests whose adapter has no slot), the sampling kernel's benchmark, and where the
# GPU time of the open speed targets goes (Nsight Compute, one duration per kernel):
#   run(command="BUDGET=420 bash scripts/gpu/wave6_run.sh", carry=[".debs"], timeout_s=600)
# STAGES (a comma list; default build,tests,lora,sample,ncu,awqg):
#   build   scripts/gpu/build.sh, then tests/gpu/bench_sample.cu (as topp_run.sh)
#   tests   every GPU test (build/gpu/test_*)
#   lora    tests/gpu/lora_check.py (runtime and merged LoRA against PEFT)
#   sample  build/gpu/bench_sample: bisection top-p against the radix select
#   ncu     kernel time by name (scripts/gpu/ncu_sum.py) in a window of steps of: the
#           decode-heavy run (issue 19), the bias shape with 8 LoRA adapters in a prefill and a
#           decode window (issue 16), Qwen2.5-7B-AWQ decode at batch 1 and 32 (issue 17)
#   awqg    AWQ against bf16 decode at batch 1, 8, 32, both with --cuda-graphs
# $OUT: SUMMARY.txt and wave6.tgz (every log).  NVLink multicast stays off.
set -u
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1 PYTHONUNBUFFERED=1
OUT=${OUT:-out}; mkdir -p "$OUT"; OUT=$(cd "$OUT" && pwd)
W=/tmp/wave6; rm -rf $W; mkdir -p $W
STAGES=${STAGES:-${1:-build,tests,lora,sample,ncu,awqg}}
BUDGET=${BUDGET:-420}; T0=$(date +%s)
S=$OUT/SUMMARY.txt; : > "$S"
M=data/models
has() { [[ ",$STAGES," == *",$1,"* ]]; }
say() { echo "[$(( $(date +%s) - T0 )) s] $*" | tee -a "$S"; }
left() { echo $(( BUDGET - ($(date +%s) - T0) )); }
lim() { local l w=$1; l=$(left); [ "$w" -gt $((l - 10)) ] && w=$((l - 10)); [ "$w" -lt 5 ] && w=5; echo $w; }
finish() { say "done"; tar -czf "$OUT/wave6.tgz" -C /tmp wave6 2>/dev/null; exit 0; }
trap finish TERM
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv,noheader >> "$S" 2>&1
say "wave6_run.sh $STAGES, budget $BUDGET s"
NVCC=${NVCC:-$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)}

if has build; then
  timeout "$(lim 200)" bash scripts/gpu/build.sh > $W/build.txt 2>&1; rc=$?
  say "build rc=$rc"
  [ $rc = 0 ] || { grep -E "error|failed" $W/build.txt | head -30 | tee -a "$S"; finish; }
  timeout "$(lim 120)" "$NVCC" -O3 -gencode=arch=compute_90a,code=sm_90a -lineinfo -I. tests/gpu/bench_sample.cu \
    -o build/gpu/bench_sample build/gpu/obj/libengcu.a build/gpu/obj/libengine.a > $W/build_bench.txt 2>&1
  say "bench_sample build rc=$?"
fi

if has tests; then
  PAGESIM_GPU=1 timeout "$(lim 170)" bash tests/run.sh --gpu -- $(ls build/gpu/test_* | grep -v '\.o$') \
    > $W/test_gpu.txt 2>&1
  say "GPU tests rc=$?: $(tail -1 $W/test_gpu.txt)"
  grep -E "not ok [0-9]+ [^#]*$|failed in" $W/test_gpu.txt | head -30 | sed 's/^/  /' | tee -a "$S"
  grep -E "^test_sample: .*rows equal" $W/test_gpu.txt | head -8 | sed 's/^/  /' >> "$S"
fi

if has lora; then
  timeout "$(lim 120)" python3 tests/gpu/lora_check.py --engine build/gpu/run --merge build/gpu/merge \
    --out $W/lora > $W/lora_check.txt 2>&1
  say "lora_check rc=$?"
  grep -E "^(family|qwen2 |llama )|lora_check:|ERROR|Error" $W/lora_check.txt | cut -c1-300 | sed 's/^/  /' >> "$S"
fi

if has sample && [ -x build/gpu/bench_sample ]; then
  timeout "$(lim 60)" build/gpu/bench_sample 5 > $W/bench_sample.txt 2>&1
  say "bench_sample rc=$?"; sed 's/^/  /' $W/bench_sample.txt >> "$S"
fi

NCU=$(command -v ncu || ls /opt/nvidia/nsight-compute/*/ncu /usr/local/cuda/bin/ncu 2>/dev/null | head -1)
prof() {  # tag, seconds, skip, count, bench args...: kernel durations in a window of launches
  local tag=$1 t=$2 sk=$3 n=$4; shift 4
  [ "$(left)" -gt 30 ] || { say "ncu $tag: no time left"; return; }
  timeout "$(lim "$t")" "$NCU" --clock-control none --cache-control none --metrics gpu__time_duration.sum --csv \
    --launch-skip "$sk" --launch-count "$n" build/gpu/bench "$@" > $W/ncu_$tag.csv 2> $W/ncu_$tag.err
  say "ncu $tag rc=$? (launches $sk + $n)"
  python3 scripts/gpu/ncu_sum.py $W/ncu_$tag.csv "$tag" 2>&1 | head -40 | sed 's/^/  /' >> "$S"
}
DEC=(--dummy-weights $M/qwen3-0.6b.json --workload uniform --num-requests 256 --min-len 100 --max-len 1024)
LB=(--dummy-weights $M/qwen2.5-7b.json --workload fixed --num-requests 256 --prompt-len 512 --output-len 96
    --max-num-seqs 256 --max-num-batched-tokens 16384 --enable-lora --max-lora-rank 16 --max-loras 8 --lora-dummy 8)
A7=$M/qwen2.5-7b-instruct-awq.json; B7=$M/qwen2.5-7b.json
AD=(--prompt-len 128 --output-len 128 --max-num-batched-tokens 2048 --max-model-len 512)
if has ncu; then
  if [ -z "$NCU" ]; then say "ncu: not found"; else
    prof dec 120 20000 1200 "${DEC[@]}"
    prof lora_prefill 90 700 900 "${LB[@]}"
    prof lora_decode 120 9000 900 "${LB[@]}"
    prof awq_b1 60 2000 800 --dummy-weights $A7 --num-requests 1 --max-num-seqs 1 "${AD[@]}"
    prof awq_b32 60 2000 800 --dummy-weights $A7 --num-requests 32 --max-num-seqs 32 "${AD[@]}"
    prof bf16_b1 60 2000 800 --dummy-weights $B7 --num-requests 1 --max-num-seqs 1 "${AD[@]}"
  fi
fi

dec_ms() { grep -oE "decode-only steps: [0-9]+, [0-9.]+ s \([0-9.]+ ms each" "$1" | grep -oE "[0-9.]+ ms" | grep -oE "[0-9.]+"; }
if has awqg; then
  for B in 1 8 32; do
    for cfg in $A7 $B7; do
      [ "$(left)" -gt 25 ] || break
      n=$(basename $cfg .json)
      timeout "$(lim 60)" build/gpu/bench --dummy-weights $cfg --num-requests $B --max-num-seqs $B "${AD[@]}" \
        --cuda-graphs > $W/awqg_${n}_$B.txt 2>&1
    done
    a=$(dec_ms $W/awqg_$(basename $A7 .json)_$B.txt); b=$(dec_ms $W/awqg_$(basename $B7 .json)_$B.txt)
    say "graphs, decode batch $B: AWQ ${a:-?} ms/step, bf16 ${b:-?} ms/step: $(awk -v a="${a:-0}" -v b="${b:-0}" \
      'BEGIN { if (a > 0) printf "%.2fx", b / a; else print "?" }')"
    grep -h "CUDA graphs" $W/awqg_*_$B.txt | head -2 | sed 's/^/  /' >> "$S"
  done
fi
finish
