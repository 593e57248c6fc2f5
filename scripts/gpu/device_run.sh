#!/usr/bin/env bash
# One device call: build, GPU kernel tests, dummy-weight runs of the shipped
# configs (memory plan log lines), and the comparison with transformers.
#   scripts/gpu/device_run.sh [compare_hf.py options]     (results under $OUT)
set -u
OUT=${OUT:-out}; mkdir -p "$OUT"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$OUT/gpu.txt" 2>&1
python3 -c "import torch, transformers; print('torch', torch.__version__, 'transformers', transformers.__version__)" >> "$OUT/gpu.txt" 2>&1
if ! bash scripts/gpu/build.sh > "$OUT/build.log" 2>&1; then tail -40 "$OUT/build.log"; exit 1; fi
echo "== kernel tests"
PAGESIM_GPU=1 CMOCKA_MESSAGE_OUTPUT=TAP timeout 120 build/gpu/test_kernels > "$OUT/test_kernels.log" 2>&1
echo "test_kernels rc=$?"; grep -E "^(ok|not ok)|rel L2|sample:|ERROR|error" "$OUT/test_kernels.log" | head -40
echo "== dummy weights: memory plan"
prompt=$(python3 -c "print(','.join(str(i * 7 % 1000 + 1) for i in range(500)))")
for m in qwen3-0.6b smollm2-135m qwen2.5-0.5b qwen2.5-7b qwen3-8b llama-3.1-8b; do
  args=(--dummy-weights "data/models/$m.json" --max-tokens 100 --max-num-batched-tokens 8192)
  for r in $(seq 1 32); do args+=(--prompt-ids "$r,$prompt"); done
  echo "-- $m" >> "$OUT/dummy.log"
  timeout 120 build/gpu/run "${args[@]}" 2>> "$OUT/dummy.log" | head -c 300 >> "$OUT/dummy.log"
  echo "rc=$?" >> "$OUT/dummy.log"
done
grep -E "^--|GPU KV|Maximum conc|Memory:|requests,|engine/run|rc=" "$OUT/dummy.log"
echo "== too little memory"
build/gpu/run --dummy-weights data/models/qwen2.5-7b.json --gpu-memory-utilization 0.1 2>&1 | tail -2
echo "== transformers comparison"
timeout 400 python3 tests/gpu/compare_hf.py --engine build/gpu/run --out "$OUT" "$@" > "$OUT/compare.log" 2>&1
echo "compare rc=$?"; tail -12 "$OUT/compare.log"
