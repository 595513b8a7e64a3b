#!/usr/bin/env bash
# Browser tests of examples/web/chat.html with the C, Python and Lua chat
# servers, alone (chat.test.js) and two on one Redis (cluster.test.js: needs
# redis-server), in Debian's headless Chromium (never a downloaded browser).
#
#   tests/browser/run.sh BUILD_DIR
#
# BUILD_DIR is a CMake build of the tree (examples/chat_server, lua/) with
# the Python package installed in BUILD_DIR/venv. Needs node/npm and
# /usr/bin/chromium (apt-get install -y chromium nodejs npm).
# Screenshots go to build/test-artifacts/browser/ in the repository, or to
# $BROWSER_ARTIFACTS.
set -euo pipefail

if [ $# -ne 1 ]; then
  echo "usage: $0 BUILD_DIR" >&2
  exit 2
fi
here=$(cd "$(dirname "$0")" && pwd)
build=$(cd "$1" && pwd)

if [ ! -x /usr/bin/chromium ]; then
  echo "browser test: /usr/bin/chromium not found; install Debian's package: apt-get install -y chromium"
  echo "0 passed, 1 failed"
  exit 1
fi
for tool in node npm; do
  if ! command -v "$tool" >/dev/null; then
    echo "browser test: $tool not found; install Debian's nodejs and npm packages"
    echo "0 passed, 1 failed"
    exit 1
  fi
done

# playwright-core only: it has no install script and fetches no browser.
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1
npmlog=$(mktemp)
trap 'rm -f "$npmlog"' EXIT
cd "$here"
if [ -f package-lock.json ]; then
  npmcmd=(npm ci)
else
  npmcmd=(npm install)
fi
if ! "${npmcmd[@]}" --no-audit --no-fund --loglevel=error >"$npmlog" 2>&1; then
  cat "$npmlog"
  echo "browser test: ${npmcmd[*]} failed in $here"
  echo "0 passed, 1 failed"
  exit 1
fi

# Each script ends with "N passed, N failed"; the last line sums them.
export WEBSOCK_BUILD_DIR="$build" CHROMIUM=/usr/bin/chromium
passed=0 failed=0 rc=0
for t in "chat.test.js 150" "cluster.test.js 90"; do
  set -- $t
  out=$(mktemp)
  timeout "$2" node "$here/$1" | tee "$out" || rc=1
  line=$(grep -E "^[0-9]+ passed, [0-9]+ failed" "$out" | tail -1 || true)
  rm -f "$out"
  if [ -z "$line" ]; then
    failed=$((failed + 1)) # killed by the timeout, or crashed
    rc=1
  else
    passed=$((passed + $(echo "$line" | awk '{print $1}')))
    failed=$((failed + $(echo "$line" | awk '{print $3}')))
  fi
done
echo "$passed passed, $failed failed"
exit $rc
