#!/usr/bin/env bash
# Runs the whole suite against one local stack: the emulator and gateway are started once, on
# their own ports (so a `make run` stack can stay up), every test shares them with unique
# names, and the captured logs are audited for phone numbers and bodies afterwards. Arguments
# are passed to the test runner, to run a subset.
set -euo pipefail
cd "$(dirname "$0")/../.."

export LOCAL_GATEWAY_PORT="${TEST_GATEWAY_PORT:-3100}"
export LOCAL_AWS_PORT="${TEST_AWS_PORT:-4600}"
export LOCAL_TWILIO_PORT="${TEST_TWILIO_PORT:-3101}"
export LOCAL_MONITOR_PORT="${TEST_MONITOR_PORT:-3102}"
# Quiet hours never close on the test stack, so what it sends does not depend on the hour CI
# runs at; tests of quiet hours build their own policy and clock.
export QUIET_HOURS_START="${TEST_QUIET_HOURS_START:-00:00}"
export QUIET_HOURS_END="${TEST_QUIET_HOURS_END:-24:00}"
# The stack's circuit breakers open only on a storm no test makes: the suite shares one worker
# and one processor, and one test's deliberate 5xx must not pause every other test's sends or
# lookups. tests/breaker.rs runs instances of its own whose breakers do open.
export TWILIO_BREAKER_WINDOW="${TEST_TWILIO_BREAKER_WINDOW:-200}"
export TWILIO_BREAKER_MIN_CALLS="${TEST_TWILIO_BREAKER_MIN_CALLS:-100}"
export MONITOR_BREAKER_WINDOW="${TEST_MONITOR_BREAKER_WINDOW:-200}"
export MONITOR_BREAKER_MIN_CALLS="${TEST_MONITOR_BREAKER_MIN_CALLS:-100}"
out="$PWD/target/e2e"
mkdir -p "$out"
rm -f "$out"/*.log "$out"/sensitive.txt
export PARLEY_E2E_MANIFEST="$out/sensitive.txt"
export PARLEY_E2E_LOG_DIR="$out"
touch "$PARLEY_E2E_MANIFEST"

runner=(cargo nextest run --workspace)
command -v cargo-nextest >/dev/null || runner=(cargo test --workspace)

# Build everything first, so the stack isn't left waiting on the compiler.
cargo build -p parley-local
"${runner[@]}" --no-run

./target/debug/parley-local up >"$out/stack.log" 2>&1 &
stack=$!
stop() { kill -TERM "$stack" 2>/dev/null && wait "$stack" 2>/dev/null || true; }
trap stop EXIT

for _ in $(seq 1 120); do
  grep -q '^ready: ' "$out/stack.log" && break
  if ! kill -0 "$stack" 2>/dev/null; then
    echo "the local stack did not start:" >&2
    cat "$out/stack.log" >&2
    exit 1
  fi
  sleep 0.5
done
grep -q '^ready: ' "$out/stack.log" || { echo "the local stack was not ready in 60 s" >&2; cat "$out/stack.log" >&2; exit 1; }

status=0
# Extra arguments select tests (e.g. `infra/scripts/test.sh -E 'binary(pending)'` with nextest).
"${runner[@]}" --no-fail-fast "$@" || status=$?
# The published contract against the same stack (infra/scripts/contract.sh, ~2 minutes):
# whole runs only, like the metric audit below.
if [ "$#" -eq 0 ]; then
  infra/scripts/contract.sh || status=1
fi
stop
trap - EXIT

./target/debug/parley-local audit-logs "$PARLEY_E2E_MANIFEST" "$out"/*.log || status=1
# A subset run cannot be expected to pass through every alarm's code path.
if [ "$#" -eq 0 ]; then
  ./target/debug/parley-local audit-metrics "$out"/*.log || status=1
fi
exit "$status"
