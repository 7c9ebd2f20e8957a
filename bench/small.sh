#!/usr/bin/env bash
# Small sheets stay instant: `dcms-bulk validate` of the 10-row samples
# (CSV and XLSX), end to end (process start, read, check, report and run
# facts written), timed over RUNS runs with hyperfine where it is
# installed, else with a loop of our own (median and mean).
#
#   bash bench/small.sh              # RUNS=50
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-50}
cargo build --release --quiet
BIN=target/release/dcms-bulk
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
if command -v hyperfine >/dev/null; then
  for f in samples/orders.csv samples/orders.xlsx; do
    hyperfine -N --warmup 3 --runs "$RUNS" "$BIN validate $f --report $WORK/r.csv -q"
  done
  exit 0
fi
python3 - "$BIN" "$WORK" "$RUNS" <<'EOF'
import statistics, subprocess, sys, time
bin_, work, runs = sys.argv[1], sys.argv[2], int(sys.argv[3])
print("| sheet | rows | runs | median ms | mean ms | max ms |")
print("|---|---:|---:|---:|---:|---:|")
for f in ["samples/orders.csv", "samples/orders.xlsx"]:
    cmd = [bin_, "validate", f, "--report", f"{work}/r.csv", "-q"]
    for _ in range(3):
        subprocess.run(cmd, check=True)
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        subprocess.run(cmd, check=True)
        times.append((time.perf_counter() - t) * 1000)
    print(f"| {f} | 10 | {runs} | {statistics.median(times):.1f} | {statistics.mean(times):.1f} | {max(times):.1f} |")
EOF
