#!/usr/bin/env bash
# setup.sh: the one entry point on a fresh Debian machine (root, or sudo).
#
#   ./setup.sh demo   install packages, build, run the main job on the embedded default (two ztunnels)
#   ./setup.sh hbone-demo   the foundation's two-process HBONE tunnel demo
#   ./setup.sh test   install packages; one clang build (warnings are errors) with ASan+UBSan+LSan and libFuzzer
#                     coverage in ./build-ci; every test suite on it; then each libFuzzer target for
#                     FUZZ_SECONDS (default 60) from its checked-in corpus. SANITIZE=0: the plain build
#                     (./build, GCC) and its tests only.
#   ./setup.sh tsan   clang ThreadSanitizer build of the ztunnel and waypoint suites (./build-tsan), then their
#                     multi-worker integration tests under TSan
#   ./setup.sh deps   only install the Debian packages
#   ./setup.sh build  install packages and build
#
# Packages are installed with apt-get only when missing (`apt-get update` at most once per run).
# Build directory: $BUILD_DIR (default ./build). Extra CMake flags: $CMAKE_FLAGS
# (e.g. CMAKE_FLAGS=-DAMBIENT_SANITIZE=ON for an ASan+UBSan build).
set -euo pipefail
cd "$(dirname "$0")"
ROOT=$(pwd)
BUILD_DIR=${BUILD_DIR:-$ROOT/build}
JOBS=${JOBS:-2}

PACKAGES=(
  # toolchain
  build-essential cmake ninja-build pkg-config git clang libclang-rt-14-dev llvm
  # libraries (DESIGN.md section 2)
  libboost1.81-dev android-libboringssl-dev libnghttp2-dev
  libprotobuf-dev protobuf-compiler libgrpc++-dev protobuf-compiler-grpc
  libfmt-dev libspdlog-dev libyaml-cpp-dev doctest-dev libbenchmark-dev
  # test and benchmark peers, network namespaces
  iproute2 iptables nftables procps psmisc openssl haproxy nginx stunnel4 wrk iperf3 nghttp2-client python3
  # chart tests: Helm's engine (Go text/template + sprig, YAML as Helm reads it) and yamllint
  golang-go golang-github-masterminds-sprig-dev golang-gopkg-yaml.v2-dev golang-github-masterminds-semver-dev yamllint
)

install_deps() {
  local missing=()
  for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [ ${#missing[@]} -eq 0 ]; then
    echo "setup: all ${#PACKAGES[@]} packages present"
    return
  fi
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "setup: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  echo "setup: packages installed"
}

build() {
  install_deps
  cmake -S "$ROOT" -B "$BUILD_DIR" -G Ninja -DAMBIENT_WERROR=ON ${CMAKE_FLAGS:-} >/dev/null
  echo "setup: building in $BUILD_DIR with $JOBS jobs"
  ninja -C "$BUILD_DIR" -j "$JOBS"
}

run_demo() {
  build
  echo
  python3 "$ROOT/ztunnel/demo/embedded_demo.py" "$BUILD_DIR"
}

run_hbone_demo() {
  build
  DEMO_DIR=$(mktemp -d)
  SERVER_PID=""
  trap 'if [ -n "$SERVER_PID" ]; then kill "$SERVER_PID" 2>/dev/null || true; fi; rm -rf "$DEMO_DIR"' EXIT
  local dir=$DEMO_DIR
  local bin="$BUILD_DIR/ztunnel/hbone-demo"
  echo
  echo "== HBONE demo: two processes, mutual TLS 1.3 with SPIFFE identities, HTTP/2 CONNECT tunnels =="
  "$bin" ca --out "$dir/cacerts"
  "$bin" server --cacerts "$dir/cacerts" --listen 127.0.0.1:15008 --app 127.0.0.1:18080 >"$dir/server.log" 2>&1 &
  SERVER_PID=$!
  for _ in $(seq 1 50); do grep -q '^ready' "$dir/server.log" 2>/dev/null && break; sleep 0.1; done
  local rc=0
  "$bin" client --cacerts "$dir/cacerts" --connect 127.0.0.1:15008 --target 127.0.0.1:18080 --sizes 1Ki,1Mi,64Mi || rc=$?
  kill "$SERVER_PID" 2>/dev/null || true
  wait "$SERVER_PID" 2>/dev/null || true
  SERVER_PID=""
  echo
  echo "-- server side (inbound) log --"
  grep -v '^ready' "$dir/server.log"
  return $rc
}

# The chart tests validate rendered objects against the Kubernetes schemas with npm packages
# (test/charts/validate/package-lock.json). Node and npm come with the machine; Debian's are the fallback.
install_chart_test_tools() {
  if ! command -v npm >/dev/null 2>&1; then
    echo "setup: installing nodejs and npm"
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null
  fi
  echo "setup: npm ci in test/charts/validate"
  npm ci --prefix "$ROOT/test/charts/validate" --no-audit --no-fund --loglevel=error >/dev/null
}

run_tests() {
  if [ "${SANITIZE:-1}" = "0" ]; then
    build
    install_chart_test_tools
    echo "setup: running the test suites"
    (cd "$BUILD_DIR" && ctest --output-on-failure -j 1 --timeout 1200)
    return
  fi
  install_deps
  install_chart_test_tools
  # One build serves the whole run: every library and test instrumented with ASan+UBSan (+LSan at exit) and
  # libFuzzer's coverage, the fuzz targets linked against the same objects (test/fuzz/CMakeLists.txt).
  # -O1 with line tables only: symbolized stacks at a fraction of the -O2 -g compile time.
  local dir=${CI_BUILD_DIR:-$ROOT/build-ci}
  local flags="-O1 -gline-tables-only -DNDEBUG"
  cmake -S "$ROOT" -B "$dir" -G Ninja -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ -DAMBIENT_FUZZ=ON \
    -DAMBIENT_WERROR=ON -DCMAKE_C_FLAGS_RELWITHDEBINFO="$flags" -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="$flags" >/dev/null
  echo "setup: building the sanitized suites and fuzz targets in $dir with $JOBS jobs"
  ninja -C "$dir" -j "$JOBS"
  echo "setup: running the test suites under ASan+UBSan"
  (cd "$dir" && ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    ctest --output-on-failure -j 1 --timeout 1200)
  echo "setup: running each fuzz target for ${FUZZ_SECONDS:-60} s"
  FUZZ_JOBS=$JOBS "$ROOT/test/fuzz/run_fuzzers.sh" "$dir" "${FUZZ_SECONDS:-60}"
}

# ThreadSanitizer: the suites whose integration tests run ztunnels and waypoints with several worker threads
# (io_context per worker, snapshots posted from the control thread, connection caps shared by workers).
run_tsan() {
  install_deps
  local dir=${TSAN_BUILD_DIR:-$ROOT/build-tsan}
  local flags="-O1 -gline-tables-only -DNDEBUG"
  cmake -S "$ROOT" -B "$dir" -G Ninja -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ -DAMBIENT_TSAN=ON \
    -DAMBIENT_WERROR=ON -DAMBIENT_BUILD_BENCH=OFF -DCMAKE_C_FLAGS_RELWITHDEBINFO="$flags" \
    -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="$flags" >/dev/null
  echo "setup: building the ztunnel and waypoint suites under TSan in $dir"
  ninja -C "$dir" -j "$JOBS" test_ztunnel test_waypoint
  # fake-istiod links Debian's grpc++ (not built with TSan): the tests run the plain build's.
  cmake -S "$ROOT" -B "$BUILD_DIR" -G Ninja -DAMBIENT_WERROR=ON ${CMAKE_FLAGS:-} >/dev/null
  ninja -C "$BUILD_DIR" -j "$JOBS" fake-istiod
  echo "setup: running their integration tests under TSan"
  local rc=0
  for t in test_ztunnel test_waypoint; do
    AMBIENT_FAKE_ISTIOD="$BUILD_DIR/test/fake_istiod/fake-istiod" \
      TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1 suppressions=$ROOT/test/tsan.supp" \
      "$dir/test/$t" --source-file='*integration*' || rc=1
  done
  return $rc
}

case "${1:-}" in
  deps) install_deps ;;
  build) build ;;
  demo) run_demo ;;
  hbone-demo) run_hbone_demo ;;
  test) run_tests ;;
  tsan) run_tsan ;;
  *) echo "usage: ./setup.sh demo|test|tsan|build|deps|hbone-demo" >&2; exit 2 ;;
esac
