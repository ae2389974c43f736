#!/usr/bin/env bash
# Instructions per warm invocation, per function, counted by valgrind's callgrind while the
# Runtime API benchmark (infra/bench/benches/lambda.rs) drives the function against the
# emulator. A count, not a time: the same binary, events and emulator give the same figure
# whatever else the host is doing, so a change to the warm path can be judged on a machine
# whose CPU time per invocation wanders by half (docs/benchmarks.md, "Issue 13, session 11").
#
# Each function runs twice under callgrind: once with 1 warm invocation, once with 1 + WARM;
# the difference over WARM is one warm invocation's instructions, init and the first
# invocation excluded. Valgrind does not emulate the SHA extensions, so the SHA-1/SHA-256
# code is its portable version here (the report says how much of the count it is).
#
# Usage: infra/scripts/bench-instructions.sh [function ...]   (default: inbound-sms)
# Environment: WARM (default 200); BENCH_TARGET_DIR (default target/bench), where the harness
# is built; SYMBOLS_DIR (default target/symbols/release), the functions' release binaries with
# their symbols kept, which `make bench-instructions` builds (stripping changes no instruction,
# but the SHA share is found by name); HARNESS, a Runtime API benchmark binary already built
# (comparing two builds of a function without rebuilding the harness for each).
set -euo pipefail
cd "$(dirname "$0")/../.."

warm=${WARM:-200}
target=${BENCH_TARGET_DIR:-target/bench}
binaries=${SYMBOLS_DIR:-target/symbols/release}
functions=("${@:-inbound-sms}")
command -v valgrind >/dev/null || { echo "valgrind is not installed (apt-get install valgrind)" >&2; exit 1; }

harness=${HARNESS:-$(CARGO_TARGET_DIR=$target cargo bench -p parley-bench --bench lambda --no-run 2>&1 \
    | sed -n 's/.*Executable .*(\(.*\)).*/\1/p' | tail -1)}
[ -x "$harness" ] || { echo "the Runtime API benchmark did not build" >&2; exit 1; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# The harness kills a function with SIGKILL when its run ends, which callgrind cannot survive
# to write its counts; a wrapper that is killed instead leaves callgrind's process to see the
# Runtime API close and exit normally.
count() {
    local function=$1 invocations=$2 out=$work/$1.$2
    mkdir -p "$out/bin"
    cat >"$out/bin/$function" <<EOF
#!/bin/sh
valgrind --tool=callgrind --callgrind-out-file=$out/cg.%p $(realpath "$binaries/$function") "\$@" 2>/dev/null &
wait
EOF
    chmod +x "$out/bin/$function"
    BENCH_LAMBDA_PIN=0 BENCH_FUNCTIONS_DIR=$out/bin BENCH_FUNCTIONS=$function \
        BENCH_LAMBDA_RUNS=1 BENCH_LAMBDA_WARM=$invocations "$harness" --bench >"$out/report" 2>&1
    # Callgrind writes when the function exits, shortly after the harness lets it go.
    for _ in $(seq 100); do
        [ "$(find "$out" -name 'cg.*' -size +0 | wc -l)" -ge 2 ] && break
        sleep 0.2
    done
    sleep 1
    # The harness's untimed cold start comes first; the timed run is the later process.
    local file
    file=$(ls -v "$out"/cg.* | tail -1)
    echo "$file"
}

total() { sed -n 's/^summary: //p' "$1"; }
sha() {
    callgrind_annotate "$1" 2>/dev/null \
        | awk '/sha1::|sha2::/ { gsub(",", "", $1); n += $1 } END { print n + 0 }'
}

echo "| function | instructions per warm invocation | of which SHA-1/SHA-256 (portable code under valgrind) |"
echo "|---|---:|---:|"
for function in "${functions[@]}"; do
    one=$(count "$function" 1)
    many=$(count "$function" "$((warm + 1))")
    per=$((($(total "$many") - $(total "$one")) / warm))
    sha_per=$((($(sha "$many") - $(sha "$one")) / warm))
    printf '| %s | %d | %d |\n' "$function" "$per" "$sha_per"
done
