#!/usr/bin/env bash
# Session 6's closing device call: every GPU test, the LoRA kernels (old vs new) and runtime
# LoRA's cost on the bias shape, LoRA against PEFT, the H200 operator profiles of Qwen2.5-7B and
# Qwen3-0.6B re-measured with the between-steps term and their prediction errors (issue 18),
# and labs/lora --real (issue 16's classroom view).  Here first: LABS=lora bash
# scripts/gpu/labs_real_pack.sh (for the labs stage), then
#   run(command="BUDGET=560 bash scripts/gpu/wave8_run.sh", carry=[".debs", ".carry/labs-real"],
#       timeout_s=600)
# STAGES (a comma list; default build,tests,lora,profile,labs,check).  $OUT: SUMMARY.txt,
# wave8.tgz (every log), profiles.tgz and results.tgz (profile_ops.sh: untar profiles.tgz into
# the repository, results.tgz for scripts/profile_eval.sh), lora-worksheet-a4.pdf and
# labs_real.tgz.  NVLink multicast stays off.
set -u
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1 PYTHONUNBUFFERED=1
OUT=${OUT:-out}; mkdir -p "$OUT"; OUT=$(cd "$OUT" && pwd)
W=/tmp/wave8; rm -rf $W; mkdir -p $W
STAGES=${STAGES:-${1:-build,tests,lora,profile,labs,check}}
BUDGET=${BUDGET:-560}; T0=$(date +%s)
PEAK_T=${PEAK_T:-799}; PEAK_G=${PEAK_G:-4257}
S=$OUT/SUMMARY.txt; : > "$S"
M=data/models
BIN=build/gpu/bench
has() { [[ ",$STAGES," == *",$1,"* ]]; }
say() { echo "[$(( $(date +%s) - T0 )) s] $*" | tee -a "$S"; }
left() { echo $(( BUDGET - ($(date +%s) - T0) )); }
lim() { local l w=$1; l=$(left); [ "$w" -gt $((l - 10)) ] && w=$((l - 10)); [ "$w" -lt 5 ] && w=5; echo $w; }
finish() { say "done"; tar -czf "$OUT/wave8.tgz" -C /tmp wave8 2>/dev/null; exit 0; }
trap finish TERM
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv,noheader >> "$S" 2>&1
say "wave8_run.sh $STAGES, budget $BUDGET s"
NVCC=${NVCC:-$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)}

bench() {  # tag, seconds, args...: one engine/bench run, its figures
  local tag=$1 t=$2; shift 2
  [ "$(left)" -gt 25 ] || { say "$tag: no time left"; return; }
  timeout "$(lim "$t")" $BIN --peak-tflops "$PEAK_T" --peak-gbps "$PEAK_G" --json $W/$tag.json "$@" > $W/$tag.txt 2>&1
  say "$tag rc=$?: $(grep -m1 -E '^ *wall' $W/$tag.txt)"
  grep -E "roofline|decode-only steps|CUDA graphs:|LoRA:" $W/$tag.txt | head -6 | sed 's/^/    /' >> "$S"
}

if has build; then
  timeout "$(lim 200)" bash scripts/gpu/build.sh > $W/build.txt 2>&1; rc=$?
  say "build rc=$rc"
  [ $rc = 0 ] || { grep -E "error|failed" $W/build.txt | head -30 | tee -a "$S"; finish; }
  timeout "$(lim 120)" "$NVCC" -O3 -gencode=arch=compute_90a,code=sm_90a -lineinfo -I. tests/gpu/bench_lora.cu \
    -o build/gpu/bench_lora build/gpu/obj/libengine.a build/gpu/obj/libengcu.a build/gpu/obj/libbase.a \
    > $W/build_bench_lora.txt 2>&1
  say "bench_lora build rc=$?"
fi

if has tests; then
  # TESTS: names of tests to run (default: every build/gpu/test_*)
  TB=$(if [ -n "${TESTS:-}" ]; then for t in $TESTS; do echo build/gpu/$t; done; else ls build/gpu/test_* | grep -v '\.o$'; fi)
  PAGESIM_GPU=1 timeout "$(lim 180)" bash tests/run.sh --gpu -- $TB \
    > $W/test_gpu.txt 2>&1
  say "GPU tests rc=$?: $(tail -1 $W/test_gpu.txt)"
  grep -E "not ok [0-9]+ [^#]*$|failed in" $W/test_gpu.txt | head -30 | sed 's/^/  /' | tee -a "$S"
fi

LB=(--dummy-weights $M/qwen2.5-7b.json --workload fixed --num-requests 1024 --prompt-len 512 --output-len 96
    --max-num-seqs 1024 --max-num-batched-tokens 16384)
if has lora; then
  timeout "$(lim 60)" build/gpu/bench_lora 10 > $W/bench_lora.txt 2>&1
  say "bench_lora rc=$?"; grep -E "one layer|checks|FAIL|prefill 16384  1 " $W/bench_lora.txt | sed 's/^/  /' >> "$S"
  bench lora_base 60 "${LB[@]}"
  [ -n "${LORA_EAGER:-}" ] && bench lora_base_eager 60 "${LB[@]}" --enforce-eager
  bench lora_lora1 60 "${LB[@]}" --enable-lora --max-lora-rank 16 --max-loras 1 --lora-dummy 1
  bench lora_lora8 60 "${LB[@]}" --enable-lora --max-lora-rank 16 --max-loras 8 --lora-dummy 8
  python3 - $W <<'EOF' 2>&1 | tee -a "$S"
import json, sys
w = {}
for v in ("base", "base_eager", "lora1", "lora8"):
    try: w[v] = json.load(open("%s/lora_%s.json" % (sys.argv[1], v)))["wall_s"]
    except Exception as e: print("lora %s: no figure (%s)" % (v, e))
for base in ("base", "base_eager"):
    if base not in w: continue
    for v, lim in (("lora1", 1.15), ("lora8", 1.25)):
        if v in w: print("LoRA %s: %.2f s against %s %.2f s: %+.1f%% (target at most %+.0f%%): %s"
                         % (v, w[v], base, w[base], 100 * (w[v] / w[base] - 1), 100 * (lim - 1),
                            "met" if w[v] <= lim * w[base] else "NOT met"))
EOF
fi

if has profile; then
  b=$(lim 200)
  OUT=$W/prof MODELS="qwen2.5-7b qwen3-0.6b" TRACE_SECONDS=40 timeout "$b" bash scripts/gpu/profile_ops.sh \
    ${PROF_STAGES:-profile,bias,decode,trace} > $W/profile_ops.txt 2>&1
  say "profile_ops rc=$? (limit $b s)"
  sed 's/^/  /' $W/prof/SUMMARY.txt >> "$S" 2>/dev/null
  cp $W/prof/profiles.tgz $W/prof/results.tgz "$OUT/" 2>/dev/null
fi

if has labs && [ -f .carry/labs-real/run.sh ]; then
  b=$(lim 120)
  OUT=$W/labs LABS=lora KERNELS=0 BUDGET=$b timeout "$((b + 10))" bash .carry/labs-real/run.sh > $W/labs.txt 2>&1
  say "labs/lora --real rc=$? (budget $b s)"
  sed 's/^/  /' $W/labs/SUMMARY.txt >> "$S" 2>/dev/null
  cp $W/labs/lora-worksheet-a4.pdf $W/labs/labs_real.tgz "$OUT/" 2>/dev/null
fi

if has check; then
  timeout "$(lim 120)" python3 tests/gpu/lora_check.py --engine build/gpu/run --merge build/gpu/merge \
    --out $W/lora > $W/lora_check.txt 2>&1
  say "lora_check rc=$?: $(grep -m1 'lora_check:' $W/lora_check.txt)"
  grep -E "FAIL|ERROR|Error" $W/lora_check.txt | head -10 | cut -c1-300 | sed 's/^/  /' >> "$S"
fi
finish
