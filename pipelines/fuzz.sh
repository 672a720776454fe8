#!/usr/bin/env bash
# Mutation fuzzing of the image decoders (CImageCodecs: libjpeg-turbo, libpng, libtiff) and the field-of-view stage:
# N mutants of small seed files go through decode and field of view (fundus-fuzz, release build), then the first
# ASAN of them again in a build with AddressSanitizer (Swift and the C shims).
#
#   pipelines/fuzz.sh                 # 10,000 inputs, 1,000 of them under AddressSanitizer
#   pipelines/fuzz.sh 2000            # fewer; ASAN=200 pipelines/fuzz.sh 2000; ASAN=0 skips the sanitizer run
#   FUZZ_SEEDS=/data/dicom-seeds pipelines/fuzz.sh   # more seed folders (colon-separated), e.g. DICOM files once
#                                                    # Codecs decodes them: the driver feeds every file to
#                                                    # ImageCodec.decode, which recognises formats by content
#
# Passes when no input crashes, none runs longer than TIMEOUT (10 s) and every rejection is a clear error (an
# ImagingError naming the input and saying what is wrong). A crash or hang leaves its input in the work folder
# (`fundus-fuzz save --index K` rebuilds any input from its index); the work folder is kept then.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
N=${1:-10000}
ASAN=${ASAN:-$(( N < 1000 ? N : 1000 ))}
TIMEOUT=${TIMEOUT:-10}
CHUNK=1000

echo "fuzz: release build of fundus-fuzz"
swift build -c release --product fundus-fuzz 2>&1 | tail -n 1
BIN=$(swift build -c release --show-bin-path)/fundus-fuzz

WORK=$(mktemp -d /tmp/fundus-fuzz-XXXXXX)
keep=0
trap '[ "$keep" = 1 ] && echo "fuzz: kept $WORK" || rm -rf "$WORK"' EXIT

# Seeds: small JPEG, PNG and TIFF variants (RGB, grey, LZW, deflate tiles, PackBits strips, 1-bit palette) made from
# a few real photographs of ../shared when present, else from a synthetic one.
photos=()
for f in ../shared/data/other/retina.jpg ../shared/data/idrid/images/IDRiD_01.jpg ../shared/data/hrf/images/01_dr.jpg; do
    [ -f "$f" ] && photos+=("$f")
done
"$BIN" seeds "$WORK/seeds" "${photos[@]}"
seed_args=(--seeds "$WORK/seeds")
IFS=: read -r -a extra <<<"${FUZZ_SEEDS:-}"
for d in "${extra[@]}"; do [ -n "$d" ] && seed_args+=(--seeds "$d"); done

# One process per chunk, each bounded in time: a crash costs only its chunk and names its input.
run_chunks() {  # run_chunks BINARY COUNT LABEL
    local bin=$1 count=$2 label=$3 first=0 rc
    while [ "$first" -lt "$count" ]; do
        local n=$(( count - first < CHUNK ? count - first : CHUNK ))
        set +e
        timeout $(( n * TIMEOUT / 10 + 600 )) "$bin" run "${seed_args[@]}" --first "$first" --count "$n" \
            --timeout "$TIMEOUT" --work "$WORK/$label" >"$WORK/$label-$first.txt" 2>&1
        rc=$?
        set -e
        tail -n 21 "$WORK/$label-$first.txt" | sed "s/^/  [$label] /"
        case $rc in
            0) ;;
            1) echo "fuzz: $label: unclear rejections among inputs $first…$((first + n - 1))"; keep=1; return 1 ;;
            3) echo "fuzz: $label: HANG on input $(cat "$WORK/$label/hang")"; keep=1; return 1 ;;
            *) echo "fuzz: $label: CRASH (exit $rc) on input: $(cat "$WORK/$label/current" 2>/dev/null)"
               "$BIN" save "${seed_args[@]}" --index "$(cut -d' ' -f1 "$WORK/$label/current")" "$WORK/crash.bin" || true
               keep=1; return 1 ;;
        esac
        first=$(( first + n ))
    done
}

start=$(date +%s)
echo "fuzz: $N inputs through decode and field of view (timeout $TIMEOUT s an input)"
run_chunks "$BIN" "$N" release
echo "fuzz: $N inputs: no crash, no hang, every rejection clear ($(( $(date +%s) - start )) s)"

if [ "$ASAN" -gt 0 ]; then
    echo "fuzz: AddressSanitizer build (Swift and C; .build/asan)"
    start=$(date +%s)
    swift build --build-path .build/asan --product fundus-fuzz -Xswiftc -sanitize=address \
        -Xcc -fsanitize=address -Xcc -fno-omit-frame-pointer 2>&1 | tail -n 1
    ABIN=$(swift build --build-path .build/asan --show-bin-path)/fundus-fuzz
    export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:allocator_may_return_null=1}
    run_chunks "$ABIN" "$ASAN" asan
    echo "fuzz: $ASAN inputs under AddressSanitizer: no error, no crash, no hang ($(( $(date +%s) - start )) s)"
fi
echo "fuzz: passed"
