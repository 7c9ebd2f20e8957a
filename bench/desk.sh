#!/usr/bin/env bash
# The desk's responsiveness on a large sheet: a release `dcms-bulk serve`
# on this machine, driven with curl over loopback. Times (median of RUNS)
# the drop of FILE to its checked first page (upload, check, redirect,
# page), a page flip deep in the table, the "rows with problems" filter,
# and a cell edit to its re-checked page.
#
#   bash ../shared/bench/setup.sh data      # /tmp/bench-data
#   bash bench/desk.sh                      # FILE=orders_100k.xlsx RUNS=5
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${BENCH_DATA:-/tmp/bench-data}
FILE=${FILE:-orders_100k.xlsx}
RUNS=${RUNS:-5}
cargo build --release --quiet
WORK=$(mktemp -d)
# Its own access database (where the desk keeps its sheets), not the user's.
DCMS_JOURNAL_DIR="$WORK/journals" target/release/dcms-bulk serve --listen 127.0.0.1:0 -q --keep-dir "$WORK/kept" >"$WORK/url" &
PID=$!
trap 'kill $PID 2>/dev/null; rm -rf "$WORK"' EXIT
for _ in $(seq 50); do [ -s "$WORK/url" ] && break; sleep 0.1; done
URL=$(head -1 "$WORK/url"); URL=${URL%/}
TOKEN=$(curl -s "$URL/" | grep -o 'name="csrf" value="[0-9a-f]*"' | head -1 | sed 's/.*value="//;s/"//')
post() { curl -s -o /dev/null -w '%{time_total}\n' -H "Origin: $URL" "$@"; }
# The upload: its time, then the sheet's page it sends the browser to.
drop() { curl -s -o /dev/null -w '%{time_total} %{redirect_url}\n' -H "Origin: $URL" "$@"; }
get() { curl -s -o /dev/null -w '%{time_total}\n' "$@"; }
median() { sort -n | sed -n "$(( (RUNS + 1) / 2 ))p"; }
: >"$WORK/drop"; : >"$WORK/flip"; : >"$WORK/filter"; : >"$WORK/edit"
for i in $(seq "$RUNS"); do
  # Drop and first page: the upload is answered once checked, then the page.
  read -r t1 sheet < <(drop -F "csrf=$TOKEN" -F "sheet=@$DATA/$FILE" "$URL/sheets")
  t2=$(get "$sheet")
  awk -v a="$t1" -v b="$t2" 'BEGIN { print a + b }' >>"$WORK/drop"
  get "$sheet?page=500" >>"$WORK/flip"
  get "$sheet?problems=1&page=2" >>"$WORK/filter"
  t1=$(post --data-urlencode "csrf=$TOKEN" -d row=5 -d col=5 -d value=$((7 + i)) "$sheet/cells")
  t2=$(get "$sheet")
  awk -v a="$t1" -v b="$t2" 'BEGIN { print a + b }' >>"$WORK/edit"
done
echo "| $FILE (median of $RUNS) | seconds |"
echo "|---|---:|"
echo "| drop to the checked first page | $(median <"$WORK/drop") |"
echo "| a page flip (page 500 of the table) | $(median <"$WORK/flip") |"
echo "| rows with problems, page 2 | $(median <"$WORK/filter") |"
echo "| a cell edit to its re-checked page | $(median <"$WORK/edit") |"
