#!/usr/bin/env bash
# Print the uv binary to use. When uv is missing, install it into a tool venv of its own (never into
# the system Python, which Debian marks externally managed), apt-installing python3-venv if needed.
# Exits 1 with the reason on stderr and prints nothing when uv cannot be had.
set -euo pipefail
. "$(dirname "$0")/apt.sh"
UV_REQUIREMENT="uv>=0.13,<0.14"  # the uv that wrote uv.lock and builds the members (uv_build <0.14)
tooldir="${XDG_DATA_HOME:-$HOME/.local/share}/livermore/uv-venv"

if command -v uv >/dev/null 2>&1; then command -v uv; exit 0; fi
if [ -x "$tooldir/bin/uv" ]; then echo "$tooldir/bin/uv"; exit 0; fi

fail() { echo "ensure-uv: $1; install uv yourself (https://docs.astral.sh/uv/) and retry" >&2; exit 1; }
if ! command -v python3 >/dev/null 2>&1; then
  echo "ensure-uv: installing python3" >&2
  apt_install python3 python3-venv || fail "python3 is missing and could not be installed"
fi
echo "ensure-uv: installing $UV_REQUIREMENT into $tooldir" >&2
mkdir -p "$(dirname "$tooldir")" || fail "cannot create $(dirname "$tooldir")"
if ! python3 -m venv --clear "$tooldir" >/dev/null 2>&1; then
  echo "ensure-uv: python3 cannot create a venv; installing python3-venv" >&2
  apt_install python3-venv || fail "python3-venv is missing and could not be installed"
  python3 -m venv --clear "$tooldir" >&2 || fail "python3 -m venv failed"
fi
# bin/uv appears only when pip succeeded, so a half-made venv is redone on the next run.
"$tooldir/bin/python" -m pip install --quiet --disable-pip-version-check "$UV_REQUIREMENT" >&2 \
  || fail "pip could not install $UV_REQUIREMENT"
echo "$tooldir/bin/uv"
