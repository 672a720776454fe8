#!/usr/bin/env bash
# Reliability under faults, at scale: a real archive screened by three workers on one real PostgreSQL while the
# machine misbehaves, then every invariant checked in SQL and on disk.
#
#   pipelines/chaos.sh                        # defaults: 400 jobs, 3 workers, 100 kills over 150 s of faults
#   pipelines/chaos.sh --duration 120 --jobs 150 --kills 40 --keep
#
# What happens (release build; the embedded PostgreSQL of `fundus-screen db start`, in a temporary state folder):
#   - the archive: the photographs of ../shared/data (IDRiD, HRF; or the demo's synthetic ones when absent),
#     downscaled to about 500 px wide, each variant with different bytes (a numbered JPEG comment / PNG text chunk);
#   - the model: models/default's weights, screened at a short edge of --scale pixels (default 480: the photographs'
#     field of view is about that size, so a 960 input would only upsample them);
#   - workers connect over loopback TCP as a password-protected role (scram-sha-256), never the trusted one;
#   - during --duration seconds: --kills SIGKILLs of random workers (each replaced at once), two PostgreSQL
#     restarts (`pg_ctl restart -m immediate`), one period where the masks folder refuses writes (chmod; the
#     workers run without CAP_DAC_OVERRIDE so that root obeys it), one where it is full (a full tmpfs over it);
#   - then the workers drain the queue, and the checks run. Exit status 1 when any invariant fails.
#
# Needs root (tmpfs mount, setpriv), djpeg/cjpeg (libjpeg-turbo-progs) for the photographs, python3, psql.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

DURATION=150
JOBS=400
KILLS=100
WORKERS=3
SCALE=480
DRAIN_TIMEOUT=600
KEEP=0
usage() { sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; }
while [ $# -gt 0 ]; do
    case "$1" in
        --duration) DURATION=$2; shift 2 ;;
        --jobs) JOBS=$2; shift 2 ;;
        --kills) KILLS=$2; shift 2 ;;
        --workers) WORKERS=$2; shift 2 ;;
        --scale) SCALE=$2; shift 2 ;;
        --drain-timeout) DRAIN_TIMEOUT=$2; shift 2 ;;
        --keep) KEEP=1; shift ;;
        -h|--help) usage; exit 0 ;;
        *) echo "chaos: unknown argument $1" >&2; usage >&2; exit 2 ;;
    esac
done
[ "$(id -u)" = 0 ] || { echo "chaos: needs root (tmpfs mount, dropping capabilities)" >&2; exit 2; }
for tool in python3 setpriv mount psql; do
    command -v "$tool" >/dev/null || { echo "chaos: $tool is missing" >&2; exit 2; }
done

export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}
BIN=${FUNDUS_BIN:-$ROOT/.build/release/fundus-screen}
if [ -z "${FUNDUS_BIN:-}" ]; then
    echo "chaos: release build"
    swift build -c release --product fundus-screen 2>&1 | tail -n 1
fi

WORK=$(mktemp -d /tmp/fundus-chaos-XXXXXX)
chmod 755 "$WORK"   # the embedded PostgreSQL runs as its own user and must reach its folder
STATE=$WORK/state
MASKS=$WORK/masks
ARCHIVE=$WORK/archive
LOGS=$WORK/logs
mkdir -p "$MASKS" "$ARCHIVE" "$LOGS"
OUTPUT=$LOGS/chaos.txt
exec > >(tee "$OUTPUT") 2>&1

PGDATA_DIR=$STATE/postgres/data
mounted=0
cleanup() {
    set +e
    for pid in "${worker_pid[@]:-}"; do [ -n "$pid" ] && kill -9 "$pid" 2>/dev/null; done
    [ "$mounted" = 1 ] && umount -l "$MASKS"
    chmod -R u+w "$MASKS" 2>/dev/null
    "$BIN" db stop --state-dir "$STATE" >/dev/null 2>&1
    if [ -f "$PGDATA_DIR/postmaster.pid" ]; then kill -INT "$(head -n 1 "$PGDATA_DIR/postmaster.pid")" 2>/dev/null; fi
    if [ "$KEEP" = 1 ]; then echo "chaos: kept $WORK"; else sleep 1; rm -rf "$WORK"; fi
}
trap cleanup EXIT

# --- the database: embedded server, schema, a password-protected role for the workers ---------------------------
"$BIN" db start --state-dir "$STATE" --log-level warning >"$LOGS/db-start.txt"
"$BIN" db migrate --state-dir "$STATE" --log-level warning >>"$LOGS/db-start.txt"
ADMIN_URL=$("$BIN" db url --state-dir "$STATE" --log-level warning)
PORT=$(sed -n 's/.*:\([0-9]*\)\/.*/\1/p' <<<"$ADMIN_URL")
PGUSER_OS=$(stat -c %U "$PGDATA_DIR")
PGBIN=$(dirname "$(readlink -f "$(ls /usr/lib/postgresql/*/bin/pg_ctl | sort -V | tail -n 1)")")
PASSWORD="chaos-$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')"
ROLE=chaos_worker
psql_admin() { psql "$ADMIN_URL" -X -q -v ON_ERROR_STOP=1 "$@"; }
psql_admin -c "CREATE ROLE $ROLE LOGIN PASSWORD '$PASSWORD'" \
    -c "GRANT USAGE ON SCHEMA public TO $ROLE" \
    -c "GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO $ROLE" \
    -c "GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO $ROLE"
# The embedded server trusts only its own user; this role must give its password (SCRAM) over loopback TCP.
printf 'host all %s 127.0.0.1/32 scram-sha-256\n' "$ROLE" >>"$PGDATA_DIR/pg_hba.conf"
psql_admin -c "SELECT pg_reload_conf()" >/dev/null
URL="postgresql://$ROLE:$PASSWORD@127.0.0.1:$PORT/fundus"
# A psql for the checks, as the admin role, that survives the server being away (empty output).
sql() { psql "$ADMIN_URL" -X -q -A -t -v ON_ERROR_STOP=1 -c "$1" 2>/dev/null || true; }

# --- the archive ----------------------------------------------------------------------------------------------------
bases=()
for dir in ../shared/data/idrid/images ../shared/data/hrf/images; do
    [ -d "$dir" ] && while IFS= read -r f; do bases+=("$f"); done < <(find "$dir" -maxdepth 1 -type f -iname '*.jpg' | sort)
done
BASEDIR=$WORK/bases
mkdir -p "$BASEDIR"
if [ ${#bases[@]} -gt 0 ] && command -v djpeg >/dev/null && command -v cjpeg >/dev/null; then
    i=0
    for f in "${bases[@]}"; do
        i=$((i + 1))
        # 1/4: IDRiD 1072x712, HRF 876x584; the field of view stays above the 500 px gradability minimum.
        djpeg -scale 1/4 "$f" | cjpeg -quality 90 >"$BASEDIR/$(printf 'P%02d' "$i").jpg"
    done
    source_note="${#bases[@]} photographs of ../shared/data (IDRiD, HRF), downscaled 1/4"
else
    [ ${#bases[@]} -gt 0 ] && echo "chaos: djpeg/cjpeg missing (apt-get install libjpeg-turbo-progs): using synthetic photographs"
    python3 - "$BASEDIR" <<'PY'
# Small fundus-like PNGs (the demo's recipe, 900x600: the field of view above the 500 px gradability minimum): a round field of view, an optic disc, dark and bright spots.
import math, os, random, struct, sys, zlib
def png(path, w, h, rows):
    def chunk(k, d): return struct.pack(">I", len(d)) + k + d + struct.pack(">I", zlib.crc32(k + d) & 0xffffffff)
    raw = b"".join(b"\x00" + bytes(r) for r in rows)
    open(path, "wb").write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
                           + chunk(b"IDAT", zlib.compress(raw, 6)) + chunk(b"IEND", b""))
for seed in range(1, 13):
    rnd, w, h = random.Random(seed), 900, 600
    cx, cy, r = w / 2, h / 2, h * 0.47
    rows = []
    for y in range(h):
        row = bytearray(3 * w)
        for x in range(w):
            q = ((x - cx) ** 2 + (y - cy) ** 2) / (r * r)
            if q <= 1:
                s = 1 - 0.45 * q
                row[3 * x:3 * x + 3] = bytes((int(200 * s), int(85 * s), int(35 * s)))
        rows.append(row)
    for _ in range(rnd.randint(4, 12)):
        a, d, sr = rnd.uniform(0, 6.28), rnd.uniform(0.1, 0.8) * r, rnd.uniform(2, 6)
        sx, sy = cx + d * math.cos(a), cy + d * math.sin(a)
        colour = (90, 12, 8) if rnd.random() < 0.6 else (235, 210, 90)
        for y in range(int(sy - sr), int(sy + sr) + 1):
            for x in range(int(sx - sr), int(sx + sr) + 1):
                if (x - sx) ** 2 + (y - sy) ** 2 <= sr * sr:
                    rows[y][3 * x:3 * x + 3] = bytes(colour)
    png(os.path.join(sys.argv[1], "P%02d.png" % seed), w, h, rows)
PY
    source_note="12 synthetic photographs (no ../shared/data or no djpeg)"
fi
# Variants with distinct bytes: a numbered comment (JPEG COM segment after SOI; PNG tEXt chunk before IEND).
python3 - "$BASEDIR" "$ARCHIVE" "$JOBS" <<'PY'
import os, struct, sys, zlib
src, dst, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
bases = sorted(os.listdir(src))
for k in range(n):
    name = bases[k % len(bases)]
    data = open(os.path.join(src, name), "rb").read()
    note = b"fundus-screen chaos variant %d" % k
    if name.endswith(".jpg"):
        data = data[:2] + b"\xff\xfe" + struct.pack(">H", len(note) + 2) + note + data[2:]
    else:
        body = b"Comment\x00" + note
        chunk = struct.pack(">I", len(body)) + b"tEXt" + body + struct.pack(">I", zlib.crc32(b"tEXt" + body) & 0xffffffff)
        data = data[:-12] + chunk + data[-12:]
    stem, ext = os.path.splitext(name)
    eye = "R" if k % 2 == 0 else "L"
    open(os.path.join(dst, "%s_%s_v%03d%s" % (stem, eye, k, ext)), "wb").write(data)
PY
distinct=$(find "$ARCHIVE" -type f -exec sha256sum {} + | cut -d' ' -f1 | sort -u | wc -l)
echo "chaos: archive of $(ls "$ARCHIVE" | wc -l) files ($distinct distinct contents) from $source_note"

# --- the model: the shipped weights at the chosen scale ------------------------------------------------------------
MODEL=$WORK/model
mkdir -p "$MODEL"
cp models/default/*.safetensors "$MODEL/"
python3 - models/default/metadata.json "$MODEL/metadata.json" "$SCALE" <<'PY'
import json, sys
card = json.load(open(sys.argv[1]))
s = int(sys.argv[3])
card["input_scale"]["shortEdge"] = s
card["input_scale"]["longEdge"] = s * 3 // 2
card["version"] = card["version"] + "-chaos%d" % s
json.dump(card, open(sys.argv[2], "w"), indent=2)
PY
export FUNDUS_MODEL=$MODEL
# Register and activate it (a run on a database with no active model does), then import and enqueue.
"$BIN" screen --database "$URL" --masks "$MASKS" --limit 0 --log-level warning >"$LOGS/register.txt" 2>&1 || {
    echo "chaos: registering the model failed:"; cat "$LOGS/register.txt"; exit 1; }
"$BIN" archive import "$ARCHIVE" --database "$URL" --log-level warning | tee "$LOGS/import.txt" | head -n 3
queued=$(sql "SELECT count(*) FROM jobs WHERE kind = 'screen'")
echo "chaos: $queued jobs queued; $WORKERS workers; over $DURATION s: $KILLS SIGKILLs, 2 PostgreSQL restarts, masks refusing writes, masks full"

# --- workers ---------------------------------------------------------------------------------------------------------
worker_pid=()
spawned=0
start_worker() {
    local slot=$1
    spawned=$((spawned + 1))
    # Without CAP_DAC_OVERRIDE root obeys file modes, so the chmod period refuses the workers' writes.
    setpriv --bounding-set -dac_override,-dac_read_search -- \
        "$BIN" screen --database "$URL" --masks "$MASKS" --concurrency 2 --lease 10 --log-level debug \
        >"$LOGS/worker-$spawned.out" 2>"$LOGS/worker-$spawned.log" &
    worker_pid[$slot]=$!
}
alive() { [ -n "${worker_pid[$1]:-}" ] && kill -0 "${worker_pid[$1]}" 2>/dev/null; }

# Milliseconds since the start from bash's own clock: the loop below must keep up with a kill every second or two.
ms() { local t=${EPOCHREALTIME/./}; echo $(( t / 1000 )); }
START_MS=$(ms)
now() { local e=$(( $(ms) - START_MS )); printf '%d.%d' $(( e / 1000 )) $(( e % 1000 / 100 )); }
for s in $(seq 0 $((WORKERS - 1))); do start_worker "$s"; done

kills=0; restarts=0; refused=0; full=0
restart_db() {
    restarts=$((restarts + 1))
    echo "chaos: $(now) s: PostgreSQL restart $restarts (immediate)"
    runuser -u "$PGUSER_OS" -- "$PGBIN/pg_ctl" restart -m immediate -D "$PGDATA_DIR" -w -t 60 -s \
        -l "$STATE/postgres/server.log" >>"$LOGS/pg_ctl.txt" 2>&1 || echo "chaos: pg_ctl restart said $?"
}
refuse_writes() {
    echo "chaos: $(now) s: masks folder refuses writes (chmod a-w)"
    find "$MASKS" -type d -exec chmod a-w {} +
    refused=1
}
allow_writes() { find "$MASKS" -type d -exec chmod u+w {} +; echo "chaos: $(now) s: masks folder writable again"; }
fill_disk() {
    echo "chaos: $(now) s: masks folder full (tmpfs, ENOSPC)"
    mount -t tmpfs -o size=256k,nr_inodes=16,mode=0777 chaos-full "$MASKS"
    mounted=1
    dd if=/dev/zero of="$MASKS/.chaos-filler" bs=4k 2>/dev/null || true
    while mkdir "$MASKS/.chaos-inode-$RANDOM" 2>/dev/null; do :; done   # no inode left either
    full=1
}
unfill_disk() {
    # Lazy: a worker may hold a file open in it; the tmpfs stays full until the last one closes, so no write lands.
    umount -l "$MASKS"; mounted=0
    echo "chaos: $(now) s: masks folder has room again"
}
elapsed_int() { echo $(( ($(ms) - START_MS) / 1000 )); }

# Fault times (seconds from the start).
t_restart1=$((DURATION * 20 / 100)); t_refuse=$((DURATION * 30 / 100)); t_allow=$((DURATION * 40 / 100))
t_restart2=$((DURATION * 55 / 100)); t_full=$((DURATION * 65 / 100)); t_unfull=$((DURATION * 75 / 100))
interval_ms=$((DURATION * 1000 / (KILLS + 1)))
next_kill_ms=$interval_ms
done_events=""
unfinished=$queued
last_check=0
deadline=$((DURATION + DRAIN_TIMEOUT))
while true; do
    e=$(elapsed_int)
    e_ms=$(( $(ms) - START_MS ))
    if [ "$kills" -lt "$KILLS" ] && [ "$e_ms" -ge "$next_kill_ms" ]; then
        slot=$((RANDOM % WORKERS))
        for _ in $(seq "$WORKERS"); do alive "$slot" && break; slot=$(((slot + 1) % WORKERS)); done
        if alive "$slot"; then
            kill -9 "${worker_pid[$slot]}" 2>/dev/null || true
            wait "${worker_pid[$slot]}" 2>/dev/null || true
            kills=$((kills + 1))
            start_worker "$slot"
            next_kill_ms=$((next_kill_ms + interval_ms))
            [ $((kills % 20)) = 0 ] && echo "chaos: $(now) s: $kills workers killed so far; unfinished jobs $unfinished"
        fi
    fi
    for event in restart1 refuse allow restart2 full unfull; do
        case " $done_events " in *" $event "*) continue ;; esac
        var=t_$event
        [ "$e" -ge "${!var}" ] || continue
        case $event in
            restart1|restart2) restart_db ;;
            refuse) refuse_writes ;;
            allow) allow_writes ;;
            full) fill_disk ;;
            unfull) unfill_disk ;;
        esac
        done_events="$done_events $event"
    done
    # Respawn workers that exited (a worker that found the database away exits with an error) while work is left.
    if [ $((e - last_check)) -ge 2 ]; then
        last_check=$e
        u=$(sql "SELECT count(*) FROM jobs WHERE state NOT IN ('completed', 'discarded', 'cancelled')")
        [ -n "$u" ] && unfinished=$u
    fi
    faults_over=0
    [ "$kills" -ge "$KILLS" ] && [ "$(wc -w <<<"$done_events")" -ge 6 ] && faults_over=1
    for s in $(seq 0 $((WORKERS - 1))); do
        alive "$s" && continue
        [ -n "${worker_pid[$s]:-}" ] && { wait "${worker_pid[$s]}" 2>/dev/null || true; }
        if [ "$unfinished" != 0 ]; then start_worker "$s"; else worker_pid[$s]=""; fi
    done
    if [ "$unfinished" = 0 ]; then
        any=0; for s in $(seq 0 $((WORKERS - 1))); do alive "$s" && any=1; done
        if [ "$any" = 0 ]; then
            [ "$faults_over" = 1 ] || echo "chaos: $(now) s: the queue drained before the faults were done (more --jobs or a shorter --duration)"
            break
        fi
    fi
    if [ "$e" -ge "$deadline" ]; then echo "chaos: the queue did not drain within $DRAIN_TIMEOUT s after the faults"; break; fi
    sleep 0.1
done
END_MS=$(ms)
# A killed worker's temporary files are removed by the next worker that starts or ends; the last kill may have had
# no successor. One more run, as the next night's would, with nothing to screen.
sleep 6
"$BIN" screen --database "$URL" --masks "$MASKS" --log-level warning >"$LOGS/final-run.txt" 2>&1 || true

# --- the checks ------------------------------------------------------------------------------------------------------
failures=0
check() {  # check NAME ACTUAL EXPECTED
    if [ "$2" = "$3" ]; then printf '  %-58s %s\n' "$1" "$2"
    else printf '  %-58s %s   FAILED (expected %s)\n' "$1" "$2" "$3"; failures=$((failures + 1)); fi
}
total=$(sql "SELECT count(*) FROM jobs WHERE kind = 'screen'")
completed=$(sql "SELECT count(*) FROM jobs WHERE kind = 'screen' AND state = 'completed'")
discarded=$(sql "SELECT count(*) FROM jobs WHERE kind = 'screen' AND state = 'discarded'")
other=$(sql "SELECT count(*) FROM jobs WHERE kind = 'screen' AND state NOT IN ('completed', 'discarded')")
results_off=$(sql "SELECT count(*) FROM jobs j WHERE j.state = 'completed' AND (SELECT count(*) FROM screening_results r
                   WHERE r.image_id = j.image_id AND r.model_version_id = j.model_version_id) <> 1")
results_total=$(sql "SELECT count(*) FROM screening_results")
ungradable=$(sql "SELECT count(*) FROM screening_results WHERE NOT gradable")
retried=$(sql "SELECT count(*) FROM jobs WHERE cardinality(errors) > 0 AND state = 'completed'")
rescues=$(sql "SELECT coalesce(sum((metadata ->> 'rescues')::integer), 0) FROM jobs")
failures_recorded=$(sql "SELECT coalesce(sum(cardinality(errors)), 0) FROM jobs")
sql "SELECT mask_path FROM findings WHERE mask_path IS NOT NULL" | sort >"$WORK/masks-db.txt"
find "$MASKS" -type f -regextype posix-extended -regex '.*_(EX|HE|SE|MA)\.png' | sort >"$WORK/masks-disk.txt"
orphan_masks=$(comm -13 "$WORK/masks-db.txt" "$WORK/masks-disk.txt" | wc -l)
missing_masks=$(comm -23 "$WORK/masks-db.txt" "$WORK/masks-disk.txt" | wc -l)
temporaries=$(find "$MASKS" -name '*.tmp' | wc -l)
gradable_completed=$(sql "SELECT count(*) FROM screening_results WHERE gradable")
findings_rows=$(sql "SELECT count(*) FROM findings")
seconds=$(python3 -c "import sys; print(f'{(int(sys.argv[1]) - int(sys.argv[2])) / 1000:.1f}')" "$END_MS" "$START_MS")
per_hour=$(python3 -c "import sys; print(f'{3600 * int(sys.argv[1]) / float(sys.argv[2]):.0f}')" "${completed:-0}" "$seconds")

echo
echo "chaos: results ($WORKERS workers, $spawned worker processes started, $(nproc) cores)"
check "faults: workers killed (SIGKILL)" "$kills" "$KILLS"
check "faults: PostgreSQL restarts (immediate)" "$restarts" 2
check "faults: masks folder refused writes / was full" "$refused/$full" "1/1"
check "jobs" "$total" "$JOBS"
printf '  %-58s %s\n' "jobs completed" "$completed"
printf '  %-58s %s\n' "jobs discarded" "$discarded"
if [ "${discarded:-0}" != 0 ]; then
    sql "SELECT '    job ' || id || ' (attempt ' || attempt || '/' || max_attempts || '): ' ||
         coalesce((errors[cardinality(errors)]) ->> 'message', '(NO MESSAGE)') FROM jobs WHERE state = 'discarded' ORDER BY id"
    nomsg=$(sql "SELECT count(*) FROM jobs WHERE state = 'discarded' AND coalesce((errors[cardinality(errors)]) ->> 'message', '') = ''")
    check "discarded jobs without a message" "$nomsg" 0
fi
check "jobs in other states" "$other" 0
check "completed jobs without exactly one findings set" "$results_off" 0
check "findings sets (screening results) = completed jobs" "$results_total" "$completed"
printf '  %-58s %s (%s ungradable, %s findings rows)\n' "findings sets" "$results_total" "$ungradable" "$findings_rows"
check "mask files without a finding" "$orphan_masks" 0
check "findings whose mask file is missing" "$missing_masks" 0
check "temporary files left" "$temporaries" 0
printf '  %-58s %s\n' "mask files" "$(wc -l <"$WORK/masks-disk.txt")"
printf '  %-58s %s\n' "failed attempts recorded / jobs rescued from dead workers" "$failures_recorded / $rescues"
printf '  %-58s %s\n' "completed jobs that needed more than one attempt" "$retried"
printf '  %-58s %s\n' "most attempts a completed job needed (limit $(sql "SELECT max(max_attempts) FROM jobs"))" \
    "$(sql "SELECT coalesce(max(attempt), 0) FROM jobs WHERE state = 'completed'")"
printf '  %-58s %s\n' "completed jobs that needed more than 5 attempts" "$(sql "SELECT count(*) FROM jobs WHERE state = 'completed' AND attempt > 5")"
echo "  failed attempts by cause:"
sql "SELECT '    ' || rpad(cause, 56) || ' ' || n FROM (
       SELECT CASE WHEN e ? 'rescued' THEN 'worker killed (lease expired, rescued)'
                   WHEN e ->> 'message' LIKE '%: masks: %' THEN 'masks not written (refused, full)'
                   WHEN e ->> 'message' LIKE '%: store: %' THEN 'results not stored (database away)'
                   ELSE 'other: ' || left(e ->> 'message', 40) END AS cause, count(*) AS n
       FROM jobs, unnest(errors) AS e GROUP BY 1 ORDER BY 2 DESC) AS c"
# Secrets: the password must appear in no output and no log line (workers, imports, the server's log).
leaks=$({ grep -rlF -- "$PASSWORD" "$LOGS" "$STATE/postgres/server.log" 2>/dev/null || true; } | wc -l)
check "files of output or logs showing the role's password" "$leaks" 0
lines=$(cat "$LOGS"/*.log "$LOGS"/*.out "$LOGS"/*.txt 2>/dev/null | wc -l)
printf '  %-58s %s\n' "lines of output and logs searched for the password" "$lines"
printf '  %-58s %s s\n' "total time (start of workers to drained queue)" "$seconds"
printf '  %-58s %s\n' "images/hour under faults" "$per_hour"
if [ "$failures" -gt 0 ]; then
    echo "chaos: FAILED: $failures invariant(s) broken (logs in $WORK/logs; run with --keep to keep them)"
    KEEP=1
    exit 1
fi
echo "chaos: passed"
