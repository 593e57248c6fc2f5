#!/usr/bin/env bash
# The prediction-error table of issue 18 (item 3) from what
# scripts/gpu/profile_ops.sh brought back, on the CPU:
#   tar xzf results.tgz && scripts/profile_eval.sh results
# For each engine run (NAME.json, .steps.csv, .trace.csv, .model.json,
# .profile.json): pagesim simulates the same trace on the same pool with the
# operator profile (no fitting) for the predicted wall time, and `pagesim
# calibrate --op-profile` predicts each measured step.  Targets: wall time
# within 5%, per-step time within 10% at the median.
set -eu
D=${1:?usage: scripts/profile_eval.sh RESULTS_DIR}
PS=${PAGESIM:-./pagesim}
GPU=${GPU:-H200}
printf "%-18s %6s %10s %10s %8s %12s %12s\n" run steps "wall (s)" predicted error "step median" "step sum"
for j in "$D"/*.json; do
  case "$j" in *.model.json|*.profile.json|*.sim.json) continue ;; esac
  n=${j%.json}
  [ -s "$n.trace.csv" ] && [ -s "$n.steps.csv" ] || continue
  read -r wall kv mnbt < <(python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print(d['wall_s'], d['kv_blocks'], d['max_num_batched_tokens'])" "$j")
  "$PS" run --workload "$n.trace.csv" --model "$n.model.json" --gpu "$GPU" --op-profile "$n.profile.json" \
    --num-blocks "$kv" --max-num-seqs 256 --max-num-batched-tokens "$mnbt" --max-model-len 4096 --prefix-caching \
    --quiet --no-steps --json "$n.sim.json" > /dev/null
  sim=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['summary']['sim_time'])" "$n.sim.json")
  cal=$("$PS" calibrate --measured "$n.steps.csv" --model "$n.model.json" --gpu "$GPU" --op-profile "$n.profile.json" \
        | awk '/^  operator profile/ { print $4, $5 }')
  steps=$(($(wc -l < "$n.steps.csv") - 1))
  python3 - "$(basename "$n")" "$steps" "$wall" "$sim" $cal <<'EOF'
import sys
name, steps, wall, sim, sum_err, med = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]), sys.argv[5], sys.argv[6]
err = sim / wall - 1
print(f"{name:<18} {steps:6d} {wall:10.2f} {sim:10.2f} {100 * err:+7.1f}% {med:>12} {sum_err:>12}"
      f"   {'ok' if abs(err) <= 0.05 else 'over 5%'}, {'ok' if float(med.rstrip('%')) <= 10 else 'over 10%'}")
EOF
done
