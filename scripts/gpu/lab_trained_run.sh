#!/usr/bin/env bash
# One device call: a small TRAINED checkpoint instead of random weights, so that
# the checks of issues 6 and 7 mean something (random weights answer no trial,
# and their flat logits flip greedy tokens at bf16 near-ties).  Run from the
# repository root with the binaries that scripts/gpu/lab_real_pack.sh carries
# in .carry/lab7/{bin,lib} (labs/bias, engine/serve, engine/run):
#   1. prompts: labs/bias --dump-prompts (seeds 1-3, every ticker, 2 sets: training;
#      seed 42, 50 tickers x 10 trials, set 1: the run's own prompts, held out);
#   2. tests/gpu/train_tiny.py: a Qwen3-shaped model (hidden 384, 6 layers, tied
#      embeddings, the Qwen3 tokenizer) trained for TRAIN_S seconds to answer in the
#      study's JSON with the rule "decision = side of evidence item 1";
#   3. tests/gpu/compare_hf.py --checkpoint: ours against transformers on 6 of the
#      run's prompts (logits rel L2, greedy and teacher-forced agreement, batch = single);
#   4. labs/bias --real --model DIR on the 50 x 10 prompts (the study's T 0.6, top-p 0.8,
#      max_tokens 1024, seed 42), then engine/serve --model DIR + labs/bias --server on
#      the same prompts and seeds: per trial, answered on both sides, equal decisions,
#      identical replies, the rule's decision;
#   5. load: labs/bias --server --max-workers 512 (the lab's own client, 512 streams in
#      flight) against engine/serve --model DIR --max-num-seqs 512, every ticker x 10
#      trials x 2 sets, once straight through and once with the server stopped (SIGINT)
#      and started again mid-run: every trial reported once, none lost, replies equal to
#      the straight run's.
# Lines to read: "== RESULT ..." (one per check) at the end of $OUT/log.txt.
# Environment: BUDGET (seconds for the whole call, default 520), TRAIN_S (training, 100);
# STAGES (comma list of train,compare,lab,load; default all); SERVE_BACKEND (engine/serve's
# model, default "--model DIR"; "--mock" with STAGES=lab,load tries the script without a GPU).
# Everything lands in /tmp/wt; $OUT gets log.txt and results.tgz (no checkpoint).
set -u
O=${OUT:-out}; mkdir -p "$O"; W=/tmp/wt; rm -rf $W; mkdir -p $W
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=true
main() {
L=$PWD/.carry/lab7; B=$L/bin
NV=$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)
LDP=$L/lib:${NV%/bin/nvcc}/lib64
E="env LD_LIBRARY_PATH=$LDP"                                  # for our binaries only
T0=$(date +%s); BUDGET=${BUDGET:-520}; TRAIN_S=${TRAIN_S:-100}; STAGES=${STAGES:-train,compare,lab,load}
has() { [[ ",$STAGES," == *",$1,"* ]]; }
left() { echo $(( BUDGET - ($(date +%s) - T0) )); }
cap() { local t=$1 l; l=$(( $(left) - ${2:-10} )); [ $l -lt $t ] && t=$l; [ $t -lt 5 ] && t=5; echo $t; }
stamp() { echo "== [$(( $(date +%s) - T0 )) s] $*"; }
metric() {       # port name: the value of one of engine/serve's Prometheus metrics (summed over labels)
  (exec 3<>/dev/tcp/127.0.0.1/$1 && printf 'GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n' >&3 && cat <&3) 2>/dev/null |
    awk -v n="$2" '$1 == n || index($1, n "{") == 1 { s += $2 } END { print s + 0 }'
}
wait_port() {    # port pid: 0 when it accepts connections, 1 when the process died or 120 s passed
  local i
  for i in $(seq 1 2400); do
    (exec 3<>/dev/tcp/127.0.0.1/$1) 2>/dev/null && return 0
    kill -0 $2 2>/dev/null || return 1
    sleep 0.05
  done
  return 1
}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
GN=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1)
case "$GN" in *H200*) G=H200;; *PCIe*) G=H100-PCIe;; *) G=H100-SXM;; esac
for b in labs/bias engine/serve engine/run; do
  $E $B/$b --help > /dev/null 2>&1 || { echo "$b does not start here"; $E ldd $B/$b | grep "not found"; exit 1; }
done
has train && python3 -c "import torch, transformers, tokenizers; print('torch', torch.__version__, 'transformers', transformers.__version__, 'tokenizers', tokenizers.__version__)"
printf '#!/bin/sh\nexec env LD_LIBRARY_PATH=%s %s "$@"\n' "$LDP" "$B/engine/run" > $W/run.sh; chmod +x $W/run.sh
M=tiny-bias; CK=$W/tiny; SB=${SERVE_BACKEND:---model $CK}

stamp "1: prompts (labs/bias --dump-prompts)"
awk 'NR == 1 || NR % 10 == 2' data/universe/sp500.csv > $W/t50.csv
$E $B/labs/bias --dump-prompts $W/held.jsonl --tickers $W/t50.csv --num-sets 1 || exit 1
TR=()
if has train; then
for s in 1 2 3; do $E $B/labs/bias --dump-prompts $W/train_$s.jsonl --seed $s --num-sets 2 || exit 1; TR+=(--train $W/train_$s.jsonl); done

stamp "2: train (tests/gpu/train_tiny.py, $TRAIN_S s)"
timeout $(cap $((TRAIN_S + 170)) 230) python3 tests/gpu/train_tiny.py "${TR[@]}" --held-out $W/held.jsonl --out $CK \
  --time-limit $TRAIN_S; echo "rc=$?"
if [ ! -s $CK/config.json ]; then echo "== RESULT train: FAILED (no checkpoint; nothing else runs)"; STAGES=none; else
ls -la $CK
python3 - $CK/train_summary.json <<'PY'
import json, sys
s = json.load(open(sys.argv[1])); t, h = s["train"], s["held_out"]
print("== RESULT train: %d params, %d steps in %.0f s (%.1f epochs), final loss %s; held out: decision right "
      "(teacher-forced) %.1f%% of %d; greedy generate(): answered %.1f%%, rule's decision %.1f%%, template reply %.1f%% of %d"
      % (t["params"], t["steps"], t["train_s"], t["epochs"], t["final_loss"], 100 * h["held_out_decision_teacher_forced"],
         s["info"]["held_out_prompts"], 100 * h["greedy_answered"], 100 * h["greedy_rule_decision"],
         100 * h["greedy_exact_reply"], h["greedy_prompts"]))
print("== RESULT dump ids = HF tokenizers ids: %s" % s["info"]["dump_ids_equal_tokenizer"])
PY
fi
fi
MC=$CK/config.json; [ -s $MC ] || MC=data/models/qwen3-0.6b.json     # the serving simulation's config

if has compare; then
stamp "3: compare_hf --checkpoint (ours against transformers on 6 of the run's prompts)"
timeout $(cap 170 120) python3 tests/gpu/compare_hf.py --engine $W/run.sh --checkpoint $CK --prompts $W/held.jsonl \
  --num-prompts 6 --out $W/compare > $W/compare.txt 2>&1; echo "rc=$?"
grep -vE '^ *"|^ *[][{}]' $W/compare.txt | tail -12
python3 - $W/compare/compare.json <<'PY' || echo "== RESULT compare_hf: no compare.json (see compare.txt)"
import json, sys
for n, r in json.load(open(sys.argv[1])).items():
    b = r.get("batched")
    if not b:
        print("== RESULT compare_hf %s: ERROR %s" % (n, r.get("error", "")[-300:])); continue
    print("== RESULT compare_hf %s: greedy %.1f%% of %d positions (target 95%%), up to EOS %.1f%%, teacher-forced "
          "argmax %.1f%%, logits rel L2 prefill %.2e decode %.2e, batch=single %s (rel L2 %.1e), contiguous=paged %s, pass %s"
          % (n, 100 * b["greedy_agree"], b["positions"], 100 * b.get("greedy_agree_to_eos", float("nan")),
             100 * b["teacher_forced_argmax_agree"], b["prefill_rel_l2"], b["decode_rel_l2"],
             r["batch_equals_single_tokens"], r["batch_vs_single_rel_l2"], r["contiguous_equals_paged"], r["pass"]))
PY
fi

R="$E $B/labs/bias --model-id $M --quiet --gpu $G --tickers $W/t50.csv --num-sets 1"
if has lab; then
stamp "4a: 50 tickers x 10 trials, 1 set, --real --model (study sampling, seed 42)"
timeout $(cap 120 100) $R --real --model $CK --output-dir $W/A_real; echo "rc=$?"
stamp "4b: the same prompts through engine/serve --model and --server"
$E $B/engine/serve $SB --port 8012 --served-model-name $M > $W/serve.log 2>&1 & SP=$!
if wait_port 8012 $SP; then
  timeout $(cap 120 80) $R --server http://127.0.0.1:8012 --model-config $MC --tp 1 --output-dir $W/A_server
  echo "rc=$?"
fi
kill -INT $SP 2>/dev/null; wait $SP; tail -4 $W/serve.log
python3 - $W/A_real/${M}_att_set_1.csv $W/A_server/${M}_att_set_1.csv $W/held.jsonl <<'PY'
import csv, json, os, sys
csv.field_size_limit(1 << 30)
try:
    a = list(csv.DictReader(open(sys.argv[1]))); b = list(csv.DictReader(open(sys.argv[2])))
except OSError as ex:
    print("== RESULT real vs server: missing set file: %s" % ex); sys.exit(0)
held = [json.loads(l) for l in open(sys.argv[3])]
n = min(len(a), len(b))
keys = all((x["ticker"], x["trial"]) == (y["ticker"], y["trial"]) == (h["ticker"], str(h["trial"]))
           for x, y, h in zip(a, b, held))
ans = lambda r: r["llm_answer"] in ("buy", "sell")
same = sum(x["llm_output"] == y["llm_output"] for x, y in zip(a, b))
dec = sum(x["llm_answer"] == y["llm_answer"] for x, y in zip(a, b))
both = sum(ans(x) and ans(y) and x["llm_answer"] == y["llm_answer"] for x, y in zip(a, b))
rule_a = sum(x["llm_answer"] == h["evidence"][0] for x, h in zip(a, held))
rule_b = sum(y["llm_answer"] == h["evidence"][0] for y, h in zip(b, held))
err = sum(y["llm_output"].startswith("API_ERROR") for y in b)
pre = [len(os.path.commonprefix([x["llm_output"], y["llm_output"]])) for x, y in zip(a, b)]
diff = [(x["ticker"], x["trial"], x["llm_output"][:90], y["llm_output"][:90]) for x, y in zip(a, b)
        if x["llm_output"] != y["llm_output"]][:3]
print("== RESULT real vs server (%d / %d trials, same order %s): answered real %d, server %d; equal decisions %d "
      "(both answered and equal %d); identical replies %d; the rule's decision: real %d, server %d; API errors %d; "
      "mean common prefix %.0f of %.0f chars" % (len(a), len(b), keys, sum(map(ans, a)), sum(map(ans, b)), dec, both,
      same, rule_a, rule_b, err, sum(pre) / max(1, n), sum(len(x["llm_output"]) for x in a) / max(1, len(a))))
for d in diff:
    print("   differs: %s trial %s: real %r | server %r" % d)
PY
for d in A_real A_server; do
  python3 -c "import json;m=json.load(open('$W/$d/${M}_att_metrics.json'));print('$d', {k: m[k] for k in m if 'measured' in k or k in ('total_prompts','total_tokens')})" 2>/dev/null
done
fi

if has load; then
stamp "5: load: 512 concurrent streams (labs/bias --server --max-workers 512), server restarted mid-run"
S="$E $B/engine/serve $SB --port 8013 --served-model-name $M --max-num-seqs 512 --gpu-memory-utilization 0.2"
LR="$E $B/labs/bias --server http://127.0.0.1:8013 --model-id $M --quiet --gpu $G --model-config $MC --tp 1 \
  --max-workers 512 --num-sets 2 --no-serving --no-compare"
t=$(date +%s.%N); $S > $W/serve_L1.log 2>&1 & SP=$!
if wait_port 8013 $SP; then
  cold=$(python3 -c "print('%.2f' % ($(date +%s.%N) - $t))"); echo "engine/serve listening $cold s after its start"
  t=$(date +%s.%N); timeout $(cap 100 50) $LR --output-dir $W/L_straight; echo "rc=$? ($(python3 -c "print(round($(date +%s.%N) - $t, 1))") s)"
  t=$(date +%s.%N)
  timeout $(cap 120 15) $LR --output-dir $W/L_restart > $W/L_restart.out 2>&1 & LP=$!
  J=$W/L_restart/${M}_att_set_1.progress.jsonl
  for i in $(seq 1 1200); do                    # the first max_workers replies are journaled: the rest are in flight
    [ -s $J ] || [ -e $W/L_restart/${M}_att_set_1.csv ] && break
    kill -0 $LP 2>/dev/null || break; sleep 0.02
  done
  run=$(metric 8013 vllm:num_requests_running); wai=$(metric 8013 vllm:num_requests_waiting)
  tk=$(date +%s.%N); got=$(cat $W/L_restart/${M}_att_set_*.progress.jsonl 2>/dev/null | wc -l)
  # the client gives a cut request two more tries, 2 s apart: the new server loads while the old one stops
  kill -INT $SP; $S > $W/serve_L2.log 2>&1 & SP2=$!
  wait $SP; td=$(date +%s.%N); SP=$SP2
  if ! wait_port 8013 $SP; then                 # it lost the race for the port: once more
    echo "restarted server exited: $(tail -2 $W/serve_L2.log)"; $S > $W/serve_L3.log 2>&1 & SP=$!; wait_port 8013 $SP
  fi
  tu=$(date +%s.%N)
  python3 -c "print('restart: stopped %.2f s into the run with %d replies journaled and %s requests running, %s waiting on the server; old server gone after %.2f s, new one listening %.2f s after the stop (a cold start took $cold s)' % ($tk - $t, $got, '$run', '$wai', $td - $tk, $tu - $tk))" | tee $W/restart.txt
  wait $LP; echo "rc=$? ($(python3 -c "print(round($(date +%s.%N) - $t, 1))") s)"; tail -3 $W/L_restart.out
fi
kill -INT $SP 2>/dev/null; wait $SP; tail -3 $W/serve_L1.log $W/serve_L2.log 2>/dev/null
python3 - $W/L_straight $W/L_restart $M <<'PY'
import csv, json, os, sys
csv.field_size_limit(1 << 30)
a_dir, b_dir, m = sys.argv[1:4]
def rows(d):
    out = []
    for s in (1, 2):
        p = os.path.join(d, "%s_att_set_%d.csv" % (m, s))
        out += [(s, r) for r in csv.DictReader(open(p))] if os.path.exists(p) else []
    return out
a, b = rows(a_dir), rows(b_dir)
want = 2 * 498 * 10
def ntrace(d):
    try:
        return len(json.load(open(os.path.join(d, "%s_att_trace.json" % m)))["requests"])
    except (OSError, ValueError, KeyError):
        return -1
uniq = len({(s, r["ticker"], r["trial"]) for s, r in b})
lost = sum(r["llm_output"].startswith("API_ERROR") for s, r in b)
same = sum(x[1]["llm_output"] == y[1]["llm_output"] for x, y in zip(a, b))
dec = sum(x[1]["llm_answer"] == y[1]["llm_answer"] for x, y in zip(a, b))
ans = lambda rr: sum(r["llm_answer"] in ("buy", "sell") for s, r in rr)
restart = open(os.path.join(os.path.dirname(b_dir), "restart.txt")).read().strip() if os.path.exists(
    os.path.join(os.path.dirname(b_dir), "restart.txt")) else "no restart"
ok = len(b) == want and uniq == want and lost == 0 and ntrace(b_dir) == want
print("== RESULT load 512 streams + restart: straight run %d rows (%d answered, trace %d); restarted run %d rows, "
      "%d distinct trials of %d, lost (API_ERROR) %d, replies reported %d (trace; %d expected), answered %d; vs straight: "
      "identical replies %d, equal decisions %d; %s; %s" % (len(a), ans(a), ntrace(a_dir), len(b), uniq, want, lost,
      ntrace(b_dir), want, ans(b), same, dec, restart, "OK" if ok else "FAIL"))
PY
fi

echo "== summary"; grep -a "^== RESULT" "$O/log.txt" > $W/summary.txt; cat $W/summary.txt
stamp "pack"
rm -f $W/train_*.jsonl
for d in $W/*/; do ls -la $d | head -40; done > $W/listing.txt
tar czf "$O/results.tgz" -C $W --exclude=tiny/model.safetensors --exclude=tiny/tokenizer.json \
  --exclude='L_*/*_att_set_*.csv' --exclude='L_*/*_combined.csv' . && ls -la "$O"
stamp "done"
}
main 2>&1 | tee "$O/log.txt"
