#!/usr/bin/env bash
# Issue 11's study run again with the new sampling kernel, its checks, the CUDA-graph fix and
# the 30B-A3B operator profile by the changed profiler, in one device call.  Here first:
# `bash scripts/gpu/moe_pack.sh` (.carry/moe-run: labs/bias and engine/bench of HEAD), then
#   run(command="BUDGET=540 bash scripts/gpu/wave4_run.sh", timeout_s=600,
#       carry=[".debs", ".carry/moe-run", "data/tokenizers/qwen3"])
# Stages (STAGES; default topp,graphs,profile,full,w200), each time-limited within BUDGET:
#   topp     scripts/gpu/topp_run.sh build,test,bench: build, test_sample (k_sample = its C
#            reference on every row), test_kernels, the old and new sampling kernels timed
#   graphs   build/gpu/test_cuda_graph (the staging race fixed; graph = eager bit for bit)
#   profile  engine/bench --profile-ops for Qwen3-30B-A3B at the lab run's limits (1024 seqs,
#            16,384 tokens) into data/profiles/H200/ of this copy: the labs' comparison uses it
#   full     .carry/moe-run/run.sh full: the study's 12,810 prompts on one H200, all in flight
#   w200     the same with the study's --max-workers 200, one set
#   lora     runtime LoRA's cost on the bias shape (Qwen2.5-7B, 1024 x 512 + 96): the base model,
#            one r-16 all-linear adapter for every request, eight adapters mixed in the batch
#   others   operator profiles of the other models the engine runs (OTHERS: names of
#            data/models/*.json), into data/profiles/H200/ of this copy and back in wave4.tgz
# $OUT: SUMMARY.txt and wave4.tgz (every log, the new profile, the runs' compare files).
set -u
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1 PYTHONUNBUFFERED=1
OUT=${OUT:-out}; mkdir -p "$OUT"; OUT=$(cd "$OUT" && pwd)
W=/tmp/wave4; rm -rf $W; mkdir -p $W
STAGES=${STAGES:-${1:-topp,graphs,profile,full,w200}}
BUDGET=${BUDGET:-540}; T0=$(date +%s)
S=$OUT/SUMMARY.txt; : > "$S"
has() { [[ ",$STAGES," == *",$1,"* ]]; }
say() { echo "[$(( $(date +%s) - T0 )) s] $*" | tee -a "$S"; }
left() { echo $(( BUDGET - ($(date +%s) - T0) )); }
lim() { local l w=$1; l=$(left); [ "$w" -gt $((l - 10)) ] && w=$((l - 10)); [ "$w" -lt 5 ] && w=5; echo $w; }
finish() { say "done"; tar -czf "$OUT/wave4.tgz" -C /tmp wave4 2>/dev/null; exit 0; }
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv,noheader >> "$S" 2>&1
say "wave4_run.sh $STAGES, budget $BUDGET s"
M30=data/models/qwen3-30b-a3b-instruct-2507.json
P30=data/profiles/H200/qwen3-30b-a3b-instruct-2507.json

if has topp; then
  b=$(lim 150)
  OUT=$W/topp BUDGET=$b STAGES=build,test,bench timeout "$((b + 10))" bash scripts/gpu/topp_run.sh > $W/topp.txt 2>&1   # (its STAGES, not ours)
  say "topp_run rc=$? (budget $b s)"
  sed 's/^/  /' $W/topp/SUMMARY.txt >> "$S" 2>/dev/null
fi
[ -x build/gpu/bench ] || { timeout "$(lim 200)" bash scripts/gpu/build.sh > $W/build.txt 2>&1; say "build rc=$?"; }

if has graphs; then
  PAGESIM_GPU=1 timeout "$(lim 90)" bash tests/run.sh --gpu -- build/gpu/test_cuda_graph > $W/test_cuda_graph.txt 2>&1
  say "test_cuda_graph rc=$?: $(tail -1 $W/test_cuda_graph.txt)"
  grep -E "not ok|ERROR|back to back|bit for bit|failed" $W/test_cuda_graph.txt | grep -v "# SKIP" | head -30 \
    | cut -c1-300 | sed 's/^/  /' >> "$S"
fi

if has profile; then
  cp $P30 $W/profile-before.json 2>/dev/null
  timeout "$(lim 120)" build/gpu/bench --dummy-weights $M30 --max-num-seqs 1024 --max-num-batched-tokens 16384 \
    --profile-ops $P30 > $W/profile30.txt 2>&1
  rc=$?
  say "profile 30B-A3B rc=$rc"
  grep -E "cpu side|warning|error|failed" $W/profile30.txt | sed 's/^/  /' >> "$S"
  [ $rc = 0 ] || cp $W/profile-before.json $P30      # a failed profile leaves the shipped one
  cp $P30 $W/profile-after.json
fi

if has full || has w200; then
  st=""; has full && st="full"; has w200 && st="$st w200"
  b=$(lim 420)
  OUT=$W/moe BUDGET=$b STAGES="$st" W200_SETS=1 timeout "$((b + 10))" bash .carry/moe-run/run.sh > $W/moe.txt 2>&1
  say "moe_run ($st) rc=$? (budget $b s)"
  sed 's/^/  /' $W/moe/SUMMARY.txt >> "$S" 2>/dev/null
fi
if has lora; then
  LB=(--dummy-weights data/models/qwen2.5-7b.json --workload fixed --num-requests 1024 --prompt-len 512
      --output-len 96 --max-num-seqs 1024 --max-num-batched-tokens 16384)
  for v in base lora1 lora8; do
    [ "$(left)" -gt 60 ] || { say "lora $v: no time left"; continue; }
    case $v in base) X=();; lora1) X=(--enable-lora --max-lora-rank 16 --max-loras 1 --lora-dummy 1);;
                lora8) X=(--enable-lora --max-lora-rank 16 --max-loras 8 --lora-dummy 8);; esac
    timeout "$(lim 60)" build/gpu/bench "${LB[@]}" "${X[@]}" --json $W/lora_$v.json > $W/lora_$v.txt 2>&1
    say "lora $v rc=$?: $(grep -m1 -E '^ *wall' $W/lora_$v.txt)"
    grep -E "LoRA" $W/lora_$v.txt | head -3 | sed 's/^/  /' >> "$S"
  done
  python3 - $W <<'PY' 2>&1 | tee -a "$S"
import json, sys
d = sys.argv[1]
w = {}
for v in ("base", "lora1", "lora8"):
    try: w[v] = json.load(open("%s/lora_%s.json" % (d, v)))["wall_s"]
    except Exception: pass
if "base" in w:
    for v, lim in (("lora1", 1.15), ("lora8", 1.25)):
        if v in w: print("  %s: %.2f s against the base model's %.2f s: %+.1f%% (target at most %+.0f%%): %s" % (
            v, w[v], w["base"], 100 * (w[v] / w["base"] - 1), 100 * (lim - 1), "met" if w[v] <= lim * w["base"] else "NOT met"))
PY
fi
if has others; then
  mkdir -p $W/profiles
  for m in ${OTHERS:-smollm2-135m qwen2.5-0.5b qwen3-8b llama-3.1-8b llama-13b}; do
    [ "$(left)" -gt 45 ] || { say "profile $m: no time left"; continue; }
    timeout "$(lim 60)" build/gpu/bench --dummy-weights data/models/$m.json --profile-ops $W/profiles/$m.json \
      > $W/profile-$m.txt 2>&1
    say "profile $m rc=$?"
    grep -E "cpu side|warning|error|failed" $W/profile-$m.txt | sed 's/^/  /' >> "$S"
  done
fi
finish
