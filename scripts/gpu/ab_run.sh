#!/usr/bin/env bash
# Before/after in one device call: builds two source snapshots side by side
# (tarballs made here by scripts/gpu/ab_pack.sh: .carry/ab/{before,after}.tar),
# runs the GPU tests of "after", then the same benchmarks with both builds.
#   run(command="bash scripts/gpu/ab_run.sh [STAGES]", carry=[".carry/ab", ".debs"])
# STAGES (comma list): peaks, test, attn, prefill, elem, bias, decode, profile, hf,
# hfdecode (default: test,attn,bias,decode); hf and hfdecode run transformers'
# generate() on the prompts of the bias and decode stages (tests/gpu/bench_hf.py).  BUILDS: which builds bias/decode run (default both).
# ATTN_7B, ATTN_06B: the kernel variants the attn stage times with "after"
# (PAGESIM_ATTN[:PAGESIM_DEC5_NS[:PAGESIM_DEC5_PART]], defaults below).  Results: $OUT/SUMMARY.txt, $OUT/logs.txt.
set -u
OUT=${OUT:-out}; mkdir -p "$OUT"
STAGES=${1:-test,attn,bias,decode}
T0=$(date +%s); S=$OUT/SUMMARY.txt; L=$OUT/logs.txt; : > "$S"; : > "$L"
has() { [[ ",$STAGES," == *",$1,"* ]]; }
say() { echo "$*" | tee -a "$S"; }
ROOT=$PWD
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv,noheader >> "$S" 2>&1
PEAK_T=${PEAK_T:-799}; PEAK_G=${PEAK_G:-4257}
if has peaks; then   # the GPU's measured GEMM rate and copy bandwidth, for every roofline below
  timeout 90 python3 tests/gpu/bench_hf.py --peaks --out "$OUT/peaks.json" >> "$L" 2>&1
  if [ -s "$OUT/peaks.json" ]; then
    PEAK_T=$(python3 -c "import json;print(json.load(open('$OUT/peaks.json'))['gemm_tflops'])")
    PEAK_G=$(python3 -c "import json;print(json.load(open('$OUT/peaks.json'))['copy_gbps'])")
  fi
  say "peaks: $(cat "$OUT/peaks.json" 2>/dev/null)"
fi
for v in before after; do
  rm -rf /tmp/ab/$v; mkdir -p /tmp/ab/$v
  tar -xf .carry/ab/$v.tar -C /tmp/ab/$v && cp -r .debs /tmp/ab/$v/
  (cd /tmp/ab/$v && bash scripts/gpu/build.sh > build.log 2>&1; echo "build $v rc=$?") &
done
wait
for v in before after; do say "$(tail -1 /tmp/ab/$v/build.log)"; done
[ -x /tmp/ab/after/build/gpu/bench ] || { cat /tmp/ab/after/build.log | tail -30; exit 1; }
M=$ROOT/data/models
bench() {  # build, name, timeout, args...
  local v=$1 n=$2 t=$3; shift 3
  echo "== $v $n" >> "$L"
  (cd /tmp/ab/$v && timeout "$t" build/gpu/bench --peak-tflops "$PEAK_T" --peak-gbps "$PEAK_G" "$@") > /tmp/ab/o.txt 2>&1
  local rc=$?; cat /tmp/ab/o.txt >> "$L"
  say "[$v] $n rc=$rc"; grep -vE "^$" /tmp/ab/o.txt | grep -vE "^(loading|load|GPU KV|Maximum|memory)" | sed 's/^/  /' >> "$S"
}
if has test; then
  (cd /tmp/ab/after && timeout 200 bash tests/run.sh --gpu -- $(ls build/gpu/test_* | grep -v '\.o$')) > "$OUT/test_gpu.txt" 2>&1
  say "test-gpu (after) rc=$?: $(tail -1 "$OUT/test_gpu.txt")"
  grep -E "^not ok|failed" "$OUT/test_gpu.txt" | head -20 >> "$S"
  awk '/attention .* rel L2/ { split($0, a, "attention "); split(a[2], b, " "); v = $NF + 0; n[b[1]]++;
       if (v > mx[b[1]]) mx[b[1]] = v } END { for (k in n) printf "  attention %s: %d cases, max rel L2 %.2e\n", k, n[k], mx[k] }' \
    "$OUT/test_gpu.txt" >> "$S"
fi
if has attn; then   # VARIANT = PAGESIM_ATTN[:PAGESIM_DEC5_NS[:PAGESIM_DEC5_PART]]
  attn() {  # shape config, variant
    local a ns pt; IFS=: read -r a ns pt <<< "$2"
    PAGESIM_ATTN=$a PAGESIM_DEC5_NS=${ns:-3} PAGESIM_DEC5_PART=${pt:-1024} bench after attn-$(basename $1 .json)-$2 60 \
      --dummy-weights $M/$1 --attention 64:1024,64:4096,256:1024,256:4096
  }
  for v in ${ATTN_7B:-v2 v5 v5:2 v5:3:512}; do attn qwen2.5-7b.json $v; done
  for v in ${ATTN_06B:-v2 v5}; do attn qwen3-0.6b.json $v; done
fi
if has prefill; then  # the prefill kernels: v2 (WMMA) against v5 (mma.sync, cp.async)
  for a in ${PREFILL_VARIANTS:-v2 v5}; do
    PAGESIM_ATTN=$a bench after prefill-7b-$a 60 --dummy-weights $M/qwen2.5-7b.json --attention 64:512:512,16:2048:2048,64:1024:256
  done
fi
if has elem; then
  bench after elementwise-7b 60 --dummy-weights $M/qwen2.5-7b.json --elementwise 8192
fi
if has bias; then
  for v in before after; do
    [[ " ${BUILDS:-before after} " == *" $v "* ]] || continue
    bench $v bias-7b-1024seqs 150 --dummy-weights $M/qwen2.5-7b.json --workload fixed --num-requests 1024 --prompt-len 512 \
      --output-len 96 --max-num-seqs 1024 --max-num-batched-tokens 16384 --save-workload /tmp/ab/w_bias.txt
  done
fi
if has decode; then
  for v in before after; do
    [[ " ${BUILDS:-before after} " == *" $v "* ]] || continue
    bench $v decode-0.6b 120 --dummy-weights $M/qwen3-0.6b.json --workload uniform --num-requests 256 --min-len 100 \
      --max-len 1024 --save-workload /tmp/ab/w_dec.txt
  done
fi
if has hf && [ -s /tmp/ab/w_bias.txt ]; then   # transformers generate() on the same prompts
  timeout 240 python3 tests/gpu/bench_hf.py --config $M/qwen2.5-7b.json --workload /tmp/ab/w_bias.txt \
    --batches 64,128,256 --out "$OUT/hf.jsonl" >> "$L" 2>&1
  say "hf bias rc=$?"; sed 's/^/  /' "$OUT/hf.jsonl" >> "$S"
fi
if has hfdecode && [ -s /tmp/ab/w_dec.txt ]; then
  timeout 150 python3 tests/gpu/bench_hf.py --config $M/qwen3-0.6b.json --workload /tmp/ab/w_dec.txt \
    --batches all --time-limit ${HF_DECODE_LIMIT:-80} --out "$OUT/hf2.jsonl" >> "$L" 2>&1
  say "hf decode rc=$?"; sed 's/^/  /' "$OUT/hf2.jsonl" >> "$S"
fi
if has profile; then
  PAGESIM_PROFILE=1 bench after bias-7b-1024seqs-profile 150 --dummy-weights $M/qwen2.5-7b.json --num-requests 1024 \
    --max-num-seqs 1024 --max-num-batched-tokens 16384
fi
say "total $(( $(date +%s) - T0 )) s"
