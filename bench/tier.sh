#!/usr/bin/env bash
# Sending at a rate tier against a gateway that enforces it: `dcms-bulk
# sandbox --rate-limit 100 --burst 200` (the API guide's standard tier) and
# `submit --tier standard --concurrency 32` of ORDERS one-row orders
# (default 20,000). Prints the requests made, the 429s among them, the wall
# time, the achieved requests/s and the orders not accepted.
#
#   bash bench/tier.sh            # ORDERS=20000 TIER=standard RATE=100 BURST=200
set -euo pipefail
cd "$(dirname "$0")/.."
ORDERS=${ORDERS:-20000}
TIER=${TIER:-standard}
RATE=${RATE:-100}
BURST=${BURST:-200}
cargo build --release --quiet
BIN=target/release/dcms-bulk
WORK=$(mktemp -d)
python3 - "$WORK/orders.csv" "$ORDERS" <<'PY'
import sys
path, n = sys.argv[1], int(sys.argv[2])
with open(path, "w") as f:
    f.write("branch_id,branch_name,product_id,bin,card_type,quantity,plastic_code,pan_length,pin_generation,delivery_address,pin_code,process_start_time,validity_days,ordered_by\n")
    for i in range(n):
        f.write(f"{i + 1:06d},Branch {i + 1},P1,412345,PHYSICAL,10,0001,16,Y,Flat 1~Camp~Pune~MH,411001,2026-12-01 09:00:00,365,Bench\n")
PY
"$BIN" sandbox --listen 127.0.0.1:0 --rate-limit "$RATE" --burst "$BURST" >"$WORK/url" 2>/dev/null &
SANDBOX=$!
trap 'kill $SANDBOX 2>/dev/null; rm -rf "$WORK"' EXIT
for _ in $(seq 50); do [ -s "$WORK/url" ] && break; sleep 0.1; done
URL=$(head -n 1 "$WORK/url")
start=$(date +%s.%N)
"$BIN" submit "$WORK/orders.csv" --base-url "$URL" --tenant TIER --tier "$TIER" \
  --concurrency 32 --journal-dir "$WORK/j" --report "$WORK/r.csv" -q --json >"$WORK/s.json" || true
end=$(date +%s.%N)
curl -s "${URL%/v1}/_sandbox/stats" >"$WORK/stats.json"
python3 - "$WORK/stats.json" "$WORK/s.json" "$start" "$end" "$TIER" "$RATE" "$BURST" <<'PY'
import json, sys
stats = json.load(open(sys.argv[1]))
summary = json.load(open(sys.argv[2]))
wall = float(sys.argv[4]) - float(sys.argv[3])
calls = sum(n for ep, by in stats["requests"].items() if ep.startswith("/v1/") for n in by.values())
limited = sum(by.get("429", 0) for ep, by in stats["requests"].items())
counts = summary["files"][0]["counts"]
print("| tier | gateway limit | orders | requests | 429s | wall s | requests/s | orders not accepted |")
print("|---|---|---:|---:|---:|---:|---:|---:|")
print(f"| {sys.argv[5]} | {sys.argv[6]}/s, burst {sys.argv[7]} | {counts['orders_ready']} | {calls} | {limited} ({100 * limited / max(calls, 1):.2f}%) | {wall:.1f} | {calls / wall:.1f} | {counts['orders_ready'] - counts['orders_accepted']} |")
PY
