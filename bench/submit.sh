#!/usr/bin/env bash
# Throughput of `dcms-bulk submit` against `dcms-bulk sandbox` (release
# builds, both on this machine, loopback): wall time and peak memory of the
# client for one generated sheet at several concurrencies. Each run uses a
# new tenant and a fresh journal folder, so every order is really sent.
#
#   bash ../shared/bench/setup.sh data      # /tmp/bench-data
#   bash bench/submit.sh                    # FILE=orders_10k.csv CONCURRENCY="8 32"
#   BIN=/tmp/base-target/release/dcms-bulk bash bench/submit.sh   # an earlier build
#   LEDGER=postgres bash bench/submit.sh    # the ledger in PostgreSQL (a throwaway
#                                           # cluster of Debian's server, on loopback)
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${BENCH_DATA:-/tmp/bench-data}
FILE=${FILE:-orders_10k.csv}
CONCURRENCY=${CONCURRENCY:-8 32}
if [ -z "${BIN:-}" ]; then
  cargo build --release --quiet
  BIN=target/release/dcms-bulk
fi
WORK=$(mktemp -d)
"$BIN" sandbox --listen 127.0.0.1:0 --max-orders 5000000 >"$WORK/url" 2>/dev/null &
SANDBOX=$!
trap 'kill $SANDBOX 2>/dev/null; rm -rf "$WORK"' EXIT
for _ in $(seq 50); do [ -s "$WORK/url" ] && break; sleep 0.1; done
URL=$(head -n 1 "$WORK/url")
LEDGER_ARGS=()
if [ "${LEDGER:-sqlite}" = postgres ]; then
  # A throwaway cluster with the server's default durability (fsync,
  # synchronous commit), as the SQLite ledger syncs every commit.
  PGBIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
  PORT=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
  mkdir "$WORK/pg"
  AS=()
  if [ "$(id -u)" = 0 ]; then chown postgres "$WORK" "$WORK/pg"; AS=(runuser -u postgres --); fi
  "${AS[@]}" "$PGBIN/initdb" -D "$WORK/pg/data" -U postgres --auth=trust -E UTF8 --no-locale >/dev/null
  "${AS[@]}" "$PGBIN/pg_ctl" -D "$WORK/pg/data" -l "$WORK/pg/log" -w \
    -o "-p $PORT -k $WORK/pg -c listen_addresses=127.0.0.1" start >/dev/null
  trap '"${AS[@]}" "$PGBIN/pg_ctl" -D "$WORK/pg/data" -m immediate stop >/dev/null; kill $SANDBOX 2>/dev/null; rm -rf "$WORK"' EXIT
  "${AS[@]}" psql -q -h "$WORK/pg" -p "$PORT" -U postgres -d postgres -c "CREATE USER dcms" -c "CREATE DATABASE ledger OWNER dcms"
  LEDGER_ARGS=(--ledger "postgres://dcms@127.0.0.1:$PORT/ledger")
fi
echo "| file | ledger | concurrency | orders sent | wall s | orders/s | client peak RSS MiB |"
echo "|---|---|---:|---:|---:|---:|---:|"
for c in $CONCURRENCY; do
  /usr/bin/time -f "%e %M" -o "$WORK/t" "$BIN" submit "$DATA/$FILE" --base-url "$URL" \
    --tenant "BENCH$c" --concurrency "$c" --journal-dir "$WORK/j$c" "${LEDGER_ARGS[@]}" \
    --report "$WORK/r$c.csv" -q --json >"$WORK/s$c.json" || true
  read -r wall rss < <(tail -n 1 "$WORK/t")
  orders=$(python3 -c "import json;print(json.load(open('$WORK/s$c.json'))['files'][0]['counts']['orders_accepted'])")
  printf '| %s | %s | %s | %s | %s | %.0f | %d |\n' "$FILE" "${LEDGER:-sqlite}" "$c" "$orders" "$wall" "$(echo "$orders / $wall" | bc -l)" $((rss / 1024))
done
