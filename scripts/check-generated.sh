#!/usr/bin/env bash
# Fails when the checked-in generated TypeScript differs from what `buf generate` makes of proto/.
set -euo pipefail
cd "$(dirname "$0")/.."
fresh="$(mktemp -d)"
trap 'rm -rf "$fresh"' EXIT
npx buf generate --output "$fresh"
if ! diff -ru client/src/gen "$fresh/client/src/gen"; then
  echo "client/src/gen is out of date with proto/: run 'npm run generate' and commit the result" >&2
  exit 1
fi
echo "generated code matches proto/"
