#!/usr/bin/env bash
# bench/windows.sh — a VMmanager Windows template from the Windows fixture
# (vm-fixtures/windows.sh, 512 MiB virtual), then from the same guest with its disk grown
# to 4 GiB and to 40 GiB (the partition left as it is: the rest is a hole). Prints the run
# time and archive size of each, and the figure the Windows issue asks for:
#   40 GiB package time / 4 GiB package time   (work proportional to data: near 1)
# The package time is the report's `publish` timing (the tar.gz pass and the entry).
# Runs under TCG here; other load on the machine skews every figure.
#
# Environment: GOLDIFY (binary; default target/release/goldify, built if missing),
# FIXTURE (default: the image vm-fixtures/windows.sh prints), WORK (scratch; default a new
# directory under /var/tmp, removed at the end unless KEEP=1).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
GOLDIFY=${GOLDIFY:-$ROOT/target/release/goldify}
[ -x "$GOLDIFY" ] || (cd "$ROOT" && cargo build --release --quiet)
FIXTURE=${FIXTURE:-$("$ROOT/vm-fixtures/windows.sh" windows)}
WORK=${WORK:-$(mktemp -d /var/tmp/goldify-bench-win.XXXXXX)}
mkdir -p "$WORK"
[ "${KEEP:-0}" = 1 ] || trap 'rm -rf "$WORK"' EXIT
cd "$WORK"
# goldify cannot ship dd.exe; recipes/windows.yaml names ./dd.exe: a stand-in.
head -c 4096 /dev/zero | sed 's/^/MZ/' >dd.exe

run() { # run SIZE: prints "SIZE wall publish archive_bytes"
    local size=$1 disk=$WORK/in-$1.qcow2
    rm -rf "out-$size" "repo-$size"
    cp --sparse=always "$FIXTURE" "$disk"
    [ "$size" = orig ] || qemu-img resize -q "$disk" "$size"
    local t0 t1
    t0=$(date +%s.%N)
    "$GOLDIFY" -q run --json "$ROOT/recipes/windows.yaml" "$disk" -o "out-$size" \
        --publish vmmanager-windows --publish-dir "repo-$size" >"report-$size.json"
    t1=$(date +%s.%N)
    python3 - "$size" "$t0" "$t1" "report-$size.json" "repo-$size" <<'PY'
import json, os, sys
size, t0, t1, report, repo = sys.argv[1:]
r = json.load(open(report))
pkg = [f for f in os.listdir(repo) if f.endswith(".tar.gz")][0]
print(f"{size:>5}  wall {float(t1) - float(t0):7.1f} s  publish {r['timings']['publish']:6.2f} s  "
      f"archive {os.path.getsize(os.path.join(repo, pkg)) / 2**20:7.2f} MiB")
PY
    rm -f "$disk"
}

run orig
run 4G | tee small.txt
run 40G | tee big.txt
python3 - <<'PY'
import re
def pub(f):
    return float(re.search(r"publish\s+([\d.]+)", open(f).read()).group(1))
print(f"40 GiB / 4 GiB package time: {pub('big.txt') / pub('small.txt'):.2f}")
PY
