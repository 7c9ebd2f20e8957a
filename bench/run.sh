#!/usr/bin/env bash
# Side-by-side benchmark of `dcms-bulk validate` against the polars peer,
# on the generated order sheets (../shared/bench). Prints wall time, CPU time
# and peak memory of each, median of RUNS runs, page cache warm.
#
#   bash ../shared/bench/setup.sh python && bash ../shared/bench/setup.sh data
#   bash bench/run.sh            # RUNS=3 by default
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${BENCH_DATA:-/tmp/bench-data}
PEERS=${PEERS:-../shared/bench/peers}
PY=${PY_POLARS:-/tmp/venv-polars/bin/python}
RUNS=${RUNS:-3}
OUT=$(mktemp -d)
cargo build --release --quiet
BIN=target/release/dcms-bulk

measure() { # label, command...
  local label=$1; shift
  local walls=() rss=() cpu=()
  for _ in $(seq "$RUNS"); do
    # Each run writes its report afresh: replacing the previous run's
    # report would add the cost of freeing that file, which depends on
    # the file system (about 0.1 s for ours, whose 247 MB report is
    # synced, on this machine's ext4 mounted with `discard`; almost nothing
    # for the peer's, whose unsynced 112 MB are not yet on the disk).
    rm -f "$OUT/ours.csv" "$OUT/ours.csv.run.json" "$OUT/peer.csv"
    /usr/bin/time -f "%e %M %U %S" -o "$OUT/t" "$@" >/dev/null 2>&1 || true
    read -r w m u s < <(tail -n 1 "$OUT/t")
    walls+=("$w"); rss+=("$m"); cpu+=("$(echo "$u + $s" | bc)")
  done
  med() { printf '%s\n' "$@" | sort -n | sed -n "$(( ($# + 1) / 2 ))p"; }
  printf '| %s | %s | %s | %d |\n' "$label" "$(med "${walls[@]}")" "$(med "${cpu[@]}")" "$(( $(med "${rss[@]}") / 1024 ))"
}

echo "| run | wall s (median of $RUNS) | CPU s | peak RSS MiB |"
echo "|---|---:|---:|---:|"
for f in ${FILES:-orders_1m.csv orders_100k.xlsx orders_100k.csv orders_10k.csv}; do
  [ -f "$DATA/$f" ] || continue
  cat "$DATA/$f" > /dev/null
  measure "dcms-bulk validate $f --report r.csv" "$BIN" validate "$DATA/$f" --report "$OUT/ours.csv" -q
  measure "polars peer $f" "$PY" "$PEERS/peer_polars.py" "$DATA/$f" "$OUT/peer.csv"
done
rm -rf "$OUT"
