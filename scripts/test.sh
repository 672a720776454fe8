#!/usr/bin/env bash
# Sets up everything a fresh machine needs and runs all tests. CI (.ci/run) calls exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --no-build
swift build --build-tests
swift test --skip-build --parallel 2>&1 | tee .build/test-output.txt
