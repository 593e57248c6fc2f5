#!/usr/bin/env bash
# AWQ 4-bit weights (issue 17) on the GPU machine in one device call:
#   run(command="BUDGET=540 bash scripts/gpu/awq_run.sh", carry=[".debs"], timeout_s=600)
# STAGES, a comma list (default build,test,compare,gemm,decode,prefill,mem12):
#   build    scripts/gpu/build.sh (build/gpu/run, bench, test_*)
#   test     build/gpu/test_awq (repack, dequantize, decode kernel at 1..100 tokens, groups 64/128,
#            split-K, prefill path, odd shapes, loader, engine paths), then test_kernels and
#            test_engine (nothing else changed)
#   compare  tests/gpu/awq_compare.py: Qwen2 and Llama shapes at groups 64 and 128, AutoAWQ-packed by
#            tests/gpu/awq_pack.py: our logits on the AWQ checkpoint vs our bf16 run and transformers
#            on the dequantized bf16 weights
#   gemm     engine/bench --awq-gemm 1,8,32,64,2048 on Qwen2.5-7B-AWQ's linears vs cuBLAS bf16:
#            weights read per second against the copy bandwidth
#   decode   engine/bench, decode at batch 1, 8, 32 (prompt 128, 128 new tokens each): AWQ vs bf16
#            decode-only step time (target: AWQ 2.5x faster), weights bytes per second
#   prefill  the bias shape (1024 requests of 512 + 96, 1024 seqs, 16384 batched tokens): AWQ vs
#            bf16 wall time (target: AWQ at least 85% of bf16's speed)
#   mem12    engine/run with --max-gpu-memory RTX-4070: 14B-AWQ refused (6144 tokens at 0.92, and
#            vLLM's defaults), 7B-AWQ at 6144 and 0.92 with its blocks and concurrency, each
#            beside pagesim plan's line
# Every stage is time-limited within BUDGET seconds (default 540).  $OUT: SUMMARY.txt and logs.tar.gz.
set -u
OUT=${OUT:-out}; mkdir -p "$OUT"
LOG=/tmp/awq-logs; rm -rf $LOG; mkdir -p $LOG
STAGES=${STAGES:-${1:-build,test,compare,gemm,decode,prefill,mem12}}
S=$OUT/SUMMARY.txt; : > "$S"
T0=$(date +%s); BUDGET=${BUDGET:-540}
has() { [[ ",$STAGES," == *",$1,"* ]]; }
say() { echo "[$(( $(date +%s) - T0 )) s] $*" | tee -a "$S"; }
left() { echo $(( BUDGET - ($(date +%s) - T0) )); }
lim() { local l; l=$(left); local w=$1; [ "$w" -gt $((l - 15)) ] && w=$((l - 15)); [ "$w" -lt 5 ] && w=5; echo $w; }
finish() { say "done"; tar -czf "$OUT/logs.tar.gz" -C /tmp awq-logs 2>/dev/null; exit "${1:-0}"; }
M=data/models
A7=$M/qwen2.5-7b-instruct-awq.json; B7=$M/qwen2.5-7b.json; A14=$M/qwen2.5-14b-instruct-awq.json
say "awq_run.sh $STAGES on $(hostname): $(git rev-parse --short HEAD 2>/dev/null || echo '?'), budget $BUDGET s"
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv,noheader >> "$S" 2>&1

if has build || [ ! -x build/gpu/test_awq ]; then
  timeout "$(lim 240)" bash scripts/gpu/build.sh > $LOG/build.txt 2>&1; rc=$?
  say "build rc=$rc"
  [ $rc = 0 ] || { grep -E "error|failed" $LOG/build.txt | head -30 | tee -a "$S"; finish 1; }
fi

if has test; then
  for t in test_awq test_kernels test_engine; do
    PAGESIM_GPU=1 timeout "$(lim 150)" bash tests/run.sh --gpu -- build/gpu/$t > $LOG/$t.txt 2>&1; rc=$?
    say "$t rc=$rc: $(tail -1 $LOG/$t.txt)"
    [ $t = test_awq ] && grep -E "rel L2|identical|differ|byte for byte|FAILED|ERROR|Failure|LINE" $LOG/$t.txt \
      | sed 's/^/  /' | head -80 >> "$S"
    [ $t != test_awq ] && grep -E "FAILED|ERROR|LINE" $LOG/$t.txt | sed 's/^/  /' | head -20 >> "$S"
  done
fi

if has compare; then
  PY=python3
  timeout "$(lim 150)" $PY tests/gpu/awq_compare.py --engine build/gpu/run --out /tmp/awq-compare \
    > $LOG/compare.txt 2>&1; rc=$?
  say "awq_compare rc=$rc"
  grep -E "G +(64|128)|awq_compare|Error|error" $LOG/compare.txt | sed 's/^/  /' | head -20 >> "$S"
  cp /tmp/awq-compare/awq_compare.json $LOG/ 2>/dev/null
fi

if has gemm; then
  timeout "$(lim 90)" build/gpu/bench --dummy-weights $A7 --awq-gemm 1,8,32,64,2048 > $LOG/gemm.txt 2>&1; rc=$?
  say "engine/bench --awq-gemm rc=$rc"
  sed 's/^/  /' $LOG/gemm.txt | head -40 >> "$S"
fi

# decode-only step time of engine/bench (ms) from its summary line
dec_ms() { grep -oE "decode-only steps: [0-9]+, [0-9.]+ s \([0-9.]+ ms each" "$1" | grep -oE "[0-9.]+ ms" | grep -oE "[0-9.]+"; }
if has decode; then
  for B in 1 8 32; do
    for cfg in $A7 $B7; do
      n=$(basename $cfg .json)
      timeout "$(lim 60)" build/gpu/bench --dummy-weights $cfg --num-requests $B --prompt-len 128 --output-len 128 \
        --max-num-seqs $B --max-num-batched-tokens 2048 --max-model-len 512 > $LOG/decode_${n}_$B.txt 2>&1
      echo "rc=$?" >> $LOG/decode_${n}_$B.txt
    done
    a=$(dec_ms $LOG/decode_$(basename $A7 .json)_$B.txt); b=$(dec_ms $LOG/decode_$(basename $B7 .json)_$B.txt)
    wb=$(grep -oE "weights [0-9.]+ GiB" $LOG/decode_$(basename $A7 .json)_$B.txt | head -1 | grep -oE "[0-9.]+")
    say "decode batch $B: AWQ ${a:-?} ms/step, bf16 ${b:-?} ms/step: $(awk -v a="${a:-0}" -v b="${b:-0}" \
      'BEGIN { if (a > 0) printf "%.2fx (target 2.5x)", b / a; else printf "?" }'); AWQ weights ${wb:-?} GiB read per \
step = $(awk -v w="${wb:-0}" -v a="${a:-0}" 'BEGIN { if (a > 0) printf "%.0f GB/s", w * 1.073741824 / (a / 1000); else printf "?" }') (includes lm_head; the copy bandwidth is in the gemm stage)"
  done
fi

if has prefill; then
  for cfg in $A7 $B7; do
    n=$(basename $cfg .json)
    timeout "$(lim 110)" build/gpu/bench --dummy-weights $cfg --num-requests 1024 --prompt-len 512 --output-len 96 \
      --max-num-seqs 1024 --max-num-batched-tokens 16384 --max-model-len 1024 > $LOG/bias_$n.txt 2>&1
    echo "rc=$?" >> $LOG/bias_$n.txt
    say "bias shape $n: $(grep -E '^  wall' $LOG/bias_$n.txt | head -1 | sed 's/^ *//')"
    grep -E "steps with prefill" $LOG/bias_$n.txt | sed 's/^/  /' >> "$S"
  done
  wa=$(grep -oE "wall [0-9.]+ s" $LOG/bias_$(basename $A7 .json).txt | grep -oE "[0-9.]+")
  wb=$(grep -oE "wall [0-9.]+ s" $LOG/bias_$(basename $B7 .json).txt | grep -oE "[0-9.]+")
  say "bias shape: AWQ speed = $(awk -v a="${wa:-0}" -v b="${wb:-0}" 'BEGIN { if (a > 0) printf "%.0f%%", 100 * b / a; else printf "?" }') of bf16's (target 85%)"
fi

if has mem12; then
  P="--prompt-ids 1,2,3,4,5,6,7,8 --max-tokens 8 --max-gpu-memory RTX-4070 --dummy-seed 1"
  timeout "$(lim 60)" build/gpu/run --dummy-weights $A14 $P --gpu-memory-utilization 0.92 --max-model-len 6144 \
    --max-num-batched-tokens 6144 > $LOG/mem_14b_6144.out 2> $LOG/mem_14b_6144.err
  say "14B-AWQ, 12 GB budget, 6144 tokens, 0.92: rc=$? (expected: refused)"
  grep -E "not enough|pagesim plan|GPU KV|blocks" $LOG/mem_14b_6144.err | sed 's/^/  /' >> "$S"
  timeout "$(lim 60)" build/gpu/run --dummy-weights $A14 $P --gpu-memory-utilization 0.9 --max-model-len 32768 \
    --max-num-batched-tokens 32768 > $LOG/mem_14b_default.out 2> $LOG/mem_14b_default.err
  say "14B-AWQ, 12 GB budget, vLLM's defaults (32768 tokens, 0.9): rc=$? (expected: refused, # GPU blocks: 0)"
  grep -E "not enough|pagesim plan|GPU KV|blocks" $LOG/mem_14b_default.err | sed 's/^/  /' >> "$S"
  timeout "$(lim 60)" build/gpu/run --dummy-weights $A7 $P --gpu-memory-utilization 0.92 --max-model-len 6144 \
    --max-num-batched-tokens 6144 > $LOG/mem_7b.out 2> $LOG/mem_7b.err
  say "7B-AWQ, 12 GB budget, 6144 tokens, 0.92: rc=$? (expected: runs)"
  grep -E "^Loading|^Memory|GPU KV cache size|Maximum concurrency|# GPU blocks|pagesim plan|rror" $LOG/mem_7b.err \
    | sed 's/^/  /' >> "$S"
fi
finish 0
