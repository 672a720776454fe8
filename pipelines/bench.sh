#!/usr/bin/env bash
# Throughput of the screening pipeline on full-size photographs (release build):
#   images/hour on CORES cores, the CPU share of each stage, and how close a run gets to the network alone.
#
#   pipelines/bench.sh                      # the 14 IDRiD photographs of ../shared, 2 cores
#   IMAGES=/data/sample CORES=4 pipelines/bench.sh
#   SCREEN_ARGS=--one-scale pipelines/bench.sh   # extra options for screen (here: MA not read at 1.5×)
#
# The model: models/default when it exists, else a freshly initialised W18-small M2MRF-C (random weights cost the
# same time as trained ones; ARCH=w48-C etc. picks another). The run uses its own embedded database under a
# temporary folder, stopped and removed at the end (KEEP=1 keeps the folder: masks, overlays, findings, logs).
set -euo pipefail
cd "$(dirname "$0")/.."

CORES=${CORES:-2}
# oneDNN's OpenMP threads spin between parallel regions by default (libgomp reads this at load time, so it is
# set here, not in the program): on a 2-core machine the spinning took half the process CPU and slowed the other
# stages and the network itself (14 IDRiD photographs, W18-small: 2.2–2.5 CPU-s per image passive vs 3.9 active,
# 1400–1630 images/hour vs 870; the network alone 1.3 s vs 2.75 s per image).
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}
IMAGES=${IMAGES:-$(cd .. && pwd)/shared/data/idrid/images}
ARCH=${ARCH:-w18-small-C}
CONCURRENCY=${CONCURRENCY:-3}
BIN=${FUNDUS_BIN:-$PWD/.build/release/fundus-screen}

[ -d "$IMAGES" ] || { echo "bench: no photographs at $IMAGES (set IMAGES)" >&2; exit 1; }
if [ -z "${FUNDUS_BIN:-}" ]; then
    echo "bench: release build"
    swift build -c release --product fundus-screen 2>&1 | tail -n 1
fi

WORK=$(mktemp -d /tmp/fundus-bench-XXXXXX)
chmod 755 "$WORK"   # the embedded PostgreSQL runs as its own user (when we are root) and must reach its folder
stop_server() {
    # The embedded server outlives each command (the next one reuses it); this benchmark's is stopped here.
    local pidfile="$WORK/state/postgres/data/postmaster.pid"
    if [ -f "$pidfile" ]; then
        local pid
        pid=$(head -n 1 "$pidfile")
        kill -INT "$pid" 2>/dev/null || true   # fast shutdown
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    fi
    if [ "${KEEP:-0}" = 1 ]; then echo "bench: kept $WORK"; else rm -rf "$WORK"; fi
}
trap stop_server EXIT

# Pin to the first CORES cores when the machine has more; the network's OpenMP team follows the affinity mask.
pin=()
if [ "$(nproc --all)" -gt "$CORES" ] && command -v taskset >/dev/null; then
    pin=(taskset -c "0-$((CORES - 1))")
fi
cores_note="$CORES cores"
[ ${#pin[@]} -eq 0 ] && cores_note="$(nproc) cores (the whole machine)"

if [ -f models/default/metadata.json ]; then
    MODEL=$PWD/models/default
    echo "bench: model models/default"
else
    MODEL=$WORK/model
    "$BIN" model init --arch "$ARCH" --out "$MODEL" --name "bench-$ARCH" >/dev/null
    echo "bench: no models/default; freshly initialised $ARCH (random weights: timing only)"
fi

count=$(find "$IMAGES" -maxdepth 1 -type f \( -iname '*.jpg' -o -iname '*.jpeg' -o -iname '*.png' -o -iname '*.tif' -o -iname '*.tiff' \) | wc -l)
echo "bench: screening $count photographs from $IMAGES on $cores_note, $CONCURRENCY in flight, OMP_WAIT_POLICY=$OMP_WAIT_POLICY (load now: $(cut -d' ' -f1-3 /proc/loadavg))"
"${pin[@]}" "$BIN" screen -i "$IMAGES" -o "$WORK/out" --model "$MODEL" --state-dir "$WORK/state" \
    --concurrency "$CONCURRENCY" --log-level warning ${SCREEN_ARGS:-} >"$WORK/screen.txt" 2>"$WORK/screen.log" || {
    echo "bench: the screening run failed:" >&2; tail -n 20 "$WORK/screen.log" >&2; exit 1; }
sed -n '1,/process CPU/p' "$WORK/screen.txt"

# The network alone on the input a 4288×2848 photograph becomes (its square field-of-view crop at the model's
# scale: 960×960 for IDRiD scale), same cores.
side=$(sed -n 's/.*"shortEdge" *: *\([0-9]*\).*/\1/p' "$MODEL/metadata.json" | head -n 1)
side=${side:-960}
echo "bench: the network alone at ${side}×${side}"
time_args=()
case " ${SCREEN_ARGS:-} " in *" --one-scale "*) time_args+=(--one-scale) ;; esac
case " ${SCREEN_ARGS:-} " in *" --one-model "*) time_args+=(--one-model) ;; esac
"${pin[@]}" "$BIN" model time --weights "$MODEL" ${time_args[@]+"${time_args[@]}"} --height "$side" --width "$side" --runs 3 >"$WORK/time.txt" 2>&1 || {
    echo "bench: timing the network failed:" >&2; tail -n 20 "$WORK/time.txt" >&2; exit 1; }
grep -E "^(architecture|seconds per image|work|peak RSS)" "$WORK/time.txt"

awk -v cores="$CORES" '
    FNR == 1 { file++ }
    file == 1 && /^screened/ {
        for (i = 1; i <= NF; i++) {
            if ($i == "screened") s = $(i + 1) + 0
            if ($i == "ungradable") u = $(i + 1) + 0
            if ($i == "failed") f = $(i + 1) + 0
            if ($i == "in") secs = $(i + 1) + 0
        }
    }
    file == 1 && $1 == "infer" { inferWall = $2 }
    file == 1 && $1 == "process" && $2 == "CPU" { cpu = $3 + 0 }
    file == 2 && /^seconds per image/ { pure = $5 + 0 }
    END {
        n = s + u
        if (n == 0 || secs == 0) { print "bench: no image was screened"; exit 1 }
        per = secs / n
        printf "\nresult: %d images (%d failed) in %.1f s: %.0f images/hour on %s cores, %.2f s per image\n", n, f, secs, 3600 / per, cores, per
        if (cpu > 0) {
            # What the run got of the cores: below the core count when other work shares the machine.
            printf "        CPU %.2f s per image, %.2f cores busy on average; with %s cores to itself at most %.0f images/hour\n", cpu / n, cpu / secs, cores, 3600 * cores / (cpu / n)
        }
        if (pure > 0) {
            printf "        network alone %.2f s per image: the pipeline takes %.2fx that (1.00 = decode, masks and database all hidden behind inference)\n", pure, per / pure
            printf "        inside the run the infer stage took %.2f s per image (slower than alone when the other stages compete for the cores)\n", inferWall / n
        }
    }' "$WORK/screen.txt" "$WORK/time.txt"
