#!/usr/bin/env bash
# Renders the XLSX report of the mistakes sample as a person sees it: the
# report converted to PDF by LibreOffice, its first page to PNG. Not a test;
# run it after changing the XLSX report's layout, and look at the picture.
#
#   bash bench/render-report.sh [OUT.png]     # default: docs/src/images/report.png
#
# Needs LibreOffice Calc and poppler's pdftoppm
# (Debian: apt-get install libreoffice-calc-nogui poppler-utils).
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-docs/src/images/report.png}
for tool in soffice pdftoppm; do
    command -v "$tool" >/dev/null || { echo "render-report: $tool is missing (apt-get install libreoffice-calc-nogui poppler-utils)" >&2; exit 2; }
done
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cargo build -q
target/debug/dcms-bulk validate samples/orders_with_mistakes.xlsx --report "$work/mistakes.report.xlsx" -q || true
# A profile of its own, so a desktop LibreOffice running meanwhile is not in the way.
soffice -env:UserInstallation="file://$work/profile" --headless --convert-to pdf \
    --outdir "$work" "$work/mistakes.report.xlsx" >/dev/null
pdftoppm -png -r 110 -f 1 -l 1 -singlefile "$work/mistakes.report.pdf" "$work/page"
mkdir -p "$(dirname "$out")"
cp "$work/page.png" "$out"
echo "render-report: wrote $out"
