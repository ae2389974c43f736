#!/usr/bin/env bash
# Contract tests: schemathesis reads the OpenAPI document the running stack serves
# (GET /openapi.json, docs/openapi.json as committed) and calls every operation with requests
# generated from it, checking each answer: a documented status code and content type, a body
# that matches its schema, never a 5xx, and no secured operation that works without credentials. Bounded: at most CONTRACT_MAX_EXAMPLES cases per
# operation and CONTRACT_MAX_TIME seconds in all; a fixed seed, so a failure reproduces.
# infra/scripts/test.sh runs it after the suite; against `make run`'s stack:
# `LOCAL_GATEWAY_PORT=3000 infra/scripts/contract.sh`.
set -euo pipefail
cd "$(dirname "$0")/../.."

schemathesis=.venv/schemathesis/bin/schemathesis
[ -x "$schemathesis" ] || { echo "contract: $schemathesis is missing (make deps)" >&2; exit 1; }
base="http://127.0.0.1:${LOCAL_GATEWAY_PORT:-3000}"
out="${PARLEY_E2E_LOG_DIR:-target/e2e}/contract"
mkdir -p "$out"

# An admin key of its own, so every operation gets past authentication (revoked at the end).
token=$(./target/debug/parley-local keys create --name contract-tests --scopes admin 2>/dev/null)
key_id=$(echo "$token" | cut -d_ -f2)
trap './target/debug/parley-local keys revoke "$key_id" >/dev/null 2>&1 || true' EXIT

SCHEMATHESIS_TELEMETRY=false "$schemathesis" run "$base/openapi.json" \
  --url "$base" \
  --header "Authorization: Bearer $token" \
  --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,ignored_auth \
  --phases examples,coverage,fuzzing \
  --max-examples "${CONTRACT_MAX_EXAMPLES:-20}" \
  --max-time "${CONTRACT_MAX_TIME:-120}" \
  --seed "${CONTRACT_SEED:-20261130}" \
  --workers 2 \
  --request-timeout 10 \
  --suppress-health-check all \
  --generation-database none \
  --report junit --report-dir "$out" \
  --output-sanitize true
