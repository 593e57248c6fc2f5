#!/usr/bin/env bash
# Runs cmocka test binaries with TAP output and sums their results.
#   tests/run.sh [--skip-gpu|--gpu] BIN... -- GPUBIN_OR_SRC...
# With --skip-gpu, every GPU test is reported as skipped (never as passed):
# built binaries run with PAGESIM_GPU=0 so each case calls skip(); a GPU test
# that could not be built (no nvcc) counts as one skipped test.
# Closing line: "N passed, N failed, N skipped".
set -u
mode=$1; shift
cpu=(); gpu=(); seen=0
for a in "$@"; do
  if [ "$a" = "--" ]; then seen=1; continue; fi
  if [ $seen = 0 ]; then cpu+=("$a"); else gpu+=("$a"); fi
done
pass=0; fail=0; skip=0; failed_names=()
export CMOCKA_MESSAGE_OUTPUT=TAP
run_one() {  # $1 = binary; counts its TAP lines
  local bin=$1 out rc
  out=$("$bin" 2>&1); rc=$?
  printf '%s\n' "$out" | sed "s|^|$(basename "$bin"): |"
  local p f s
  p=$(printf '%s\n' "$out" | grep -cE '^ok [0-9]+')
  s=$(printf '%s\n' "$out" | grep -cE '^not ok [0-9]+ # SKIP')
  f=$(printf '%s\n' "$out" | grep -E '^not ok [0-9]+' | grep -cv '# SKIP')
  if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; fi   # crashed or exited early
  if [ $((p + f + s)) -eq 0 ]; then f=1; fi            # ran no test: a failure
  pass=$((pass + p)); fail=$((fail + f)); skip=$((skip + s))
  [ "$f" -gt 0 ] && failed_names+=("$(basename "$bin")")
}
for b in "${cpu[@]}"; do run_one "$b"; done
if [ "$mode" = "--skip-gpu" ]; then
  for g in "${gpu[@]}"; do
    bin="${BUILD:-build}/${g%.*}"
    if [ -x "$bin" ]; then PAGESIM_GPU=0 run_one "$bin"
    else echo "$(basename "$g"): skipped (not built: no nvcc)"; skip=$((skip + 1)); fi
  done
else
  for b in "${gpu[@]}"; do PAGESIM_GPU=1 run_one "$b"; done
fi
[ ${#failed_names[@]} -gt 0 ] && echo "failed in: ${failed_names[*]}"
echo "$pass passed, $fail failed, $skip skipped"
[ "$fail" -eq 0 ]
