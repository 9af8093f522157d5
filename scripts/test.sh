#!/usr/bin/env bash
# Runs the whole test suite on a fresh machine: Python environments, the cluster side's pytest suite,
# the Swift build, then the Swift tests, which start (and stop) their own private local Ray clusters:
# 2.60 plain, 2.60 with token auth, 2.45.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/opt/swift/usr/bin:$PATH"

scripts/setup-python.sh --with-ray245
# ZIPFoundation links zlib on Linux.
if [ "$(uname)" = Linux ] && [ ! -f /usr/include/zlib.h ] && command -v apt-get >/dev/null; then
    apt-get update -qq && apt-get install -y -qq zlib1g-dev
fi
echo "Cluster side (pytest cluster/tests)…" >&2
.venv/bin/python -m pytest -q cluster/tests
echo "Building (swift build --build-tests)…" >&2
swift build --build-tests
swift test --skip-build
