#!/usr/bin/env bash
# Side-by-side benchmark of `dcms-bulk validate` against the polars peer,
# on the generated order sheets (../shared/bench), the two run by turns.
# Prints wall time, CPU time and peak memory of each, median of RUNS runs,
# page cache warm.
#
#   bash ../shared/bench/setup.sh python && bash ../shared/bench/setup.sh data
#   bash bench/run.sh            # RUNS=3 by default
#   BASE_BIN=/tmp/dcms-bulk-old bash bench/run.sh   # and an earlier build, by turns
#   THREADS="1 2" bash bench/run.sh             # and ours with --threads N, by turns
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${BENCH_DATA:-/tmp/bench-data}
PEERS=${PEERS:-../shared/bench/peers}
PY=${PY_POLARS:-/tmp/venv-polars/bin/python}
RUNS=${RUNS:-3}
OUT=$(mktemp -d)
cargo build --release --quiet
BIN=target/release/dcms-bulk

# One timed run: appends "wall rss cpu" to the file $1.
timed() { # results file, command...
  local into=$1; shift
  # Each run writes its report afresh: replacing the previous run's
  # report would add the cost of freeing that file, which depends on
  # the file system (about 0.1 s for ours, whose 247 MB report is
  # synced, on this machine's ext4 mounted with `discard`; almost nothing
  # for the peer's, whose unsynced 112 MB are not yet on the disk).
  rm -f "$OUT/ours.csv" "$OUT/ours.csv.run.json" "$OUT/peer.csv"
  /usr/bin/time -f "%e %M %U %S" -o "$OUT/t" "$@" >/dev/null 2>&1 || true
  read -r w m u s < <(tail -n 1 "$OUT/t")
  echo "$w $m $(awk -v u="$u" -v s="$s" 'BEGIN { printf "%.2f", u + s }')" >> "$into"
}

row() { # label, results file: medians
  med() { sort -n | sed -n "$(( (RUNS + 1) / 2 ))p"; }
  printf '| %s | %s | %s | %d |\n' "$1" "$(cut -d' ' -f1 "$2" | med)" \
    "$(cut -d' ' -f3 "$2" | med)" "$(( $(cut -d' ' -f2 "$2" | med) / 1024 ))"
}

echo "| run | wall s (median of $RUNS) | CPU s | peak RSS MiB |"
echo "|---|---:|---:|---:|"
for f in ${FILES:-orders_1m.csv orders_100k.xlsx orders_100k.csv orders_10k.csv}; do
  [ -f "$DATA/$f" ] || continue
  cat "$DATA/$f" > /dev/null
  : > "$OUT/ours"; : > "$OUT/peer"; : > "$OUT/base"
  for t in ${THREADS:-}; do : > "$OUT/t$t"; done
  # Side by side: the two alternate, so a busy spell of a shared machine
  # falls on both alike.
  for _ in $(seq "$RUNS"); do
    timed "$OUT/ours" "$BIN" validate "$DATA/$f" --report "$OUT/ours.csv" -q
    for t in ${THREADS:-}; do
      timed "$OUT/t$t" "$BIN" validate "$DATA/$f" --report "$OUT/ours.csv" -q --threads "$t"
    done
    if [ -n "${BASE_BIN:-}" ]; then
      timed "$OUT/base" "$BASE_BIN" validate "$DATA/$f" --report "$OUT/ours.csv" -q
    fi
    timed "$OUT/peer" "$PY" "$PEERS/peer_polars.py" "$DATA/$f" "$OUT/peer.csv"
  done
  row "dcms-bulk validate $f --report r.csv" "$OUT/ours"
  for t in ${THREADS:-}; do
    row "dcms-bulk validate $f --report r.csv --threads $t" "$OUT/t$t"
  done
  if [ -n "${BASE_BIN:-}" ]; then
    row "base build ($BASE_BIN) validate $f --report r.csv" "$OUT/base"
  fi
  row "polars peer $f" "$OUT/peer"
done
rm -rf "$OUT"
