#!/usr/bin/env bash
# Build every member's wheel and prove it installs and imports in a clean venv with only its
# declared dependencies (workspace siblings come from the wheels just built).
set -euo pipefail
cd "$(dirname "$0")/.."
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
uv build --quiet --all-packages --wheel --out-dir "$out/dist"
for member in ${MEMBERS:-livermore-schema livermore-cache livermore-exchange-core livermore-exchange-sim livermore-worker livermore-api livermore-demo}; do
  module=${member//-/_}
  uv venv --quiet "$out/venv-$member"
  uv pip install --quiet --python "$out/venv-$member/bin/python" --find-links "$out/dist" "$member"
  "$out/venv-$member/bin/python" -c "import $module as m; print('$member: wheel installs and imports,', len(getattr(m, '__all__', ())), 'public names')"
done
