#!/usr/bin/env python3
"""A mutation fuzzer for `dcms-bulk validate`.

It damages the shipped samples and fixtures the ways mail, copying and
malice damage files, runs `validate FILE --report R.csv` on each under a
memory cap and a timeout, and counts exit codes, panics, aborts, hangs,
slow runs and peak memory. Every input that panicked, aborted, hung, took
too long or used too much memory is kept in the findings folder, with why.

    cargo build --release
    python3 bench/fuzz.py                       # 30 minutes, findings in /tmp/fuzz-findings
    DURATION=60 SEED=7 python3 bench/fuzz.py    # a minute, another seed

Limits (env): MEM_CAP_MIB (2048: the address-space cap of each run),
TIMEOUT (20 s), RSS_LIMIT_MIB (1024) and SLOW (20 s) are what count as
"blew up" and "too slow". Only the Python standard library is used.
"""

import io
import os
import random
import re
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import zipfile
from collections import Counter

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.environ.get("BIN", os.path.join(ROOT, "target", "release", "dcms-bulk"))
DURATION = float(os.environ.get("DURATION", "1800"))
SEED = int(os.environ.get("SEED", "1"))
MEM_CAP = int(os.environ.get("MEM_CAP_MIB", "2048")) << 20
TIMEOUT = float(os.environ.get("TIMEOUT", "20"))
RSS_LIMIT_KIB = int(os.environ.get("RSS_LIMIT_MIB", "1024")) << 10
SLOW = float(os.environ.get("SLOW", "20"))
FINDINGS = os.environ.get("FINDINGS", "/tmp/fuzz-findings")
MAX_INPUT = 10 << 20  # inputs of at most 10 MB


def seeds():
    out = []
    for folder in ("samples", os.path.join("tests", "fixtures")):
        d = os.path.join(ROOT, folder)
        for name in sorted(os.listdir(d)):
            ext = name.rsplit(".", 1)[-1].lower()
            if ext in ("csv", "xlsx", "xls", "ods", "xlsb") and "zipbomb" not in name:
                with open(os.path.join(d, name), "rb") as f:
                    out.append((name, f.read()))
    return out


# ---- mutations of any bytes -------------------------------------------------

def flip(rng, data):
    b = bytearray(data)
    for _ in range(rng.randint(1, 24)):
        if b:
            b[rng.randrange(len(b))] = rng.randrange(256)
    return bytes(b)


def truncate(rng, data):
    return data[: rng.randrange(1, max(2, len(data)))]


def splice(rng, data):
    """A block of the file repeated (a half-copied file written twice)."""
    if len(data) < 4:
        return data
    a = rng.randrange(len(data))
    n = rng.randint(1, min(4096, len(data) - a))
    return data[:a] + data[a : a + n] * rng.randint(2, 50) + data[a:]


# ---- mutations of text sheets -------------------------------------------------

def csv_mutation(rng, data):
    lines = data.split(b"\n")
    header, body = lines[0], [l for l in lines[1:] if l]
    row = rng.choice(body) if body else b"x"
    pick = rng.randrange(7)
    if pick == 0:  # one row of very many empty cells
        body.append(b"," * rng.choice([10_000, 1_000_000, 8_000_000]))
    elif pick == 1:  # a huge cell, maybe with line breaks or quotes
        fill = rng.choice([b"A", b"a\nb", b'x""y', b"\xc3\xa9", b"=1"])
        cell = b'"' + fill * (rng.choice([1, 4, 8]) << 20 // len(fill)) + b'"'
        body.append(cell + b"," + row)
    elif pick == 2:  # the same row very many times (within the input size)
        times = min(rng.choice([1000, 100_000]), MAX_INPUT // max(1, len(row) + 1))
        body.extend([row] * times)
    elif pick == 3:  # an unclosed quote
        body.insert(rng.randrange(len(body) + 1), b'"' + row)
    elif pick == 4:  # very many columns in the header
        header = header + b"," + b",".join(b"c%d" % i for i in range(rng.choice([20_000, 200_000])))
    elif pick == 5:  # no line breaks at all, or CR only
        return data.replace(b"\n", rng.choice([b"", b"\r"]))
    else:  # bytes that are no text
        return flip(rng, data)
    return b"\n".join([header] + body) + b"\n"


# ---- mutations of zipped workbooks (xlsx, ods) ------------------------------

def xml_mutations(rng, name, xml):
    """Edits of one XML part: lying counts and dimensions, far cells,
    repeated rows and columns, flipped bytes."""
    edits = []
    if b"<dimension" in xml:
        edits.append(lambda x: re.sub(rb'<dimension ref="[^"]*"', rng.choice(
            [b'<dimension ref="A1:XFD1048576"', b'<dimension ref="A1:ZZZZZ9999999"', b'<dimension ref="A1048576:XFD1"']), x, count=1))
    if b"uniqueCount" in xml or b"<sst" in xml:
        edits.append(lambda x: re.sub(rb'uniqueCount="\d+"', rng.choice(
            [b'uniqueCount="4294967295"', b'uniqueCount="18446744073709551615"', b'uniqueCount="-1"']), x, count=1))
        edits.append(lambda x: re.sub(rb'count="\d+"', b'count="99999999999"', x, count=1))
    if b"<row" in xml:
        edits.append(lambda x: x.replace(b"</sheetData>", b'<row r="1048576"><c r="XFD1048576" t="inlineStr"><is><t>x</t></is></c></row></sheetData>', 1))
        edits.append(lambda x: x.replace(b"</sheetData>", b'<row r="99999999"><c r="A99999999"><v>1</v></c></row></sheetData>', 1))
        def rows_again(x):
            m = re.search(rb"<row [^>]*>.*?</row>", x, re.S)
            return x if not m else x[: m.end()] + m.group(0) * rng.choice([1000, 50_000]) + x[m.end():]
        edits.append(rows_again)
        edits.append(lambda x: re.sub(rb'<c r="([A-Z]+)(\d+)"', lambda m: b'<c r="' + rng.choice([b"XFD", b"AAAA", b"A"]) + m.group(2) + b'"', x, count=3))
        edits.append(lambda x: re.sub(rb"<v>([^<]*)</v>", rng.choice([b"<v>-1e12</v>", b"<v>1e308</v>", b"<v>NaN</v>", b"<v>99999999999999999999</v>"]), x, count=5))
    if b"table:table-row" in xml:
        edits.append(lambda x: re.sub(rb"<table:table-row", rng.choice(
            [b'<table:table-row table:number-rows-repeated="1000000000"', b'<table:table-row table:number-rows-repeated="1048577"']), x, count=1))
        edits.append(lambda x: re.sub(rb"<table:table-cell", b'<table:table-cell table:number-columns-repeated="1000000"', x, count=2))
    edits.append(lambda x: flip(rng, x))
    edits.append(lambda x: truncate(rng, x))
    return rng.choice(edits)(xml)


def zip_mutation(rng, data):
    try:
        src = zipfile.ZipFile(io.BytesIO(data))
        parts = [(i, src.read(i.filename)) for i in src.infolist()]
    except Exception:
        return flip(rng, data)
    xmls = [k for k, (i, _) in enumerate(parts) if i.filename.endswith(".xml")]
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        targets = set(rng.sample(xmls, min(len(xmls), rng.randint(1, 2)))) if xmls else set()
        for k, (info, body) in enumerate(parts):
            if k in targets:
                body = xml_mutations(rng, info.filename, body)
            z.writestr(info.filename, body)
    return out.getvalue()


def mutate(rng, name, data):
    """One damage of `data`; inputs grown past the size the figures are
    for are not built (the caller skips them)."""
    if len(data) > MAX_INPUT:
        return data
    ext = name.rsplit(".", 1)[-1].lower()
    choice = rng.random()
    if ext == "csv" and choice < 0.6:
        return csv_mutation(rng, data)
    if ext in ("xlsx", "ods") and choice < 0.7:
        return zip_mutation(rng, data)
    return rng.choice([flip, truncate, splice])(rng, data)


# ---- running one input ------------------------------------------------------

def limit():
    resource.setrlimit(resource.RLIMIT_AS, (MEM_CAP, MEM_CAP))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def run(path, report):
    """One run: exit code, stderr, whether it hung, seconds, and the peak
    RSS (KiB) of the run and the processes it waited for (wait4)."""
    started = time.monotonic()
    err = tempfile.TemporaryFile()
    proc = subprocess.Popen(
        [BIN, "validate", path, "--report", report, "-q"],
        stdout=subprocess.DEVNULL, stderr=err, preexec_fn=limit,
    )
    hung = False
    deadline = started + TIMEOUT
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        if time.monotonic() > deadline:
            hung = True
            proc.kill()
            pid, status, usage = os.wait4(proc.pid, 0)
            break
        time.sleep(0.005)
    proc.returncode = os.waitstatus_to_exitcode(status)
    elapsed = time.monotonic() - started
    err.seek(0)
    stderr = err.read()[-65536:].decode("utf-8", "replace")
    err.close()
    return proc.returncode, stderr, hung, elapsed, usage.ru_maxrss


def verdict(code, stderr, hung, elapsed, rss_kib):
    if hung:
        return "hang"
    if code == 101 or "panicked" in stderr:
        return "panic"
    if code < 0:
        return "abort" if -code == signal.SIGABRT else f"signal {-code}"
    if code == 134:
        return "abort"
    if rss_kib > RSS_LIMIT_KIB:
        return "memory"
    if elapsed > SLOW:
        return "slow"
    if code not in (0, 1, 2, 3):
        return f"exit {code}"
    return None


def main():
    global BIN
    if not os.path.exists(BIN):
        sys.exit(f"{BIN} not found: cargo build --release first")
    rng = random.Random(SEED)
    pool = seeds()
    # Run a copy: a rebuild during a long run must not pull the program away.
    work_bin = tempfile.mkdtemp(prefix="fuzz-bin-")
    BIN = shutil.copy(BIN, os.path.join(work_bin, "dcms-bulk"))
    os.makedirs(FINDINGS, exist_ok=True)
    work = tempfile.mkdtemp(prefix="fuzz-")
    codes, found = Counter(), Counter()
    worst_rss, worst_time, n = 0, 0.0, 0
    end = time.monotonic() + DURATION
    try:
        while time.monotonic() < end:
            name, data = rng.choice(pool)
            try:
                mutated = mutate(rng, name, data)
                if rng.random() < 0.2:
                    mutated = mutate(rng, name, mutated)
            except MemoryError:
                continue
            if len(mutated) > MAX_INPUT:
                continue
            ext = name.rsplit(".", 1)[-1]
            path = os.path.join(work, f"input.{ext}")
            with open(path, "wb") as f:
                f.write(mutated)
            report = os.path.join(work, "report.csv")
            code, stderr, hung, elapsed, rss = run(path, report)
            n += 1
            codes["hang" if hung else code] += 1
            worst_rss = max(worst_rss, rss)
            worst_time = max(worst_time, elapsed)
            why = verdict(code, stderr, hung, elapsed, rss)
            if why:
                found[why] += 1
                keep = os.path.join(FINDINGS, f"{why.replace(' ', '_')}-{n:06d}-{name}")
                shutil.copy(path, keep)
                with open(keep + ".why.txt", "w") as f:
                    f.write(f"{why}: exit {code}, {elapsed:.1f} s, {rss} KiB\n{stderr[-2000:]}\n")
    finally:
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(work_bin, ignore_errors=True)
    print(f"inputs: {n} in {DURATION:.0f} s (seed {SEED}, cap {MEM_CAP >> 20} MiB, timeout {TIMEOUT:.0f} s)")
    print("exit codes: " + ", ".join(f"{k}: {v}" for k, v in sorted(codes.items(), key=str)))
    print("findings: " + (", ".join(f"{k}: {v}" for k, v in sorted(found.items())) or "none"))
    print(f"slowest run: {worst_time:.1f} s; highest peak RSS: {worst_rss >> 10} MiB")
    print(f"kept in: {FINDINGS}")


if __name__ == "__main__":
    main()
