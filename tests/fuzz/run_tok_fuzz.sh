#!/usr/bin/env bash
# tests/fuzz/run_tok_fuzz.sh [SECONDS] — build the tokenizer fuzzers with
# clang's libFuzzer + ASan + UBSan and run each for SECONDS (default 60):
#   fuzz_tok_load    tokenizer.json loader on arbitrary bytes (seeds: seeds_load/)
#   fuzz_tok_encode  encoder + decode round trip, Qwen3 tokenizer (skipped if absent)
#   fuzz_tok_encode  again with the Gemma 3 tokenizer (byte fallback, no pre-tokenizer)
# Corpora and crash files go to build/fuzz/.  Run from the repository root.
set -euo pipefail
secs=${1:-60}
out=build/fuzz
mkdir -p "$out/corpus_load" "$out/corpus_encode" "$out/corpus_encode_gemma"
CFLAGS="-g -O1 -fsanitize=fuzzer,address,undefined -fno-omit-frame-pointer -std=c11 -D_GNU_SOURCE -I. $(pkg-config --cflags libcjson libpcre2-8 libutf8proc)"
LIBS="$(pkg-config --libs libcjson libpcre2-8 libutf8proc) -lpthread"
clang $CFLAGS tests/fuzz/fuzz_tok_load.c text/tok*.c base/file.c -o "$out/fuzz_tok_load" $LIBS
clang $CFLAGS tests/fuzz/fuzz_tok_encode.c text/tok*.c base/file.c -o "$out/fuzz_tok_encode" $LIBS
run() {  # name binary corpus seeds... ; prints libFuzzer's final stats
  local name=$1 bin=$2 corpus=$3; shift 3
  echo "== $name ($secs s)"
  # the corpus directory must come first: libFuzzer writes new inputs there
  local opts=() dirs=()
  for a in "$@"; do case $a in -*) opts+=("$a");; *) dirs+=("$a");; esac; done
  "$bin" -max_total_time="$secs" -print_final_stats=1 -artifact_prefix="$out/$name-" "${opts[@]}" "$corpus" "${dirs[@]}" 2>"$out/$name.log" || {
    echo "FINDING: see $out/$name.log"; tail -40 "$out/$name.log"; return 1; }
  grep -E "stat::number_of_executed_units|stat::peak_rss_mb|stat::new_units_added" "$out/$name.log" || true
  grep -E "^#[0-9]+ *DONE" "$out/$name.log" | tail -1 || true
}
status=0
run load "$out/fuzz_tok_load" "$out/corpus_load" -dict=tests/fuzz/tok.dict -max_len=4096 tests/fuzz/seeds_load || status=1
if [ -r data/tokenizers/qwen3/tokenizer.json ]; then
  mkdir -p "$out/seeds_encode" && (cd "$out/seeds_encode" && split -l 1 -a 4 ../../../tests/data/tokenizer/strings.jsonl s)
  run encode_qwen3 "$out/fuzz_tok_encode" "$out/corpus_encode" -max_len=2048 "$out/seeds_encode" || status=1
else echo "skipped: data/tokenizers/qwen3/tokenizer.json absent"; fi
if [ -r data/tokenizers/gemma3/tokenizer.json ]; then
  FUZZ_TOKENIZER=data/tokenizers/gemma3/tokenizer.json run encode_gemma3 "$out/fuzz_tok_encode" "$out/corpus_encode_gemma" -max_len=2048 "$out/seeds_encode" || status=1
fi
exit $status
