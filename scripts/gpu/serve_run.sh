#!/usr/bin/env bash
# One device call (see scripts/gpu/serve_pack.sh): the GPU tests of n > 1 and
# log-probabilities (engine, and the engine backend of engine/serve), the
# engine's own GPU tests, then engine/serve --dummy-weights over HTTP: n = 2
# with logprobs and top_logprobs, plain and streamed, and a SIGTERM drain with a
# stream in flight.  From the repository root; SERVE_ARGS replaces the backend
# options (e.g. "--mock" to try the script without a GPU, with SKIP_TESTS=1).
set -u
C=$PWD/.carry/serve; B=$C/bin
NV=$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)
E="env LD_LIBRARY_PATH=$C/lib:${NV%/bin/nvcc}/lib64"
fail=0
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null
if [ "${SKIP_TESTS:-0}" != 1 ]; then
  for t in test_engine_samples test_serve_engine test_engine; do
    echo "== $t"
    PAGESIM_GPU=1 CMOCKA_MESSAGE_OUTPUT=stdout timeout 300 $E $B/$t 2>&1 | tail -25 || true
    PAGESIM_GPU=1 timeout 300 $E $B/$t > /dev/null 2>&1 || { echo "FAILED: $t"; fail=1; }
  done
fi
W=$(mktemp -d); P=${PORT:-8011}
SERVE_ARGS=${SERVE_ARGS:-"--dummy-weights data/models/qwen3-0.6b.json --max-model-len 1024 --tokenizer data/tokenizers/qwen3/tokenizer.json"}
echo "== engine/serve $SERVE_ARGS over HTTP"
$E $B/engine/serve $SERVE_ARGS --port $P --served-model-name m --shutdown-timeout 20 > $W/serve.log 2>&1 & SP=$!
for i in $(seq 1 120); do (exec 3<>/dev/tcp/127.0.0.1/$P) 2>/dev/null && break; kill -0 $SP 2>/dev/null || break; sleep 1; done
chat='"messages": [{"role": "user", "content": "Buy or sell ACME? Answer in JSON."}], "max_tokens": 24, "seed": 7, "temperature": 0.8'
curl -s -m 60 localhost:$P/v1/chat/completions -d "{\"model\": \"m\", $chat, \"n\": 2, \"logprobs\": true, \"top_logprobs\": 3}" > $W/chat.json
curl -s -m 60 -N localhost:$P/v1/chat/completions -d "{\"model\": \"m\", $chat, \"n\": 2, \"logprobs\": true, \"stream\": true, \"stream_options\": {\"include_usage\": true}}" > $W/chat.sse
curl -s -m 60 localhost:$P/v1/completions -d '{"model": "m", "prompt": "The market", "max_tokens": 12, "logprobs": 2, "n": 3, "seed": 1}' > $W/cmpl.json
curl -s -m 60 -o /dev/null -w "HEAD /health %{http_code}\n" -I localhost:$P/health
curl -s -m 60 localhost:$P/metrics | grep -E "^vllm:(num_preemptions|prefix_cache_(hits|queries)|generation_tokens)_total"
python3 - $W <<'PY' || fail=1
import json, sys
w = sys.argv[1]
ok = True
def check(c, what):
    global ok
    print(("ok   " if c else "FAIL ") + what)
    ok &= bool(c)
j = json.load(open(f"{w}/chat.json"))
ch = j.get("choices", [])
check(len(ch) == 2 and [c["index"] for c in ch] == [0, 1], f"chat n=2: {len(ch)} choices")
n_lp = [len(c["logprobs"]["content"]) for c in ch] if len(ch) == 2 else [0, 0]
check(sum(n_lp) == j["usage"]["completion_tokens"], f"one logprob entry per token: {n_lp} vs usage {j['usage']['completion_tokens']}")
check(all(e["logprob"] <= 1e-6 and len(e["top_logprobs"]) == 3 for c in ch for e in c["logprobs"]["content"]), "logprob <= 0, 3 alternatives each")
check(all(e["top_logprobs"][0]["logprob"] >= e["logprob"] - 1e-4 for c in ch for e in c["logprobs"]["content"]), "none likelier than the top one")
for c in ch: print("  choice", c["index"], c["finish_reason"], repr(c["message"]["content"][:70]))
text, lp, usage, done = {}, {}, None, False
for line in open(f"{w}/chat.sse"):
    if not line.startswith("data: "): continue
    if line.strip() == "data: [DONE]": done = True; continue
    o = json.loads(line[6:])
    if o.get("usage"): usage = o["usage"]
    for c in o["choices"]:
        text[c["index"]] = text.get(c["index"], "") + (c["delta"].get("content") or "")
        lp[c["index"]] = lp.get(c["index"], 0) + len((c.get("logprobs") or {}).get("content") or [])
check(done and sorted(text) == [0, 1], "streamed n=2 ends with [DONE]")
check(usage and sum(lp.values()) == usage["completion_tokens"], f"streamed logprob entries {lp} vs usage {usage and usage['completion_tokens']}")
c = json.load(open(f"{w}/cmpl.json"))
check(len(c["choices"]) == 3 and all(len(x["logprobs"]["tokens"]) == len(x["logprobs"]["token_logprobs"]) for x in c["choices"]),
      "completions n=3, logprobs 2")
sys.exit(0 if ok else 1)
PY
# SIGTERM with a stream in flight: it must finish (or end cleanly) with [DONE]
curl -s -m 60 -N localhost:$P/v1/completions -d '{"model": "m", "prompt": "Once", "max_tokens": 200, "stream": true}' > $W/drain.sse & CP=$!
sleep 0.3; kill -TERM $SP; wait $CP; wait $SP; src=$?
if grep -q "data: \[DONE\]" $W/drain.sse && [ $src = 0 ]; then echo "ok   SIGTERM: the stream ended with [DONE], the server exited 0"
else echo "FAIL SIGTERM: server status $src"; tail -c 300 $W/drain.sse; fail=1; fi
tail -4 $W/serve.log
echo "serve_run: $([ $fail = 0 ] && echo all passed || echo FAILURES)"
exit $fail
