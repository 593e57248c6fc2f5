#!/usr/bin/env bash
# Builds the engine's commands and GPU tests on the device machine, which
# lacks the Debian -dev packages: the .debs carried along (.debs/, see
# docs/engine-notes.md) are unpacked into /tmp/sysroot, and only what the
# engine needs is compiled and linked (not every package of the Makefile).
#   scripts/gpu/build.sh   -> build/gpu/run, build/gpu/bench, build/gpu/test_<name>
#                             for every tests/gpu/test_<name>.c
set -eu
SYS=/tmp/sysroot
mkdir -p $SYS
for f in .debs/*.deb; do dpkg -x "$f" $SYS; done
NVCC=${NVCC:-$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)}
CUDA=${NVCC%/bin/nvcc}
LIBDIR=$SYS/usr/lib/x86_64-linux-gnu
B=build/gpu
mkdir -p $B
CFLAGS="-std=c11 -O2 -g -Wall -Wextra -Wno-unused-parameter -D_GNU_SOURCE -DPAGESIM_HAVE_CUDA=1 -I. -I$SYS/usr/include -I$SYS/usr/include/cjson -I$CUDA/include"
objs=(); pids=()
for cu in engine/*.cu; do
  o=$B/$(basename "$cu").o; objs+=("$o")
  "$NVCC" -O3 -arch=sm_90 -lineinfo -I. -c "$cu" -o "$o" & pids+=($!)
done
for c in engine/kernels_ref.c engine/safetensors.c engine/weights.c engine/model.c engine/engine.c engine/cli.c \
         engine/tokenizer.c engine/chat_template.c \
         sim/model_config.c sim/sequence.c sim/kv_cache.c sim/block_manager.c sim/reserve_alloc.c \
         sim/scheduler.c sim/step_loop.c; do
  o=$B/$(basename "$c").o; objs+=("$o")
  gcc $CFLAGS -c "$c" -o "$o" & pids+=($!)
done
mains=(engine/run_main.c engine/bench_main.c tests/gpu/test_*.c)
for c in "${mains[@]}"; do
  gcc $CFLAGS -c "$c" -o "$B/$(basename "$c" .c).main.o" & pids+=($!)
done
for p in "${pids[@]}"; do wait "$p" || { echo "build failed" >&2; exit 1; }; done
LIBS="-L$CUDA/lib64 -lcublasLt -lcublas -lcudart_static -ldl -lrt -lstdc++ -lpthread -lm -L$LIBDIR -lcjson -lpcre2-8 -lutf8proc -lcmocka -Wl,-rpath,$LIBDIR -Wl,-rpath,$CUDA/lib64"
gcc -o $B/run $B/run_main.main.o "${objs[@]}" $LIBS
gcc -o $B/bench $B/bench_main.main.o "${objs[@]}" $LIBS
tests=()
for c in tests/gpu/test_*.c; do
  n=$(basename "$c" .c)
  gcc -o "$B/$n" "$B/$n.main.o" "${objs[@]}" $LIBS
  tests+=("$B/$n")
done
echo "built $B/run $B/bench ${tests[*]}"
