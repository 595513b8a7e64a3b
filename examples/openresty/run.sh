#!/bin/sh
# Starts nginx (Debian nginx + libnginx-mod-http-lua) with the libwebsock2
# example config in a fresh prefix directory, daemonized, and prints the
# prefix on stdout ("prefix DIR"). Stop it with:
#   nginx -p DIR -e DIR/logs/error.log -c conf/nginx.conf -s quit
# (graceful: each worker's premature timer drains its WebSocket clients for
# up to LWS2_DRAIN_MS, then stops and joins its server; -s reload does the
# same in the old workers), or kill -QUIT $(cat DIR/logs/nginx.pid); -s stop
# closes the clients with 1001 at once.
#
#   examples/openresty/run.sh HTTP_PORT WS_PORT [BUILD_DIR]
#
# BUILD_DIR (default $LWS2_BUILD_DIR, else <repo>/build) must hold
# lua/5.1/libwebsock2_core.so and lua/share/libwebsock2.lua; or set
# LWS2_LUA_CPATH / LWS2_LUA_PATH to the directories of an installed copy.
# LWS2_DRAIN_MS (default 30000): how long a worker leaving on reload or
# quit serves its WebSocket clients before closing them with 1001.
set -eu
if [ $# -lt 2 ]; then
  echo "usage: $0 HTTP_PORT WS_PORT [BUILD_DIR]" >&2
  exit 2
fi
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
http_port=$1
ws_port=$2
build=${3:-${LWS2_BUILD_DIR:-$root/build}}
build=$(cd "$build" && pwd)
cpath=${LWS2_LUA_CPATH:-$build/lua/5.1}
lpath=${LWS2_LUA_PATH:-$build/lua/share}
if [ ! -f "$cpath/libwebsock2_core.so" ]; then
  echo "$0: $cpath/libwebsock2_core.so not found (build the Lua binding)" >&2
  exit 1
fi
if [ ! -f "$lpath/libwebsock2.lua" ]; then
  lpath=$root/bindings/lua
fi
nginx_bin=${NGINX:-nginx}
command -v "$nginx_bin" >/dev/null 2>&1 || nginx_bin=/usr/sbin/nginx

prefix=$(mktemp -d "${TMPDIR:-/tmp}/lws2-openresty.XXXXXX")
mkdir -p "$prefix/conf" "$prefix/logs" "$prefix/temp"
chmod 755 "$prefix"
drain_ms=${LWS2_DRAIN_MS:-30000}
sed -e "s|@HTTP_PORT@|$http_port|g" -e "s|@WS_PORT@|$ws_port|g" \
    -e "s|@LUA_CPATH@|$cpath|g" -e "s|@LUA_PATH@|$lpath|g" \
    -e "s|@APP_PATH@|$here|g" -e "s|@DRAIN_MS@|$drain_ms|g" \
    "$here/nginx.conf" > "$prefix/conf/nginx.conf"
"$nginx_bin" -p "$prefix" -e "$prefix/logs/error.log" -c conf/nginx.conf
echo "prefix $prefix"
