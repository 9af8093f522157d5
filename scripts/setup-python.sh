#!/usr/bin/env bash
# Creates the Python environments RayLAN runs Ray from (idempotent):
#   .venv         ray[default,serve]==2.60.0 (cluster/requirements.txt) — the embedded cluster and the cluster side
#   .venv-ray245  ray[default,serve]==2.45.0 with the detection service's dependencies (cluster/requirements-ray245.txt) — compatibility tests (--with-ray245)
set -euo pipefail
cd "$(dirname "$0")/.."

python=${PYTHON:-python3.11}
command -v "$python" >/dev/null 2>&1 || python=python3

if ! command -v uv >/dev/null 2>&1; then
    echo "Installing uv (a fast pip) from PyPI…" >&2
    "$python" -m pip install --quiet uv
fi
uv=$(command -v uv || echo "$python -m uv")

make_venv() {  # folder requirements
    local folder=$1 requirements=$2 stamp="$1/.requirements.sha"
    local want; want=$(sha1sum "$requirements" | cut -d' ' -f1)
    if [ -x "$folder/bin/ray" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
        return 0
    fi
    echo "Creating $folder from $requirements…" >&2
    $uv venv --quiet --allow-existing -p "$python" "$folder"
    VIRTUAL_ENV="$PWD/$folder" $uv pip install --quiet -r "$requirements"
    echo "$want" > "$stamp"
}

make_venv .venv cluster/requirements.txt
if [ "${1:-}" = "--with-ray245" ]; then
    make_venv .venv-ray245 cluster/requirements-ray245.txt
fi
echo "Python environments ready: $(.venv/bin/python -c 'import ray, sys; print("ray", ray.__version__, "python", sys.version.split()[0])')" >&2
