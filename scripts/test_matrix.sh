#!/usr/bin/env bash
# The test suite on every supported Python, and on the oldest and the newest protobuf that pyproject allows.
#
#   bash scripts/test_matrix.sh            # every cell
#   bash scripts/test_matrix.sh py313      # the cells whose name starts with py313
#
# Each cell is a venv under .venv-matrix/<name> with aclip (editable), its test extra and the cell's protobuf;
# its interpreter comes from PATH (python3.X) or pyenv ($PYENV_ROOT/versions/3.X.*). A missing interpreter
# fails the run: a supported Python that is not tested is not supported. Venvs are kept between local runs
# and built afresh when CI=true. aclip's own .venv (Python 3.11, newest protobuf) is the fourth cell, run by
# the README's test command.
set -euo pipefail
cd "$(dirname "$0")/.."

#      name                   python  protobuf requirement
cells=("py310-protobuf-oldest 3.10    protobuf==4.25.0"
       "py312                 3.12    protobuf>=4.25,<8"
       "py313-protobuf-newest 3.13    protobuf>=4.25,<8")

find_python() {  # the first interpreter of that version that really runs (a pyenv shim may not)
  local version=$1 candidate
  for candidate in "${PYENV_ROOT:-$HOME/.pyenv}"/versions/"$version".*/bin/python"$version" \
                   "$(command -v "python$version" 2>/dev/null || true)"; do
    if [ -x "$candidate" ] && "$candidate" -c 'import sys' >/dev/null 2>&1; then
      echo "$candidate"
      return
    fi
  done
  echo "no Python $version found (on PATH as python$version, or under \$PYENV_ROOT/versions)" >&2
  return 1
}

status=0
for cell in "${cells[@]}"; do
  read -r name version requirement <<<"$cell"
  if [ $# -gt 0 ] && [[ "$name" != "$1"* ]]; then
    continue
  fi
  python=$(find_python "$version")
  venv=".venv-matrix/$name"
  if [ "${CI:-}" = "true" ]; then
    rm -rf "$venv"
  fi
  if [ ! -x "$venv/bin/python" ]; then
    "$python" -m venv "$venv"
  fi
  echo "+ [$name] install aclip[test] with $requirement on $("$venv/bin/python" --version)"
  "$venv/bin/python" -m pip install -q --upgrade -e '.[test]' "$requirement"
  "$venv/bin/python" -c 'import google.protobuf, numpy, sys; print(f"  Python {sys.version.split()[0]}, protobuf {google.protobuf.__version__}, numpy {numpy.__version__}")'
  echo "+ [$name] pytest"
  if ! "$venv/bin/python" -m pytest -q -p no:cacheprovider -m "not slow" tests; then
    echo "[$name] FAILED" >&2
    status=1
  fi
done
exit $status
