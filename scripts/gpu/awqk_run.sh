#!/usr/bin/env bash
# The AWQ decode GEMM near the memory roofline (issue 17) on the GPU machine in one device call:
#   run(command="BUDGET=540 bash scripts/gpu/awqk_run.sh", carry=[".debs"], timeout_s=600)
# STAGES, a comma list (default build,test,gemm,decode):
#   build   scripts/gpu/build.sh (build/gpu/run, bench, test_*)
#   test    build/gpu/test_awq through tests/run.sh --gpu (decode kernel at 1..100 tokens, groups 64/128,
#           split-K with the in-kernel reduce and with the reduce launch, a token's y the same bits at
#           every batch, prefill path, loader, engine paths)
#   gemm    engine/bench --awq-gemm 1,8,32,64,2048 on Qwen2.5-7B-AWQ's linears vs cuBLAS bf16: weights
#           read per second against the copy bandwidth, and one layer's four linears
#   decode  engine/bench decode at batch 1, 8, 32 (prompt 128, 128 new tokens), AWQ vs bf16, both with
#           --cuda-graphs (target: AWQ 2.5x faster)
# Every stage is time-limited within BUDGET seconds (default 540).  $OUT: SUMMARY.txt and awqk-logs.tgz.
set -u
OUT=${OUT:-out}; mkdir -p "$OUT"; OUT=$(cd "$OUT" && pwd)
LOG=/tmp/awqk-logs; rm -rf $LOG; mkdir -p $LOG
STAGES=${STAGES:-${1:-build,test,gemm,decode}}
S=$OUT/SUMMARY.txt; : > "$S"
T0=$(date +%s); BUDGET=${BUDGET:-540}
has() { [[ ",$STAGES," == *",$1,"* ]]; }
say() { echo "[$(( $(date +%s) - T0 )) s] $*" | tee -a "$S"; }
left() { echo $(( BUDGET - ($(date +%s) - T0) )); }
lim() { local l w=$1; l=$(left); [ "$w" -gt $((l - 10)) ] && w=$((l - 10)); [ "$w" -lt 5 ] && w=5; echo $w; }
finish() { say "done"; tar -czf "$OUT/awqk-logs.tgz" -C /tmp awqk-logs 2>/dev/null; exit "${1:-0}"; }
trap finish TERM
M=data/models
A7=$M/qwen2.5-7b-instruct-awq.json; B7=$M/qwen2.5-7b.json
AD=(--prompt-len 128 --output-len 128 --max-num-batched-tokens 2048 --max-model-len 512)
say "awqk_run.sh $STAGES on $(hostname): $(git rev-parse --short HEAD 2>/dev/null || echo '?'), budget $BUDGET s"
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv,noheader >> "$S" 2>&1

if has build || [ ! -x build/gpu/test_awq ]; then
  timeout "$(lim 240)" bash scripts/gpu/build.sh > $LOG/build.txt 2>&1; rc=$?
  say "build rc=$rc"
  [ $rc = 0 ] || { grep -E "error|failed" $LOG/build.txt | head -30 | tee -a "$S"; finish 1; }
fi

if has test; then
  PAGESIM_GPU=1 timeout "$(lim 150)" bash tests/run.sh --gpu -- build/gpu/test_awq > $LOG/test_awq.txt 2>&1; rc=$?
  say "test_awq rc=$rc: $(tail -1 $LOG/test_awq.txt)"
  grep -E "rel L2|identical|differ|byte for byte|FAILED|ERROR|Failure|LINE" $LOG/test_awq.txt \
    | sed 's/^/  /' | head -80 >> "$S"
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
      [ "$(left)" -gt 25 ] || break
      n=$(basename $cfg .json)
      timeout "$(lim 60)" build/gpu/bench --dummy-weights $cfg --num-requests $B --max-num-seqs $B "${AD[@]}" \
        --cuda-graphs > $LOG/decode_${n}_$B.txt 2>&1
      echo "rc=$?" >> $LOG/decode_${n}_$B.txt
    done
    a=$(dec_ms $LOG/decode_$(basename $A7 .json)_$B.txt); b=$(dec_ms $LOG/decode_$(basename $B7 .json)_$B.txt)
    wb=$(grep -oE "weights [0-9.]+ GiB" $LOG/decode_$(basename $A7 .json)_$B.txt | head -1 | grep -oE "[0-9.]+")
    say "graphs, decode batch $B: AWQ ${a:-?} ms/step, bf16 ${b:-?} ms/step: $(awk -v a="${a:-0}" -v b="${b:-0}" \
      'BEGIN { if (a > 0) printf "%.2fx (target 2.5x)", b / a; else printf "?" }'); AWQ weights ${wb:-?} GiB per step \
= $(awk -v w="${wb:-0}" -v a="${a:-0}" 'BEGIN { if (a > 0) printf "%.0f GB/s", w * 1.073741824 / (a / 1000); else printf "?" }')"
    grep -h "CUDA graphs\|rror" $LOG/decode_*_$B.txt | head -4 | sed 's/^/  /' >> "$S"
  done
fi
finish 0
