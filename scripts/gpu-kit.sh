#!/usr/bin/env bash
# Gathers, here (with PyPI), what an offline GPU host with only Python and torch lacks to run RayLAN's GPU bench:
# Ray's wheel for the host's Python (ray/jars removed, binaries stripped), the dependencies Ray's Serve, dashboard
# and Jobs import, Ultralytics and what its predict imports, torchvision (used only when the host has none), the
# raylan CLI (static Swift stdlib, stripped, with the shared libraries it needs beyond the base system) and
# RayLAN's cluster-side Python. Never torch, nvidia-*, triton or anything torch's wheel pulls in.
#
#   scripts/gpu-kit.sh OUT_DIR [--python 3.12] [--raylan PATH | --no-raylan] [--torchvision VERSION|none]
#                      [--compress xz|none] [--part-size MiB] [--host-provides NAME,...] [--keep NAME,...]
#                      [--no-strip] [--keep-all]
#
# OUT_DIR gets raylan-gpu-kit.tar.xz.part-NN (each under 64 MiB), MANIFEST (sha256 of each part and of the
# whole archive), and gpu-bench.sh + gpu_kit.py to run on the host: scripts/gpu-bench.sh OUT_DIR RESULTS_DIR.
# By default raylan is built here (swift build -c release --static-swift-stdlib); --raylan uses a given binary.
# Downloads are kept in ~/.cache/raylan-gpu-kit (RAYLAN_KIT_CACHE) and pip's cache. See bench/README.md, "GPU kit".
set -euo pipefail
cd "$(dirname "$0")/.."

usage() { sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 64; }
[ $# -ge 1 ] || usage
case "$1" in -h|--help|-*) usage ;; esac
out=$1; shift
raylan="" no_raylan=0 rest=()
while [ $# -gt 0 ]; do
    case "$1" in
        --raylan) raylan=${2:?--raylan needs a path}; shift 2 ;;
        --no-raylan) no_raylan=1; shift ;;
        --python|--torchvision|--compress|--part-size|--host-provides|--keep) rest+=("$1" "${2:?$1 needs a value}"); shift 2 ;;
        --no-strip|--keep-all) rest+=("$1"); shift ;;
        -h|--help) usage ;;
        *) echo "gpu-kit.sh: unknown argument $1" >&2; usage ;;
    esac
done

if [ "$no_raylan" = 0 ] && [ -z "$raylan" ]; then
    export PATH="/opt/swift/usr/bin:$PATH"
    echo "Building raylan (swift build -c release --static-swift-stdlib)…" >&2
    swift build -c release --static-swift-stdlib --product raylan
    raylan="$(swift build -c release --static-swift-stdlib --show-bin-path)/raylan"
fi

python=${PYTHON:-python3}
mkdir -p "$out"
exec "$python" scripts/gpu_kit.py build "$out" ${raylan:+--raylan "$raylan"} ${rest[@]+"${rest[@]}"}
