#!/usr/bin/env bash
# Run scripts/bench.py (aclip against the upstream clip_client) from a fresh checkout, in one command:
#
#   bash scripts/bench.sh              # the default bench; writes docs/bench/results.{md,png,json}
#   bash scripts/bench.sh --quick      # a smoke subset for CI (under 2 minutes); writes build/bench-quick/
#   bash scripts/bench.sh --help       # every option (servers, protocols, batch sizes, repetitions, ...)
#
# It builds (or reuses) .venv-interop with scripts/interop_env.sh: Python 3.11 with jina 3.27, docarray 0.21,
# clip-client 0.8.3 and aclip installed editable, so both libraries run under the same interpreter. Then the
# bench-only tools:
# - matplotlib (the plot): in .venv-interop's pin list already; installed there, with those pins, if missing;
# - orjson (aclip's `fast` extra, used by aclip's HTTP runs) and py-spy (the profile): installed with
#   `pip install --target .venv-interop/bench-site` and put on PYTHONPATH for the bench only, so the interop
#   test environment stays exactly as scripts/interop_env.sh pins it. A rebuild of .venv-interop removes them;
#   the next run here installs them again (a few seconds).
# Overrides: PYTHON (the interpreter interop_env.sh builds from; it must be 3.11).
set -euo pipefail

repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
venv="$repo_root/.venv-interop"
site="$venv/bench-site"
python="$venv/bin/python"
bench_tools=(orjson==3.13.0 py-spy==0.4.3)

export JINA_OPTOUT_TELEMETRY=1
export NO_VERSION_CHECK=1
export JINA_HIDE_SURVEY=1

bash "$repo_root/scripts/interop_env.sh"

pip_install() {
  "$python" -m pip install --quiet --no-input --disable-pip-version-check "$@"
}

if ! "$python" -c 'import matplotlib' 2>/dev/null; then
  echo "bench.sh: installing matplotlib into $venv"
  pip_install -c "$venv/interop-constraints.txt" matplotlib
fi

if [ ! -x "$site/bin/py-spy" ] || ! PYTHONPATH="$site" "$python" -c 'import orjson' 2>/dev/null; then
  echo "bench.sh: installing ${bench_tools[*]} into $site"
  pip_install --no-deps --upgrade --target "$site" "${bench_tools[@]}"
fi

export PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}"
cd "$repo_root"
exec "$python" "$repo_root/scripts/bench.py" --py-spy "$site/bin/py-spy" "$@"
