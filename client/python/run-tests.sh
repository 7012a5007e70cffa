#!/usr/bin/env bash
# Tests the Python persister against the real TypeScript server: builds client/python/.venv
# if missing, installs the package with its test extras at the pinned versions, checks the
# generated stubs for drift, runs pytest (arguments are passed on). Needs `npm install` at the
# repository root first.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here"

if [[ ! -x .venv/bin/python ]]; then
  python3 -m venv .venv
fi
# setuptools reuses build/ between builds: a stale copy of a removed module would ship.
rm -rf build src/*.egg-info
.venv/bin/python -m pip install --quiet --disable-pip-version-check -c constraints.txt ".[test]"

scripts/check-generated.sh
.venv/bin/python -m pytest "$@"
