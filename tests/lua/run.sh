#!/bin/sh
# Lua binding tests: facade checks (options, handshake, keepalive, mTLS,
# errors, timers, drain, permessage-deflate, topics, client mode, the
# cluster) and end-to-end tests of the example servers (with and without
# deflate; the chat on a two-node cluster) under Lua 5.4 and LuaJIT, then
# the OpenResty test. The cluster tests start redis-server (and use
# redis-cli) on a free loopback port of their own.
#
#   tests/lua/run.sh BUILD_DIR
#
# BUILD_DIR holds lua/5.4/libwebsock2_core.so, lua/5.1/libwebsock2_core.so
# (from bindings/lua/CMakeLists.txt). Clients use Debian's python3-websockets
# (/usr/bin/python3; override with LWS2_PYTHON) and raw sockets; the mTLS
# checks make their certificates with the openssl command. Set LWS2_SKIP_OPENRESTY=1 to
# skip the nginx test. Every step runs under `timeout`. Prints each check as
# PASS/FAIL and ends with exactly "N passed, N failed"; exits 1 on any
# failure.
set -u
if [ $# -lt 1 ]; then
  echo "usage: $0 BUILD_DIR" >&2
  exit 2
fi
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
build=$(cd "$1" && pwd) || exit 2
python=${LWS2_PYTHON:-/usr/bin/python3}
export LWS2_PYTHON="$python"
log=$(mktemp "${TMPDIR:-/tmp}/lws2-lua-tests.XXXXXX")
trap 'rm -f "$log"' EXIT INT TERM

passed=0
failed=0

# step NAME TIMEOUT CMD...: runs CMD, shows its output, counts its PASS and
# FAIL lines; a non-zero exit without any FAIL line counts as one failure.
step() {
  name=$1
  limit=$2
  shift 2
  echo "== $name"
  timeout -k 5 "$limit" "$@" > "$log" 2>&1
  rc=$?
  cat "$log"
  p=$(grep -c '^PASS ' "$log")
  f=$(grep -c '^FAIL ' "$log")
  if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
    echo "FAIL $name: exit code $rc"
    f=1
  fi
  passed=$((passed + p))
  failed=$((failed + f))
}

# facade facts without any interpreter-specific module
export LUA_PATH="$root/bindings/lua/?.lua;;"
# test_errors.lua loads each module into the other interpreter
export LWS2_BUILD_DIR="$build"
# the version the modules must report: project() of CMakeLists.txt
LWS2_VERSION=$(sed -n 's/^project(libwebsock2 VERSION \([0-9.]*\).*/\1/p' "$root/CMakeLists.txt")
export LWS2_VERSION

for vm in "lua5.4 5.4" "luajit 5.1"; do
  set -- $vm
  bin=$1
  abi=$2
  if ! command -v "$bin" >/dev/null 2>&1; then
    echo "FAIL $bin: interpreter not found"
    failed=$((failed + 1))
    continue
  fi
  if [ ! -f "$build/lua/$abi/libwebsock2_core.so" ]; then
    echo "FAIL $bin: $build/lua/$abi/libwebsock2_core.so not built"
    failed=$((failed + 1))
    continue
  fi
  export LUA_CPATH="$build/lua/$abi/?.so;;"
  step "$bin facade" 120 "$bin" "$here/test_facade.lua"
  step "$bin reuse_port" 120 "$bin" "$here/test_reuseport.lua"
  step "$bin handshake" 150 "$bin" "$here/test_handshake.lua"
  step "$bin errors" 60 "$bin" "$here/test_errors.lua"
  step "$bin timers" 60 "$bin" "$here/test_timers.lua"
  step "$bin drain" 120 "$bin" "$here/test_drain.lua"
  step "$bin deflate" 200 "$bin" "$here/test_deflate.lua"
  step "$bin client" 150 "$bin" "$here/test_client.lua"
  step "$bin topics" 120 "$bin" "$here/test_topics.lua"
  step "$bin cluster" 120 "$bin" "$here/test_cluster.lua"
  step "$bin echo_server" 120 "$python" "$here/e2e.py" echo -- \
    "$bin" "$root/examples/lua/echo_server.lua"
  step "$bin echo_server --deflate" 120 "$python" "$here/e2e.py" echo -- \
    "$bin" "$root/examples/lua/echo_server.lua" --deflate
  step "$bin chat_server" 120 "$python" "$here/e2e.py" chat -- \
    "$bin" "$root/examples/lua/chat_server.lua"
  step "$bin chat_server --no-deflate" 120 "$python" "$here/e2e.py" chat -- \
    "$bin" "$root/examples/lua/chat_server.lua" --no-deflate
  step "$bin chat_server on a cluster" 150 "$python" "$here/chat_cluster.py" -- \
    "$bin" "$root/examples/lua/chat_server.lua"
done

if [ "${LWS2_SKIP_OPENRESTY:-0}" = 1 ]; then
  echo "== openresty: skipped (LWS2_SKIP_OPENRESTY=1)"
else
  step "openresty" 240 "$python" "$here/openresty_test.py" "$build"
  step "openresty client" 120 "$python" "$here/client_openresty.py" "$build"
  step "openresty topics" 120 "$python" "$here/topics_openresty.py" "$build"
fi

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
