#!/usr/bin/env bash
# Runs every libFuzzer target of a fuzz build for a while. Builds nothing.
#
#   [FUZZ_JOBS=N] test/fuzz/run_fuzzers.sh [BUILD_DIR] [SECONDS per target, default 60] [TARGET ...]
#
# FUZZ_JOBS (default 1) targets run at once; results print in target order either way.
#
# BUILD_DIR defaults to <repo>/build-fuzz (configured with -DAMBIENT_FUZZ=ON, see test/fuzz/README.md).
# Each fuzz_* executable found under BUILD_DIR runs over a copy of its checked-in corpus
# (test/fuzz/corpus/<target>/; the copy takes the new inputs, so the checked-in files stay as they are),
# with max_len and dict from <target>.options next to the binary (written by CMake). Crash, leak, timeout
# and out-of-memory inputs are kept in BUILD_DIR/fuzz-artifacts/<target>/ (crash-*, leak-*, timeout-*,
# oom-*); reproduce one with `BUILD_DIR/test/fuzz/<target> <artifact>`.
#
# Prints one line per target (runs executed, coverage, features, corpus size, result) and exits non-zero
# if any target failed. FUZZ_KEEP_CORPUS=1 keeps the grown corpora (path printed) for `-merge=1` into
# the checked-in ones.
set -uo pipefail

script_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo_dir=$(cd "$script_dir/../.." && pwd)
build_dir=${1:-$repo_dir/build-fuzz}
seconds=${2:-60}
shift $(( $# < 2 ? $# : 2 ))
only=("$@")

if [[ ! -d $build_dir ]]; then
  echo "run_fuzzers: no build directory $build_dir (configure with -DAMBIENT_FUZZ=ON, see test/fuzz/README.md)" >&2
  exit 2
fi
build_dir=$(cd "$build_dir" && pwd)

mapfile -t binaries < <(find "$build_dir" -type f -name 'fuzz_*' -perm -u+x ! -name '*.*' | sort)
if (( ${#only[@]} > 0 )); then
  selected=()
  for b in "${binaries[@]}"; do
    for t in "${only[@]}"; do [[ $(basename "$b") == "$t" ]] && selected+=("$b"); done
  done
  binaries=("${selected[@]}")
fi
if (( ${#binaries[@]} == 0 )); then
  echo "run_fuzzers: no fuzz_* targets under $build_dir (build them: ninja -C $build_dir -j1 <targets>)" >&2
  exit 2
fi

work=$(mktemp -d /tmp/ambient-fuzz-XXXXXX)
if [[ ${FUZZ_KEEP_CORPUS:-0} != 1 ]]; then trap 'rm -rf "$work"' EXIT; fi

# A report on a line of its own (libFuzzer's sanitizer output goes to the log).
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:handle_abort=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

# "key = value" from the [libfuzzer] section of an .options file.
option() { sed -n "s/^[[:space:]]*$2[[:space:]]*=[[:space:]]*//p" "$1" 2>/dev/null | tail -1; }

# Runs one target; its report line goes to $work/<name>.result, details of a failure to $work/<name>.detail.
run_one() {
  local bin=$1 name max_len dict corpus artifacts log rc runs last cov ft corp result kind artifact
  name=$(basename "$bin")
  max_len=$(option "$bin.options" max_len)
  dict=$(option "$bin.options" dict)
  corpus="$work/$name"
  artifacts="$build_dir/fuzz-artifacts/$name"
  mkdir -p "$corpus" "$artifacts"
  if [[ -d $script_dir/corpus/$name ]]; then
    cp -r "$script_dir/corpus/$name/." "$corpus/"
  else
    echo "run_fuzzers: $name has no checked-in corpus ($script_dir/corpus/$name): starting empty" >&2
  fi
  log="$work/$name.log"
  local args=(-max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1
              -artifact_prefix="$artifacts/" -max_len="${max_len:-65536}")
  [[ -n $dict && -f $dict ]] && args+=(-dict="$dict")
  "$bin" "${args[@]}" "$corpus" >"$log" 2>&1
  rc=$?

  runs=$(sed -n 's/^stat::number_of_executed_units:[[:space:]]*//p' "$log" | tail -1)
  last=$(grep -a -E '^#[0-9]+' "$log" | tail -1)
  cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last")
  ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")
  corp=$(sed -n 's/.* corp: \([0-9]*\/[0-9A-Za-z]*\).*/\1/p' <<<"$last")
  if (( rc == 0 )); then
    result=ok
  else
    kind=$(grep -a -m1 -oE 'ERROR: (AddressSanitizer|LeakSanitizer|UndefinedBehaviorSanitizer|libFuzzer): [a-z-]+|FUZZ_CHECK failed|runtime error|deadly signal|timeout after|out-of-memory' "$log")
    artifact=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | tail -1)
    result="FAILED (exit $rc): ${kind:-see log} ${artifact:+-> $artifact}"
    cp "$log" "$artifacts/last.log"
    { echo "  log: $artifacts/last.log"
      grep -a -m1 -A12 -E 'FUZZ_CHECK failed|ERROR: |runtime error' "$log" | sed 's/^/  | /'; } >"$work/$name.detail"
  fi
  printf '%-20s %12s %8s %8s %10s  %s\n' "$name" "${runs:-?}" "${cov:-?}" "${ft:-?}" "${corp:-?}" "$result" \
    >"$work/$name.result"
}

jobs_max=${FUZZ_JOBS:-1}
for bin in "${binaries[@]}"; do
  while (( $(jobs -rp | wc -l) >= jobs_max )); do wait -n; done
  run_one "$bin" &
done
wait

failed=0
printf '%-20s %12s %8s %8s %10s  %s\n' target runs cov ft corpus result
for bin in "${binaries[@]}"; do
  name=$(basename "$bin")
  if [[ -f $work/$name.result ]]; then cat "$work/$name.result"; else printf '%-20s FAILED: no result\n' "$name"; failed=1; fi
  if [[ -f $work/$name.detail ]]; then cat "$work/$name.detail" >&2; failed=1; fi
done
[[ ${FUZZ_KEEP_CORPUS:-0} == 1 ]] && echo "corpora kept in $work"
exit $failed
