#!/usr/bin/env bash
# Retrain and redeploy, safe to start from cron after graders annotate more images:
#   1. train — fine-tune the active model (or train ARCH from its initialisation when none is active) on the
#      annotated set (by default the graders' annotations registered in the database: `annotations import`); a run killed half-way is resumed from its last checkpoint when the script starts again;
#   2. evaluate — the candidate and the active model on the same validation images (official mAUPR/mIoU, exact AP);
#   3. promote the candidate only if it is better; the next nightly run screens with whatever is active.
#
#   pipelines/retrain.sh [more `fundus-screen train` options]                 (the database's annotations)
#   TRAIN_DATA=/data/annotated VAL_DATA=/data/val pipelines/retrain.sh [...]  (folders)
#
# Settings (environment): TRAIN_DATA, VAL_DATA (default db:train and db:validation, the annotated archive images;
# or folders in IDRiD, DDR or nnU-Net layout), ITERATIONS (default 40000),
# ACCUMULATE (passes per step, default 4: the official effective batch), ARCH (when no model is active; default
# w48-C), NAME (model version name; default retrain-<UTC date>, so a second start the same day resumes),
# METRIC (compared for promotion; default mAP, the exact mean average precision), FUNDUS_STATE_DIR, DATABASE_URL or PG*, FUNDUS_BIN (the binary).
# Exit status: 0 promoted, 3 trained but kept the active model (not better), anything else: failure.
set -euo pipefail

TRAIN_DATA=${TRAIN_DATA:-db:train}
VAL_DATA=${VAL_DATA:-db:validation}
# Paths the caller gave are relative to where it stands, not to the checkout (db:… names the database).
case $TRAIN_DATA in db:*) ;; *) TRAIN_DATA=$(realpath -m "$TRAIN_DATA") ;; esac
case $VAL_DATA in db:*) ;; *) VAL_DATA=$(realpath -m "$VAL_DATA") ;; esac
[ -n "${FUNDUS_STATE_DIR:-}" ] && FUNDUS_STATE_DIR=$(realpath -m "$FUNDUS_STATE_DIR")
[ -n "${FUNDUS_BIN:-}" ] && FUNDUS_BIN=$(realpath -m "$FUNDUS_BIN")
cd "$(dirname "$0")/.."
STATE=${FUNDUS_STATE_DIR:-$PWD/.fundus-screen}
BIN=${FUNDUS_BIN:-$PWD/.build/release/fundus-screen}
ITERATIONS=${ITERATIONS:-40000}
ACCUMULATE=${ACCUMULATE:-4}
ARCH=${ARCH:-w48-C}
NAME=${NAME:-retrain-$(date -u +%Y%m%d)}
METRIC=${METRIC:-mAP}
export FUNDUS_STATE_DIR=$STATE
mkdir -p "$STATE"

exec 9>"$STATE/retrain.lock"
if ! flock -n 9; then
    echo "retrain: another retraining holds $STATE/retrain.lock; not starting a second one" >&2
    exit 0
fi

[ -x "$BIN" ] || bash scripts/setup.sh

# `model list` columns: id status name architecture mAUPR mIoU mAP.
registered() { "$BIN" model list | awk -v n="$1" 'NR > 1 && $3 == n { found = 1 } END { exit !found }'; }
active=$("$BIN" model list | awk 'NR > 1 && $2 == "active" { print $3 }')

if registered "$NAME"; then
    echo "retrain: $NAME is already trained and registered; going on to promotion"
else
    if [ -n "$active" ]; then
        echo "retrain: fine-tuning the active model $active as $NAME"
        start=(--from "$active")
    else
        echo "retrain: no active model; training $ARCH from its initialisation as $NAME"
        start=(--arch "$ARCH")
    fi
    "$BIN" train --data "$TRAIN_DATA" --val "$VAL_DATA" "${start[@]}" --iterations "$ITERATIONS" \
        --accumulate "$ACCUMULATE" --name "$NAME" --work-dir "$STATE/training/$NAME" "$@"
fi

echo "retrain: promotion ($METRIC, against ${active:-no active model})"
set +e
"$BIN" model promote "$NAME" --metric "$METRIC"
status=$?
set -e
case $status in
    0) echo "retrain: $NAME is now the active model"; exit 0 ;;
    3) echo "retrain: kept ${active:-the active model}; $NAME stays a candidate"; exit 3 ;;
    *) echo "retrain: promotion failed (status $status)" >&2; exit "$status" ;;
esac
