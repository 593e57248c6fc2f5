#!/usr/bin/env bash
# One device call that checks a session's engine work as a whole, in priority
# order, each stage time-limited inside BUDGET seconds (default 560):
#   build    the two snapshots of scripts/gpu/ab_pack.sh (.carry/ab/{before,after}.tar),
#            built side by side with scripts/gpu/build.sh
#   test     every GPU test of "after" (kernels, MoE, engine, score mode, samples, the
#            server's engine backend, tensor-parallel shards / loads / -tp 1 through NCCL)
#   ab       engine/bench before and after: the bias shape (Qwen2.5-7B, 1024 x 512+96)
#            and the decode-heavy run (Qwen3-0.6B, 256 x 100..1024), as ab_run.sh does
#   tp1      the bias shape again with --tensor-parallel-size 1 (a communicator of one)
#   chat     tests/gpu/chat_template_ref.py: our Jinja renderings against transformers'
#            apply_chat_template
#   prof     operator profiles (engine/bench --profile-ops) of Qwen2.5-7B and Qwen3-0.6B,
#            then the bias and decode runs predicted step by step from them
#            (scripts/gpu/profile_ops.sh profile,bias,decode); Qwen3-30B-A3B's if time is left
# Run here first: bash scripts/gpu/ab_pack.sh BEFORE_REV; then
#   run(command="bash scripts/gpu/final_run.sh", carry=[".carry/ab", ".debs", "data/tokenizers/qwen3"])
# Results: $OUT/SUMMARY.txt, test_gpu.txt, chat.txt, logs.txt, profiles.tgz, results.tgz.
# NVLink multicast stays off (NCCL_NVLS_ENABLE=0 and friends).
set -u
OUT=${OUT:-out}; mkdir -p "$OUT"
STAGES=${STAGES:-build,test,ab,tp1,chat,prof}
BUDGET=${BUDGET:-560}; T0=$(date +%s)
S=$OUT/SUMMARY.txt; L=$OUT/logs.txt; : > "$S"; : > "$L"
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1 PYTHONUNBUFFERED=1
has() { [[ ",$STAGES," == *",$1,"* ]]; }
left() { echo $(( BUDGET - $(date +%s) + T0 )); }
cap() {  # seconds wanted, seconds to keep for later -> what this stage may take (>= 1)
  local w=$1 l=$(( $(left) - ${2:-0} )); [ "$l" -lt "$w" ] && w=$l; [ "$w" -lt 1 ] && w=1; echo "$w"
}
say() { echo "[$(( $(date +%s) - T0 )) s] $*" | tee -a "$S"; }
ROOT=$PWD; M=$ROOT/data/models; A=/tmp/ab/after; B=/tmp/ab/before
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv,noheader >> "$S" 2>&1
PEAK_T=${PEAK_T:-799}; PEAK_G=${PEAK_G:-4257}

if has build; then
  for v in before after; do
    rm -rf /tmp/ab/$v; mkdir -p /tmp/ab/$v
    tar -xf .carry/ab/$v.tar -C /tmp/ab/$v && cp -r .debs /tmp/ab/$v/
    mkdir -p /tmp/ab/$v/data/tokenizers && cp -r data/tokenizers/qwen3 /tmp/ab/$v/data/tokenizers/ 2>/dev/null
    (cd /tmp/ab/$v && timeout 240 bash scripts/gpu/build.sh > build.log 2>&1; echo "build $v rc=$?" >> build.log) &
  done
  wait
  for v in before after; do say "$(tail -1 /tmp/ab/$v/build.log)"; done
  [ -x $A/build/gpu/bench ] || { tail -40 $A/build.log | tee -a "$S"; exit 1; }
fi

bench() {  # build dir, name, timeout, args...
  local d=$1 n=$2 t=$3; shift 3
  echo "== $n" >> "$L"
  (cd "$d" && timeout "$t" build/gpu/bench --peak-tflops "$PEAK_T" --peak-gbps "$PEAK_G" "$@") > /tmp/ab/o.txt 2>&1
  local rc=$?; cat /tmp/ab/o.txt >> "$L"
  say "$n rc=$rc"
  grep -vE "^$" /tmp/ab/o.txt | grep -vE "^(loading|load|Maximum|memory)" | sed 's/^/  /' | head -14 >> "$S"
}

if has test; then
  (cd $A && timeout "$(cap 200 200)" bash tests/run.sh --gpu -- $(ls build/gpu/test_* | grep -v '\.o$')) > "$OUT/test_gpu.txt" 2>&1
  say "GPU tests (after) rc=$?: $(tail -1 "$OUT/test_gpu.txt")"
  grep -E "^[a-z_]+: not ok|failed in" "$OUT/test_gpu.txt" | grep -v "# SKIP" | head -20 >> "$S"
fi

BIAS=(--workload fixed --num-requests 1024 --prompt-len 512 --output-len 96 --max-num-seqs 1024 --max-num-batched-tokens 16384)
DEC=(--workload uniform --num-requests 256 --min-len 100 --max-len 1024)
if has ab; then
  for v in before after; do bench /tmp/ab/$v "[$v] bias-7b" "$(cap 60 150)" --dummy-weights $M/qwen2.5-7b.json "${BIAS[@]}"; done
  for v in before after; do bench /tmp/ab/$v "[$v] decode-0.6b" "$(cap 60 130)" --dummy-weights $M/qwen3-0.6b.json "${DEC[@]}"; done
fi
if has tp1; then
  bench $A "[after] bias-7b --tensor-parallel-size 1" "$(cap 60 120)" --dummy-weights $M/qwen2.5-7b.json "${BIAS[@]}" \
    --tensor-parallel-size 1
fi
if has chat; then
  (cd $A && timeout "$(cap 60 100)" python3 tests/gpu/chat_template_ref.py) > "$OUT/chat.txt" 2>&1
  say "chat templates against transformers rc=$?: $(tail -1 "$OUT/chat.txt")"
fi
if has prof && [ "$(left)" -gt 60 ]; then
  rm -rf /tmp/prof; mkdir -p /tmp/prof
  (cd $A && OUT=/tmp/prof MODELS="qwen2.5-7b qwen3-0.6b" timeout "$(cap 240 10)" \
     bash scripts/gpu/profile_ops.sh profile,bias,decode > /dev/null 2>&1)
  say "profiles rc=$?"; sed 's/^/  /' /tmp/prof/SUMMARY.txt >> "$S" 2>/dev/null
  cp /tmp/prof/profiles.tgz /tmp/prof/results.tgz "$OUT/" 2>/dev/null
  cat /tmp/prof/logs.txt >> "$L" 2>/dev/null
  if [ "$(left)" -gt 70 ]; then
    rm -rf /tmp/prof30; mkdir -p /tmp/prof30
    (cd $A && OUT=/tmp/prof30 MODELS="qwen3-30b-a3b-instruct-2507" timeout "$(cap 120 5)" \
       bash scripts/gpu/profile_ops.sh profile > /dev/null 2>&1)
    say "profile 30B-A3B rc=$?"; sed 's/^/  /' /tmp/prof30/SUMMARY.txt >> "$S" 2>/dev/null
    cp /tmp/prof30/profiles.tgz "$OUT/profiles30.tgz" 2>/dev/null
  fi
fi
gzip -f "$L"
say "done"
