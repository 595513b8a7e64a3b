#!/usr/bin/env bash
# Installs the Debian 12 packages libwebsock2 needs to build, test and
# benchmark, skipping those already present. Run as root (or via sudo).
set -euo pipefail

PACKAGES=(
  build-essential cmake pkg-config git ca-certificates
  libevent-dev libssl-dev openssl check
  clang-14 libclang-rt-14-dev
  swig python3 python3-dev python3-venv python3-setuptools python3-wheel
  python3-pytest python3-websockets python3-aiohttp
  lua5.4 liblua5.4-dev luajit2 libluajit2-5.1-dev
  nginx libnginx-mod-http-lua
  libwebsockets-dev
  chromium nodejs
)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
    missing+=("$p")
done
# npm comes with some nodejs builds (NodeSource) and separately in Debian's.
command -v npm >/dev/null 2>&1 || missing+=(npm)
if [ ${#missing[@]} -eq 0 ]; then
  echo "deps: all ${#PACKAGES[@]} packages present"
  exit 0
fi
echo "deps: installing ${missing[*]}"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
