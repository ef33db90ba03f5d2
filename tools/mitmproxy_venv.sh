#!/usr/bin/env bash
# Builds VENV with the [mitmproxy] extra, for the tests of `capture import mitmproxy`.
# mitmproxy 12 needs Python >= 3.12 (mitmproxy 11, the last for 3.11, caps zstandard at
# 0.23 where the project pins 0.25), so this looks for one: $MITM_PYTHON, then python3.13
# and python3.12 on PATH, then pyenv's. Without one it says so and the tests skip, saying why.
set -euo pipefail
venv=${1:?usage: mitmproxy_venv.sh VENV}
works() { [ -n "$1" ] && "$1" -c 'import sys, venv; sys.exit(sys.version_info < (3, 12))' 2>/dev/null; }
found=""
for candidate in "${MITM_PYTHON:-}" python3.13 python3.12 \
    "${PYENV_ROOT:-$HOME/.pyenv}"/versions/3.13*/bin/python3.13 \
    "${PYENV_ROOT:-$HOME/.pyenv}"/versions/3.12*/bin/python3.12; do
    if works "$candidate"; then found=$candidate; break; fi
done
if [ -z "$found" ]; then
    echo "no Python 3.12 or later found: the mitmproxy import tests will skip (set MITM_PYTHON)"
    exit 0
fi
rm -rf "$venv"
"$found" -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --upgrade pip
"$venv/bin/python" -m pip install --quiet -e '.[mitmproxy]'
echo "$venv: mitmproxy $("$venv/bin/python" -c 'from mitmproxy.version import VERSION; print(VERSION)') on $("$venv/bin/python" -V)"
