#!/usr/bin/env bash
# bench/publish.sh — goldify run → VMmanager template, against the chain a user runs today:
#
#   virt-sysprep -a D; virt-sparsify --in-place D; qemu-img convert -O raw D D.raw;
#   xz -T0 -6 D.raw; sha1sum D.raw.xz
#
# on the real Debian 12 fixture (4 GiB virtual, about 1 GiB used), then goldify again on
# the same guest with its disk grown to 40 GiB (partition unchanged). Prints the three
# figures the publish issue sets targets for:
#   goldify / chain wall time        target <= 0.85
#   goldify archive vs chain archive target: goldify's no bigger
#   goldify 40 GiB / goldify 4 GiB   target <= 1.10
#
# Every timed run works on its own copy of the fixture (copies are not timed) and starts
# with dropped page caches where the host allows it.
#
# Environment: GOLDIFY (binary, default target/release/goldify, built if missing),
# FIXTURE (default: vm-fixtures/debian12.sh), WORK (scratch dir, default under /var/tmp),
# RECIPE (default recipes/debian.yaml), KEEP=1 keeps WORK.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
GOLDIFY=${GOLDIFY:-$ROOT/target/release/goldify}
RECIPE=${RECIPE:-$ROOT/recipes/debian.yaml}
if [ ! -x "$GOLDIFY" ]; then
    (cd "$ROOT" && cargo build --release --quiet)
fi
FIXTURE=${FIXTURE:-$("$ROOT/vm-fixtures/debian12.sh")}
WORK=${WORK:-$(mktemp -d /var/tmp/goldify-bench.XXXXXX)}
mkdir -p "$WORK"
[ "${KEEP:-0}" = 1 ] || trap 'rm -rf "$WORK"' EXIT

# The virt-* tools on hosts where KVM does not work: the direct backend, TCG (as goldify
# decides for itself). lib.sh knows how to probe.
# shellcheck source=../vm-fixtures/lib.sh
if [ -f "$ROOT/vm-fixtures/lib.sh" ]; then
    . "$ROOT/vm-fixtures/lib.sh"
    guestfs_env
else
    export LIBGUESTFS_BACKEND=direct LIBGUESTFS_BACKEND_SETTINGS=${LIBGUESTFS_BACKEND_SETTINGS:-force_tcg}
fi
set +e +u +o pipefail 2>/dev/null; set -euo pipefail

log() { printf '[bench] %s\n' "$*" >&2; }
now() { date +%s.%N; }
drop_caches() { sync; echo 3 >/proc/sys/vm/drop_caches 2>/dev/null || true; }
copy() { cp --sparse=always "$FIXTURE" "$1"; }
size_of() { stat -c %s "$1"; }

# goldify NAME DISK: time one goldify run publishing a VMmanager template into WORK/NAME.
goldify_run() {
    local name=$1 disk=$2 t0 t1
    rm -rf "${WORK:?}/$name"
    drop_caches
    t0=$(now)
    "$GOLDIFY" --quiet run "$RECIPE" "$disk" --outdir "$WORK/$name" --publish vmmanager >"$WORK/$name.report" 2>"$WORK/$name.log"
    t1=$(now)
    echo "$t1 - $t0" | bc
}

log "fixture: $FIXTURE ($(qemu-img info --output=json "$FIXTURE" | jq -r '."virtual-size"') bytes virtual)"
log "work:    $WORK"

log "goldify, 4 GiB disk"
copy "$WORK/g4.qcow2"
T_G4=$(goldify_run g4 "$WORK/g4.qcow2")
A_G4=$(size_of "$(ls "$WORK"/g4/*.xz)")
rm -f "$WORK/g4.qcow2"

log "chain: virt-sysprep, virt-sparsify --in-place, qemu-img convert, xz -T0 -6, sha1sum"
copy "$WORK/c.qcow2"
drop_caches
t0=$(now)
virt-sysprep --quiet -a "$WORK/c.qcow2" >"$WORK/chain.log" 2>&1
t1=$(now)
virt-sparsify --quiet --in-place "$WORK/c.qcow2" >>"$WORK/chain.log" 2>&1
t2=$(now)
qemu-img convert -O raw "$WORK/c.qcow2" "$WORK/c.raw"
t3=$(now)
xz -T0 -6 "$WORK/c.raw"
t4=$(now)
sha1sum "$WORK/c.raw.xz" >"$WORK/c.raw.xz.sha1"
t5=$(now)
T_CHAIN=$(echo "$t5 - $t0" | bc)
A_CHAIN=$(size_of "$WORK/c.raw.xz")
log "chain steps: sysprep $(echo "$t1-$t0" | bc) s, sparsify $(echo "$t2-$t1" | bc) s, convert $(echo "$t3-$t2" | bc) s, xz $(echo "$t4-$t3" | bc) s, sha1sum $(echo "$t5-$t4" | bc) s"
rm -f "$WORK/c.qcow2" "$WORK/c.raw"

log "goldify, the same guest on a 40 GiB disk"
copy "$WORK/g40.qcow2"
qemu-img resize -q "$WORK/g40.qcow2" 40G
T_G40=$(goldify_run g40 "$WORK/g40.qcow2")
A_G40=$(size_of "$(ls "$WORK"/g40/*.xz)")
rm -f "$WORK/g40.qcow2"

timings() { jq -r '.timings | to_entries | map("\(.key) \(.value*10|round/10) s") | join(", ")' "$1"; }
goldify_json() { "$GOLDIFY" --version >/dev/null; }
printf '\n%-34s %10s %14s\n' "run" "seconds" "archive bytes"
printf '%-34s %10.1f %14d\n' "goldify (4 GiB virtual)" "$T_G4" "$A_G4"
printf '%-34s %10.1f %14d\n' "chain (sysprep…sha1sum)" "$T_CHAIN" "$A_CHAIN"
printf '%-34s %10.1f %14d\n' "goldify (40 GiB virtual)" "$T_G40" "$A_G40"
R_TIME=$(echo "scale=3; $T_G4 / $T_CHAIN" | bc)
R_SIZE=$(echo "scale=4; $A_G4 / $A_CHAIN" | bc)
R_40=$(echo "scale=3; $T_G40 / $T_G4" | bc)
verdict() { if [ "$(echo "$1 <= $2" | bc)" = 1 ]; then echo ok; else echo MISSED; fi; }
printf '\ngoldify / chain time:       %s  (target <= 0.85: %s)\n' "$R_TIME" "$(verdict "$R_TIME" 0.85)"
printf 'goldify / chain archive:    %s  (target <= 1: %s)\n' "$R_SIZE" "$(verdict "$R_SIZE" 1)"
printf '40 GiB / 4 GiB goldify time: %s  (target <= 1.10: %s)\n' "$R_40" "$(verdict "$R_40" 1.10)"
