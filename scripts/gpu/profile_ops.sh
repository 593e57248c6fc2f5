#!/usr/bin/env bash
# One device call (issue 18, item 3): operator profiles of the models in
# data/models on this GPU (engine/bench --profile-ops), and the profiles'
# prediction error on workloads they never saw: the bias run (Qwen2.5-7B,
# 1024 x 512+96 at once), the decode-heavy benchmark (Qwen3-0.6B, 256
# requests of 100-1024 + 100-1024 tokens at once) and a ShareGPT-like trace
# at two rates (Qwen2.5-7B, Poisson arrivals).  Each run: every engine step
# predicted by the profile (bench --op-profile: per-step and summed error) and
# its steps, trace and figures kept for `scripts/profile_eval.sh`, which
# simulates each workload with pagesim on the profile for the wall-time error.
#   scripts/gpu/profile_ops.sh [STAGES]     (results under $OUT: at most 8 files)
# STAGES: a comma list of build,profile,bias,decode,trace (default: all).
# TRACE_SECONDS (60) of arrivals at TRACE_RATES ("10 30") requests/s; MODELS
# overrides the profiled list (names of data/models/*.json).  Profiles go to
# data/profiles/H200/ in this copy (so the later stages use them) and come back
# in $OUT/profiles.tgz; untar it into the repository (data/profiles/H200/).
# Two calls when one is too long: "build,profile,bias,decode", then, with the
# profiles untarred into data/profiles/H200/ here so that they travel,
# "build,trace".
# PROFILE_OPTS: engine/bench options of the profiles (their largest token count
# and row count are the engine's --max-num-batched-tokens and --max-num-seqs:
# beyond them the cost model extrapolates); for the bias lab's 30B-A3B runs,
# PROFILE_OPTS="--max-num-seqs 1024 --max-num-batched-tokens 16384".
set -u
OUT=${OUT:-out}; mkdir -p "$OUT"
STAGES=${1:-build,profile,bias,decode,trace}
T0=$(date +%s)
S=$OUT/SUMMARY.txt; L=$OUT/logs.txt; R=$OUT/results
: > "$S"; : > "$L"; mkdir -p "$R"
has() { [[ ",$STAGES," == *",$1,"* ]]; }
say() { echo "$*" | tee -a "$S"; }
log() { echo "== $*" >> "$L"; }
M=data/models; P=data/profiles/H200; BN=build/gpu/bench
mkdir -p "$P"
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv,noheader >> "$S" 2>&1
# the models the engine runs (llama, qwen2/3, qwen3_moe); AWQ and OPT models are not
# the engine's (no 4-bit kernels, no OPT layers), so they get no profile
MODELS=${MODELS:-"smollm2-135m qwen2.5-0.5b qwen3-0.6b qwen2.5-7b qwen3-8b llama-3.1-8b llama-13b qwen3-30b-a3b-instruct-2507"}

if has build; then
  log build
  bash scripts/gpu/build.sh >> "$L" 2>&1 || { say "build failed"; tail -30 "$L"; exit 1; }
  say "build ok ($(( $(date +%s) - T0 )) s)"
fi

if has profile; then
  for m in $MODELS; do
    log "profile $m"
    t=$(date +%s)
    timeout 240 $BN --dummy-weights $M/$m.json ${PROFILE_OPTS:-} --profile-ops "$P/$m.json" > "$OUT/tmp.txt" 2>&1
    say "profile $m rc=$? ($(( $(date +%s) - t )) s)"
    cat "$OUT/tmp.txt" >> "$L"
    grep -E "cpu side|warning|error|failed" "$OUT/tmp.txt" | sed 's/^/  /' >> "$S"
  done
  tar czf "$OUT/profiles.tgz" "$P"/*.json 2>> "$L"
fi

# traces: lengths drawn here (seeded), so the engine and pagesim read the same requests
python3 - "$R" "${TRACE_SECONDS:-60}" ${TRACE_RATES:-10 30} >> "$L" 2>&1 <<'EOF'
import math, random, sys
out, secs, rates = sys.argv[1], float(sys.argv[2]), [float(r) for r in sys.argv[3:]]
def write(name, rows):
    with open(f"{out}/{name}.csv", "w") as f:
        f.write("arrival,prompt_len,output_len\n")
        for a, p, o in rows: f.write(f"{a:.6f},{p},{o}\n")
write("bias", [(0.0, 512, 96)] * 1024)                          # the bias run's shape
rng = random.Random(2)
write("decode", [(0.0, rng.randint(100, 1024), rng.randint(100, 1024)) for _ in range(256)])
# ShareGPT-like, as sim/workload.c: log-normal lengths of means 161.31 / 337.99,
# sigmas 1.2 / 0.8, pairs longer than 2048 drawn again; Poisson arrivals
def ln(mean, s): return max(1, round(math.exp(math.log(mean) - s * s / 2 + s * rng.gauss(0, 1))))
for r in rates:
    rng = random.Random(int(r * 1000)); t = 0.0; rows = []
    while True:
        t += rng.expovariate(r)
        if t > secs: break
        while True:
            p, o = ln(161.31, 1.2), ln(337.99, 0.8)
            if p + o <= 2048: break
        rows.append((t, p, o))
    write(f"sharegpt-{r:g}", rows)
EOF

run() {  # name, model, trace, timeout
  local n=$1 m=$2 tr=$3 to=$4
  [ -s "$P/$m.json" ] || { say "$n: no profile $P/$m.json (run the profile stage first)"; return; }
  log "run $n"
  timeout "$to" $BN --dummy-weights $M/$m.json --trace "$R/$tr.csv" --max-model-len 4096 --op-profile "$P/$m.json" \
    --steps-out "$R/$n.steps.csv" --json "$R/$n.json" > "$R/$n.txt" 2>&1
  say "$n ($m, $tr) rc=$?"
  grep -E "wall|operator profile" "$R/$n.txt" | sed 's/^/  /' >> "$S"
  cp "$M/$m.json" "$R/$n.model.json"; cp "$P/$m.json" "$R/$n.profile.json"; cp "$R/$tr.csv" "$R/$n.trace.csv"
}
has bias && run bias-7b qwen2.5-7b bias 240
has decode && run decode-0.6b qwen3-0.6b decode 240
if has trace; then
  for r in ${TRACE_RATES:-10 30}; do run "sharegpt-7b-$r" qwen2.5-7b "sharegpt-$r" $(( ${TRACE_SECONDS:-60} * 3 + 60 )); done
fi
rm -f "$R"/bias.csv "$R"/decode.csv "$OUT/tmp.txt"; for r in ${TRACE_RATES:-10 30}; do rm -f "$R/sharegpt-$r.csv"; done   # not the runs' own sharegpt-7b-*.csv
tar czf "$OUT/results.tgz" -C "$OUT" results 2>> "$L" && rm -rf "$R"
say "total $(( $(date +%s) - T0 )) s"
cat "$S"
