#!/usr/bin/env bash
# Installs what fundus-screen needs on a fresh Debian 12 machine (root, Swift toolchain present) and builds it.
# Safe to run again: it installs only what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGES=(libopenblas-dev libdnnl-dev libjpeg62-turbo-dev libpng-dev libtiff-dev libpq-dev postgresql pkg-config
          libdcmtk-dev dcmtk libjpeg-turbo-progs)
missing=()
for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "setup: installing ${missing[*]}"
    SUDO=""
    [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    $SUDO apt-get update -qq
    # The Debian postgresql package would start a cluster of its own; we run our own servers, so keep it from starting.
    DEBIAN_FRONTEND=noninteractive RUNLEVEL=1 $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

if [ "${1:-}" != "--no-build" ]; then
    swift build -c "${FUNDUS_BUILD_CONFIG:-release}"
fi
