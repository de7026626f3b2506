#!/usr/bin/env bash
# windows.sh — builds the small Windows test fixture: not bootable, but a disk that
# libguestfs' inspection takes for Windows Server 2022 and that carries a used state.
#
# Usage:
#   windows.sh NAME     build (or reuse) image NAME; print its absolute path (one line)
#   windows.sh all      build every image; print "NAME PATH" lines
#   windows.sh --list   print the image names
#
# Images: `windows` (shut down cleanly: hiberfil.sys with an all-zero header, as Windows
# leaves it after a resume) and `windows-hibernated` (hiberfil.sys starts with "HIBR", as
# after a hibernation or a Fast Startup shutdown: ntfs-3g will not mount it read-write).
#
# Everything is generated here from data under windows/ with this project's own code and
# Debian packages (libhivex-bin, libwin-hivex-perl, ntfs-3g via libguestfs):
#   1. gen.py writes the file tree (windows/tree.list), an empty registry hive (its own
#      regf writer) for SOFTWARE and SYSTEM, cmd.exe (a PE32+ x86-64 header, which
#      `file` and so libguestfs' file-architecture recognise) and hiberfil.sys;
#   2. hivexregedit --merge fills the hives from windows/SOFTWARE.reg and SYSTEM.reg;
#   3. one guestfish launch makes a GPT disk with one NTFS partition (fixed partition
#      GUID, which SYSTEM\MountedDevices names as C:), tar-ins the tree and checks that
#      libguestfs' inspection finds Windows with the product name and hostname above.
# Cached in $FIXTURE_CACHE (see lib.sh) as NAME-<key>.qcow2; the key hashes this script,
# lib.sh and windows/*. Concurrent callers wait on a per-image lock and build once.

# shellcheck source=lib.sh
source "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/lib.sh"
umask 022

WIN_NAMES=(windows windows-hibernated)
WIN_DATA=$FIXTURES/windows
WIN_SIZE=512M
WIN_MTIME='2024-05-01 12:00:00 UTC'
# Known values (vm-fixtures/README.md; tests assert them).
WIN_PART_GUID=5c4e2a10-7b3d-4e6f-9a81-0c2d3e4f5a6b   # SYSTEM.reg MountedDevices matches
WIN_BASIC_DATA=EBD0A0A2-B9E5-4433-87C0-68B6B72699C7   # GPT "Microsoft basic data"
WIN_LABEL=Windows
WIN_PRODUCT='Windows Server 2022 Standard'
WIN_HOSTNAME=WIN-GOLDIFY01

KEY=$(fixture_key "$FIXTURES/windows.sh" "$WIN_DATA"/*)
CACHE=$(cd "$FIXTURE_CACHE" && pwd -P)
WORK= OUT_TMP= GF_PID=

gf() { guestfish --remote="$GF_PID" -- "$@" >&2; }
gfo() { guestfish --remote="$GF_PID" -- "$@"; }

gf_stop() {
    [ -n "$GF_PID" ] || return 0
    local pid=$GF_PID i
    GF_PID=
    guestfish --remote="$pid" -- exit >/dev/null 2>&1 || true
    for ((i = 0; i < 600; i++)); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.2
    done
    log "guestfish server $pid did not exit; killing it"
    kill "$pid" 2>/dev/null || true
}

cleanup() {
    gf_stop
    [ -z "$WORK" ] || rm -rf -- "$WORK"
    [ -z "$OUT_TMP" ] || rm -f -- "$OUT_TMP" "$OUT_TMP.c"
    WORK= OUT_TMP=
}
trap cleanup EXIT
trap 'exit 130' INT TERM

need() { command -v "$1" >/dev/null || die "$1 not found (scripts/setup-host.sh installs $2)"; }

# make_tree NAME DIR — the volume's files: tree.list, the hives, cmd.exe, hiberfil.sys.
make_tree() {
    local name=$1 t=$2 h sig
    python3 "$WIN_DATA/gen.py" tree "$WIN_DATA/tree.list" "$t"
    for h in SOFTWARE SYSTEM; do
        python3 "$WIN_DATA/gen.py" hive "$t/Windows/System32/config/$h" "$h"
        hivexregedit --merge --prefix "HKEY_LOCAL_MACHINE\\$h" \
            "$t/Windows/System32/config/$h" "$WIN_DATA/$h.reg" >&2 \
            || die "$name: merging $h.reg into the $h hive failed"
    done
    python3 "$WIN_DATA/gen.py" pe "$t/Windows/System32/cmd.exe" x86_64
    case $name in
        windows) sig=zero ;;
        windows-hibernated) sig=HIBR ;;
    esac
    python3 "$WIN_DATA/gen.py" hiberfil "$t/hiberfil.sys" 1048576 "$sig"
}

build_image() { # build_image NAME OUT
    local name=$1 out=$2 start=$SECONDS roots root product host
    need hivexregedit libwin-hivex-perl
    log "building Windows fixture '$name' -> $out"
    WORK=$(mktemp -d "${TMPDIR:-/tmp}/goldify-windows-$name.XXXXXX")
    make_tree "$name" "$WORK/root"
    tar --owner=0 --group=0 --numeric-owner --sort=name --mtime="$WIN_MTIME" \
        -C "$WORK/root" -cf "$WORK/root.tar" .
    OUT_TMP=$out.tmp.$$
    qemu-img create -q -f qcow2 "$OUT_TMP" "$WIN_SIZE" >&2
    guestfs_env 2>/dev/null
    local listen
    listen=$(guestfish --listen --format=qcow2 -a "$OUT_TMP" {lockfd}>&-) || die "guestfish did not start"
    GUESTFISH_PID=
    eval "$listen"
    GF_PID=$GUESTFISH_PID
    [ -n "$GF_PID" ] || die "guestfish did not start"
    gf run
    gf part-disk /dev/sda gpt
    gf part-set-gpt-type /dev/sda 1 "$WIN_BASIC_DATA"
    gf part-set-gpt-guid /dev/sda 1 "$WIN_PART_GUID"
    gf part-set-name /dev/sda 1 'Basic data partition'
    gf mkfs ntfs /dev/sda1
    gf set-label /dev/sda1 "$WIN_LABEL"
    gf mount /dev/sda1 /
    gf tar-in "$WORK/root.tar" /
    gf sync
    gf umount-all
    # Self-check: libguestfs' inspection finds exactly this Windows.
    roots=$(gfo inspect-os)
    [ "$(printf '%s\n' "$roots" | grep -c .)" = 1 ] || die "$name: inspection found roots: [$roots]"
    root=$roots
    product=$(gfo inspect-get-product-name "$root")
    host=$(gfo inspect-get-hostname "$root")
    log "$name: inspect-os: $root type=$(gfo inspect-get-type "$root")" \
        "version=$(gfo inspect-get-major-version "$root").$(gfo inspect-get-minor-version "$root")" \
        "arch=$(gfo inspect-get-arch "$root") product='$product' hostname=$host" \
        "systemroot=$(gfo inspect-get-windows-systemroot "$root")" \
        "controlset=$(gfo inspect-get-windows-current-control-set "$root")"
    [ "$(gfo inspect-get-type "$root")" = windows ] || die "$name: not detected as windows"
    [ "$product" = "$WIN_PRODUCT" ] || die "$name: product name '$product'"
    [ "$host" = "$WIN_HOSTNAME" ] || die "$name: hostname '$host'"
    [ "$(gfo inspect-get-arch "$root")" = x86_64 ] || die "$name: cmd.exe not read as x86_64"
    gf_stop
    qemu-img convert -c -O qcow2 "$OUT_TMP" "$OUT_TMP.c" >&2
    mv -f -- "$OUT_TMP.c" "$OUT_TMP"
    qemu-img check -q "$OUT_TMP" >&2 || die "$name: qemu-img check failed"
    mv -f -- "$OUT_TMP" "$out"
    OUT_TMP=
    rm -rf -- "$WORK"
    WORK=
    log "$name: built in $((SECONDS - start)) s ($(du -h "$out" | cut -f1) on disk)"
}

build_if_missing() { # runs under the lock
    if [ -f "$2" ]; then log "$1: built meanwhile by another process"; return 0; fi
    build_image "$1" "$2"
}

ensure() { # ensure NAME — sets REPLY to the cached image path, building it if needed
    local name=$1 out="$CACHE/$1-$KEY.qcow2"
    [ -f "$out" ] || with_lock "windows-$name" build_if_missing "$name" "$out"
    REPLY=$out
}

is_name() { local n; for n in "${WIN_NAMES[@]}"; do [ "$n" = "$1" ] && return 0; done; return 1; }

usage() {
    cat <<USAGE
usage: ${0##*/} NAME | all | --list
  NAME     build (once; cached) the Windows fixture NAME and print its absolute path
  all      build every image and print "NAME PATH" lines
  --list   print the image names: ${WIN_NAMES[*]}
Images are cached in $CACHE as NAME-$KEY.qcow2.
USAGE
}

main() {
    [ $# -eq 1 ] || { usage >&2; exit 2; }
    case $1 in
        --list) printf '%s\n' "${WIN_NAMES[@]}" ;;
        -h | --help) usage ;;
        all)
            local n
            for n in "${WIN_NAMES[@]}"; do
                ensure "$n"
                printf '%s %s\n' "$n" "$REPLY"
            done
            ;;
        *)
            is_name "$1" || die "unknown Windows fixture '$1' (known: ${WIN_NAMES[*]})"
            ensure "$1"
            printf '%s\n' "$REPLY"
            ;;
    esac
}

main "$@"
