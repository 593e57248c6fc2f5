#!/usr/bin/env bash
# Tensor parallelism on the GPU machine (issues 13 and 14) in one device call:
#   run(command="BUDGET=560 bash scripts/gpu/tp_run.sh", carry=[".debs"], timeout_s=600)
# on nvidia-h200 (one GPU: the sharding, -tp 1 through NCCL and its cost; the
# cases of several GPUs skip, saying so) or nvidia-h200-x2 / -x4 (everything).
# STAGES, a comma list (default build,test,cli,overhead,multi,bench):
#   build     scripts/gpu/build.sh: build/gpu/run, bench, test_*, bench_tp_* (finds NCCL:
#             /usr/include/nccl.h there)
#   test      test_tp_shard (N = 2, 4 shards of dense, Qwen3-like and MoE layers with the real
#             MoE kernels summed on one GPU = unsharded; KV heads fewer than N; vocabulary-
#             parallel embedding, lm_head, sampling; a communicator of one), test_tp_load
#             (w_load_shard of checkpoints on disk: every rank's arena = the slices), test_tp_engine (the engine with -tp 1 through NCCL
#             bit-identical to the engine without it: tokens and logits, dense, MoE and a
#             checkpoint), test_tp_comm (2+ GPUs: collectives, the engine at N against one GPU,
#             SIGKILL to a worker mid-run and while loading), test_engine (the engine as before)
#   cli       engine/run without -tp and with -tp 1 (dense Qwen3-0.6B and a small MoE, dummy
#             weights): stdout and --dump-logits files compared byte for byte; the memory log of
#             -tp 1; -tp (GPUs + 1): a clear error, no hang
#   overhead  engine/bench bias shape (Qwen2.5-7B dummy, OVH_REQ requests of 512/96) without -tp
#             and with -tp 1, alternated twice: the cost of NCCL with one rank (target: within 2%)
#   multi     2+ GPUs: engine/run and engine/bench at -tp N (dense 7B and MoE 30B-A3B dummy):
#             the per-GPU memory plan beside pagesim plan's, tokens/s (issue 14 goes further)
#   bench     build/gpu/bench_tp_allreduce (2+ GPUs): NCCL's all-reduce at the engine's sizes
#   all       every GPU test of the project (tests/gpu/test_*), as make test-gpu
# Every stage is time-limited within BUDGET seconds (default 560); NVLink multicast stays off
# in every command.  $OUT: SUMMARY.txt (figures and verdicts) and logs.tar.gz (every log).
set -u
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
export NCCL_DEBUG=${NCCL_DEBUG:-WARN}
OUT=${OUT:-out}; mkdir -p "$OUT"
LOG=/tmp/tp-logs; rm -rf $LOG; mkdir -p $LOG
STAGES=${STAGES:-${1:-build,test,cli,overhead,multi,bench}}
OVH_REQ=${OVH_REQ:-1024}
S=$OUT/SUMMARY.txt; : > "$S"
T0=$(date +%s); BUDGET=${BUDGET:-560}
has() { [[ ",$STAGES," == *",$1,"* ]]; }
say() { echo "[$(( $(date +%s) - T0 )) s] $*" | tee -a "$S"; }
left() { echo $(( BUDGET - ($(date +%s) - T0) )); }
lim() { local l; l=$(left); local w=$1; [ "$w" -gt $((l - 15)) ] && w=$((l - 15)); [ "$w" -lt 5 ] && w=5; echo $w; }
finish() { say "done"; tar -czf "$OUT/logs.tar.gz" -C /tmp tp-logs 2>/dev/null; exit "${1:-0}"; }
M=data/models
MOE_SMALL=/tmp/tp-moe-small.json
echo '{"model_type":"qwen3_moe","hidden_size":256,"num_hidden_layers":4,"num_attention_heads":4,"num_key_value_heads":2,"head_dim":64,"vocab_size":50000,"intermediate_size":512,"moe_intermediate_size":128,"num_experts":16,"num_experts_per_tok":4,"norm_topk_prob":true,"mlp_only_layers":[1],"max_position_embeddings":4096,"tie_word_embeddings":false}' > $MOE_SMALL

say "tp_run.sh $STAGES on $(hostname): $(git rev-parse --short HEAD 2>/dev/null || echo '?'), budget $BUDGET s"
nvidia-smi --query-gpu=index,name,memory.total,driver_version --format=csv,noheader >> "$S" 2>&1
NGPU=$(nvidia-smi -L 2>/dev/null | wc -l)
say "GPUs: $NGPU; NCCL headers: $(ls /usr/include/nccl.h /usr/local/cuda/include/nccl.h 2>/dev/null | tr '\n' ' ')"

if has build || [ ! -x build/gpu/test_tp_engine ]; then
  timeout "$(lim 300)" bash scripts/gpu/build.sh > $LOG/build.txt 2>&1; rc=$?
  say "build rc=$rc: $(grep -E '^NCCL' $LOG/build.txt | head -1)"
  [ $rc = 0 ] || { grep -E "error|failed" $LOG/build.txt | head -20 | tee -a "$S"; finish 1; }
fi

if has test; then
  for t in test_tp_shard test_tp_load test_tp_engine test_tp_comm test_engine; do
    PAGESIM_GPU=1 timeout "$(lim 200)" bash tests/run.sh --gpu -- build/gpu/$t > $LOG/$t.txt 2>&1; rc=$?
    say "$t rc=$rc: $(tail -1 $LOG/$t.txt)"
    grep -E "rel L2|bit-identical|identical|not ok|skip:|killed|reported|ranks|failed|w_load_shard|vs one GPU" \
      $LOG/$t.txt | grep -v "^ok" | sed 's/^/  /' | head -60 >> "$S"
  done
fi

# engine/run twice, same prompts: without -tp ($1 = "") and with "$1"; $2 the config; stdout and logits compared
run_pair() {
  local tp=$1 cfg=$2 name=$3 args="--prompt-ids 1,2,3,4,5 --prompt-ids 17,400,12,9,3000,5,5,5,42 --prompt-ids 7 \
    --max-tokens 24 --max-model-len 512 --num-gpu-blocks 256 --dummy-seed 5"
  timeout "$(lim 60)" build/gpu/run --dummy-weights $cfg $args --dump-logits /tmp/a.bin > $LOG/run_${name}_plain.out \
    2> $LOG/run_${name}_plain.err; local ra=$?
  timeout "$(lim 60)" build/gpu/run --dummy-weights $cfg $args $tp --dump-logits /tmp/b.bin > $LOG/run_${name}_tp.out \
    2> $LOG/run_${name}_tp.err; local rb=$?
  local same=no
  cmp -s $LOG/run_${name}_plain.out $LOG/run_${name}_tp.out && cmp -s /tmp/a.bin /tmp/b.bin && same=yes
  say "engine/run $name: plain rc=$ra, '$tp' rc=$rb; tokens and --dump-logits ($(stat -c %s /tmp/a.bin 2>/dev/null) bytes) bit-identical: $same"
  grep -E "^Tensor parallel|^Per GPU|^Memory|^GPU KV cache size|tensor-parallel|rror" $LOG/run_${name}_tp.err | sed 's/^/  /' >> "$S"
}

if has cli; then
  run_pair "--tensor-parallel-size 1" $M/qwen3-0.6b.json qwen3-0.6b
  run_pair "-tp 1" $MOE_SMALL moe-small
  for n in $((NGPU + 1)); do
    t1=$(date +%s)
    timeout 60 build/gpu/run --dummy-weights $M/qwen3-0.6b.json -tp $n --prompt-ids 1,2,3 --max-tokens 2 \
      > $LOG/tp_too_many.txt 2>&1; rc=$?
    say "engine/run -tp $n on $NGPU GPU(s): rc=$rc after $(( $(date +%s) - t1 )) s: $(head -c 300 $LOG/tp_too_many.txt)"
  done
fi

# engine/bench's wall time of one run (bias shape) with extra args $1
bench_wall() {
  timeout "$(lim 90)" build/gpu/bench --dummy-weights $M/qwen2.5-7b.json --num-requests $OVH_REQ --prompt-len 512 \
    --output-len 96 --max-num-seqs 1024 --max-num-batched-tokens 16384 --max-model-len 1024 $1 > $LOG/bench_$2.txt 2>&1
  grep -oE "wall [0-9.]+ s" $LOG/bench_$2.txt | awk '{print $2}'
}
if has overhead; then
  w=(); for i in 1 2; do
    w+=("$(bench_wall "" plain$i)"); w+=("$(bench_wall "-tp 1" tp1_$i)")
  done
  say "overhead: engine/bench Qwen2.5-7B $OVH_REQ x 512/96: wall plain ${w[0]} ${w[2]} s, -tp 1 ${w[1]} ${w[3]} s"
  awk -v a="${w[0]}" -v b="${w[1]}" -v c="${w[2]}" -v d="${w[3]}" 'BEGIN { if (a + c > 0 && b + d > 0)
    printf "  -tp 1 / plain = %.4f (target within 2%%: %s)\n", (b + d) / (a + c), ((b + d) / (a + c) <= 1.02 ? "met" : "not met") }' | tee -a "$S"
  grep -E "^  wall|tensor parallel" $LOG/bench_tp1_1.txt | sed 's/^/  /' >> "$S"
fi

if has multi && [ "$NGPU" -ge 2 ]; then
  N=$(( NGPU >= 4 ? 4 : 2 ))
  for cfg in qwen2.5-7b qwen3-30b-a3b-instruct-2507; do
    timeout "$(lim 120)" build/gpu/run --dummy-weights $M/$cfg.json -tp $N --prompt-ids 1,2,3,4 --max-tokens 8 \
      --max-model-len 4096 --max-num-batched-tokens 8192 > $LOG/multi_run_$cfg.txt 2>&1; rc=$?
    say "engine/run $cfg -tp $N: rc=$rc"
    grep -E "^Tensor parallel|^Per GPU|^Memory|^GPU KV cache size|^Maximum|rror" $LOG/multi_run_$cfg.txt | sed 's/^/  /' >> "$S"
  done
  for n in 1 $N; do
    timeout "$(lim 120)" build/gpu/bench --dummy-weights $M/qwen2.5-7b.json --num-requests 1024 --prompt-len 512 \
      --output-len 96 --max-num-seqs 1024 --max-num-batched-tokens 16384 --max-model-len 1024 -tp $n \
      > $LOG/multi_bench_$n.txt 2>&1; rc=$?
    say "engine/bench Qwen2.5-7B bias shape -tp $n: rc=$rc: $(grep -E '^  wall' $LOG/multi_bench_$n.txt)"
  done
elif has multi; then
  say "multi: skipped (needs 2 GPUs, $NGPU here)"
fi

if has bench; then
  timeout "$(lim 240)" build/gpu/bench_tp_allreduce > $LOG/bench_tp_allreduce.txt 2>&1; rc=$?
  say "bench_tp_allreduce rc=$rc"
  grep -E "^TP|cost model|skipped" $LOG/bench_tp_allreduce.txt | sed 's/^/  /' >> "$S"
fi

if has all; then
  PAGESIM_GPU=1 timeout "$(lim 400)" bash tests/run.sh --gpu -- build/gpu/test_* > $LOG/gpu_tests.txt 2>&1; rc=$?
  say "all GPU tests rc=$rc: $(tail -1 $LOG/gpu_tests.txt)"
  grep -E "not ok|failed in" $LOG/gpu_tests.txt | grep -v SKIP | sed 's/^/  /' >> "$S"
fi
finish 0
