# Parley: `make run` brings the local stack up; `make test` is what CI runs.
SHELL := /bin/bash
VENV := .venv
MOTO_SERVER := $(VENV)/moto/bin/moto_server
# The Python peer of inbound-sms that the Runtime API benchmark measures beside it (infra/bench/peer).
PEER_PYTHON := $(VENV)/peer/bin/python
# Contract tests against docs/openapi.json (infra/scripts/contract.sh), in their own venv.
SCHEMATHESIS := $(VENV)/schemathesis/bin/schemathesis
SAM := $(VENV)/lint/bin/sam
CFN_LINT := $(VENV)/lint/bin/cfn-lint
# The deploy tools, in their own venv (Debian's and Ubuntu's Python refuse a global pip install).
DEPLOY_VENV := $(VENV)/deploy
DEPLOY_SAM := $(DEPLOY_VENV)/bin/sam
# cargo-deny, built once from crates.io into .venv (no prebuilt binary is reachable here).
CARGO_DENY_VERSION := 0.20.2
CARGO_DENY := $(VENV)/cargo-deny/bin/cargo-deny
export SAM_CLI_TELEMETRY := 0
comma := ,

.PHONY: run test deps check fmt clippy lint-template deny deny-advisories e2e openapi contract bench bench-lambda bench-instructions bench-floor bench-console bench-send bench-pending bench-rules bench-cost sign clean \
	deploy-tools build deploy-guided deploy fuzz chaos

## run: install what is missing, then start the emulator, resources and gateway (Ctrl-C stops)
run: $(MOTO_SERVER)
	cargo build -p parley-local
	./target/debug/parley-local up

## test: formatting, lints, template validation, then every test against one local stack
test: deps check e2e

deps: $(MOTO_SERVER) $(CFN_LINT) $(CARGO_DENY) $(SCHEMATHESIS)

$(MOTO_SERVER):
	python3 -m venv $(VENV)/moto
	$(VENV)/moto/bin/pip install --quiet --disable-pip-version-check "moto[server]==5.2.5"

$(PEER_PYTHON): infra/bench/peer/requirements.txt
	python3 -m venv $(VENV)/peer
	$(VENV)/peer/bin/pip install --quiet --disable-pip-version-check -r infra/bench/peer/requirements.txt
	touch $@

$(SCHEMATHESIS):
	python3 -m venv $(VENV)/schemathesis
	$(VENV)/schemathesis/bin/pip install --quiet --disable-pip-version-check "schemathesis==4.32.5"

$(CFN_LINT):
	python3 -m venv $(VENV)/lint
	$(VENV)/lint/bin/pip install --quiet --disable-pip-version-check "aws-sam-cli==1.170.0" "cfn-lint==1.58.0"

check: fmt clippy lint-template deny

fmt:
	cargo fmt --all -- --check

clippy:
	cargo clippy --workspace --all-targets -- -D warnings

## deny: licenses, bans (one TLS stack, duplicate versions only with a reason) and sources, offline (deny.toml)
# Offline, cargo-deny reads every crate of the lockfile from cargo's cache, those of other
# targets too (Windows, Android, wasm), which a build never downloads: `cargo fetch` does.
deny: $(CARGO_DENY)
	cargo fetch --locked --quiet
	$(CARGO_DENY) --offline check licenses bans sources

## deny-advisories: RustSec advisories; needs the advisory database (a git repository on GitHub), so not part of `make test`
deny-advisories: $(CARGO_DENY)
	$(CARGO_DENY) check advisories

$(CARGO_DENY):
	cargo install --quiet --locked cargo-deny --version $(CARGO_DENY_VERSION) --root $(VENV)/cargo-deny

lint-template: $(CFN_LINT)
	$(SAM) validate --lint --region us-east-1
	$(CFN_LINT) template.yaml

## e2e: the whole test suite (unit, store, end to end) against one emulator + gateway, then the contract tests (schemathesis)
e2e: $(MOTO_SERVER) $(SCHEMATHESIS)
	infra/scripts/test.sh

## fuzz: every fuzz target under libFuzzer for FUZZ_SECONDS each (default 600) or to FUZZ_RUNS executions, stable Rust (docs/reliability.md)
FUZZ_SECONDS ?= 600
fuzz:
	FUZZ_SECONDS=$(FUZZ_SECONDS) FUZZ_RUNS=$(FUZZ_RUNS) infra/scripts/fuzz.sh $(FUZZ_TARGETS)

## bench: handler CPU per request, DynamoDB requests per message, inbound-sms cold start, every function through a fake Lambda Runtime API, CPU per console page (docs/benchmarks.md)
BENCH_TARGET_DIR ?= target/bench
FUNCTIONS := $(notdir $(wildcard functions/*))
bench: $(MOTO_SERVER) $(PEER_PYTHON)
	CARGO_TARGET_DIR=$(BENCH_TARGET_DIR) cargo build --release $(addprefix -p ,$(FUNCTIONS))
	RUST_LOG=off CARGO_TARGET_DIR=$(BENCH_TARGET_DIR) cargo bench -p parley-bench --bench inbound
	RUST_LOG=info BENCH_ONLY=handler CARGO_TARGET_DIR=$(BENCH_TARGET_DIR) cargo bench -p parley-bench --bench inbound
	CARGO_TARGET_DIR=$(BENCH_TARGET_DIR) cargo bench -p parley-bench --bench cold_start
	CARGO_TARGET_DIR=$(BENCH_TARGET_DIR) cargo bench -p parley-bench --bench lambda
	RUST_LOG=info CARGO_TARGET_DIR=$(BENCH_TARGET_DIR) cargo bench -p parley-bench --bench console

## bench-lambda: only the Runtime API benchmark (init, first and warm invocations, RSS, AWS requests) of the functions in BENCH_FUNCTIONS (default: all), and inbound-sms's Python peer beside it
bench-lambda: $(MOTO_SERVER) $(PEER_PYTHON)
	CARGO_TARGET_DIR=$(BENCH_TARGET_DIR) cargo build --release $(addprefix -p ,$(if $(BENCH_FUNCTIONS),$(subst $(comma), ,$(BENCH_FUNCTIONS)),$(FUNCTIONS)))
	CARGO_TARGET_DIR=$(BENCH_TARGET_DIR) cargo bench -p parley-bench --bench lambda

## bench-floor: the floor under every function's warm CPU on this machine: the runtime loop alone, with one AWS request, and with a 6 ms sleep in place of the request, each run as inbound-sms through the Runtime API benchmark (docs/benchmarks.md, "Issue 13, session 15")
# Each report's "against the targets" lines judge the stand-in, not inbound-sms: read the warm
# process CPU row.
FLOOR_DIR := $(abspath $(BENCH_TARGET_DIR))/floor
bench-floor: $(MOTO_SERVER)
	CARGO_TARGET_DIR=$(BENCH_TARGET_DIR) cargo build --release -p parley-bench --example runtime_floor
	for floor in loop:0:0 request:1:0 sleep:0:6; do \
	  name=$${floor%%:*}; knobs=$${floor#*:}; dir=$(FLOOR_DIR)/$$name; mkdir -p $$dir; \
	  cp $(BENCH_TARGET_DIR)/release/examples/runtime_floor $$dir/inbound-sms; \
	  echo $${knobs%%:*} > $$dir/requests; echo $${knobs#*:} > $$dir/sleep_ms; \
	  echo "## floor: $$name (requests $${knobs%%:*}, sleep $${knobs#*:} ms)" >&2; \
	  BENCH_PEER=/none BENCH_FUNCTIONS=inbound-sms BENCH_FUNCTIONS_DIR=$$dir \
	    CARGO_TARGET_DIR=$(BENCH_TARGET_DIR) cargo bench -p parley-bench --bench lambda || exit 1; \
	done

## bench-instructions: instructions per warm invocation under callgrind, through the Runtime API benchmark, of the functions in BENCH_FUNCTIONS (default: inbound-sms); a count the host's noise does not move
SYMBOLS_TARGET_DIR ?= target/symbols
INSTRUCTION_FUNCTIONS = $(subst $(comma), ,$(or $(BENCH_FUNCTIONS),inbound-sms))
bench-instructions: $(MOTO_SERVER)
	CARGO_PROFILE_RELEASE_STRIP=false CARGO_TARGET_DIR=$(SYMBOLS_TARGET_DIR) cargo build --release $(addprefix -p ,$(INSTRUCTION_FUNCTIONS))
	SYMBOLS_DIR=$(SYMBOLS_TARGET_DIR)/release BENCH_TARGET_DIR=$(BENCH_TARGET_DIR) infra/scripts/bench-instructions.sh $(INSTRUCTION_FUNCTIONS)

## bench-console: CPU per console page with I/O taken out (DynamoDB, SQS, Secrets Manager answered in-process), AWS requests per page (docs/benchmarks.md)
# A microbenchmark (no emulator, nothing to install). The report goes to stderr; it prints PASS
# or FAIL against issue 12's 5 ms target and exits zero either way, like bench-rules.
bench-console:
	RUST_LOG=info CARGO_TARGET_DIR=$(BENCH_TARGET_DIR) cargo bench -p parley-bench --bench console

## bench-send: send pipeline throughput, unpaced and with a sender rate, on the emulator and the Twilio sandbox (docs/benchmarks.md)
# One run, on the emulator the local stack uses (infra/emulator.py). The report goes to stderr,
# the worker's stdout (EMF lines) to $(BENCH_TARGET_DIR)/send-bench.out. It exits non-zero
# when a target fails. Extra options: SEND_BENCH_ARGS.
SEND_BENCH := $(BENCH_TARGET_DIR)/release/parley-send-bench
bench-send: $(MOTO_SERVER)
	CARGO_TARGET_DIR=$(BENCH_TARGET_DIR) cargo build --release -p parley-send-bench
	$(SEND_BENCH) $(SEND_BENCH_ARGS) >$(BENCH_TARGET_DIR)/send-bench.out

## bench-pending: the pending-message engine: dispatcher release throughput and requests per message, lateness at the Twilio sandbox, CPU the scheduling checks add to a send (docs/benchmarks.md)
# The microbenchmark first (pure CPU, no emulator), then parley-pending-bench's two runs, each on
# its own emulator (infra/emulator.py). Reports go to stderr; what the functions print (EMF
# lines) to $(BENCH_TARGET_DIR)/pending-bench.out. parley-pending-bench exits non-zero when a
# run is broken (a message not released, queued or sent exactly once), not when a target is
# missed. Extra options: PENDING_BENCH_ARGS (e.g. "--only precision --emulator-port 4701").
PENDING_BENCH := $(BENCH_TARGET_DIR)/release/parley-pending-bench
bench-pending: $(MOTO_SERVER)
	CARGO_TARGET_DIR=$(BENCH_TARGET_DIR) cargo build --release -p parley-send-bench --bin parley-pending-bench
	CARGO_TARGET_DIR=$(BENCH_TARGET_DIR) cargo bench -p parley-bench --bench pending
	$(PENDING_BENCH) $(PENDING_BENCH_ARGS) >$(BENCH_TARGET_DIR)/pending-bench.out

## bench-rules: event rules: CPU to match one event against 100 rules and render what fires (docs/benchmarks.md)
# A microbenchmark (pure CPU, no emulator, nothing to install). The report goes to stderr; it
# prints PASS or FAIL against the 50 µs target and exits zero either way, like bench-pending's.
bench-rules:
	CARGO_TARGET_DIR=$(BENCH_TARGET_DIR) cargo bench -p parley-bench --bench rules

## bench-cost: AWS requests, DynamoDB request units, invocations and log bytes per inbound text and per sent message, counted on the local stack (docs/cost.md)
# Counts, not timings, so a debug build (the one `make run` uses). It starts its own stack on
# ports 3600/3601/3602 and 5100 with the emulator's counter on; the report goes to stderr, the
# snapshot to $(BENCH_TARGET_DIR)/debug/cost-bench.json. Extra options: COST_BENCH_ARGS
# (e.g. "--texts 500 --sends 500 --gateway-port 3700").
COST_BENCH := $(BENCH_TARGET_DIR)/debug/parley-cost-bench
bench-cost: $(MOTO_SERVER)
	CARGO_TARGET_DIR=$(BENCH_TARGET_DIR) cargo build -p parley-local -p parley-cost-bench
	$(COST_BENCH) $(COST_BENCH_ARGS)

## chaos: the chaos suite: steady mixed load on its own stack while the emulator, the Twilio sandbox and the send worker fail; exits non-zero on anything lost, duplicated, stuck or regressed (docs/reliability.md)
# A debug build (the one `make run` uses). It starts its own stack on ports 3550/3551/3552 and
# 5050; the report goes to stdout, the stack's log next to the binary (chaos-stack.log).
# Extra options: CHAOS_ARGS (e.g. "--duration 120s --rate 6 --store-down 60s --settle 300s
# --gateway-port 3650 --aws-port 5150 --twilio-port 3651 --monitor-port 3652").
CHAOS := $(or $(CARGO_TARGET_DIR),target)/debug/parley-chaos
chaos: $(MOTO_SERVER)
	cargo build -p parley-local -p parley-chaos
	$(CHAOS) $(CHAOS_ARGS)

## deploy-tools: aws-sam-cli, cargo-lambda (with zig, to cross-compile) and cfn-lint in .venv/deploy
deploy-tools: $(DEPLOY_SAM)

$(DEPLOY_SAM):
	python3 -m venv $(DEPLOY_VENV)
	$(DEPLOY_VENV)/bin/pip install --quiet --disable-pip-version-check \
		"aws-sam-cli==1.170.0" "cargo-lambda==1.9.2" "cfn-lint==1.58.0"

## build: every function, release, arm64, through `sam build` (.aws-sam/; the first build takes ~15 min)
# sam runs `cargo lambda build` for each function; both come from the deploy venv.
build: $(DEPLOY_SAM)
	rustup target add aarch64-unknown-linux-gnu
	PATH="$(abspath $(DEPLOY_VENV))/bin:$$PATH" $(DEPLOY_SAM) build

## deploy-guided: the first deploy (asks every question; README "Deploy"); deploy: later ones (samconfig.toml)
deploy-guided: $(DEPLOY_SAM)
	$(DEPLOY_SAM) deploy --guided

deploy: $(DEPLOY_SAM)
	$(DEPLOY_SAM) deploy

## openapi: regenerate docs/openapi.json from the request and response types (a test fails when it is stale)
# Through a temporary file: the health function compiles docs/openapi.json in, so truncating it
# first would make this build see an empty document.
openapi:
	cargo run -q -p parley-local -- openapi > target/openapi.json
	mv target/openapi.json docs/openapi.json

## contract: the contract tests alone, against the stack `make run` started
contract: $(SCHEMATHESIS)
	cargo build -p parley-local
	LOCAL_GATEWAY_PORT=$${LOCAL_GATEWAY_PORT:-3000} infra/scripts/contract.sh

## sign: print a signature, e.g. make sign URL=http://127.0.0.1:3000/webhook/twilio/sms PARAMS="From=+14155552671 Body=Hi"
sign:
	@cargo run -q -p parley-local -- sign "$(URL)" $(PARAMS)

clean:
	cargo clean
	rm -rf $(VENV)
