#!/usr/bin/env bash
# Shake out flaky tests: run the browser and sandbox suites RUNS times as they are, then RUNS
# times again with every core kept busy by a CPU burner this script starts (and always stops),
# and print each run's pass/fail counts and a summary. Exit 1 when any run failed.
#
#   make flake-hunt                      # RUNS=3 quiet + RUNS=3 busy
#   make flake-hunt RUNS=5 SUITES="tests/browser"
set -uo pipefail
py="${PY:-.venv/bin/python}"
runs="${RUNS:-3}"
suites="${SUITES:-tests/browser tests/solver_sandbox}"
cores="$(nproc)"
log_dir="${FLAKE_LOG_DIR:-var/flake-hunt}"
mkdir -p "$log_dir"

burners=()
stop_burners() {
  for pid in "${burners[@]}"; do kill "$pid" 2>/dev/null; done
  for pid in "${burners[@]}"; do wait "$pid" 2>/dev/null; done
  burners=()
}
trap stop_burners EXIT INT TERM

summary=()
total_failed=0
one_run() {  # $1: label
  local label="$1" log="$log_dir/$1.log" counts
  # shellcheck disable=SC2086  # the suites are several words on purpose
  "$py" -m pytest $suites -q -p no:cacheprovider ${PYTEST_ARGS:-} >"$log" 2>&1
  counts="$(grep -E '^(=+ )?[0-9]+ (passed|failed)|^(=+ )?[0-9]+ (error|skipped)' "$log" | tail -1 | tr -d '=')"
  counts="${counts:-no summary line (see $log)}"
  local failed
  failed="$(grep -E '^(FAILED|ERROR) tests/' "$log" | sed 's/ - .*//' | tr '\n' ' ')"
  summary+=("$label: $counts${failed:+  -> $failed}")
  echo "$label: $counts${failed:+  -> $failed}"
  if [ -n "$failed" ] || ! grep -qE '[0-9]+ passed' "$log"; then total_failed=$((total_failed + 1)); fi
}

echo "flake hunt: $suites, $runs runs quiet and $runs with $cores CPU burners; logs in $log_dir"
for i in $(seq 1 "$runs"); do one_run "quiet-$i"; done
for _ in $(seq 1 "$cores"); do
  "$py" -c "while True: pass" &
  burners+=("$!")
done
echo "CPU burners running: ${burners[*]} (load: $(cut -d' ' -f1-3 /proc/loadavg))"
for i in $(seq 1 "$runs"); do one_run "busy-$i"; done
stop_burners

echo
echo "== summary: $((runs * 2)) runs, $total_failed with a failure =="
printf '%s\n' "${summary[@]}"
[ "$total_failed" -eq 0 ]
