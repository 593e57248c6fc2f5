#!/usr/bin/env bash
# Here (not on the device), from the repository root: builds labs/bias, engine/serve and
# engine/run from the committed HEAD (git archive: other engineers' uncommitted edits stay out)
# and copies them, stripped, with the shared libraries they need (not glibc,
# libstdc++ or CUDA's), into .carry/lab7/{bin,lib}.  Then, one device call:
#   run(command="BUDGET=515 bash .carry/lab7/run.sh", carry=[".carry/lab7", "data/tokenizers/qwen3"], timeout_s=560)
# or, with a trained tiny model instead of random weights (scripts/gpu/lab_trained_run.sh):
#   run(command="BUDGET=520 bash .carry/lab7/trained.sh", carry=[".carry/lab7", "data/tokenizers/qwen3"], timeout_s=570)
# (.carry/ is git-ignored; run.sh and trained.sh are scripts/gpu/lab_real_run.sh and
# lab_trained_run.sh, copied there.)
set -eu
cd "$(dirname "$0")/../.."
mkdir -p .carry/lab7 && cp scripts/gpu/lab_real_run.sh .carry/lab7/run.sh && cp scripts/gpu/lab_trained_run.sh .carry/lab7/trained.sh
S=/tmp/lab7src; rm -rf $S; mkdir -p $S
git archive HEAD | tar -x -C $S
make -C $S -j2 labs/bias engine/serve engine/run > $S/build.log 2>&1 || { tail -20 $S/build.log; exit 1; }
L=.carry/lab7; rm -rf $L/bin $L/lib; mkdir -p $L/bin/labs $L/bin/engine $L/lib
for b in labs/bias engine/serve engine/run; do strip -o $L/bin/$b $S/$b; done
for b in labs/bias engine/serve engine/run; do ldd $S/$b; done | awk '/=>/ {print $3}' | sort -u |
  grep -vE "/(libc|libm|libpthread|libdl|librt|libresolv|ld-linux[^/]*|libstdc\+\+|libgcc_s|libcublas|libcublasLt|libcudart)\.so" |
  while read -r f; do cp -L "$f" $L/lib/; done
du -sh $L/bin $L/lib
