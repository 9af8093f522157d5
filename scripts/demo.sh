#!/usr/bin/env bash
# The main job on a fresh machine: build RayLAN, start the embedded local Ray, show the cluster, and run
# a job there — with a GPU reserved where this machine has one (nvidia-smi), a CPU job otherwise.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/opt/swift/usr/bin:$PATH"

scripts/setup-python.sh
if [ "$(uname)" = Linux ] && [ ! -f /usr/include/zlib.h ] && command -v apt-get >/dev/null; then
    apt-get update -qq && apt-get install -y -qq zlib1g-dev
fi
echo "Building raylan (swift build)…" >&2
swift build --product raylan
raylan=.build/debug/raylan

gpus=()
if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
    gpus=(--gpus 1)
    echo "A GPU is present: the job reserves one." >&2
else
    echo "No GPU on this machine: running a CPU job." >&2
fi

$raylan status
$raylan job submit --working-dir examples/hello "${gpus[@]}" -- python main.py
$raylan down
