#!/usr/bin/env bash
# Install uv with pip when it is missing; prints the uv binary to use.
set -euo pipefail
if command -v uv >/dev/null 2>&1; then command -v uv; exit 0; fi
python3 -m pip install --quiet --disable-pip-version-check uv >&2 || python3 -m pip install --quiet --user uv >&2
command -v uv 2>/dev/null || echo "$(python3 -m site --user-base)/bin/uv"
