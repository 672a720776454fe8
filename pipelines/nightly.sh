#!/usr/bin/env bash
# The nightly screening run, safe to start from cron:
#   import the files that are new under the archive root, screen everything queued, write reports.
# A second copy started while one runs exits at once (an flock on the state folder).
#
#   ARCHIVE_ROOT=/data/fundus OUT=/data/screening pipelines/nightly.sh
#
# Settings (environment): ARCHIVE_ROOT (required), OUT (masks and reports; default ./nightly-out),
# FUNDUS_STATE_DIR (embedded database and lock; default ./.fundus-screen), DATABASE_URL or PG* (a shared database;
# default: the embedded one), CONCURRENCY (images in flight, default 3), FUNDUS_BIN (the binary).
set -euo pipefail
cd "$(dirname "$0")/.."

: "${ARCHIVE_ROOT:?set ARCHIVE_ROOT to the folder of fundus photographs}"
OUT=${OUT:-$PWD/nightly-out}
STATE=${FUNDUS_STATE_DIR:-$PWD/.fundus-screen}
BIN=${FUNDUS_BIN:-$PWD/.build/release/fundus-screen}
CONCURRENCY=${CONCURRENCY:-3}
mkdir -p "$STATE" "$OUT"

exec 9>"$STATE/nightly.lock"
if ! flock -n 9; then
    echo "nightly: another nightly run holds $STATE/nightly.lock; not starting a second one" >&2
    exit 0
fi

[ -x "$BIN" ] || bash scripts/setup.sh

started=$(date -u +%Y-%m-%dT%H:%M:%SZ)
echo "nightly: $started importing new images from $ARCHIVE_ROOT"
"$BIN" archive import "$ARCHIVE_ROOT"
echo "nightly: screening"
"$BIN" screen --masks "$OUT/masks" --concurrency "$CONCURRENCY"
if "$BIN" --help | grep -qE "^  report( |$)"; then
    echo "nightly: writing reports"
    "$BIN" report --since "$started" -o "$OUT/reports"
fi
echo "nightly: done; masks in $OUT/masks, reports in $OUT/reports"
