#!/usr/bin/env bash
# Session 6's measurements in one device call, before and after side by side where a switch
# keeps the old path (eager vs graphs; attention grid orders and partitions; the LoRA and AWQ
# kernels' benchmarks keep their old kernels beside the new):
#   run(command="BUDGET=560 bash scripts/gpu/wave7_run.sh", carry=[".debs"], timeout_s=600)
# STAGES (a comma list; default build,tests,attn,decode,lora,awq,bias,b1,check):
#   build   scripts/gpu/build.sh; tests/gpu/bench_lora.cu against the engine's archives
#   tests   every GPU test (build/gpu/test_*)
#   attn    engine/bench --attention, Qwen3-0.6B and Qwen2.5-7B shapes: PAGESIM_ATTN mma (a grid of
#           sequences first) and mma-heads (a sequence's kv heads side by side), partitions of
#           1024, 512 and 256 keys (PAGESIM_ATTN_PART)
#   decode  decode-heavy (Qwen3-0.6B dummy, 256 requests uniform 100..1024): --enforce-eager, the
#           default (graphs), and the default with each attention variant (issue 19: 80% of the
#           per-step roofline; 64.5% at the start of the session)
#   lora    build/gpu/bench_lora (old vs new kernels at the bias shapes), then the bias shape (Qwen2.5-7B,
#           1024 x 512 + 96) base, 1 adapter, 8 adapters (issue 16: +15% and +25% at most)
#   awq     engine/bench --awq-gemm (AWQ vs bf16 linears), decode at batch 1, 8, 32 AWQ vs bf16 (graphs)
#           (issue 17: 2.5x)
#   bias    the bias shape eager and with graphs (issue 19: no slower; decode-only steps' roofline share)
#   b1      batch-1 decode of Qwen2.5-7B, TPOT against the weight-read limit
#   check   tests/gpu/lora_check.py against PEFT
# $OUT: SUMMARY.txt and wave7.tgz (every log and JSON).  NVLink multicast stays off.
set -u
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1 PYTHONUNBUFFERED=1
OUT=${OUT:-out}; mkdir -p "$OUT"; OUT=$(cd "$OUT" && pwd)
W=/tmp/wave7; rm -rf $W; mkdir -p $W
STAGES=${STAGES:-${1:-build,tests,attn,decode,lora,awq,bias,b1,check}}
BUDGET=${BUDGET:-560}; T0=$(date +%s)
PEAK_T=${PEAK_T:-799}; PEAK_G=${PEAK_G:-4257}
S=$OUT/SUMMARY.txt; : > "$S"
M=data/models
BIN=build/gpu/bench
has() { [[ ",$STAGES," == *",$1,"* ]]; }
say() { echo "[$(( $(date +%s) - T0 )) s] $*" | tee -a "$S"; }
left() { echo $(( BUDGET - ($(date +%s) - T0) )); }
lim() { local l w=$1; l=$(left); [ "$w" -gt $((l - 10)) ] && w=$((l - 10)); [ "$w" -lt 5 ] && w=5; echo $w; }
finish() { say "done"; tar -czf "$OUT/wave7.tgz" -C /tmp wave7 2>/dev/null; exit 0; }
trap finish TERM
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv,noheader >> "$S" 2>&1
say "wave7_run.sh $STAGES, budget $BUDGET s"
NVCC=${NVCC:-$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)}

bench() {  # tag, seconds, args...: one engine/bench run, its figures
  local tag=$1 t=$2; shift 2
  [ "$(left)" -gt 25 ] || { say "$tag: no time left"; return; }
  timeout "$(lim "$t")" $BIN --peak-tflops "$PEAK_T" --peak-gbps "$PEAK_G" --json $W/$tag.json "$@" > $W/$tag.txt 2>&1
  say "$tag rc=$?: $(grep -m1 -E '^ *wall' $W/$tag.txt)"
  grep -E "roofline|decode-only steps|TPOT|CUDA graphs:|LoRA:|host busy" $W/$tag.txt | head -8 | sed 's/^/    /' >> "$S"
}

if has build; then
  timeout "$(lim 200)" bash scripts/gpu/build.sh > $W/build.txt 2>&1; rc=$?
  say "build rc=$rc"
  [ $rc = 0 ] || { grep -E "error|failed" $W/build.txt | head -30 | tee -a "$S"; finish; }
  if [ -f tests/gpu/bench_lora.cu ]; then
    timeout "$(lim 120)" "$NVCC" -O3 -gencode=arch=compute_90a,code=sm_90a -lineinfo -I. tests/gpu/bench_lora.cu \
      -o build/gpu/bench_lora build/gpu/obj/libengine.a build/gpu/obj/libengcu.a build/gpu/obj/libbase.a \
      > $W/build_bench_lora.txt 2>&1
    say "bench_lora build rc=$?"; grep -m5 error $W/build_bench_lora.txt | tee -a "$S"
  fi
fi

if has tests; then
  PAGESIM_GPU=1 timeout "$(lim 180)" bash tests/run.sh --gpu -- $(ls build/gpu/test_* | grep -v '\.o$') \
    > $W/test_gpu.txt 2>&1
  say "GPU tests rc=$?: $(tail -1 $W/test_gpu.txt)"
  grep -E "not ok [0-9]+ [^#]*$|failed in" $W/test_gpu.txt | head -30 | sed 's/^/  /' | tee -a "$S"
fi

if has attn; then
  for cfg in qwen3-0.6b qwen2.5-7b; do
    for a in mma mma-heads; do
      for p in 1024 512 256; do
        [ "$(left)" -gt 40 ] || break
        PAGESIM_ATTN=$a PAGESIM_ATTN_PART=$p timeout "$(lim 40)" $BIN --dummy-weights $M/$cfg.json \
          --attention 256:512,256:1024,256:2048,64:4096 > $W/attn_${cfg}_${a}_$p.txt 2>&1
        say "attention $cfg $a part $p rc=$?"
        grep -E "^ +[0-9]+ +[0-9]+ +1 " $W/attn_${cfg}_${a}_$p.txt | sed 's/^/    /' >> "$S"
      done
    done
  done
fi

DEC=(--dummy-weights $M/qwen3-0.6b.json --workload uniform --num-requests 256 --min-len 100 --max-len 1024)
if has decode; then
  bench decode_eager 60 "${DEC[@]}" --enforce-eager
  bench decode_graphs 60 "${DEC[@]}"
  for v in "mma-heads 1024" "mma-heads 512" "mma 512"; do
    set -- $v
    PAGESIM_ATTN=$1 PAGESIM_ATTN_PART=$2 bench "decode_graphs_$1_$2" 60 "${DEC[@]}"
  done
fi

LB=(--dummy-weights $M/qwen2.5-7b.json --workload fixed --num-requests 1024 --prompt-len 512 --output-len 96
    --max-num-seqs 1024 --max-num-batched-tokens 16384)
if has lora; then
  if [ -x build/gpu/bench_lora ]; then
    timeout "$(lim 90)" build/gpu/bench_lora 10 > $W/bench_lora.txt 2>&1
    say "bench_lora rc=$?"; sed 's/^/  /' $W/bench_lora.txt | head -60 >> "$S"
  fi
  bench lora_base 60 "${LB[@]}"
  bench lora_lora1 60 "${LB[@]}" --enable-lora --max-lora-rank 16 --max-loras 1 --lora-dummy 1
  bench lora_lora8 60 "${LB[@]}" --enable-lora --max-lora-rank 16 --max-loras 8 --lora-dummy 8
  python3 - $W <<'EOF' 2>&1 | tee -a "$S"
import json, sys
w = {}
for v in ("base", "lora1", "lora8"):
    try: w[v] = json.load(open("%s/lora_%s.json" % (sys.argv[1], v)))["wall_s"]
    except Exception as e: print("lora %s: no figure (%s)" % (v, e))
if "base" in w:
    for v, lim in (("lora1", 1.15), ("lora8", 1.25)):
        if v in w: print("LoRA %s: %.2f s against base %.2f s: %+.1f%% (target at most %+.0f%%): %s"
                         % (v, w[v], w["base"], 100 * (w[v] / w["base"] - 1), 100 * (lim - 1),
                            "met" if w[v] <= lim * w["base"] else "NOT met"))
EOF
fi

dec_ms() { grep -oE "decode-only steps: [0-9]+, [0-9.]+ s \([0-9.]+ ms each" "$1" | grep -oE "[0-9.]+ ms" | grep -oE "[0-9.]+"; }
A7=$M/qwen2.5-7b-instruct-awq.json; B7=$M/qwen2.5-7b.json
AD=(--prompt-len 128 --output-len 128 --max-num-batched-tokens 2048 --max-model-len 512)
if has awq; then
  timeout "$(lim 60)" $BIN --dummy-weights $A7 --awq-gemm 1,8,32,64,2048 > $W/awq_gemm.txt 2>&1
  say "awq-gemm rc=$?"; sed 's/^/  /' $W/awq_gemm.txt | head -40 >> "$S"
  for B in 1 8 32; do
    for cfg in $A7 $B7; do
      [ "$(left)" -gt 25 ] || break
      timeout "$(lim 40)" $BIN --dummy-weights $cfg --num-requests $B --max-num-seqs $B "${AD[@]}" \
        > $W/awq_dec_$(basename $cfg .json)_$B.txt 2>&1
    done
    a=$(dec_ms $W/awq_dec_$(basename $A7 .json)_$B.txt); b=$(dec_ms $W/awq_dec_$(basename $B7 .json)_$B.txt)
    say "decode batch $B (graphs): AWQ ${a:-?} ms/step, bf16 ${b:-?} ms/step: $(awk -v a="${a:-0}" -v b="${b:-0}" \
      'BEGIN { if (a > 0) printf "%.2fx (target 2.5x)", b / a; else print "?" }')"
  done
fi

BIAS=(--dummy-weights $B7 --workload fixed --num-requests 1024 --prompt-len 512 --output-len 96
      --max-num-seqs 1024 --max-num-batched-tokens 16384)
if has bias; then
  bench bias_eager 60 "${BIAS[@]}" --enforce-eager
  bench bias_graphs 60 "${BIAS[@]}"
fi
if has b1; then
  B1=(--dummy-weights $B7 --num-requests 1 --prompt-len 128 --output-len 512 --max-num-seqs 1)
  bench b1_eager 40 "${B1[@]}" --enforce-eager
  bench b1_graphs 40 "${B1[@]}"
fi
if has check; then
  timeout "$(lim 120)" python3 tests/gpu/lora_check.py --engine build/gpu/run --merge build/gpu/merge \
    --out $W/lora > $W/lora_check.txt 2>&1
  say "lora_check rc=$?: $(grep -m1 'lora_check:' $W/lora_check.txt)"
  grep -E "FAIL|ERROR|Error" $W/lora_check.txt | head -10 | cut -c1-300 | sed 's/^/  /' >> "$S"
fi
finish
