#!/usr/bin/env bash
# Issues 15 (the classroom labs' --real), 16 (LoRA against PEFT, again after the check's
# prefix-cache fix) and 18 (operator profiles by the changed profiler, ShareGPT traces) in
# one device call.  Here first: `bash scripts/gpu/labs_real_pack.sh` (.carry/labs-real), then
#   run(command="BUDGET=570 bash scripts/gpu/wave3_run.sh", carry=[".debs", ".carry/labs-real"],
#       timeout_s=600)
# Stages (STAGES; default labs,build,lora,profiles), each time-limited within BUDGET:
#   labs      .carry/labs-real/run.sh: six labs' --real with their worksheets
#   build     scripts/gpu/build.sh
#   lora      tests/gpu/lora_check.py
#   profiles  scripts/gpu/profile_ops.sh profile,bias,decode,trace for Qwen2.5-7B and
#             Qwen3-0.6B (TRACE_SECONDS 40 at 10 and 30 requests/s), with SM clocks and power
#             sampled beside (nvidia-smi every 100 ms)
# $OUT (8 files at most): SUMMARY.txt, labs.tgz (the labs' folders, worksheets and logs),
# wave3.tgz (everything else).
set -u
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1 PYTHONUNBUFFERED=1
OUT=${OUT:-out}; mkdir -p "$OUT"; OUT=$(cd "$OUT" && pwd)
W=/tmp/wave3; rm -rf $W; mkdir -p $W
STAGES=${STAGES:-${1:-labs,build,lora,profiles}}
BUDGET=${BUDGET:-570}; T0=$(date +%s)
S=$OUT/SUMMARY.txt; : > "$S"
has() { [[ ",$STAGES," == *",$1,"* ]]; }
say() { echo "[$(( $(date +%s) - T0 )) s] $*" | tee -a "$S"; }
left() { echo $(( BUDGET - ($(date +%s) - T0) )); }
lim() { local l w=$1; l=$(left); [ "$w" -gt $((l - 10)) ] && w=$((l - 10)); [ "$w" -lt 5 ] && w=5; echo $w; }
finish() { say "done"; tar -czf "$OUT/wave3.tgz" -C /tmp wave3 2>/dev/null; exit 0; }
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv,noheader >> "$S" 2>&1
say "wave3_run.sh $STAGES, budget $BUDGET s"

if has labs; then
  b=$(lim 250)
  OUT=$W/labs BUDGET=$b timeout "$((b + 10))" bash .carry/labs-real/run.sh > $W/labs.txt 2>&1
  say "labs --real rc=$? (budget $b s)"
  sed 's/^/  /' $W/labs/SUMMARY.txt >> "$S" 2>/dev/null
  tar -czf "$OUT/labs.tgz" -C $W labs 2>/dev/null
fi

if has build; then
  timeout "$(lim 200)" bash scripts/gpu/build.sh > $W/build.txt 2>&1; rc=$?
  say "build rc=$rc"
  [ $rc = 0 ] || { grep -E "error|failed" $W/build.txt | head -30 | tee -a "$S"; finish; }
fi

if has lora; then
  timeout "$(lim 100)" python3 tests/gpu/lora_check.py --engine build/gpu/run --merge build/gpu/merge \
    --out $W/lora > $W/lora_check.txt 2>&1
  say "lora_check rc=$?"
  grep -E "^(family|qwen2 |llama )|lora_check:|ERROR|Error" $W/lora_check.txt | cut -c1-300 | sed 's/^/  /' | tee -a "$S"
fi

if has profiles; then
  nvidia-smi --query-gpu=timestamp,clocks.sm,power.draw --format=csv -lms 100 > $W/clocks.csv 2>/dev/null &
  SMI=$!
  b=$(lim 250)
  OUT=$W/profiles MODELS="qwen2.5-7b qwen3-0.6b" TRACE_SECONDS=40 timeout "$b" \
    bash scripts/gpu/profile_ops.sh profile,bias,decode,trace > $W/profiles.txt 2>&1
  say "profile_ops rc=$? (limit $b s)"
  kill $SMI 2>/dev/null
  sed 's/^/  /' $W/profiles/SUMMARY.txt >> "$S" 2>/dev/null
fi
finish
