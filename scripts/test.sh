#!/usr/bin/env bash
# `npm test`: the whole suite. Contract and type checks, then the real databases, then jest
# (every backend, the server, both TypeScript clients), then the Python client.
#
# The databases run as loopback processes started by .ci/services.sh (PostgreSQL, Redis,
# FerretDB; installed when missing). To use your own instead, set BURR_TEST_POSTGRES_URL,
# BURR_TEST_REDIS_URL and BURR_TEST_MONGO_URL and BURR_TEST_SERVICES=external.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n== %s\n' "$*"; }

step "proto lint"
npx buf lint
step "generated code is up to date"
bash scripts/check-generated.sh
step "typecheck (sources and tests)"
npx tsc --noEmit -p tsconfig.json

if [[ "${BURR_TEST_SERVICES:-}" != "external" ]]; then
  step "databases"
  bash .ci/services.sh up
  # shellcheck disable=SC1091
  source .ci/services.env
fi

step "jest"
results="$(mktemp)"
status=0
npx jest --json --outputFile="$results" "$@" || status=$?
summary="$(node -e 'const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8")); console.log(`${r.numPassedTests} passed, ${r.numFailedTests} failed`)' "$results" 2>/dev/null || echo "jest did not report")"
rm -f "$results"
echo "jest: $summary"
exit "$status"
