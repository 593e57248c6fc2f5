#!/usr/bin/env bash
# Here (not on the device), from the repository root: builds engine/serve and the
# GPU tests of n > 1 and log-probabilities (tests/gpu/test_engine_samples,
# tests/gpu/test_serve_engine) with the engine's own (tests/gpu/test_engine) from
# the committed HEAD (git archive), and copies them, stripped, with the shared
# libraries they need (not glibc, libstdc++ or CUDA's) into .carry/serve/{bin,lib},
# with scripts/gpu/serve_run.sh as .carry/serve/run.sh.  Then one device call:
#   run(command="bash .carry/serve/run.sh", carry=[".carry/serve", "data/tokenizers/qwen3"], timeout_s=420)
set -eu
cd "$(dirname "$0")/../.."
C=.carry/serve; mkdir -p $C && cp scripts/gpu/serve_run.sh $C/run.sh
S=/tmp/servesrc; rm -rf $S; mkdir -p $S
git archive HEAD | tar -x -C $S
T="build/tests/gpu/test_engine_samples build/tests/gpu/test_serve_engine build/tests/gpu/test_engine"
make -C $S -j2 engine/serve $T > $S/build.log 2>&1 || { tail -20 $S/build.log; exit 1; }
rm -rf $C/bin $C/lib; mkdir -p $C/bin/engine $C/lib
strip -o $C/bin/engine/serve $S/engine/serve
for t in $T; do strip -o $C/bin/$(basename $t) $S/$t; done
for b in $S/engine/serve $(for t in $T; do echo $S/$t; done); do ldd $b; done | awk '/=>/ {print $3}' | sort -u |
  grep -vE "/(libc|libm|libpthread|libdl|librt|libresolv|ld-linux[^/]*|libstdc\+\+|libgcc_s|libcublas|libcublasLt|libcudart)\.so" |
  while read -r f; do cp -L "$f" $C/lib/; done
du -sh $C/bin $C/lib
