#!/usr/bin/env bash
# Here (not on the device), from the repository root: builds labs/bias and
# engine/bench from the committed HEAD (git archive) and copies them, stripped, with the
# shared libraries they need (not glibc, libstdc++ or CUDA's), into .carry/moe-run/{bin,lib},
# the study's inputs (../shared/data/seed: tickers and evidence) into .carry/moe-run/seed,
# and scripts/gpu/moe_run.sh into .carry/moe-run/run.sh.  Then, one device call:
#   run(command="BUDGET=520 bash .carry/moe-run/run.sh", carry=[".carry/moe-run", "data/tokenizers/qwen3"], timeout_s=560)
# (.carry/ is git-ignored; the seed data never enters the repository.)  What travels must stay
# under 64 MiB: about 31 MiB here (labs/bias and engine/bench, their libraries, the seed data),
# 11 MiB of tokenizer, 5 MiB of tree: carry nothing else (not .carry as a whole).
set -eu
cd "$(dirname "$0")/../.."
L=.carry/moe-run
mkdir -p $L && cp scripts/gpu/moe_run.sh $L/run.sh
S=/tmp/moe-run-src; rm -rf $S; mkdir -p $S
git archive HEAD | tar -x -C $S
make -C $S -j2 labs/bias engine/bench > $S/build.log 2>&1 || { tail -20 $S/build.log; exit 1; }
rm -rf $L/bin $L/lib $L/seed; mkdir -p $L/bin/labs $L/bin/engine $L/lib $L/seed
for b in labs/bias engine/bench; do strip -o $L/bin/$b $S/$b; done
for b in labs/bias engine/bench; do ldd $S/$b; done | awk '/=>/ {print $3}' | sort -u |
  grep -vE "/(libc|libm|libpthread|libdl|librt|libresolv|ld-linux[^/]*|libstdc\+\+|libgcc_s|libcublas|libcublasLt|libcudart|libnccl)\.so" |
  while read -r f; do cp -L "$f" $L/lib/; done
SEED=${PAGESIM_SHARED:-../shared}/data/seed
cp $SEED/sp500_final.csv $SEED/evidence_corpus_qual_mixed.csv $SEED/evidence_corpus_quant_mixed.csv $L/seed/
du -sh $L/bin $L/lib $L/seed
