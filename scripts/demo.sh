#!/usr/bin/env bash
# The main job on a fresh machine: build RayLAN, start the embedded local Ray, deploy the shipped
# detector (samples' model, YOLO11n on synthetic shapes) as a Ray Serve service, detect objects in
# samples/, and write annotated images and a report — with a GPU per replica where this machine has one.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/opt/swift/usr/bin:$PATH"

scripts/setup-python.sh
# Debian packages the build needs on Linux: zlib (ZIPFoundation) and libjpeg-turbo's TurboJPEG (raylan detect
# shrinks JPEGs before sending them).
if [ "$(uname)" = Linux ] && command -v apt-get >/dev/null; then
    missing=()
    [ -f /usr/include/zlib.h ] || missing+=(zlib1g-dev)
    [ -f /usr/include/turbojpeg.h ] || missing+=(libturbojpeg0-dev)
    if [ ${#missing[@]} -gt 0 ]; then
        apt-get update -qq && apt-get install -y -qq "${missing[@]}"
    fi
fi
echo "Building raylan (swift build)…" >&2
swift build --product raylan
raylan=.build/debug/raylan

$raylan status
$raylan detect samples/ --out demo-out --annotate --report --format coco
echo
echo "Annotated images: demo-out/annotated/   Report: demo-out/report.html   Detections: demo-out/detections.jsonl"
echo "The service and the local Ray keep running for more 'raylan detect' runs; stop both with: $raylan down"
