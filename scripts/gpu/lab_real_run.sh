#!/usr/bin/env bash
# The one device call of issue 7 (labs/bias --real / --server / compare), run
# from the repository root with the carried binaries: .carry/lab7/{bin,lib}.
# Everything lands in /tmp/w; $OUT gets results.tgz and log.txt.
set -u
O=${OUT:-out}; mkdir -p "$O"; W=/tmp/w; rm -rf $W; mkdir -p $W
main() {
L=$PWD/.carry/lab7; B=$L/bin
NV=$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)
E="env LD_LIBRARY_PATH=$L/lib:${NV%/bin/nvcc}/lib64"      # for our binaries only
T0=$(date +%s); BUDGET=${BUDGET:-530}
left() { echo $(( BUDGET - ($(date +%s) - T0) )); }
stamp() { echo "== [$(( $(date +%s) - T0 )) s] $*"; }
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
GN=$(nvidia-smi --query-gpu=name --format=csv,noheader | head -1)
case "$GN" in *H200*) G=H200;; *PCIe*) G=H100-PCIe;; *) G=H100-SXM;; esac
MIB=$(nvidia-smi --query-gpu=memory.total --format=csv,noheader,nounits | head -1)
CFG=data/models/qwen2.5-7b.json; M=qwen2.5-7b-dummy
$E $B/labs/bias --help > /dev/null || { echo "labs/bias does not start here"; $E ldd $B/labs/bias | grep "not found"; exit 1; }
awk 'NR == 1 || NR % 10 == 2' data/universe/sp500.csv > $W/t50.csv
awk 'NR == 1 || NR % 6 == 2' data/universe/sp500.csv > $W/t80.csv
R="$E $B/labs/bias --real --dummy-weights $CFG --model-id $M --quiet --gpu $G"

stamp "A: 50 tickers x 10 trials, 1 set, --real (paged)"
timeout 150 $R --tickers $W/t50.csv --num-sets 1 --output-dir $W/A_real; arc=$?; echo "rc=$arc"
rate=$(python3 -c "import json;print(json.load(open('$W/A_real/${M}_att_metrics.json'))['measured_tokens_per_second'])" 2>/dev/null || echo 5000)
tpp=$(python3 -c "import json;m=json.load(open('$W/A_real/${M}_att_metrics.json'));print(m['total_tokens']/m['total_prompts'])" 2>/dev/null || echo 650)
stamp "A rate $rate tokens/s, $tpp tokens a prompt"

# the full default experiment: all tickers, 10 trials, 2 sets (fewer when the rest would not fit)
avail=$(( $(left) - 230 ))
est2=$(python3 -c "print(int(2*4980*float($tpp)/float($rate)*1.15 + 25))")
est1=$(( (est2 - 25) / 2 + 25 ))
FS=2; FT=data/universe/sp500.csv
if [ $est2 -gt $avail ]; then FS=1; fi
if [ $est1 -gt $avail ] && [ $FS = 1 ]; then
  n=$(python3 -c "print(max(20, int(498*($avail-25)/max(1,$est1-25))))"); awk -v n=$n 'NR <= n + 1' data/universe/sp500.csv > $W/tf.csv; FT=$W/tf.csv
fi
stamp "F: full default experiment (tickers $FT, sets $FS; estimate 2 sets $est2 s, time for it $avail s)"
if [ $arc = 0 ]; then timeout $(( avail > 60 ? avail : 60 )) $R --tickers $FT --num-sets $FS --output-dir $W/F; echo "rc=$?"; fi

stamp "A: the same prompts through engine/serve (dummy) and --server"
$E $B/engine/serve --dummy-weights $CFG --port 8011 --served-model-name $M > $W/serve.log 2>&1 & SP=$!
for i in $(seq 1 90); do (exec 3<>/dev/tcp/127.0.0.1/8011) 2>/dev/null && break; kill -0 $SP 2>/dev/null || break; sleep 1; done
cat $W/serve.log
timeout 120 $E $B/labs/bias --server http://127.0.0.1:8011 --reply-lengths profile --model-id $M --quiet --gpu $G \
  --model-config $CFG --tp 1 --tickers $W/t50.csv --num-sets 1 --output-dir $W/A_server; echo "rc=$?"
kill -INT $SP; wait $SP; tail -3 $W/serve.log
python3 - $W/A_real/${M}_att_set_1.csv $W/A_server/${M}_att_set_1.csv <<'PY'
import csv, sys
csv.field_size_limit(1 << 30)
a = list(csv.DictReader(open(sys.argv[1]))); b = list(csv.DictReader(open(sys.argv[2])))
same = sum(x["llm_output"] == y["llm_output"] for x, y in zip(a, b))
dec = sum(x["llm_answer"] == y["llm_answer"] for x, y in zip(a, b))
pre = [len(__import__("os").path.commonprefix([x["llm_output"], y["llm_output"]])) for x, y in zip(a, b)]
print(f"real vs server: {len(a)} / {len(b)} rows; identical replies {same}; equal decisions {dec}; "
      f"answered real {sum(bool(x['llm_answer']) for x in a)}, server {sum(bool(y['llm_answer']) for y in b)}; "
      f"mean common prefix {sum(pre)/max(1,len(pre)):.0f} chars of {sum(len(x['llm_output']) for x in a)/max(1,len(a)):.0f}")
PY

U=$(python3 -c "print(round(0.9 * 24e9 / ($MIB * 1048576), 4))")
for pol in paged contiguous; do
  stamp "K: 80 tickers x 10, 1 set, --kv-policy $pol, KV budget of a 24 GB card (--gpu-memory-utilization $U), max_model_len 4096"
  timeout $(( $(left) > 150 ? 130 : $(left) - 20 )) $R --tickers $W/t80.csv --num-sets 1 --kv-policy $pol \
    --gpu-memory-utilization $U --max-model-len 4096 --output-dir $W/K_$pol; echo "rc=$?"
done
$E $B/labs/bias compare --trace $W/K_paged/${M}_att_trace.json --trace $W/K_contiguous/${M}_att_trace.json \
  --model-id $M --output-dir $W/K_compare --gpu $G

stamp "L: --decision logits, 50 tickers, 1 set"
timeout $(( $(left) > 60 ? 45 : 10 )) $R --tickers $W/t50.csv --num-sets 1 --decision logits --output-dir $W/L; echo "rc=$?"
head -c 600 $W/L/${M}_att_set_1.csv | tail -c 300; echo
stamp "pack"
for d in $W/*/; do ls -la $d | head -30; done > $W/listing.txt
tar czf "$O/results.tgz" -C $W . && ls -la "$O"
stamp "done"
}
main 2>&1 | tee "$O/log.txt"
