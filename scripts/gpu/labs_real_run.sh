#!/usr/bin/env bash
# The classroom labs' --real (issue 15) in one device call, from the repository root, with
# what scripts/gpu/labs_real_pack.sh put in .carry/labs-real/{bin.tar.xz,lib,fonts}:
#   kernels   build/tests/gpu/test_kernels: attention against its C reference, block sizes 16,
#             32, 48 and 64 among its cases (labs/blocksize --real runs 32 and 64)
#   labs      labs/<lab> --real --teacher for paging, sharing, preemption, prefix, batching,
#             blocksize, lora, in that order: each measures its runs on the CUDA engine (random
#             weights of Qwen3-0.6B's shape; lora: random adapters too) beside the same
#             requests simulated, and writes
#             its worksheets (PDF, Markdown), figures and data with the measured numbers
# Every stage is time-limited within BUDGET seconds; a lab that would not fit in what is left
# is skipped and says so.  $OUT gets at most 8 files (what comes back): SUMMARY.txt (the GPU,
# each stage's exit status and seconds, each lab's paragraphs about the GPU), labs_real.tgz
# (every lab's folder and log, the kernel test's log) and each lab's worksheet-a4.pdf as
# <lab>-worksheet-a4.pdf for the first six labs run.
#   BUDGET=450 bash .carry/labs-real/run.sh
#   LABS="paging sharing" ...    fewer labs (LABS=lora: the LoRA lab alone)
#   KERNELS=0 ...                without the kernel test;   REAL= ...   in simulation (a dry run
#                                without a GPU)
set -u
O=${OUT:-out/labs-real}; mkdir -p "$O"; O=$(cd "$O" && pwd)
W=/tmp/labs-real; rm -rf $W; mkdir -p $W/fc-cache
T0=$(date +%s); BUDGET=${BUDGET:-450}
LABS=${LABS:-paging sharing preemption prefix batching blocksize lora}
REAL=${REAL---real}
left() { echo $(( BUDGET - ($(date +%s) - T0) )); }
say() { echo "== [$(( $(date +%s) - T0 )) s] $*" | tee -a "$O/SUMMARY.txt"; }
L=$PWD/.carry/labs-real; B=$W/bin
# the binaries travel as one xz archive (python3's tarfile where tar cannot unpack xz)
tar -xJf $L/bin.tar.xz -C $W 2>/dev/null ||
  python3 -c "import sys, tarfile; tarfile.open(sys.argv[1]).extractall(sys.argv[2])" $L/bin.tar.xz $W ||
  { echo "cannot unpack $L/bin.tar.xz" | tee -a "$O/SUMMARY.txt"; exit 1; }
NV=$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)
export LD_LIBRARY_PATH=$L/lib:${NV%/bin/nvcc}/lib64${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
# the carried fonts through a fontconfig file of our own: the device may have no fonts
cat > $W/fonts.conf <<EOF
<?xml version="1.0"?>
<!DOCTYPE fontconfig SYSTEM "fonts.dtd">
<fontconfig><dir>$L/fonts</dir><cachedir>$W/fc-cache</cachedir></fontconfig>
EOF
export FONTCONFIG_FILE=$W/fonts.conf
# seconds each lab's --real needs on an H200: its engine runs as simulated (22, 29, 7, 3,
# 30 and 19 s), half again, plus start-up, engines and its simulation; lora: 33 s simulated
# (four engines of 256 requests, runtime LoRA eager) and about 15 s of its own simulation
declare -A NEED=([paging]=55 [sharing]=60 [preemption]=25 [prefix]=25 [batching]=60 [blocksize]=50 [lora]=90)
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || echo "no nvidia-smi"; } 2>&1 |
  tee -a "$O/SUMMARY.txt"
first=${LABS%% *}                     # the first lab asked for (the pack may hold only those)
$B/labs/$first --help > /dev/null || { say "labs/$first does not start here:"; ldd $B/labs/$first | grep "not found" |
  tee -a "$O/SUMMARY.txt"; exit 1; }
if [ -n "$REAL" ] && [ "${KERNELS:-1}" != 0 ]; then
  say "kernels: test_kernels (attention at block sizes 16-64 against the C reference)"
  PAGESIM_GPU=1 timeout 120 $B/test_kernels > $W/test_kernels.log 2>&1; rc=$?
  say "kernels: rc=$rc $(grep -cE '^\[       OK \]' $W/test_kernels.log) passed, $(grep -cE '^\[  FAILED  \] test_' $W/test_kernels.log) failed"
  grep -E "FAILED|ERROR|block (32|48|64)" $W/test_kernels.log | head -20 | tee -a "$O/SUMMARY.txt"
fi
pdfs=0; done_labs=""
for l in $LABS; do
  need=${NEED[$l]:-60}
  if [ "$(left)" -lt "$need" ]; then say "$l: skipped, $(left) s left (it needs about $need)"; continue; fi
  lim=$(( $(left) - 10 ))
  say "$l: labs/$l $REAL --teacher (limit $lim s)"
  t=$(date +%s)
  timeout $lim $B/labs/$l $REAL --teacher --out $W/$l > $W/$l.log 2>&1; rc=$?
  say "$l: rc=$rc in $(( $(date +%s) - t )) s"
  # the lab's paragraphs about the GPU (or why it did not run)
  awk '/^On the GPU/ {p = 1} p && /^$/ {p = 0} p' $W/$l.log | tee -a "$O/SUMMARY.txt"
  [ $rc -eq 0 ] || tail -5 $W/$l.log | tee -a "$O/SUMMARY.txt"
  done_labs="$done_labs $l $l.log"
  if [ -f $W/$l/worksheet-a4.pdf ] && [ $pdfs -lt 6 ]; then cp $W/$l/worksheet-a4.pdf "$O/$l-worksheet-a4.pdf"; pdfs=$((pdfs + 1)); fi
done
( cd $W && tar -czf "$O/labs_real.tgz" --ignore-failed-read $done_labs $(ls test_kernels.log 2>/dev/null) )
say "done: $(ls "$O" | tr '\n' ' ')"
