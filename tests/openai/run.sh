#!/usr/bin/env bash
# tests/openai/run.sh — engine/serve --mock against the official OpenAI
# client for Node (tests/openai/client.mjs).  Prints TAP, as the cmocka
# binaries do under tests/run.sh (make test counts its lines).  Skips
# cleanly, as one skipped test, when node, the npm package `openai`
# (cd tests/openai && npm install) or the built command is missing.
set -u
here=$(cd "$(dirname "$0")" && pwd)
bin="${PAGESIM_BINDIR:-.}/engine/serve"
skip() { echo "1..1"; echo "not ok 1 # SKIP openai client tests: $1"; exit 0; }
command -v node >/dev/null 2>&1 || skip "node not found"
[ -d "$here/node_modules/openai" ] || skip "npm package openai missing (cd tests/openai && npm install)"
[ -x "$bin" ] || skip "$bin not built"
log=$(mktemp)
key="k-$$-$RANDOM"
"$bin" --mock --port 0 --token-delay-ms 0.2 --api-key "$key" --shutdown-timeout 2 2> "$log" &
pid=$!
port=
for _ in $(seq 1 100); do
  port=$(sed -n 's/.*127\.0\.0\.1:\([0-9][0-9]*\).*/\1/p' "$log" | head -1)
  [ -n "$port" ] && break
  kill -0 $pid 2>/dev/null || break
  sleep 0.05
done
if [ -z "$port" ]; then
  echo "1..1"; echo "not ok 1 - openai client tests: the server did not start"; sed 's/^/# /' "$log"; kill $pid 2>/dev/null; rm -f "$log"; exit 1
fi
PAGESIM_PORT=$port PAGESIM_KEY=$key timeout 120 node "$here/client.mjs"
rc=$?
kill -TERM $pid 2>/dev/null
wait $pid
src=$?
rm -f "$log"
[ $src -eq 0 ] || echo "# the server exited with status $src after SIGTERM"
[ $rc -eq 0 ] && [ $src -eq 0 ]
