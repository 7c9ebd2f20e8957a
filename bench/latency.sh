#!/usr/bin/env bash
# Sending at the latency limit: `dcms-bulk submit` of one generated sheet
# against `dcms-bulk sandbox --latency L` (release builds, loopback), at
# several concurrencies, with the bulk pre-check on (and, for comparison,
# off). The latency-bound ideal is every call the run made (counted by the
# sandbox: creates and lookups) times the latency, over the calls in
# flight: calls x L / C. Each run uses a new tenant and journal folder.
#
#   bash ../shared/bench/setup.sh data        # /tmp/bench-data
#   bash bench/latency.sh                     # FILE=orders_10k.csv LATENCY_MS=20 CONCURRENCY="32 64"
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${BENCH_DATA:-/tmp/bench-data}
FILE=${FILE:-orders_10k.csv}
LATENCY_MS=${LATENCY_MS:-20}
CONCURRENCY=${CONCURRENCY:-32 64}
if [ -z "${BIN:-}" ]; then
  cargo build --release --quiet
  BIN=target/release/dcms-bulk
fi
WORK=$(mktemp -d ${TMPBASE:+-p $TMPBASE})
"$BIN" sandbox --listen 127.0.0.1:0 --max-orders 5000000 --latency "${LATENCY_MS}ms" >"$WORK/url" 2>/dev/null &
SANDBOX=$!
trap 'kill $SANDBOX 2>/dev/null; rm -rf "$WORK"' EXIT
for _ in $(seq 50); do [ -s "$WORK/url" ] && break; sleep 0.1; done
URL=$(head -n 1 "$WORK/url")
INSPECT="${URL%/v1}/_sandbox"
calls() {
  curl -s "$INSPECT/stats" | python3 -c 'import json,sys;r=json.load(sys.stdin)["requests"];print(sum(n for by in r.values() for n in by.values()))'
}
echo "| file | latency | concurrency | pre-check | orders | calls | wall s | ideal s | of ideal |"
echo "|---|---:|---:|---|---:|---:|---:|---:|---:|"
for c in $CONCURRENCY; do
  for pre in on off; do
    args=()
    [ "$pre" = off ] && args=(--no-precheck)
    before=$(calls)
    start=$(date +%s.%N)
    "$BIN" submit "$DATA/$FILE" --base-url "$URL" --tenant "LAT$c$pre" --concurrency "$c" \
      --journal-dir "$WORK/j$c$pre" --report "$WORK/r$c$pre.csv" -q --json "${args[@]}" >"$WORK/s.json" || true
    end=$(date +%s.%N)
    after=$(calls)
    orders=$(python3 -c "import json;print(json.load(open('$WORK/s.json'))['files'][0]['counts']['orders_accepted'])")
    python3 - "$FILE" "$LATENCY_MS" "$c" "$pre" "$orders" "$((after - before))" "$start" "$end" <<'EOF'
import sys
f, lat, c, pre, orders, calls, start, end = sys.argv[1:]
wall = float(end) - float(start)
ideal = int(calls) * float(lat) / 1000 / int(c)
print(f"| {f} | {lat} ms | {c} | {pre} | {orders} | {calls} | {wall:.2f} | {ideal:.2f} | {ideal / wall:.0%} |")
EOF
  done
done
