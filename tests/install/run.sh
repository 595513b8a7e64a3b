#!/usr/bin/env bash
# Installs a built tree into a temporary prefix and builds consumers against
# it: the README's C quick start through pkg-config, and a CMake project
# through find_package(websock2). Usage: tests/install/run.sh BUILD_DIR
set -euo pipefail
build=$1
root=$(cd "$(dirname "$0")/../.." && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
pass=0 fail=0
check() { if "$@"; then pass=$((pass + 1)); else echo "FAILED: $*"; fail=$((fail + 1)); fi; }

cmake --install "$build" --prefix "$tmp/prefix" >/dev/null
libdir=$(ls -d "$tmp"/prefix/lib*/ | head -1)
export PKG_CONFIG_PATH="$libdir/pkgconfig"

# The first ```c block after "## Quick start in C" in the README.
awk '/^## Quick start in C/{f=1} f&&/^```c/{g=1;next} g&&/^```/{exit} g' \
  "$root/README.md" >"$tmp/quickstart.c"
check test -s "$tmp/quickstart.c"
check cc -std=c11 -Wall -Werror "$tmp/quickstart.c" -o "$tmp/qs_shared" \
  $(pkg-config --cflags --libs websock2)
check cc -std=c11 -Wall -Werror "$tmp/quickstart.c" -o "$tmp/qs_static" \
  $(pkg-config --cflags websock2) "$libdir/libwebsock2.a" \
  $(pkg-config --libs libevent_core libevent_pthreads openssl zlib hiredis) -lpthread
check env LD_LIBRARY_PATH="$libdir" sh -c "ldd '$tmp/qs_shared' | grep -q libwebsock2"

mkdir -p "$tmp/consumer"
cat >"$tmp/consumer/CMakeLists.txt" <<'CM'
cmake_minimum_required(VERSION 3.16)
project(consumer C)
find_package(websock2 REQUIRED)
add_executable(app ../quickstart.c)
target_link_libraries(app websock2::websock)
CM
check cmake -S "$tmp/consumer" -B "$tmp/consumer/build" \
  -DCMAKE_PREFIX_PATH="$tmp/prefix" -DCMAKE_BUILD_TYPE=Release >/dev/null
check cmake --build "$tmp/consumer/build" >/dev/null
# Only public symbols are exported.
check sh -c "! nm -D --defined-only '$libdir/libwebsock2.so' | grep -q ' websock__'"
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
