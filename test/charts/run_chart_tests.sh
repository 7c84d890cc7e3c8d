#!/usr/bin/env bash
# run_chart_tests.sh [OUT_DIR [BUILD_DIR]]: tests the Helm charts in charts/ without helm and without a cluster.
#
#   1. builds the renderer (test/charts/render, Go in GOPATH mode on Debian's sprig and yaml packages) and runs
#      its unit tests;
#   2. renders each chart with its defaults and with non-default values (test/charts/values/*.yaml, --set);
#   3. validates every rendered object against the Kubernetes OpenAPI and Gateway API schemas (validate.mjs),
#      and proves the validator rejects what it must (validate/fixtures: a port as a string, an unknown field,
#      a kind without a schema, a Gateway listener without a protocol);
#   4. checks each render against the runtime contract, including that every non-default value changed the
#      output (check.mjs), and that every value is commented and documented (check-docs.mjs);
#   5. yamllint on the rendered output, the values files and Chart.yaml (test/charts/.yamllint);
#   4b. with BUILD_DIR: every env var a chart sets (env and envFrom ConfigMaps) is one its binary reads
#      (check-env.mjs, against the binaries' --help);
#   6. negative renders: bad values files and --set flags fail naming the key; `required`/`fail` name it too.
#
# Build output (the renderer, Go's cache, the rendered YAML) goes to OUT_DIR (ctest passes a directory under
# the CMake binary dir), or to a temporary directory removed at exit. Nothing is written to the source tree.
# A missing tool (go, node and the npm packages, yamllint) is a failure, not a skip: CI installs them.
# Ends with "N passed, M failed"; exits 1 if anything failed.
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
CHARTS=$ROOT/charts
VALUES=$HERE/values

OUT=${1:-}
BIN_DIR=${2:-}  # the CMake build dir: check the charts' env against the binaries' own flag tables
if [ -z "$OUT" ]; then
  OUT=$(mktemp -d "${TMPDIR:-/tmp}/chart-tests.XXXXXX")
  trap 'rm -rf "$OUT"' EXIT
fi
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
RENDERED=$OUT/rendered
rm -rf "$RENDERED"
mkdir -p "$RENDERED"

passed=0
failed=0
pass() { passed=$((passed + 1)); echo "PASS $*"; }
fail() { failed=$((failed + 1)); echo "FAIL $*"; }
finish() {
  echo "$passed passed, $failed failed"
  [ "$failed" -eq 0 ]
  exit $?
}

# tally DESCRIPTION OUTPUT_FILE EXIT_CODE: adds a tool's PASS/FAIL lines to the totals.
tally() {
  local what=$1 file=$2 rc=$3 p f
  cat "$file"
  p=$(grep -c '^PASS ' "$file")
  f=$(grep -c '^FAIL ' "$file")
  passed=$((passed + p))
  failed=$((failed + f))
  if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then fail "$what: exited $rc without reporting a failure"; fi
  if [ "$p" -eq 0 ] && [ "$f" -eq 0 ]; then fail "$what: ran no check"; fi
}

# ---- tools ----
missing=0
for tool in go node yamllint; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    fail "tool $tool: not installed (setup.sh installs it)"
    missing=1
  fi
done
if [ ! -d "$HERE/validate/node_modules/kubernetes-models" ] || [ ! -d "$HERE/validate/node_modules/@kubernetes-models/gateway-api" ] \
  || [ ! -d "$HERE/validate/node_modules/yaml" ]; then
  fail "npm packages: missing; install them with: npm ci --prefix test/charts/validate"
  missing=1
fi
for dir in github.com/Masterminds/sprig gopkg.in/yaml.v2 github.com/Masterminds/semver; do
  if [ ! -d "/usr/share/gocode/src/$dir" ]; then
    fail "Go package $dir: missing under /usr/share/gocode (Debian golang-github-masterminds-sprig-dev, golang-gopkg-yaml.v2-dev)"
    missing=1
  fi
done
[ "$missing" -eq 0 ] || finish

# ---- 1. the renderer ----
export GO111MODULE=off GOPATH=/usr/share/gocode GOCACHE=$OUT/go-cache GOENV=off GOFLAGS=
RENDER=$OUT/render
if (cd "$HERE/render" && go build -o "$RENDER" .) >"$OUT/go-build.log" 2>&1; then
  pass "go build test/charts/render"
else
  cat "$OUT/go-build.log"
  fail "go build test/charts/render"
  finish
fi
if (cd "$HERE/render" && go vet .) >"$OUT/go-vet.log" 2>&1; then pass "go vet test/charts/render"; else cat "$OUT/go-vet.log"; fail "go vet test/charts/render"; fi
unformatted=$(cd "$HERE/render" && gofmt -l .)
if [ -z "$unformatted" ]; then pass "gofmt test/charts/render"; else fail "gofmt test/charts/render: not formatted: $unformatted"; fi
(cd "$HERE/render" && go test -v -count=1 .) >"$OUT/go-test.log" 2>&1
rc=$?
sed -n 's/^--- PASS: \(.*\) (.*/PASS render unit: \1/p; s/^--- FAIL: \(.*\) (.*/FAIL render unit: \1/p' "$OUT/go-test.log" >"$OUT/go-test.tally"
if [ "$rc" -ne 0 ]; then grep -v '^\(=== RUN\|--- PASS\)' "$OUT/go-test.log"; fi
tally "go test test/charts/render" "$OUT/go-test.tally" "$rc"

# ---- 2. renders ----
# render_case NAME CHART NAMESPACE [renderer flags...]
CASES=()
render_case() {
  local name=$1 chart=$2 ns=$3
  shift 3
  if "$RENDER" --name "$chart" --namespace "$ns" "$@" "$CHARTS/$chart" >"$RENDERED/$name.yaml" 2>"$OUT/$name.err"; then
    pass "render $name"
    CASES+=("$name")
  else
    cat "$OUT/$name.err"
    fail "render $name"
  fi
}
render_case ztunnel-default ztunnel istio-system
render_case ztunnel-custom ztunnel istio-system -f "$VALUES/ztunnel-custom.yaml"
render_case cni-default cni istio-system
render_case cni-custom cni istio-system -f "$VALUES/cni-custom.yaml"
render_case waypoint-default waypoint bookinfo
render_case waypoint-byo-gateway waypoint bookinfo -f "$VALUES/waypoint-byo-gateway.yaml"
render_case waypoint-class waypoint bookinfo -f "$VALUES/waypoint-class.yaml" --set name=reviews-wp
render_case waypoint-domain waypoint bookinfo --set clusterDomain=corp.example

# The same inputs render the same bytes (no map-order dependence).
if "$RENDER" --name ztunnel --namespace istio-system -f "$VALUES/ztunnel-custom.yaml" "$CHARTS/ztunnel" >"$OUT/again.yaml" 2>&1 \
  && cmp -s "$OUT/again.yaml" "$RENDERED/ztunnel-custom.yaml"; then
  pass "render is deterministic (ztunnel-custom twice)"
else
  fail "render is deterministic (ztunnel-custom twice): outputs differ"
fi

# ---- 3. schema validation ----
if [ "${#CASES[@]}" -gt 0 ]; then
  rendered_files=()
  for c in "${CASES[@]}"; do rendered_files+=("$RENDERED/$c.yaml"); done
  node "$HERE/validate/validate.mjs" "${rendered_files[@]}" >"$OUT/validate.log" 2>&1
  tally "validate.mjs" "$OUT/validate.log" $?
fi

# The validator must reject these (fixture: expected text in its FAIL line).
expect_invalid() {
  local fixture=$1 expected=$2 out rc
  out=$(node "$HERE/validate/validate.mjs" "$HERE/validate/fixtures/$fixture" 2>&1)
  rc=$?
  if [ "$rc" -ne 0 ] && grep -q '^FAIL ' <<<"$out" && grep -qF -- "$expected" <<<"$out"; then
    pass "validator rejects $fixture ($expected)"
  else
    echo "$out"
    fail "validator rejects $fixture: exit $rc, expected a FAIL naming: $expected"
  fi
}
expect_invalid bad-port.yaml "containers/0/ports/0/containerPort must be integer"
expect_invalid unknown-field.yaml "/spec/template/spec/containers/0/readinesProbe: unknown field"
expect_invalid unknown-kind.yaml "no schema for widgets.example.com/v1 Widget"
expect_invalid bad-gateway.yaml "listeners/0 must have required property protocol"

# ---- 4. contract checks and docs ----
default_of() { echo "$RENDERED/${1%%-*}-default.yaml"; }
for c in "${CASES[@]}"; do
  if [ "$c" = "${c%%-*}-default" ]; then
    node "$HERE/validate/check.mjs" "$c" "$RENDERED/$c.yaml" >"$OUT/check-$c.log" 2>&1
  else
    node "$HERE/validate/check.mjs" "$c" "$RENDERED/$c.yaml" "$(default_of "$c")" >"$OUT/check-$c.log" 2>&1
  fi
  tally "check.mjs $c" "$OUT/check-$c.log" $?
done
for chart in ztunnel cni waypoint; do
  node "$HERE/validate/check-docs.mjs" "$CHARTS/$chart" >"$OUT/docs-$chart.log" 2>&1
  tally "check-docs.mjs $chart" "$OUT/docs-$chart.log" $?
done

# ---- 4b. every env var a chart sets is read by the binary (when ctest passes the build dir) ----
if [ -n "$BIN_DIR" ]; then
  for c in "${CASES[@]}"; do
    node "$HERE/validate/check-env.mjs" "$RENDERED/$c.yaml" "$BIN_DIR" >"$OUT/env-$c.log" 2>&1
    tally "check-env.mjs $c" "$OUT/env-$c.log" $?
  done
fi

# ---- 5. yamllint ----
lint_files=()
for c in "${CASES[@]}"; do lint_files+=("$RENDERED/$c.yaml"); done
lint_files+=("$VALUES"/*.yaml "$CHARTS"/*/values.yaml "$CHARTS"/*/Chart.yaml "$HERE/validate/fixtures"/*.yaml "$HERE/.yamllint")
for f in "${lint_files[@]}"; do
  if out=$(yamllint --strict -c "$HERE/.yamllint" -f parsable "$f" 2>&1); then
    pass "yamllint ${f#"$ROOT"/}"
  else
    echo "$out"
    fail "yamllint ${f#"$ROOT"/}"
  fi
done

# ---- 6. negative renders: must fail, naming the key ----
# expect_refused DESCRIPTION CHART EXPECTED_TEXT [renderer flags...]
expect_refused() {
  local what=$1 chart=$2 expected=$3 out rc
  shift 3
  out=$("$RENDER" --namespace istio-system "$@" "$CHARTS/$chart" 2>&1 >/dev/null)
  rc=$?
  if [ "$rc" -eq 1 ] && grep -qF -- "$expected" <<<"$out"; then
    pass "refused: $what"
  else
    echo "$out"
    fail "refused: $what: exit $rc, expected an error containing: $expected"
  fi
}
expect_refused "cni, wrong type in a values file" cni \
  'bad-type.yaml: ambient.dnsCapture: expected boolean, got string "yes"' -f "$VALUES/bad-type.yaml"
expect_refused "ztunnel, unknown enum value" ztunnel \
  'bad-enum.yaml: logLevel: must be one of "trace", "debug", "info", "warn", "warning", "error", "critical", "off", got "verbose"' \
  -f "$VALUES/bad-enum.yaml"
expect_refused "waypoint, negative number" waypoint \
  'bad-negative.yaml: terminationGracePeriodSeconds: must be >= 0, got -5' -f "$VALUES/bad-negative.yaml"
expect_refused "ztunnel, misspelt key" ztunnel 'bad-unknown-key.yaml: logAsJSON: unknown key' -f "$VALUES/bad-unknown-key.yaml"
expect_refused "waypoint, unquoted version tag" waypoint 'bad-tag-number.yaml: tag: expected string, got number 1.2' \
  -f "$VALUES/bad-tag-number.yaml"
expect_refused "waypoint, wrong type from --set" waypoint '--set: replicaCount: expected integer, got string "three"' \
  --set replicaCount=three
expect_refused "cni, ambient.enabled=false (ambient is the only mode)" cni '--set: ambient.enabled: must be one of true, got false' \
  --set ambient.enabled=false
expect_refused "cni, bad enum inside a list" cni \
  '--set: ambient.enablementSelectors[0].podSelector.matchExpressions[0].operator: must be one of' \
  --set 'ambient.enablementSelectors[0].podSelector.matchExpressions[0].key=a,ambient.enablementSelectors[0].podSelector.matchExpressions[0].operator=Is'
expect_refused "waypoint, required value missing (autoscaling.maxReplicas)" waypoint \
  'execution error at (waypoint/templates/hpa.yaml:6:12): autoscaling.maxReplicas is required when autoscaling.enabled is true' \
  --set autoscaling.enabled=true
expect_refused "waypoint, fail: PDB with both bounds" waypoint \
  'podDisruptionBudget: set minAvailable or maxUnavailable, not both' -f "$VALUES/bad-pdb.yaml"
expect_refused "waypoint, fail: route file the waypoint would not load" waypoint \
  'routes.reviews.json: a route file name must match' -f "$VALUES/bad-route-name.yaml"
expect_refused "ztunnel, Kubernetes older than the charts' kubeVersion" ztunnel \
  'chart requires kubeVersion: >=1.26.0-0 which is incompatible with Kubernetes v1.25.0' --kube-version v1.25.0

finish
