#!/usr/bin/env bash
# Checks that a change left every report as it was: runs an earlier build
# and this one on every sample, fixture and generated benchmark file, and
# compares their reports (and the templates) byte for byte (CSV, JSONL, and every part of the
# XLSX but its creation time). `validate` reports have no timing fields and
# must match whole; `submit` reports (against the built-in sandbox) are
# compared with the fields that differ run to run (times, latencies,
# request ids) blanked.
#
#   git worktree add /tmp/base COMMIT
#   CARGO_TARGET_DIR=/tmp/base-target cargo build --release --manifest-path /tmp/base/Cargo.toml
#   BASE_BIN=/tmp/base-target/release/dcms-bulk bash bench/same-reports.sh
#
# BENCH_DATA (default /tmp/bench-data, see ../shared/bench/setup.sh) adds
# the generated sheets when present. Exit 0 when every report matches.
set -euo pipefail
cd "$(dirname "$0")/.."
BASE=${BASE_BIN:?set BASE_BIN to the earlier build}
DATA=${BENCH_DATA:-/tmp/bench-data}
cargo build --release --quiet
NEW=target/release/dcms-bulk
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

inputs=(samples/*.csv samples/*.xlsx tests/fixtures/*.xlsx tests/fixtures/*.ods tests/fixtures/*.xls
        tests/fixtures/hostile/*)
for f in "$DATA"/orders_10k.csv "$DATA"/orders_100k.csv "$DATA"/orders_10k.xlsx "$DATA"/orders_100k.xlsx; do
    [ -f "$f" ] && inputs+=("$f")
done

# The parts of an XLSX report, its creation time and the build's commit
# (in its run facts sheet) left out, one after another.
xlsx_text() {
    local dir; dir=$(mktemp -d -p "$work")
    (cd "$dir" && unzip -q -o "$1" 2>/dev/null) || true
    find "$dir" -type f ! -name core.xml | sort | while read -r p; do echo "== ${p#"$dir"}"; cat "$p"; done |
        sed -E -e 's/[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:.]+Z//g' \
            -e 's|<t>commit</t></si><si><t>[^<]*</t>|<t>commit</t></si><si><t></t>|g'
}

# Blanks the fields of a submit report that differ run to run.
blank_times() {
    sed -E -e 's/[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:.]+Z//g' \
        -e 's/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}//g' \
        -e 's/"latency_ms":[0-9]+/"latency_ms":/g' "$1" |
    python3 -c '
import csv, sys
r = csv.reader(sys.stdin) if sys.argv[1] == "csv" else None
if r is None:
    sys.stdout.write(sys.stdin.read()); sys.exit()
w = csv.writer(sys.stdout, lineterminator="\n")
head = None
for row in r:
    if head is None:
        head = row
    else:
        row = ["" if h in ("latency_ms", "submitted_at", "request_id") else v for h, v in zip(head, row)]
    w.writerow(row)
' "${1##*.}"
}

differ=0
checked=0
compare() { # label, base file, new file, kind
    checked=$((checked + 1))
    local a=$2 b=$3
    if [ "$4" = xlsx ]; then xlsx_text "$a" > "$work/a"; xlsx_text "$b" > "$work/b"; a=$work/a; b=$work/b; fi
    if [ "$4" = submit ]; then blank_times "$a" > "$work/a"; blank_times "$b" > "$work/b"; a=$work/a; b=$work/b; fi
    if ! cmp -s "$a" "$b"; then
        echo "DIFFERS: $1"; { diff "$a" "$b" || true; } | head -5; differ=$((differ + 1))
    fi
}

for f in "${inputs[@]}"; do
    name=$(basename "$f")
    for ext in csv jsonl xlsx; do
        for who in base new; do
            bin=$BASE; [ $who = new ] && bin=$NEW
            mkdir -p "$work/$who"
            "$bin" validate "$f" --report "$work/$who/$name.$ext" -q > "$work/$who/$name.$ext.out" 2>&1 || echo "exit $?" >> "$work/$who/$name.$ext.out"
        done
        [ -f "$work/base/$name.$ext" ] || [ -f "$work/new/$name.$ext" ] || continue
        kind=plain; [ $ext = xlsx ] && kind=xlsx
        compare "validate $name ($ext)" "$work/base/$name.$ext" "$work/new/$name.$ext" $kind
    done
done

# Templates: every kind, CSV and XLSX.
for kind in order cancel upgrade; do
    for ext in csv xlsx; do
        "$BASE" template $kind --out "$work/base/template-$kind.$ext" > /dev/null 2>&1
        "$NEW" template $kind --out "$work/new/template-$kind.$ext" > /dev/null 2>&1
        kind_of=plain; [ $ext = xlsx ] && kind_of=xlsx
        compare "template $kind ($ext)" "$work/base/template-$kind.$ext" "$work/new/template-$kind.$ext" $kind_of
    done
done

# Sends: each build with a ledger of its own, into the built-in sandbox.
for f in samples/orders.csv samples/orders.xlsx samples/orders_with_mistakes.xlsx "$DATA"/orders_10k.csv; do
    [ -f "$f" ] || continue
    name=$(basename "$f")
    for ext in csv jsonl; do
        for who in base new; do
            bin=$BASE; [ $who = new ] && bin=$NEW
            XDG_STATE_HOME="$work/$who/state-$ext" \
                "$bin" submit "$f" --sandbox --report "$work/$who/$name.sent.$ext" -q > /dev/null 2>&1 || true
        done
        compare "submit $name ($ext)" "$work/base/$name.sent.$ext" "$work/new/$name.sent.$ext" submit
    done
done

echo "same-reports: $checked reports compared, $differ differ"
[ "$differ" -eq 0 ]
