#!/usr/bin/env bash
# Here (not on the device), from the repository root: builds the classroom labs that have
# --real (labs/paging, sharing, preemption, prefix, batching, blocksize, lora; LABS="lora"
# packs fewer) and the GPU kernel
# test (build/tests/gpu/test_kernels: attention at the block sizes the labs use) from the
# committed HEAD (git archive into /tmp: other engineers' uncommitted edits stay out), and
# copies them, stripped (in one xz archive), with the shared libraries they need (not glibc, libstdc++, CUDA's
# or NCCL's, which the device has; it lacks cairo, fontconfig, cJSON, libcsv, cmocka ...),
# the DejaVu fonts the figures and worksheets are drawn with (the device may have no fonts)
# and scripts/gpu/labs_real_run.sh as run.sh, into .carry/labs-real/.  Then, one device call:
#   run(command="BUDGET=450 bash .carry/labs-real/run.sh", carry=[".carry/labs-real"], timeout_s=540)
# (LABS=lora BUDGET=200 ... runs the LoRA lab alone; the run needs only labs it was packed with)
# About 20 MiB travel (the binaries, 41 MiB, in one xz archive of 1.5; libraries 10, fonts 2,
# the tree 6); the tokenizers are not needed (the prefix lab estimates token counts without them).
# Here, without a GPU, `REAL= bash .carry/labs-real/run.sh` runs the same labs in simulation
# through the carried binaries, libraries and fonts (a dry run of the call).
set -eu
cd "$(dirname "$0")/../.."
LABS=${LABS:-paging sharing preemption prefix batching blocksize lora}
L=.carry/labs-real
S=/tmp/labs-real-src; rm -rf $S; mkdir -p $S
git archive HEAD | tar -x -C $S
make -C $S -j2 $(for l in $LABS; do printf 'labs/%s ' $l; done) build/tests/gpu/test_kernels > $S/build.log 2>&1 ||
  { tail -20 $S/build.log; exit 1; }
[ -x $S/build/tests/gpu/test_kernels ] || { echo "no CUDA build here (nvcc not found): --real needs one"; exit 1; }
rm -rf $L; mkdir -p $L/bin/labs $L/lib $L/fonts
cp scripts/gpu/labs_real_run.sh $L/run.sh
BINS=""
for l in $LABS; do strip -o $L/bin/labs/$l $S/labs/$l; BINS="$BINS $S/labs/$l"; done
strip -o $L/bin/test_kernels $S/build/tests/gpu/test_kernels
for b in $BINS $S/build/tests/gpu/test_kernels; do ldd $b; done | awk '/=>/ {print $3}' | sort -u |
  grep -vE "/(libc|libm|libpthread|libdl|librt|libresolv|ld-linux[^/]*|libstdc\+\+|libgcc_s|libcublas|libcublasLt|libcudart|libnccl)\.so" |
  while read -r f; do cp -L "$f" $L/lib/; done
for f in DejaVuSans DejaVuSans-Bold DejaVuSansMono DejaVuSansMono-Bold; do
  p=$(fc-list : file | sed 's/: *$//' | grep "/$f.ttf$" | head -1)
  [ -n "$p" ] || { echo "font $f.ttf not found here (apt-get install fonts-dejavu-core)"; exit 1; }
  cp "$p" $L/fonts/
done
# the binaries differ in a few lines: one xz archive holds them in about 1.5 MiB (41 MiB unpacked)
tar -C $L -cf - bin | xz -9 -T2 > $L/bin.tar.xz
rm -rf $L/bin
du -sh $L/bin.tar.xz $L/lib $L/fonts
kib=$(du -sk $L | cut -f1); tree=$(git ls-files -z | xargs -0 du -ck 2>/dev/null | tail -1 | cut -f1)
echo "carry $L: $(( kib / 1024 )) MiB, with the tree about $(( (kib + tree) / 1024 )) MiB (limit 64)"
[ $(( kib + tree )) -lt $(( 62 * 1024 )) ] || { echo "too large to travel"; exit 1; }
