#!/usr/bin/env bash
# The demo, from a fresh machine: packages and a release build (scripts/setup.sh), then one screening run in the
# local form on the embedded database:
#   fundus-screen screen -i <sample photographs> -o <output folder>
# and where to look afterwards.
#
#   pipelines/demo.sh [OUTPUT]              # default ./demo-out
#
# The photographs: $SAMPLE_ARCHIVE when set, else the IDRiD images of ../shared/data/idrid/images when present
# (the project cannot ship IDRiD), else a small synthetic archive made here: fundus-like pictures with a circular
# field of view, an optic disc with its vessels, and dark and bright spots, plus a black frame (ungradable; DEMO_SYNTHETIC=1 always uses these),
# and beside them one real photograph: scikit-image's data/retina.jpg (CC0), taken from its wheel with
# `pip download --no-deps scikit-image`, screened as it is and as a DICOM file made from it with DCMTK's img2dcm
# (DEMO_NO_DOWNLOAD=1 skips it; without network the demo says so and goes on with the synthetic pictures).
# The model: models/default (the shipped
# one) when present, else a freshly initialised network, whose findings mean nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
# oneDNN's OpenMP threads spin between parallel regions by default (libgomp reads this at load time, so it is
# set here, not in the program): on a 2-core machine the spinning took half the process CPU and slowed the other
# stages and the network itself (14 IDRiD photographs, W18-small: 2.2–2.5 CPU-s per image passive vs 3.9 active,
# 1400–1630 images/hour vs 870; the network alone 1.3 s vs 2.75 s per image).
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}
OUT=$(mkdir -p "${1:-$ROOT/demo-out}" && cd "${1:-$ROOT/demo-out}" && pwd)
STATE=${FUNDUS_STATE_DIR:-$OUT/.state}

bash scripts/setup.sh
BIN=$ROOT/.build/release/fundus-screen
"$BIN" --version
# Whether this build has a command (`fundus-screen X --help` prints the top-level help, exit 0, for an unknown X).
has_command() { "$BIN" --help | grep -qE "^  $1( |$)"; }

# --- the photographs ----------------------------------------------------------------------------------------------
SAMPLE=${SAMPLE_ARCHIVE:-}
if [ -z "$SAMPLE" ] && [ "${DEMO_SYNTHETIC:-0}" != 1 ] && [ -d "$ROOT/../shared/data/idrid/images" ]; then
    SAMPLE=$(cd "$ROOT/../shared/data/idrid/images" && pwd)
fi
if [ -z "$SAMPLE" ]; then
    SAMPLE=$OUT/sample
    echo "demo: no sample archive given and no IDRiD images beside the checkout: making a synthetic one in $SAMPLE"
    mkdir -p "$SAMPLE"
    python3 - "$SAMPLE" <<'PY'
# Fundus-like pictures from the standard library alone (zlib + struct write PNG): a dark frame, a round field of
# view shaded orange-red with a darker rim and a darker macula, an optic disc as a fundus shows it (about 0.15 of the
# field's diameter, an orange-pink rim around a paler cup, a soft edge, the vessel arcades leaving it), dark red
# spots (haemorrhage-like), tiny dark dots (microaneurysm-like) and small yellow patches (exudate-like). Deterministic.
import math, os, random, struct, sys, zlib

def png(path, width, height, rows):
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xffffffff)
    raw = b"".join(b"\x00" + bytes(r) for r in rows)
    with open(path + ".part", "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
                + chunk(b"IDAT", zlib.compress(raw, 6)) + chunk(b"IEND", b""))
    os.replace(path + ".part", path)

def smooth(edge, d):
    """1 inside, 0 outside, a linear ramp of 4 px across the edge at distance `edge`."""
    return max(0.0, min(1.0, (edge - d) / 4 + 0.5))

def vessels(cx, cy, r, disc, side):
    """The arcades as (points, start width, colour): from the disc, above and below the macula (veins darker and
    wider than arteries), and two shorter nasal vessels. `side` is +1 when the disc lies right of the macula."""
    dx0, dy0 = disc[0] - cx, disc[1] - cy
    out = []
    for up in (-1, 1):
        for b, width, colour in ((0.36 * r, 7.0, (115, 22, 12)), (0.30 * r, 5.0, (160, 42, 22))):
            pts = []
            for i in range(400):
                t = 2.2 * i / 399  # around the macula, opening out as they go (the arcades do not close)
                pts.append((cx + dx0 * math.cos(t), cy + dy0 * math.cos(t) + up * b * math.sin(t) * (1 + 0.3 * t)))
            out.append((pts, width, colour))
        for width, colour, bend in ((5.0, (115, 22, 12), 0.10), (4.0, (160, 42, 22), 0.22)):
            pts = []
            for i in range(200):
                t = i / 199
                pts.append((disc[0] + side * t * 0.45 * r, disc[1] + up * (t * 0.55 * r - bend * r * t * t)))
            out.append((pts, width, colour))
    return out

def fundus(path, seed, width=1536, height=1024):
    rnd = random.Random(seed)
    cx, cy, r = width / 2, height / 2, height * 0.47
    side = 1 if seed % 2 else -1
    disc = (cx + side * 0.5 * r, cy - 0.05 * r, 0.15 * r)
    spots = []  # (x, y, radius, colour)
    for _ in range(rnd.randint(4, 9)):
        a, d = rnd.uniform(0, 2 * math.pi), rnd.uniform(0.1, 0.8) * r
        spots.append((cx + d * math.cos(a), cy + d * math.sin(a), rnd.uniform(6, 16), (90, 12, 8)))
    for _ in range(rnd.randint(8, 20)):
        a, d = rnd.uniform(0, 2 * math.pi), rnd.uniform(0.1, 0.85) * r
        spots.append((cx + d * math.cos(a), cy + d * math.sin(a), rnd.uniform(1.5, 3), (110, 20, 10)))
    for _ in range(rnd.randint(3, 10)):
        a, d = rnd.uniform(0, 2 * math.pi), rnd.uniform(0.15, 0.7) * r
        spots.append((cx + d * math.cos(a), cy + d * math.sin(a), rnd.uniform(3, 8), (235, 210, 90)))
    # Spots keep off the disc (a lesion on the disc is not what this picture is about).
    spots = [s for s in spots if math.hypot(s[0] - disc[0], s[1] - disc[1]) > disc[2] + s[2] + 4]
    img = [[None] * width for _ in range(height)]
    for y in range(height):
        dy = y + 0.5 - cy
        for x in range(width):
            dx = x + 0.5 - cx
            q = (dx * dx + dy * dy) / (r * r)
            if q > 1:
                continue
            shade = 1 - 0.45 * q  # vignetting towards the rim
            mac = 1 - 0.22 * math.exp(-(dx * dx + dy * dy) / (2 * (0.12 * r) ** 2))  # darker macula
            c = [200 * shade * mac, 85 * shade * mac, 35 * shade * mac]
            d = math.hypot(x + 0.5 - disc[0], y + 0.5 - disc[1])
            if d < disc[2] + 4:
                a = smooth(disc[2], d)
                rim = (235, 150, 95)
                cup = (250, 220, 170)
                k = smooth(0.4 * disc[2], d)  # the cup, cup/disc 0.4
                inner = [rim[j] * (1 - k) + cup[j] * k for j in range(3)]
                c = [c[j] * (1 - a) + inner[j] * a for j in range(3)]
            img[y][x] = c
    for pts, w0, colour in vessels(cx, cy, r, disc, side):
        n = len(pts)
        for i, (px, py) in enumerate(pts):
            w = w0 * (1 - 0.65 * i / n) / 2
            for y in range(int(py - w - 1), int(py + w + 2)):
                for x in range(int(px - w - 1), int(px + w + 2)):
                    if 0 <= x < width and 0 <= y < height and img[y][x] is not None:
                        a = 0.85 * smooth(w, math.hypot(x + 0.5 - px, y + 0.5 - py))
                        if a > 0:
                            img[y][x] = [img[y][x][j] * (1 - a) + colour[j] * a for j in range(3)]
    rows = []
    for y in range(height):
        row = bytearray(3 * width)
        for x in range(width):
            c = img[y][x]
            if c is not None:
                row[3 * x:3 * x + 3] = bytes(int(max(0, min(255, v))) for v in c)
        rows.append(row)
    for sx, sy, sr, colour in spots:
        for y in range(int(sy - sr), int(sy + sr) + 1):
            for x in range(int(sx - sr), int(sx + sr) + 1):
                if 0 <= x < width and 0 <= y < height and (x - sx) ** 2 + (y - sy) ** 2 <= sr * sr and rows[y][3 * x] > 0:
                    rows[y][3 * x:3 * x + 3] = bytes(colour)
    png(path, width, height, rows)

out = sys.argv[1]
for i, name in enumerate(["demo01_R", "demo01_L", "demo02_R"]):
    fundus(os.path.join(out, name + ".png"), seed=i + 1)
# A photograph with nothing in it: reported as ungradable, with the reason.
png(os.path.join(out, "demo02_L.png"), 1536, 1024, [bytearray(3 * 1536) for _ in range(1024)])
PY
fi

# A real photograph, when the sample is the synthetic one: scikit-image ships retina.jpg ("Fundus photograph of
# normal left eye", Mikael Häggström, CC0 1.0) in its wheel; only that file is taken out of it.
REAL_PHOTO=""
if [ "$SAMPLE" = "$OUT/sample" ] && [ "${DEMO_NO_DOWNLOAD:-0}" != 1 ]; then
    if [ ! -s "$SAMPLE/retina_L.jpg" ]; then
        WHEELS=$(mktemp -d)
        echo "demo: fetching a real fundus photograph: scikit-image's data/retina.jpg (CC0), from its wheel (pip download)"
        if python3 -m pip download --no-deps --only-binary=:all: --quiet --dest "$WHEELS" scikit-image >"$WHEELS/pip.log" 2>&1 &&
           python3 - "$WHEELS" "$SAMPLE/retina_L.jpg" <<'PY'
import glob, os, sys, zipfile
wheel = sorted(glob.glob(os.path.join(sys.argv[1], "scikit_image-*.whl")))[-1]
with zipfile.ZipFile(wheel) as z:
    data = z.read("skimage/data/retina.jpg")
with open(sys.argv[2] + ".part", "wb") as f:
    f.write(data)
os.replace(sys.argv[2] + ".part", sys.argv[2])
PY
        then
            echo "demo: got retina_L.jpg ($(wc -c <"$SAMPLE/retina_L.jpg") bytes) from $(basename "$(ls "$WHEELS"/scikit_image-*.whl)")"
        else
            echo "demo: could not fetch scikit-image's retina.jpg (no network, or no pip: python3 -m pip); going on with the synthetic pictures only" >&2
            tail -n 3 "$WHEELS/pip.log" 2>/dev/null | sed 's/^/demo:   /' >&2 || true
        fi
        rm -rf "$WHEELS"
    fi
    if [ -s "$SAMPLE/retina_L.jpg" ]; then
        REAL_PHOTO="$SAMPLE/retina_L.jpg"
        # The same photograph as a DICOM file (no extension, as on a DICOM medium): patient and eye from its tags.
        if command -v img2dcm >/dev/null; then
            [ -s "$SAMPLE/RETINA01" ] || img2dcm -q "$REAL_PHOTO" "$SAMPLE/RETINA01" -k "(0010,0020)=DICOM-DEMO-1" \
                -k "(0020,0062)=L" -k "(0008,0060)=OP" -k "(0008,103E)=scikit-image retina.jpg, CC0"
        else
            echo "demo: img2dcm (Debian package dcmtk) is missing: no DICOM copy of the photograph" >&2
        fi
        cat >"$SAMPLE/CREDITS.txt" <<'TXT'
retina_L.jpg and RETINA01 (the same photograph wrapped as DICOM by DCMTK's img2dcm): scikit-image's
skimage/data/retina.jpg, "Fundus photograph of normal left eye" by Mikael Häggström, Wikimedia Commons,
CC0 1.0 Universal Public Domain Dedication (Häggström M., "Medical gallery of Mikael Häggström 2014",
WikiJournal of Medicine 1 (2), doi:10.15347/wjm/2014.008). Taken from the scikit-image wheel on PyPI.
The other pictures here are synthetic, made by pipelines/demo.sh.
TXT
    fi
fi

# --- the model ----------------------------------------------------------------------------------------------------
MODEL_ARGS=()
if [ -f "$ROOT/models/default/metadata.json" ]; then
    echo "demo: model: the shipped one, models/default"
else
    cat >&2 <<'WARN'

  ##########################################################################################################
  #  WARNING: no shipped model (models/default) in this checkout.                                          #
  #  The demo runs with a FRESHLY INITIALISED, UNTRAINED network: the pipeline works end to end, but its    #
  #  masks, lesion counts and screening flags MEAN NOTHING. Never read them as findings.                    #
  #  Put a trained model folder (weights + metadata.json) at models/default, or set FUNDUS_MODEL.           #
  ##########################################################################################################

WARN
    # Made once: a second demo run reuses it (a new one would be new weights under the same registered name).
    [ -f "$OUT/untrained-model/metadata.json" ] ||
        "$BIN" model init --arch w18-small-C --out "$OUT/untrained-model" --name untrained-demo
    MODEL_ARGS=(--model "$OUT/untrained-model")
fi

stop_server() {
    # The embedded server stays up between commands; the demo is over, so stop it (any command starts it again).
    if has_command db; then
        "$BIN" db stop --state-dir "$STATE" >/dev/null 2>&1 || true
    fi
    if [ -f "$STATE/postgres/data/postmaster.pid" ]; then
        kill -INT "$(head -n 1 "$STATE/postgres/data/postmaster.pid")" 2>/dev/null || true   # fast shutdown
    fi
}
trap stop_server EXIT

# --- screening ----------------------------------------------------------------------------------------------------
echo "demo: screening $SAMPLE"
"$BIN" screen -i "$SAMPLE" -o "$OUT" --state-dir "$STATE" "${MODEL_ARGS[@]}"

REPORTS=""
if has_command report; then
    "$BIN" report --all -o "$OUT/reports" --state-dir "$STATE" && REPORTS="$OUT/reports/index.html"
fi


first_overlay=$(find "$OUT" -name '*_overlay.jpg' | sort | head -n 1)
real_overlays=$(find "$OUT" \( -name 'retina_L_overlay.jpg' -o -name 'RETINA01_overlay.jpg' \) | sort | tr '\n' ' ')
cat <<EOF

demo: done. Where to look:
  findings, one row per image and lesion class:  $OUT/findings.csv   (and findings.json)
  masks, one PNG per class (<image>_EX/HE/SE/MA.png, 0 or 255):  $OUT/<patient>/
  overlays (lesions in their class colours):     ${first_overlay:-$OUT/<patient>/<image>_overlay.jpg}
${real_overlays:+  the real photograph, as JPEG and as DICOM:     $real_overlays
}${REPORTS:+  per-patient reports:                           $REPORTS
}  the database (embedded PostgreSQL):             $STATE
EOF
if [ -n "$REAL_PHOTO" ]; then
    echo "demo: retina_L.jpg and its DICOM copy RETINA01 are scikit-image's data/retina.jpg (Mikael Häggström, CC0 1.0;"
    echo "      see $SAMPLE/CREDITS.txt); the other sample pictures are synthetic."
fi
if [ ${#MODEL_ARGS[@]} -gt 0 ]; then
    echo "demo: REMEMBER: these findings come from an untrained network and mean nothing." >&2
fi
