# Sourced by the fixture scripts. Never committed: the images these scripts build.
# Built images are cached outside the repository, keyed by a hash of their build inputs,
# so a machine builds each fixture once.
set -euo pipefail

FIXTURES=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
FIXTURE_CACHE=${GOLDIFY_FIXTURE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/goldify/fixtures}
mkdir -p "$FIXTURE_CACHE"

log() { printf '[fixture] %s\n' "$*" >&2; }
die() { printf '[fixture] error: %s\n' "$*" >&2; exit 1; }

# KVM may exist and still crash ("KVM internal error"); start it for real to know.
# Mirrors what goldify's own probe does; prints "kvm" or "tcg".
kvm_works() {
    [ -r /dev/kvm ] && [ -w /dev/kvm ] || return 1
    local rc=0
    timeout 2 qemu-system-x86_64 -machine accel=kvm -cpu host -m 64 -nodefaults \
        -display none -serial none -monitor none -no-reboot >/dev/null 2>&1 || rc=$?
    [ "$rc" -eq 124 ] || [ "$rc" -eq 0 ]
}

# Exports the libguestfs settings for this host (TCG where KVM does not work).
guestfs_env() {
    export LIBGUESTFS_BACKEND=${LIBGUESTFS_BACKEND:-direct}
    if [ -z "${LIBGUESTFS_BACKEND_SETTINGS:-}" ] && ! kvm_works; then
        export LIBGUESTFS_BACKEND_SETTINGS=force_tcg
    fi
}

# qemu -accel argument for booting fixtures.
qemu_accel() { if kvm_works; then echo "accel=kvm -cpu host"; else echo "accel=tcg"; fi; }

# fixture_key FILE... : a short hash of the build inputs (the given files and this library).
fixture_key() {
    cat "$FIXTURES/lib.sh" "$@" | sha256sum | cut -c1-16
}

# with_lock NAME CMD... : run CMD under an exclusive lock, so that parallel tests
# asking for the same fixture build it once.
with_lock() {
    local name=$1; shift
    exec {lockfd}>"$FIXTURE_CACHE/.$name.lock"
    flock "$lockfd"
    "$@"
    exec {lockfd}>&-
}
