#!/usr/bin/env bash
# One device call: the GPU's ceilings, build + GPU tests (make test-gpu),
# engine/run checks (text, tiny KV pool, contiguous), engine/bench against
# transformers (bias shape on Qwen2.5-7B, decode-heavy on Qwen3-0.6B, the
# decode attention kernel alone, v1 against v2 kernels), and the comparison
# with transformers (tests/gpu/compare_hf.py --diag-layer0).
#   scripts/gpu/device_run.sh [STAGES]     (results under $OUT, at most 8 files)
# STAGES: a comma list of peaks,test,run,bench,bench2,final,hf,compare,hfdecode (default:
# all but bench2 and final).  PEAK_T/PEAK_G: the roofline's GEMM rate and bandwidth when
# the peaks stage does not run; COMPARE_ATTN: PAGESIM_ATTN for the comparison;
# COMPARE_ARGS replaces compare_hf.py's --diag-layer0; COMPARE_TIMEOUT caps it;
# HF_DECODE_LIMIT caps the seconds transformers' decode-heavy batch may run (then
# extrapolated).  The three calls of docs/engine-notes.md: A = no STAGES; B =
# "peaks,test,bench2,compare,hfdecode" with COMPARE_ARGS="--only 7b,qwen3"; C =
# "test,final,compare" with COMPARE_ATTN=v4 COMPARE_ARGS= PEAK_T=798.9 PEAK_G=4257
# (v3 and v4, decode kernels measured slower than v5, have since been removed; the stages now time v5.)
# Each stage has its own timeout; SUMMARY.txt collects the figures.
set -u
OUT=${OUT:-out}; mkdir -p "$OUT"
STAGES=${1:-peaks,test,run,bench,hf,compare,hfdecode}
T0=$(date +%s)
S=$OUT/SUMMARY.txt; L=$OUT/logs.txt; J=$OUT/bench.jsonl
: > "$S"; : > "$L"; : > "$J"
export PYTHONUNBUFFERED=1
has() { [[ ",$STAGES," == *",$1,"* ]]; }
say() { echo "$*" | tee -a "$S"; }
left() { echo $((560 - $(date +%s) + T0)); }
log() { echo "== $*" >> "$L"; }
M=data/models
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv,noheader >> "$S" 2>&1
PEAK_T=${PEAK_T:-790}; PEAK_G=${PEAK_G:-4300}
if has peaks; then
  log peaks
  timeout 60 python3 tests/gpu/bench_hf.py --peaks --out "$OUT/peaks.json" >> "$L" 2>&1
  if [ -s "$OUT/peaks.json" ]; then
    PEAK_T=$(python3 -c "import json;print(json.load(open('$OUT/peaks.json'))['gemm_tflops'])")
    PEAK_G=$(python3 -c "import json;print(json.load(open('$OUT/peaks.json'))['copy_gbps'])")
  fi
  say "peaks: $(cat "$OUT/peaks.json" 2>/dev/null)"
fi
if has test; then
  log "make test-gpu"
  if command -v make > /dev/null; then timeout 240 make test-gpu > "$OUT/test_gpu.txt" 2>&1
  else (bash scripts/gpu/build.sh && bash tests/run.sh --gpu -- build/gpu/test_*) > "$OUT/test_gpu.txt" 2>&1; fi
  say "make test-gpu rc=$? : $(tail -1 "$OUT/test_gpu.txt")"
  grep -E "not ok|identical|preemptions|failed in|batch vs single" "$OUT/test_gpu.txt" | grep -vE "# SKIP" | sed 's/^/  /' | head -20 >> "$S"
  awk '/attention .* rel L2/ { split($0, a, "attention "); split(a[2], b, " "); v = $NF + 0; n[b[1]]++;
       if (v > mx[b[1]]) mx[b[1]] = v } END { for (k in n) printf "  attention %s: %d cases, max rel L2 %.2e\n", k, n[k], mx[k] }' \
    "$OUT/test_gpu.txt" >> "$S"
else
  bash scripts/gpu/build.sh >> "$L" 2>&1 || { say "build failed"; tail -30 "$L"; exit 1; }
fi
ATTN_OK=1
grep -q "^test_kernels: not ok.*test_attention" "$OUT/test_gpu.txt" 2>/dev/null && ATTN_OK=0
if [ $ATTN_OK = 0 ]; then export PAGESIM_ATTN=v1; say "v2 attention failed its test: every run below uses v1"; fi
R=build/gpu/run; BN=build/gpu/bench
if has run; then
  log "run: text"
  timeout 60 $R --dummy-weights $M/qwen3-0.6b.json --tokenizer data/tokenizers/qwen3/tokenizer.json \
    --prompt "The capital of France is" --prompt "Write a haiku about paged memory." --max-tokens 12 \
    --top-k 20 --temperature 0.7 >> "$L" 2>&1; say "run text rc=$?"
  timeout 60 $R --dummy-weights $M/qwen3-0.6b.json --tokenizer data/tokenizers/qwen3/tokenizer.json --chat \
    --prompt "Should I buy or sell NVDA? Answer in JSON." --max-tokens 12 >> "$L" 2>&1; say "run chat rc=$?"
  tail -12 "$L" | sed 's/^/  /' >> "$S"
  log "run: tiny KV pool"
  args=(); for r in $(seq 1 16); do args+=(--prompt-ids "$(python3 -c "print(','.join(str((i*7+$r*131)%5000+1) for i in range(100)))")"); done
  timeout 90 $R --dummy-weights $M/qwen2.5-0.5b.json --num-gpu-blocks 40 --max-model-len 512 --max-tokens 200 \
    --ignore-eos "${args[@]}" > /dev/null 2> "$OUT/tmp.txt"; rc=$?
  cat "$OUT/tmp.txt" >> "$L"; say "run tiny pool (40 blocks, 16 x (100+200)) rc=$rc"
  grep -E "requests,|KV blocks|GPU KV" "$OUT/tmp.txt" | sed 's/^/  /' >> "$S"; grep -E "^request (0|15):" "$OUT/tmp.txt" | sed 's/^/  /' >> "$S"
  for pol in paged contiguous; do
    timeout 90 $R --dummy-weights $M/qwen2.5-7b.json --kv-policy $pol --max-tokens 100 --ignore-eos --quiet \
      "${args[@]}" > /dev/null 2> "$OUT/tmp.txt"; rc=$?
    cat "$OUT/tmp.txt" >> "$L"; say "run 7B $pol rc=$rc"
    grep -E "requests,|KV blocks|GPU KV|Maximum conc|Memory" "$OUT/tmp.txt" | sed 's/^/  /' >> "$S"
  done
fi
bench() {  # name, timeout, args...
  local n=$1 t=$2; shift 2
  log "bench $n"
  timeout "$t" $BN --peak-tflops "$PEAK_T" --peak-gbps "$PEAK_G" --json "$OUT/tmp.json" "$@" > "$OUT/tmp.txt" 2>&1
  local rc=$?
  cat "$OUT/tmp.txt" >> "$L"
  say "bench $n rc=$rc"; grep -vE "^$" "$OUT/tmp.txt" | sed 's/^/  /' >> "$S"
  [ -s "$OUT/tmp.json" ] && { printf '{"name": "%s", "r": ' "$n" >> "$J"; tr -d '\n' < "$OUT/tmp.json" >> "$J"; echo "}" >> "$J"; }
  rm -f "$OUT/tmp.json"
}
if has bench; then
  bench attn-7b-v2 60 --dummy-weights $M/qwen2.5-7b.json --attention 64:1024,64:4096,256:1024,256:4096
  PAGESIM_ATTN=v1 bench attn-7b-v1 60 --dummy-weights $M/qwen2.5-7b.json --attention 64:1024,64:4096,256:1024,256:4096
  bench attn-0.6b-v2 60 --dummy-weights $M/qwen3-0.6b.json --attention 64:1024,256:1024,256:4096
  bench bias-7b 150 --dummy-weights $M/qwen2.5-7b.json --workload fixed --num-requests 1024 --prompt-len 512 \
    --output-len 96 --save-workload "$OUT/w_bias.txt"
  bench decode-0.6b 120 --dummy-weights $M/qwen3-0.6b.json --workload uniform --num-requests 256 --min-len 100 \
    --max-len 1024 --save-workload "$OUT/w_dec.txt"
  PAGESIM_ATTN=v1 bench bias-7b-256-v1 90 --dummy-weights $M/qwen2.5-7b.json --num-requests 256
  bench bias-7b-256-v2 90 --dummy-weights $M/qwen2.5-7b.json --num-requests 256
  PAGESIM_ATTN=v1 bench decode-0.6b-v1 120 --dummy-weights $M/qwen3-0.6b.json --workload uniform --num-requests 256
  bench bias-7b-512-paged-16k 90 --dummy-weights $M/qwen2.5-7b.json --num-requests 512 --num-gpu-blocks 16384
  bench bias-7b-512-contig-16k 90 --dummy-weights $M/qwen2.5-7b.json --num-requests 512 --num-gpu-blocks 16384 \
    --kv-policy contiguous
fi
if has bench2; then    # the kernels and batch limits after the first measurements
  for v in v1 v2 v5; do PAGESIM_ATTN=$v bench attn-7b-$v 60 --dummy-weights $M/qwen2.5-7b.json --attention 64:1024,64:4096,256:1024,256:4096; done
  for v in v2 v5; do PAGESIM_ATTN=$v bench attn-0.6b-$v 60 --dummy-weights $M/qwen3-0.6b.json --attention 64:1024,64:4096,256:1024,256:4096; done
  bench bias-7b-1024seqs 150 --dummy-weights $M/qwen2.5-7b.json --workload fixed --num-requests 1024 --prompt-len 512 \
    --output-len 96 --max-num-seqs 1024 --max-num-batched-tokens 16384
  bench bias-7b 150 --dummy-weights $M/qwen2.5-7b.json --workload fixed --num-requests 1024 --prompt-len 512 \
    --output-len 96 --save-workload "$OUT/w_bias.txt"
  bench decode-0.6b 120 --dummy-weights $M/qwen3-0.6b.json --workload uniform --num-requests 256 --min-len 100 \
    --max-len 1024 --save-workload "$OUT/w_dec.txt"
  PAGESIM_ATTN=v2 bench decode-0.6b-v2 120 --dummy-weights $M/qwen3-0.6b.json --workload uniform --num-requests 256
fi
if has final; then     # the decode kernels side by side, where the time goes
  for v in v2 v5; do PAGESIM_ATTN=$v bench attn-7b-$v 60 --dummy-weights $M/qwen2.5-7b.json --attention 64:1024,64:4096,256:1024,256:4096; done
  for v in v2 v5; do PAGESIM_ATTN=$v bench attn-0.6b-$v 60 --dummy-weights $M/qwen3-0.6b.json --attention 64:1024,64:4096,256:1024,256:4096; done
  PAGESIM_PROFILE=1 bench bias-7b-1024seqs-profile 150 --dummy-weights $M/qwen2.5-7b.json --num-requests 1024 \
    --max-num-seqs 1024 --max-num-batched-tokens 16384
fi
if has hf && [ -s "$OUT/w_bias.txt" ]; then
  log "hf bias"
  timeout 200 python3 tests/gpu/bench_hf.py --config $M/qwen2.5-7b.json --workload "$OUT/w_bias.txt" \
    --batches 64,128,256 --out "$OUT/hf.jsonl" >> "$L" 2>&1
  say "hf bias rc=$?"; sed 's/^/  /' "$OUT/hf.jsonl" >> "$S"; cat "$OUT/hf.jsonl" >> "$J"
fi
if has compare; then
  log compare
  t=$(left); [ "$t" -gt ${COMPARE_TIMEOUT:-330} ] && t=${COMPARE_TIMEOUT:-330}
  PAGESIM_ATTN=${COMPARE_ATTN:-${PAGESIM_ATTN:-}} timeout "$t" python3 tests/gpu/compare_hf.py --engine $R --out "$OUT" ${COMPARE_ARGS---diag-layer0} > "$OUT/compare.txt" 2>&1
  say "compare rc=$? (timeout $t)"; grep -vE '^ *"|^ *[][{}]' "$OUT/compare.txt" | tail -25 | sed 's/^/  /' >> "$S"
fi
if has hfdecode && [ -s "$OUT/w_dec.txt" ]; then
  t=$(left); lim=$((t - 45)); [ $lim -gt ${HF_DECODE_LIMIT:-90} ] && lim=${HF_DECODE_LIMIT:-90}
  if [ $lim -gt 10 ]; then
    log "hf decode"
    timeout $((lim + 40)) python3 tests/gpu/bench_hf.py --config $M/qwen3-0.6b.json --workload "$OUT/w_dec.txt" \
      --batches all --time-limit $lim --out "$OUT/hf2.jsonl" >> "$L" 2>&1
    say "hf decode rc=$? (limit $lim s)"; sed 's/^/  /' "$OUT/hf2.jsonl" >> "$S"; cat "$OUT/hf2.jsonl" >> "$J"
  fi
fi
rm -f "$OUT/tmp.txt" "$OUT/w_bias.txt" "$OUT/w_dec.txt" "$OUT/hf.jsonl" "$OUT/hf2.jsonl" "$OUT/peaks.json"
say "total $(( $(date +%s) - T0 )) s"
cat "$S"
