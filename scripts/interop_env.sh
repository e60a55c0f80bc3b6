#!/usr/bin/env bash
# Build .venv-interop: a Python environment, apart from aclip's own .venv, that holds the real upstream stack
# (jina, docarray v1, clip-client) next to aclip, for the interop tests in tests/interop.
#
#   bash scripts/interop_env.sh
#   JINA_OPTOUT_TELEMETRY=1 NO_VERSION_CHECK=1 JINA_HIDE_SURVEY=1 \
#       .venv-interop/bin/python -m pytest tests/interop -m interop
#
# Or `tox -e interop`, which runs both. aclip is installed editable, so the tests see the working tree.
#
# Environment variables: jina and docarray try to reach the internet unless these are set (telemetry, a
# version check, a survey banner); this script exports them for its own checks, and tests/interop sets
# them again before importing jina or docarray:
#   JINA_OPTOUT_TELEMETRY=1  NO_VERSION_CHECK=1  JINA_HIDE_SURVEY=1
#
# Cached and idempotent: the environment carries a stamp, the sha256 of the pin lists below, aclip's
# runtime dependencies (pyproject.toml) and the interpreter's version. When the stamp matches, nothing is
# installed; when it does not (or the stamp is missing: an interrupted build), the environment is deleted and
# built again. With CI=true it is always built afresh (CI runs in a fresh clone anyway).
#
# Time, measured on this project's 2-core machine: a fresh build takes about 55 s, with pip's cache warm or
# empty (PIP_NO_CACHE_DIR=1): most of it is installing ~100 packages, not downloading them; 0.1 s when the
# stamp matches. Without the lock below, pip's resolver
# backtracks through old fastapi and opentelemetry releases and a fresh build took about 2 minutes.
#
# Overrides: PYTHON (the interpreter to build from, default python3; it must be 3.11, see below).
set -euo pipefail

repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
venv="$repo_root/.venv-interop"
stamp="$venv/.aclip-interop-stamp"
python=${PYTHON:-python3}

export JINA_OPTOUT_TELEMETRY=1
export NO_VERSION_CHECK=1
export JINA_HIDE_SURVEY=1

# What the tests need. The upstream versions work together; newer ones do not:
# - jina 3.27.0: newer jina breaks clip-client over HTTP.
# - pydantic 1: jina 3.27 requires pydantic<2, and pydantic 2 breaks the docarray-v1 gateway.
# - docarray 0.21.1 (v1, the Document API clip-client and CLIP-as-service speak), clip-client 0.8.3.
# - trustme: tests/conftest.py, which pytest loads for tests/interop too, imports it.
requirements='
jina==3.27.0
docarray[common]==0.21.1
pydantic==1.10.27
clip-client==0.8.3
pytest==9.2.0
pytest-timeout==2.4.0
trustme==1.2.1
'

# The lock: every package of the tested environment, as pip resolved the list above (pip check clean).
# Without it, pip backtracks through ~100 fastapi and ~40 releases of each opentelemetry package, and any new
# release of a transitive dependency (websockets, starlette, ...) could change the upstream stack under test.
# aclip's runtime dependencies, chosen inside both aclip's ranges (pyproject.toml) and jina's pins:
# - protobuf 4.25.9: aclip needs >=4.25; jina's opentelemetry-sdk<1.20 brings opentelemetry-proto 1.19, which
#   needs protobuf<5. 4.25.x is the only window both allow.
# - grpcio 1.57.0 (not aclip's, but it shares the process): jina caps grpcio<=1.57.0, whose last wheels are for
#   Python 3.11; numpy 2.4 needs Python >=3.11. Hence Python 3.11 exactly.
# - aiohttp 3.14.5, grpclib 0.4.9, numpy 2.4.6, anyio 4.16.0: the newest of each; jina and starlette accept them.
# To move a pin: change it here, build, run the interop suite, then refresh this list from
# `.venv-interop/bin/python -m pip freeze --exclude-editable`.
constraints='
aiofiles==25.1.0
aiohappyeyeballs==2.7.1
aiohttp==3.14.5
aiosignal==1.4.0
annotated-doc==0.0.7
anyio==4.16.0
asgiref==3.13.0
attrs==26.1.0
backoff==2.2.1
certifi==2026.10.19.post1
cffi==2.1.1
charset-normalizer==3.5.3
click==8.5.1
clip-client==0.8.3
contourpy==1.3.3
cryptography==50.0.2
cycler==0.12.1
deprecated==1.3.1
docarray==0.21.1
docker==7.2.0
ecdsa==0.19.2
fastapi==0.125.0
filelock==4.3.1
fonttools==4.68.0
frozenlist==1.8.0
googleapis-common-protos==1.75.0
grpcio==1.57.0
grpcio-health-checking==1.57.0
grpcio-reflection==1.57.0
grpclib==0.4.9
h11==0.16.0
h2==4.4.1
hpack==4.2.0
httptools==0.9.0
hyperframe==6.1.0
idna==3.20
importlib-metadata==6.11.0
iniconfig==2.3.1
jcloud==0.3
jina==3.27.0
jina-hubble-sdk==0.39.0
kiwisolver==1.5.1
lz4==4.4.5
markdown-it-py==4.3.0
matplotlib==3.11.2
mdurl==0.1.2
multidict==7.2.1
numpy==2.4.6
opentelemetry-api==1.19.0
opentelemetry-exporter-otlp==1.19.0
opentelemetry-exporter-otlp-proto-common==1.19.0
opentelemetry-exporter-otlp-proto-grpc==1.19.0
opentelemetry-exporter-otlp-proto-http==1.19.0
opentelemetry-exporter-prometheus==0.41b0
opentelemetry-instrumentation==0.40b0
opentelemetry-instrumentation-aiohttp-client==0.40b0
opentelemetry-instrumentation-asgi==0.40b0
opentelemetry-instrumentation-fastapi==0.40b0
opentelemetry-instrumentation-grpc==0.40b0
opentelemetry-proto==1.19.0
opentelemetry-sdk==1.19.0
opentelemetry-semantic-conventions==0.40b0
opentelemetry-util-http==0.40b0
packaging==26.4
pathspec==1.1.1
pillow==13.0.0
pluggy==1.7.0
prometheus-client==0.26.0
propcache==0.5.4
protobuf==4.25.9
pyasn1==0.6.5
pycparser==3.12
pydantic==1.10.27
pygments==2.21.0
pyparsing==3.3.3
pytest==9.2.0
pytest-timeout==2.4.0
python-dateutil==4.0.0
python-dotenv==1.2.4
python-jose==3.5.0
python-multipart==0.0.34
pyyaml==6.0.4
requests==2.34.2
rich==15.0.0
rsa==4.9.1
six==1.17.0
starlette==0.50.0
trustme==1.2.1
typing-extensions==4.16.0
tzdata==2026.6
urllib3==1.26.20
uvicorn==0.23.1
uvloop==0.23.0
watchfiles==1.3.0
websockets==17.4
wrapt==1.17.3
yarl==1.25.1
zipp==4.1.2
'

if ! python_version=$("$python" -c 'import sys; print(sys.version.split()[0])'); then
  echo "interop_env.sh: cannot run $python; set PYTHON to a Python 3.11 interpreter" >&2
  exit 1
fi
case "$python_version" in
  3.11.*) ;;
  *)
    echo "interop_env.sh: $python is Python $python_version; the jina 3.27 stack needs Python 3.11" \
      "(grpcio<=1.57 has no wheels for newer Pythons, numpy 2.4 none for older); set PYTHON" >&2
    exit 1
    ;;
esac

# aclip's own runtime dependencies: a change there needs a rebuild too.
aclip_dependencies=$(sed -n '/^dependencies = \[/,/^\]/p' "$repo_root/pyproject.toml")
want=$(printf '%s\n' "$requirements" "$constraints" "$aclip_dependencies" "$python_version" | sha256sum | cut -d' ' -f1)

if [ "${CI:-}" != "true" ] && [ -x "$venv/bin/python" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  echo "interop_env.sh: $venv is up to date (stamp ${want:0:12})"
  exit 0
fi

echo "interop_env.sh: building $venv with Python $python_version"
started=$SECONDS
rm -rf "$venv"
"$python" -m venv "$venv"
printf '%s\n' "$requirements" >"$venv/interop-requirements.txt"
printf '%s\n' "$constraints" >"$venv/interop-constraints.txt"
"$venv/bin/python" -m pip install --quiet --no-input --disable-pip-version-check \
  -r "$venv/interop-requirements.txt" -c "$venv/interop-constraints.txt" -e "$repo_root"
"$venv/bin/python" -m pip check --disable-pip-version-check
"$venv/bin/python" -c '
import sys

import aclip
import clip_client
import docarray
import jina

print(f"Python {sys.version.split()[0]}: jina {jina.__version__}, docarray {docarray.__version__}, "
      f"clip-client {clip_client.__version__}, aclip {aclip.__version__} from {aclip.__file__}")
'
printf '%s\n' "$want" >"$stamp.tmp"
mv "$stamp.tmp" "$stamp"
echo "interop_env.sh: built $venv in $((SECONDS - started)) s"
