#!/usr/bin/env bash
# `npm test`: the whole suite. Contract and type checks, then the real databases, then jest
# (every backend, the server, both TypeScript clients), then the Python client.
#
# The databases run as loopback processes started by .ci/services.sh (PostgreSQL, PgBouncer,
# Redis, a Redis Cluster, FerretDB; installed when missing). To use your own instead, set
# BURR_TEST_POSTGRES_URL, BURR_TEST_PGBOUNCER_URL, BURR_TEST_REDIS_URL,
# BURR_TEST_REDIS_CLUSTER_URL and BURR_TEST_MONGO_URL and BURR_TEST_SERVICES=external.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n== %s\n' "$*"; }

step "proto lint"
npx buf lint
step "contract: additions only since the last release (buf breaking)"
npx buf breaking proto --against proto/releases/0.2.0.binpb
step "generated code is up to date"
bash scripts/check-generated.sh
step "typecheck (sources and tests)"
npx tsc --noEmit -p tsconfig.json
step "build (the packages' dist/, which the tests' servers run)"
npm run build --silent

if [[ "${BURR_TEST_SERVICES:-}" != "external" ]]; then
  step "databases"
  bash .ci/services.sh up
  # shellcheck disable=SC1091
  source .ci/services.env
fi

step "jest (TypeScript: every backend, the server, both clients)"
jest_report="$(mktemp)"
jest_status=0
npx jest --json --outputFile="$jest_report" "$@" || jest_status=$?

step "pytest (the Python persister against the real server)"
pytest_report="$(mktemp)"
pytest_status=0
bash client/python/run-tests.sh --junitxml="$pytest_report" || pytest_status=$?

# One closing line for both runners: "N passed, N failed".
node scripts/summary.js "$jest_report" "$pytest_report"
rm -f "$jest_report" "$pytest_report"
[[ $jest_status -eq 0 && $pytest_status -eq 0 ]]
