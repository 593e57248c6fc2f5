#!/usr/bin/env bash
# The main job, after `make all`: the classroom view of the block pool, the
# memory planner on the seed study's GPU, the vLLM paper's Figure 2, and the
# bias lab in simulation.  Pictures and results go to ./out/.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p out
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "1. The block pool (pagesim --blocks 16)"
if [ -t 0 ] && [ -t 1 ]; then
  echo "(a window where there is a display, else the terminal view; q quits)"
  ./pagesim --blocks 16 --play || true
else
  ./pagesim --blocks 16 --tui --play --delay 1 | tail -n 32
fi
./pagesim --blocks 16 --step 12 --compare contiguous --png out/pool-16.png
./pagesim --blocks 16 --svg out/pool-16.svg

step "2. The seed study's memory mistake (pagesim plan)"
./pagesim plan --model data/models/qwen2.5-14b-instruct-awq.json --gpu RTX-4070 || true
./pagesim plan --model data/models/qwen2.5-7b-instruct-awq.json --gpu RTX-4070 \
    --max-model-len 6144 --gpu-memory-utilization 0.92

step "3. The vLLM paper's Figure 2 (pagesim run --fig2)"
./pagesim run --fig2 --plot out/fig2.png

step "4. The bias lab, simulated (labs/bias)"
./labs/bias --num-sets 1 --num-trials 10 --output-dir out/bias --quiet
ls out/bias

echo
echo "Pictures and results are in ./out/"
