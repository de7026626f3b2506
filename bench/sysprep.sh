#!/usr/bin/env bash
# Benchmark for `goldify run` (steps + trim, no publishing) against what people run today,
# `virt-sysprep` followed by `virt-sparsify --in-place`, on the real used Debian 12 fixture,
# in the same run, on the same host. Prints wall times, peak memory and the ratio
# (target: goldify <= 0.45 x the pair). Timings are measured here, never asserted in tests.
#
#   bench/sysprep.sh [ROUNDS]     (default 1 round; each round runs both sides once)
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-1}

bash scripts/setup-host.sh >/dev/null
cargo build --locked --release -q
goldify=$PWD/target/release/goldify
used=$(bash vm-fixtures/debian12.sh)
work=$(mktemp -d "${TMPDIR:-/tmp}/goldify-bench.XXXXXX")
trap 'rm -rf "$work"' EXIT

# The virt-* tools need the same TCG fallback goldify applies by itself on this host.
source vm-fixtures/lib.sh
guestfs_env

# measure LABEL CMD... : wall seconds and peak RSS (KiB) of CMD, appended to $work/times
measure() {
    local label=$1; shift
    local t0 t1
    t0=$(date +%s.%N)
    /usr/bin/time -f "%M" -o "$work/rss" "$@" >"$work/$label.log" 2>&1 || { cat "$work/$label.log" >&2; exit 1; }
    t1=$(date +%s.%N)
    printf '%s %.2f %s\n' "$label" "$(echo "$t1 - $t0" | bc -l)" "$(cat "$work/rss")" >>"$work/times"
}

for r in $(seq "$rounds"); do
    rm -rf "$work/out" "$work"/*.qcow2
    mkdir -p "$work/out"
    # goldify: reads the used disk read-only, writes the golden disk.
    measure goldify "$goldify" run recipes/debian.yaml "$used" -o "$work/out" --name golden
    # goldify --in-place on a copy, the same work as the pair below does.
    cp --sparse=always "$used" "$work/inplace.qcow2"
    measure goldify-in-place "$goldify" run recipes/debian.yaml "$work/inplace.qcow2" --in-place
    # The pair, on a copy (both edit in place).
    cp --sparse=always "$used" "$work/pair.qcow2"
    measure virt-sysprep virt-sysprep --format qcow2 -a "$work/pair.qcow2"
    measure virt-sparsify virt-sparsify --in-place "$work/pair.qcow2"
done

awk -v rounds="$rounds" '
    { t[$1] += $2; if ($3 > m[$1]) m[$1] = $3 }
    END {
        pair = (t["virt-sysprep"] + t["virt-sparsify"]) / rounds
        g = t["goldify"] / rounds; gi = t["goldify-in-place"] / rounds
        printf "goldify run (new golden disk)  %7.1f s  peak RSS %6.1f MiB\n", g, m["goldify"] / 1024
        printf "goldify run --in-place         %7.1f s  peak RSS %6.1f MiB\n", gi, m["goldify-in-place"] / 1024
        printf "virt-sysprep                   %7.1f s  peak RSS %6.1f MiB\n", t["virt-sysprep"] / rounds, m["virt-sysprep"] / 1024
        printf "virt-sparsify --in-place       %7.1f s  peak RSS %6.1f MiB\n", t["virt-sparsify"] / rounds, m["virt-sparsify"] / 1024
        printf "ratio goldify / pair           %7.2f  (in-place %.2f; target <= 0.45)\n", g / pair, gi / pair
    }' "$work/times"
ls -l --block-size=K "$work/out/golden.qcow2" "$work/pair.qcow2" "$work/inplace.qcow2" | awk '{print "size", $5, $9}'
