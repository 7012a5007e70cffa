#!/usr/bin/env bash
# Fails when the committed stubs differ from what scripts/generate.sh produces from proto/ now.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
fresh="$(mktemp -d)"
trap 'rm -rf "$fresh"' EXIT

"$here/scripts/generate.sh" "$fresh"
if ! diff -r -x __pycache__ "$here/src/burr_grpc_persister/_gen" "$fresh"; then
  echo "client/python: generated stubs are stale; run client/python/scripts/generate.sh" >&2
  exit 1
fi
echo "client/python: generated stubs are up to date"
