#!/usr/bin/env bash
# Runs the whole test suite on a fresh machine: Python environments, the cluster side's pytest suite,
# the Swift build, then the Swift tests, which start (and stop) their own private local Ray clusters:
# 2.60 plain, 2.60 with token auth, 2.45, and a head and a worker host on a simulated LAN (network
# namespaces; skipped with the reason when not root).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/opt/swift/usr/bin:$PATH"

scripts/setup-python.sh --with-ray245
# Debian packages the build and the tests use: zlib (ZIPFoundation links it on Linux), libjpeg-turbo's
# TurboJPEG (the client-side downscale of JPEGs before sending, on Linux); iproute2,
# util-linux, nftables and procps for the simulated-LAN tests (network namespaces, a firewall rule); Chromium for
# the view's browser test.
if [ "$(uname)" = Linux ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    has() { command -v "$1" >/dev/null || [ -x "/usr/sbin/$1" ] || [ -x "/sbin/$1" ]; }
    missing=()
    [ -f /usr/include/zlib.h ] || missing+=(zlib1g-dev)
    [ -f /usr/include/turbojpeg.h ] || missing+=(libturbojpeg0-dev)
    { has ip && has ss; } || missing+=(iproute2)
    { has nsenter && has unshare; } || missing+=(util-linux)
    has nft || missing+=(nftables)
    has ps || missing+=(procps)
    # Packet captures on the simulated LAN (no secret crosses it in clear).
    has tcpdump || missing+=(tcpdump)
    # Headless Chromium for the view's browser test (scripts/browser_check.py).
    { has chromium || has chromium-browser || has google-chrome; } || missing+=(chromium)
    if [ ${#missing[@]} -gt 0 ]; then
        echo "Installing ${missing[*]} (apt)…" >&2
        apt-get update -qq && apt-get install -y -qq "${missing[@]}" >/dev/null
    fi
fi
echo "Format (swift format lint --strict, the repo's .swift-format)…" >&2
swift format lint --strict --recursive Sources Tests examples Package.swift
# The Swift build runs beside the pytest phases at the lowest priority, mostly on the CPU they leave idle (their
# Ray clusters wait often): pytest runs a little slower (here 420 s and 144 s, against about 340 s and 100 s
# alone), and the build is done or nearly done when pytest ends.
# Its own process group where setsid exists (Linux; macOS has none), ended with it on any early exit; its
# output is in .build/test-build.log.
mkdir -p .build
echo "Building (swift build --build-tests, beside pytest at nice 19; log: .build/test-build.log)…" >&2
if command -v setsid >/dev/null; then
    setsid nice -n 19 swift build --build-tests >.build/test-build.log 2>&1 &
    build=$!
    trap 'kill -TERM -- "-$build" 2>/dev/null || true' EXIT
else
    nice -n 19 swift build --build-tests >.build/test-build.log 2>&1 &
    build=$!
    trap 'kill -TERM "$build" 2>/dev/null || true' EXIT
fi
echo "Cluster side (pytest cluster/tests)…" >&2
.venv/bin/python -m pytest -q cluster/tests
# On Ray 2.45 only what touches Ray's API: the Ray Data sessions and a video upload through a Serve handle
# (the other video tests run the session without Ray; the Swift suite runs a tracked video on a 2.45 cluster).
echo "Cluster side on Ray 2.45 (the Ray Data sessions, a video through Serve)…" >&2
.venv-ray245/bin/python -m pytest -q cluster/tests/test_dataset.py \
    cluster/tests/test_video.py::test_upload_in_chunks_through_a_serve_application
echo "Waiting for the Swift build…" >&2
if ! wait "$build"; then
    tail -n 60 .build/test-build.log >&2
    echo "swift build --build-tests failed (the whole log: .build/test-build.log)" >&2
    exit 1
fi
trap - EXIT
tail -n 1 .build/test-build.log >&2
swift test --skip-build
