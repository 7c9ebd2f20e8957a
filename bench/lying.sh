#!/usr/bin/env bash
# Peak memory of `dcms-bulk validate` on two workbooks that lie about their
# size: a 411 KB .xlsx whose shared strings inflate to 400 MB, and an 11 KB
# .ods whose one 10 MB cell is repeated over 65,536 rows. Both must be
# refused (exit 3) well within 1 GiB.
#
#   bash bench/lying.sh
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet
BIN=$PWD/target/release/dcms-bulk
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
(cd "$WORK" && python3 "$OLDPWD/bench/lying_workbooks.py")
echo "| file | size KB | exit | wall s | peak RSS MiB |"
echo "|---|---:|---:|---:|---:|"
for f in shared400.xlsx repeat10mb.ods; do
  /usr/bin/time -f "%e %M %x" -o "$WORK/t" "$BIN" validate "$WORK/$f" -q 2>/dev/null || true
  read -r wall rss code < <(tail -n 1 "$WORK/t")
  printf '| %s | %d | %s | %s | %d |\n' "$f" $(( $(stat -c %s "$WORK/$f") / 1024 )) "$code" "$wall" $((rss / 1024))
done
