#!/usr/bin/env bash
# Tests the Python persister as users get it: builds a wheel of client/python, installs that
# wheel (not the source tree) into client/python/.venv, checks the wheel's contents and the
# generated stubs for drift, then runs pytest (arguments are passed on) against the real
# TypeScript server (the compiled one: `npm run build` at the repository root first).
#
# .venv holds the third-party packages at the versions of constraints.txt. It is made anew when
# constraints.txt, pyproject.toml or python3 change (or it was made by something else); otherwise
# it is reused and only the project is replaced: uninstalled, checked to be gone, and installed
# from the freshly built wheel with --no-deps (then `pip check` confirms its requirements are met).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here"

venv="$here/.venv"
py="$venv/bin/python"
pip=("$py" -m pip --quiet --disable-pip-version-check --no-input)
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# What the cached .venv was made from; any change makes a new one.
key="$({
  echo "run-tests venv v1"
  python3 -c 'import sys; print(sys.executable, sys.version)'
  cat constraints.txt pyproject.toml
} | sha256sum | cut -d' ' -f1)"
stamp="$venv/.run-tests-key"

# The wheel is built from a clean copy of the project (no build/, *.egg-info, .venv, caches), so
# nothing left over from an earlier build can end up in it, and the source tree stays untouched.
build_wheel() {
  mkdir -p "$work/project" "$work/dist"
  tar -C "$here" --exclude=./.venv --exclude=./build --exclude=./dist --exclude='*.egg-info' \
    --exclude=__pycache__ --exclude=.pytest_cache -cf - . | tar -C "$work/project" -xf -
  # The build backend is the venv's setuptools, pinned by constraints.txt.
  "${pip[@]}" wheel --no-deps --no-build-isolation -w "$work/dist" "$work/project" >/dev/null
  wheels=("$work"/dist/*.whl)
  [[ ${#wheels[@]} -eq 1 && -f ${wheels[0]} ]] || { echo "client/python: expected one wheel, got: ${wheels[*]}" >&2; exit 1; }
  wheel="${wheels[0]}"
}

started=$SECONDS
if [[ ! -x "$py" || "$(cat "$stamp" 2>/dev/null)" != "$key" ]]; then
  echo "client/python: creating .venv (third-party packages from constraints.txt)"
  rm -rf "$venv"
  python3 -m venv "$venv"
  "${pip[@]}" install -c constraints.txt setuptools
  build_wheel
  # The wheel's own requirements with the test extras, resolved by pip from the wheel's metadata.
  "${pip[@]}" install -c constraints.txt "$wheel[test]"
  echo "$key" >"$stamp"
else
  build_wheel
fi

# Replace whatever the venv holds of the project (an earlier wheel, or an editable install made
# by hand) with the wheel just built.
"${pip[@]}" uninstall --yes burr-grpc-persister 2>/dev/null || true
if (cd / && "$py" -I -c 'import burr_grpc_persister' 2>/dev/null); then
  # Something pip does not know about (a .pth file, copied files) still provides the package.
  if [[ -n "${BURR_RUN_TESTS_NEW_VENV:-}" ]]; then
    echo "client/python: burr_grpc_persister is importable in a new .venv without being installed" >&2
    exit 1
  fi
  echo "client/python: .venv still provides burr_grpc_persister after uninstalling it; making a new .venv"
  rm -rf "$venv"
  BURR_RUN_TESTS_NEW_VENV=1 exec bash "$here/run-tests.sh" "$@"
fi
"${pip[@]}" install --no-deps --no-index "$wheel"
"${pip[@]}" check
echo "client/python: installed $(basename "$wheel") into .venv ($((SECONDS - started)) s)"

"$py" scripts/check-wheel.py "$wheel"
scripts/check-generated.sh
# Not `python -m pytest`: that would put the working directory on sys.path. The tests import the
# installed package; tests/conftest.py refuses to run against the source tree.
"$venv/bin/pytest" "$@"
