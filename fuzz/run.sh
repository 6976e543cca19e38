#!/usr/bin/env bash
# Runs every libFuzzer harness of build-fuzz for FUZZ_SECONDS each (see `make fuzz` and README
# "Fuzzing"). Each starts from its committed seeds (fuzz/corpus/<harness>, read only) plus what earlier
# runs found (<build>/corpus/<harness>, grown here). A crash, a leak, a sanitizer report, a broken
# invariant, an input slower than FUZZ_TIMEOUT seconds or one over FUZZ_RSS_MB is kept as
# <build>/artifacts/<harness>-<kind>-<sha1> (commit it under fuzz/corpus/<harness>/ as a regression seed)
# and makes the run fail. Prints the executions and coverage each harness reached.
#
# Usage: fuzz/run.sh <build dir> <seconds> [harness...]
set -uo pipefail
build=${1:?build dir}
seconds=${2:?seconds}
shift 2
harnesses=("$@")
[ ${#harnesses[@]} -gt 0 ] || harnesses=(parser reply_framer config client_core)
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$build/artifacts"
failed=()
for h in "${harnesses[@]}"; do
  mkdir -p "$build/corpus/$h"
  log="$build/fuzz_$h.log"
  dict=()
  [ -f "$here/dict/$h.dict" ] && dict=(-dict="$here/dict/$h.dict")
  echo "== fuzz_$h for ${seconds}s (log: $log)"
  "$build/fuzz/fuzz_$h" "${dict[@]}" -max_total_time="$seconds" -timeout="${FUZZ_TIMEOUT:-10}" \
    -rss_limit_mb="${FUZZ_RSS_MB:-2048}" -print_final_stats=1 -artifact_prefix="$build/artifacts/$h-" \
    "$build/corpus/$h" "$here/corpus/$h" >"$log" 2>&1
  rc=$?
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  cov=$(grep -o 'cov: [0-9]* ft: [0-9]*' "$log" | tail -1)
  echo "   executions: ${execs:-?}  ${cov}  exit: $rc"
  if [ $rc -ne 0 ]; then
    failed+=("$h")
    grep -m1 -E 'ERROR: |invariant broken|runtime error|==[0-9]+==' "$log"
    grep -E '^artifact_prefix|Test unit written to' "$log"
  fi
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzzing found problems in: ${failed[*]} (logs and reproducers under $build)"
  exit 1
fi
