#!/usr/bin/env bash
# Builds libwebsock2 and runs every test suite: C unit and server tests
# (plain, ASan+UBSan, TSan), fuzz smoke runs, end-to-end tests with real
# clients, the Python and Lua bindings, OpenResty and the examples.
# Prints one line per suite and a final "N passed, N failed" line; exits
# non-zero when anything failed.
#
#   bash scripts/test.sh            # everything
#   FUZZ_SECONDS=10 bash scripts/test.sh
#   SUITES="c e2e" bash scripts/test.sh
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
JOBS=${JOBS:-2}
FUZZ_SECONDS=${FUZZ_SECONDS:-60}
SUITES=${SUITES:-"format c install asan tsan fuzz e2e python lua browser readme bench"}
LOG=${LOG:-$ROOT/build/test-logs}

bash scripts/deps.sh || { echo "deps: install failed"; exit 1; }
mkdir -p "$LOG"

total_pass=0
total_fail=0
summary=()

# record NAME PASSED FAILED
record() {
  total_pass=$((total_pass + $2))
  total_fail=$((total_fail + $3))
  summary+=("$(printf '%-8s %5d passed, %d failed' "$1" "$2" "$3")")
  echo "== $1: $2 passed, $3 failed"
}

# ctest_suite NAME BUILD_DIR CMAKE_ARGS...
ctest_suite() {
  local name=$1 dir=$2
  shift 2
  if ! cmake -S . -B "$dir" -DWEBSOCK_WERROR=ON "$@" >"$LOG/$name-configure.log" 2>&1 ||
     ! cmake --build "$dir" -j"$JOBS" >"$LOG/$name-build.log" 2>&1; then
    tail -30 "$LOG/$name-configure.log" "$LOG/$name-build.log"
    record "$name" 0 1
    return
  fi
  (cd "$dir" && ctest --output-on-failure -j1) >"$LOG/$name.log" 2>&1
  local out pass=0 fail=0
  out=$(grep -E "tests passed, [0-9]+ tests failed out of" "$LOG/$name.log" | tail -1)
  if [[ $out =~ ([0-9]+)\ tests\ failed\ out\ of\ ([0-9]+) ]]; then
    fail=${BASH_REMATCH[1]}
    pass=$((BASH_REMATCH[2] - fail))
  else
    fail=1
  fi
  [ "$fail" -eq 0 ] || tail -60 "$LOG/$name.log"
  record "$name" "$pass" "$fail"
}

# pytest_suite NAME PYTHON ARGS... : counts from pytest's summary line
pytest_suite() {
  local name=$1 py=$2
  shift 2
  "$py" -P -m pytest -q -p no:cacheprovider "$@" >"$LOG/$name.log" 2>&1
  local rc=$? pass fail
  pass=$(grep -oE "[0-9]+ passed" "$LOG/$name.log" | tail -1 | grep -oE "[0-9]+")
  fail=$(grep -oE "[0-9]+ (failed|error)" "$LOG/$name.log" | awk '{s+=$1} END {print s+0}')
  pass=${pass:-0}
  if [ $rc -ne 0 ] && [ "$fail" -eq 0 ]; then fail=1; fi
  [ "$fail" -eq 0 ] || tail -60 "$LOG/$name.log"
  record "$name" "$pass" "$fail"
}

# line_suite NAME CMD... : a runner whose output ends "N passed, N failed"
line_suite() {
  local name=$1
  shift
  "$@" >"$LOG/$name.log" 2>&1
  local rc=$? line pass fail
  line=$(grep -E "^[0-9]+ passed, [0-9]+ failed" "$LOG/$name.log" | tail -1)
  pass=$(echo "$line" | awk '{print $1}')
  fail=$(echo "$line" | awk '{print $3}')
  pass=${pass:-0}
  fail=${fail:-1}
  if [ $rc -ne 0 ] && [ "$fail" -eq 0 ]; then fail=1; fi
  [ "$fail" -eq 0 ] || tail -60 "$LOG/$name.log"
  record "$name" "$pass" "$fail"
}

# make_venv: installs the Python package into build/venv (Debian's python)
make_venv() {
  local venv=$ROOT/build/venv
  rm -rf "$venv"
  /usr/bin/python3 -m venv --system-site-packages "$venv" >"$LOG/python-build.log" 2>&1 &&
    "$venv/bin/pip" install --no-build-isolation --no-deps . >>"$LOG/python-build.log" 2>&1
}

for s in $SUITES; do
  case $s in
  format)
    files=$(git ls-files 'core/*.[ch]' 'include/*.h' 'examples/*.c' 'tests/server/*.[ch]')
    if clang-format-14 --dry-run --Werror $files >"$LOG/format.log" 2>&1; then
      record format "$(echo $files | wc -w)" 0
    else
      head -40 "$LOG/format.log"; record format 0 1
    fi ;;
  c) ctest_suite c build -DCMAKE_BUILD_TYPE=RelWithDebInfo ;;
  install)
    [ -d build ] || ctest_suite c build
    line_suite install bash tests/install/run.sh build ;;
  asan) CC=clang-14 ctest_suite asan build-asan -DCMAKE_BUILD_TYPE=Debug \
          -DWEBSOCK_ASAN=ON -DWEBSOCK_BENCH=OFF -DWEBSOCK_EXAMPLES=OFF ;;
  tsan) CC=clang-14 TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1" \
          ctest_suite tsan build-tsan -DCMAKE_BUILD_TYPE=RelWithDebInfo \
          -DWEBSOCK_TSAN=ON -DWEBSOCK_BENCH=OFF -DWEBSOCK_EXAMPLES=OFF ;;
  fuzz)
    if ! CC=clang-14 cmake -S . -B build-fuzz -DWEBSOCK_FUZZ=ON -DWEBSOCK_TESTS=OFF \
           -DWEBSOCK_EXAMPLES=OFF -DWEBSOCK_BENCH=OFF >"$LOG/fuzz-build.log" 2>&1 ||
       ! cmake --build build-fuzz -j"$JOBS" >>"$LOG/fuzz-build.log" 2>&1; then
      tail -30 "$LOG/fuzz-build.log"; record fuzz 0 1; continue
    fi
    fp=0 ff=0
    for t in frame handshake utf8; do
      corpus=$(mktemp -d)
      cp tests/fuzz/corpus/fuzz_$t/* "$corpus"/ 2>/dev/null
      if build-fuzz/tests/fuzz/fuzz_$t -max_total_time="$FUZZ_SECONDS" \
           -rss_limit_mb=2048 "$corpus" >"$LOG/fuzz-$t.log" 2>&1; then
        fp=$((fp + 1))
      else
        tail -40 "$LOG/fuzz-$t.log"; ff=$((ff + 1))
      fi
      rm -rf "$corpus"
    done
    record fuzz $fp $ff ;;
  e2e)
    [ -x build/examples/echo_server ] || ctest_suite c build
    WEBSOCK_BUILD_DIR=$ROOT/build pytest_suite e2e /usr/bin/python3 tests/e2e tests/tls ;;
  readme)
    # The README's Python and Lua quick starts, run as written.
    [ -d build ] || ctest_suite c build
    [ -x build/venv/bin/python ] || make_venv
    WEBSOCK_BUILD_DIR=$ROOT/build pytest_suite readme /usr/bin/python3 tests/readme ;;
  python)
    if make_venv; then
      pytest_suite python "$ROOT/build/venv/bin/python" tests/python
    else
      tail -40 "$LOG/python-build.log"; record python 0 1
    fi ;;
  browser)
    # The chat page in headless Chromium against the C, Python and Lua
    # servers; screenshots land in build/test-artifacts/browser/.
    [ -d build ] || ctest_suite c build
    [ -x build/venv/bin/python ] || make_venv
    line_suite browser bash tests/browser/run.sh "$ROOT/build" ;;
  lua)
    if [ -x tests/lua/run.sh ]; then
      [ -d build ] || ctest_suite c build
      line_suite lua bash tests/lua/run.sh "$ROOT/build"
    fi ;;
  bench)
    # Smoke run: every echo reply verified byte for byte under load.
    [ -x build/examples/echo_server ] || ctest_suite c build
    if python3 bench/run.py --quick --no-default-servers --bin-dir build/bench \
         --server "inline=$ROOT/build/examples/echo_server --port {port} --agents 0" \
         --server "agents=$ROOT/build/examples/echo_server --port {port} --io-threads 2 --agents 2" \
         --baseline inline >"$LOG/bench.log" 2>&1; then
      record bench 2 0
    else
      tail -40 "$LOG/bench.log"; record bench 0 1
    fi
    # Smoke run of the spreading benchmark: both policies over real sockets.
    if build/bench/spread --steps 200 --duration 0.5 >"$LOG/spread.log" 2>&1; then
      record spread 1 0
    else
      tail -20 "$LOG/spread.log"; record spread 0 1
    fi ;;
  *) echo "unknown suite $s"; record "$s" 0 1 ;;
  esac
done

echo
printf '%s\n' "${summary[@]}"
echo "$total_pass passed, $total_fail failed"
[ "$total_fail" -eq 0 ]
