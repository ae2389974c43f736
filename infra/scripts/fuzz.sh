#!/usr/bin/env bash
# Builds the fuzz targets in fuzz/ with libFuzzer on stable Rust (SanitizerCoverage through
# -C flags, as cargo-fuzz passes them; no AddressSanitizer, which needs nightly and guards
# against memory errors safe Rust does not make) and runs each for FUZZ_SECONDS (default 5),
# starting from the committed seeds in fuzz/seeds/<target>, or until FUZZ_RUNS executions when
# that is set (the 10-million goal: FUZZ_RUNS=10000000; with both, whichever comes first). A
# crash fails the run and leaves the input in target/fuzz/artifacts/<target>/. Figures:
# target/fuzz/report.txt (appended to, with the time each target ended, so runs of single
# targets add up).
#   infra/scripts/fuzz.sh [TARGET…]          FUZZ_SECONDS=600 for a long run (make fuzz)
set -euo pipefail
cd "$(dirname "$0")/../.."

# Whichever limit comes first: FUZZ_RUNS executions, FUZZ_SECONDS (5 when neither is set).
limit=()
if [ -n "${FUZZ_RUNS:-}" ]; then
  limit+=(-runs="$FUZZ_RUNS")
fi
if [ -n "${FUZZ_SECONDS:-}" ] || [ -z "${FUZZ_RUNS:-}" ]; then
  limit+=(-max_total_time="${FUZZ_SECONDS:-5}")
fi
host=$(rustc -vV | sed -n 's/^host: //p')
out="$PWD/target/fuzz"
mkdir -p "$out"
# --target keeps these flags off build scripts and proc macros (they run inside the compiler).
RUSTFLAGS="--cfg fuzzing -Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares -Cdebug-assertions -Coverflow-checks" \
  cargo build --quiet --release --manifest-path fuzz/Cargo.toml --target "$host" --target-dir "$out" --bins

targets=("$@")
if [ "${#targets[@]}" -eq 0 ]; then
  mapfile -t targets < <(ls fuzz/fuzz_targets | sed 's/\.rs$//')
fi

report="$out/report.txt"
status=0
for t in "${targets[@]}"; do
  corpus="$out/corpus/$t"
  artifacts="$out/artifacts/$t/"
  mkdir -p "$corpus" "$artifacts"
  log="$out/$t.log"
  if "$out/$host/release/$t" "$corpus" "fuzz/seeds/$t" "${limit[@]}" \
      -print_final_stats=1 -artifact_prefix="$artifacts" -max_len=4096 >"$log" 2>&1; then
    result=ok
  else
    result="CRASH (input in $artifacts)"
    status=1
  fi
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  per_second=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
  printf '%-14s %12s executions  %8s/s  %s  %s\n' "$t" "${runs:-?}" "${per_second:-?}" "$result" \
    "$(date -u +%FT%H:%MZ)" | tee -a "$report"
  [ "$result" = ok ] || tail -30 "$log" >&2
done
exit "$status"
