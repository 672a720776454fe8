#!/usr/bin/env bash
# The main job on a fresh machine: packages, build, and as far as the screening pipeline goes so far.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.build/release/fundus-screen --version
