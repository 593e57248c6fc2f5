#!/usr/bin/env bash
# Builds the engine's commands and GPU tests on the device machine, which
# lacks the Debian -dev packages: the .debs carried along (.debs/, see
# docs/engine-notes.md) are unpacked into /tmp/sysroot, and only what the
# engine needs is compiled and linked (not every package of the Makefile).
#   scripts/gpu/build.sh   -> build/gpu/run, build/gpu/bench, build/gpu/merge, build/gpu/test_<name>
#                             for every tests/gpu/test_<name>.c, build/gpu/bench_tp_<name> for
#                             every bench/bench_tp_<name>.c (objects in build/gpu/obj/)
# serve/'s backends (for tests/gpu/test_serve_engine.c) and the layers the
# engine stands on are globbed (base text engine sim serve, as the
# Makefile's MODULES), so files moving within them need no edit here.  A file
# that includes a header of a package the device lacks (GSL, cairo, SDL,
# libmicrohttpd, libcurl, libcsv: e.g. sim/calibrate.c) is left out; the
# engine never calls it.  Each layer becomes an archive, linked in dependency
# order like the Makefile's LIBS, so only the members the commands use are pulled.
set -eu
SYS=/tmp/sysroot
mkdir -p $SYS
for f in .debs/*.deb; do dpkg -x "$f" $SYS; done
NVCC=${NVCC:-$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)}
CUDA=${NVCC%/bin/nvcc}
LIBDIR=$SYS/usr/lib/x86_64-linux-gnu
B=build/gpu
O=$B/obj
LAYERS=(serve engine text sim base)      # users before what they use; engcu right after engine
ABSENT='^[[:space:]]*#[[:space:]]*include[[:space:]]*<(gsl/|cairo|SDL|microhttpd|curl/|csv\.h)'
rm -rf "$O"
mkdir -p $B $O/engcu $O/mains "${LAYERS[@]/#/$O/}"
CFLAGS="-std=c11 -O2 -g -Wall -Wextra -Wno-unused-parameter -D_GNU_SOURCE -DPAGESIM_HAVE_CUDA=1 -I. -I$SYS/usr/include -I$SYS/usr/include/cjson -I$CUDA/include"
# NCCL (engine/tp_comm.c): a system library on the GPU machine (/usr/include, the
# default library path), inside the CUDA toolkit elsewhere; NCCL_HOME overrides.
NCCL_LIBS=
for d in ${NCCL_HOME:-} "$CUDA" /usr /usr/local; do
  [ -f "$d/include/nccl.h" ] || continue
  CFLAGS="$CFLAGS -DPAGESIM_HAVE_NCCL=1"; [ "$d" = /usr ] || CFLAGS="$CFLAGS -I$d/include"
  for l in "$d/lib64" "$d/lib" "$d/lib/x86_64-linux-gnu"; do
    if [ -e "$l/libnccl.so" ]; then NCCL_LIBS="-L$l -Wl,-rpath,$l -lnccl"; break
    elif [ -e "$l/libnccl.so.2" ]; then NCCL_LIBS="-L$l -Wl,-rpath,$l -l:libnccl.so.2"; break; fi
  done
  [ -n "$NCCL_LIBS" ] || NCCL_LIBS="-lnccl"
  echo "NCCL: $d/include/nccl.h ($(grep -m3 -E '#define NCCL_(MAJOR|MINOR|PATCH)' "$d/include/nccl.h" | awk '{printf "%s ", $3}')), $NCCL_LIBS"
  break
done
pids=()
for cu in engine/*.cu; do
  "$NVCC" -O3 -gencode=arch=compute_90a,code=sm_90a -lineinfo -I. -c "$cu" -o "$O/engcu/$(basename "$cu").o" & pids+=($!)
done
for l in "${LAYERS[@]}"; do
  for c in "$l"/*.c; do
    [ -e "$c" ] || continue
    if grep -qE "$ABSENT" "$c"; then echo "skip $c (needs a package the device lacks)"; continue; fi
    gcc $CFLAGS -c "$c" -o "$O/$l/$(basename "$c" .c).o" & pids+=($!)
  done
done
mains=(apps/engine/run_main.c apps/engine/bench_main.c apps/engine/bench_moe.c apps/engine/bench_awq.c apps/engine/cli.c
       apps/engine/cli_lora.c apps/engine/merge_main.c apps/common/front.c tests/gpu/test_*.c bench/bench_tp_*.c)
for c in "${mains[@]}"; do
  gcc $CFLAGS -c "$c" -o "$O/mains/$(basename "$c" .c).o" & pids+=($!)
done
for p in "${pids[@]}"; do wait "$p" || { echo "build failed" >&2; exit 1; }; done
ARS=()
for l in serve engine engcu text sim base; do
  set -- "$O/$l"/*.o
  [ -e "$1" ] || continue                 # a layer with no .c files
  rm -f "$O/lib$l.a"; ar rcs "$O/lib$l.a" "$@"; ARS+=("$O/lib$l.a")
done
LIBS="$NCCL_LIBS -L$CUDA/lib64 -lcublasLt -lcublas -lcudart_static -ldl -lrt -lstdc++ -lpthread -lm -L$LIBDIR -lcjson -lpcre2-8 -lutf8proc -lcmocka -Wl,-rpath,$LIBDIR -Wl,-rpath,$CUDA/lib64"
gcc -o $B/run $O/mains/run_main.o $O/mains/cli.o $O/mains/cli_lora.o $O/mains/front.o "${ARS[@]}" $LIBS
gcc -o $B/bench $O/mains/bench_main.o $O/mains/bench_moe.o $O/mains/bench_awq.o $O/mains/cli.o $O/mains/cli_lora.o \
    $O/mains/front.o "${ARS[@]}" $LIBS
gcc -o $B/merge $O/mains/merge_main.o $O/mains/front.o "${ARS[@]}" $LIBS
tests=()
for c in tests/gpu/test_*.c; do
  n=$(basename "$c" .c)
  gcc -o "$B/$n" "$O/mains/$n.o" "${ARS[@]}" $LIBS
  tests+=("$B/$n")
done
for c in bench/bench_tp_*.c; do
  n=$(basename "$c" .c)
  gcc -o "$B/$n" "$O/mains/$n.o" "${ARS[@]}" $LIBS
  tests+=("$B/$n")
done
echo "built $B/run $B/bench $B/merge ${tests[*]}"
