#!/usr/bin/env bash
# Installs the Debian 12 packages libwebsock2 needs, skipping those already
# present. Run as root (or via sudo).
#
#   bash scripts/deps.sh                 # everything: build, every test
#                                        # suite, benchmarks, and what the
#                                        # coming features need
#   bash scripts/deps.sh c e2e           # only what these test suites need
#   SUITES="c e2e" bash scripts/deps.sh  # the same (arguments win)
#   bash scripts/deps.sh --list c e2e    # print those packages, install none
#
# The suite names are those of scripts/test.sh, which calls this script
# with the suites it is about to run.
set -euo pipefail

list_only=0
if [ "${1:-}" = "--list" ]; then
  list_only=1
  shift
fi

# What building the library and its C tests needs.
BASE="build-essential cmake pkg-config git ca-certificates
  libevent-dev libssl-dev openssl check zlib1g-dev libhiredis-dev redis-server"
CLANG="clang-14 libclang-rt-14-dev"
PYTEST="python3 python3-pytest python3-websockets"
# The Python package, built with SWIG into a venv of Debian's python3.
PYTHON="$PYTEST swig python3-dev python3-venv python3-setuptools
  python3-wheel python3-aiohttp"
# The Lua modules (SWIG, Lua 5.4 and LuaJIT) and OpenResty; their tests
# drive the servers with Debian's python3-websockets.
LUA="$PYTEST swig lua5.4 liblua5.4-dev luajit2 libluajit2-5.1-dev
  nginx libnginx-mod-http-lua"

# suite_packages SUITE: the packages one suite of scripts/test.sh needs.
suite_packages() {
  case $1 in
  format) echo "git clang-format-14" ;;
  headers) echo "$BASE $CLANG" ;; # gcc/g++ and clang-14/clang++-14
  c | install) echo "$BASE" ;;
  asan | tsan | fuzz) echo "$BASE $CLANG" ;;
  e2e) echo "$BASE $PYTEST" ;;
  python) echo "$BASE $PYTHON" ;;
  lua) echo "$BASE $LUA" ;;
  readme) echo "$BASE $PYTHON $LUA" ;;
  browser) echo "$BASE $PYTHON $LUA chromium nodejs npm" ;;
  bench) echo "$BASE python3 libwebsockets-dev" ;;
  *) return 1 ;;
  esac
}

ALL_SUITES="format headers c install asan tsan fuzz e2e python lua readme
  browser bench"
# Not used by any suite yet: the uvloop flavour of the asyncio module.
FUTURE="python3-uvloop"

if [ $# -gt 0 ]; then
  suites="$*"
  what="suites $suites"
elif [ -n "${SUITES:-}" ]; then
  suites=$SUITES
  what="suites $suites"
else
  suites=$ALL_SUITES
  what="everything"
fi

wanted=""
for s in $suites; do
  if p=$(suite_packages "$s"); then
    wanted="$wanted $p"
  else
    echo "deps: no suite called '$s' (known: $(echo $ALL_SUITES)); skipped" >&2
  fi
done
[ "$what" = everything ] && wanted="$wanted $FUTURE"

# Each package once, in first-seen order. npm is handled apart: NodeSource
# builds of nodejs bring their own npm, which Debian's npm would conflict
# with, so it is only asked for when no npm command exists.
PACKAGES=()
want_npm=0
declare -A seen=()
for p in $wanted; do
  if [ "$p" = npm ]; then
    want_npm=1
    continue
  fi
  [ -n "${seen[$p]:-}" ] && continue
  seen[$p]=1
  PACKAGES+=("$p")
done

if [ $list_only -eq 1 ]; then
  printf '%s\n' "${PACKAGES[@]}"
  [ $want_npm -eq 1 ] && echo npm
  exit 0
fi

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
    missing+=("$p")
done
if [ $want_npm -eq 1 ] && ! command -v npm >/dev/null 2>&1; then
  missing+=(npm)
fi
if [ ${#missing[@]} -eq 0 ]; then
  echo "deps: $what: all ${#PACKAGES[@]} packages present"
  exit 0
fi
echo "deps: $what: installing ${missing[*]}"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
