#!/usr/bin/env bash
# How long inspection takes: goldify's probe (find the root, mount what its fstab lists,
# read the OS facts from the guest's files) against libguestfs' full inspection
# (inspect-os, then the inspect-get-* answers goldify reports, then mounting what
# inspect-get-mountpoints lists, as guestfish -i does), on the real used Debian 12 fixture,
# in the same run, on the same host. The appliance launch is left out of both: only the
# inspection is timed. Prints the figures; nothing here is asserted in a test.
#
#   bench/inspect.sh [ROUNDS]     (default 3)
#   GOLDIFY=target/debug/goldify bench/inspect.sh 1   (skip the release build; the probe's
#                                 time is the appliance's, not goldify's own code)
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}

if [ -n "${GOLDIFY:-}" ]; then
    goldify=$(readlink -f "$GOLDIFY")
else
    cargo build --locked --release -q
    goldify=$PWD/target/release/goldify
fi
used=$(bash vm-fixtures/debian12.sh)
source vm-fixtures/lib.sh
guestfs_env
work=$(mktemp -d "${TMPDIR:-/tmp}/goldify-bench-inspect.XXXXXX")
GF_PID=
cleanup() {
    [ -z "$GF_PID" ] || guestfish --remote="$GF_PID" -- exit >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT

now() { date +%s.%N; }
since() { echo "$(now) - $1" | bc -l; }

for r in $(seq "$rounds"); do
    # goldify: its own log line times the probe after the launch.
    "$goldify" -v inspect "$used" >"$work/out" 2>"$work/log"
    g=$(sed -n 's/.*inspection took \([0-9.]*\) s.*/\1/p' "$work/log" | tail -1)
    [ -n "$g" ] || { cat "$work/log" >&2; echo "no timing line from goldify" >&2; exit 1; }

    # libguestfs: one appliance, launched before the clock starts.
    eval "$(guestfish --listen --ro --format=qcow2 -a "$used")"
    GF_PID=$GUESTFISH_PID
    gf() { guestfish --remote="$GF_PID" -- "$@"; }
    gf run
    t0=$(now)
    # Three guestfish calls (each a small process; the commands are batched on stdin).
    root=$(gf inspect-os | head -1)
    for q in type distro major-version minor-version product-name arch hostname \
             package-format package-management mountpoints; do
        echo "inspect-get-$q $root"
    done | guestfish --remote="$GF_PID" >"$work/answers"
    # Mount as guestfish -i does: shortest mountpoint first.
    grep '^/.*: ' "$work/answers" | awk -F': ' '{print length($1), $1, $2}' | sort -n |
        while read -r _ mp dev; do echo "mount-ro $dev $mp"; done | guestfish --remote="$GF_PID"
    l=$(since "$t0")
    gf exit >/dev/null 2>&1 || true
    GF_PID=
    printf 'round %s: goldify probe %.2f s, libguestfs inspection %.2f s (%.1fx)\n' \
        "$r" "$g" "$l" "$(echo "$l / $g" | bc -l)"
done
