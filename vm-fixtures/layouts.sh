#!/usr/bin/env bash
# layouts.sh — small guests laid out the way real distributions lay them out, for the
# inspection tests (issue 11): btrfs subvolumes, release files other than os-release,
# CoreOS' separate /usr, LUKS on a partition and inside LVM, guests on two disks (MD
# RAID1; a volume group over both).
#
# Usage:
#   layouts.sh NAME     build (or reuse) image NAME; print the absolute path of each of its
#                       disks, one per line, in the order the guest's disks go
#   layouts.sh all      build every image; print "NAME PATH…" lines
#   layouts.sh --list   print the image names
#
# Everything an image holds is data under vm-fixtures/layouts/:
#   NAME.gf        the guestfish commands that partition and format the disk, mount its
#                  filesystems and fill them; `%tar:DIR%` stands for a tarball of
#                  layouts/DIR (owned by root), `%key%` for the LUKS passphrase; a first
#                  line `# disks: N` gives the guest N disks (/dev/sda, /dev/sdb, …);
#   DIR/…          the file trees (tens of files: accounts, release files, a history, ssh
#                  host key files, a log); layouts/common is shared;
#   key            the passphrase of the LUKS images (a test key, not a secret).
# Symlinks never live on the host: the .gf scripts make them with ln-s inside the guest.
# Images are cached in $FIXTURE_CACHE as layout-NAME-<key>.qcow2 (a second disk as
# layout-NAME-<key>.disk2.qcow2…), the key hashing this script, lib.sh and everything
# under layouts/, so editing any of them rebuilds.

# shellcheck source=lib.sh
source "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/lib.sh"
umask 022

LAYOUT_NAMES=(btrfs ubuntu-lsb arch fedora-release coreos luks-part luks-lv md-raid1 vg-two-disks)
LAYOUT_SIZE=1G
LAYOUT_MTIME='2024-05-01 12:00:00 UTC'
DATA=$FIXTURES/layouts

data_hash() { # every data file, by name and content, in a stable order
    (cd "$DATA" && find . -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum)
}
KEY=$(data_hash | fixture_key "$FIXTURES/layouts.sh" -)
CACHE=$(cd "$FIXTURE_CACHE" && pwd -P)
WORK=
OUT_TMP=()

cleanup() {
    [ -n "$WORK" ] && rm -rf -- "$WORK"
    local t
    for t in "${OUT_TMP[@]}"; do rm -f -- "$t" "$t.c"; done
    WORK=
    OUT_TMP=()
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# script NAME — NAME.gf with its placeholders filled in, on stdout (tarballs made in $WORK).
script() {
    local name=$1 line dir tarball pass
    pass=$(head -n1 "$DATA/key")
    case $pass in *[!A-Za-z0-9-]*) die "layouts/key: only letters, digits and '-' are quoted safely" ;; esac
    echo run
    while IFS= read -r line; do
        while [[ $line =~ %tar:([A-Za-z0-9/_-]+)% ]]; do
            dir=${BASH_REMATCH[1]}
            [ -d "$DATA/$dir" ] || die "$name.gf: no data directory layouts/$dir"
            tarball=$WORK/${dir//\//_}.tar
            [ -f "$tarball" ] || tar --owner=0 --group=0 --numeric-owner --sort=name \
                --mtime="$LAYOUT_MTIME" -C "$DATA/$dir" -cf "$tarball" .
            line=${line//"%tar:$dir%"/$tarball}
        done
        printf '%s\n' "${line//%key%/$pass}"
    done <"$DATA/$name.gf"
    printf 'sync\numount-all\ninspect-os\n'
}

# disks NAME — how many disks the guest has (its .gf's `# disks: N`, else 1).
disks() {
    local n
    n=$(sed -n '1s/^# disks: \([1-9]\)$/\1/p' "$DATA/$1.gf")
    echo "${n:-1}"
}

# outputs NAME — the cached path of each of the guest's disks, one per line.
outputs() {
    local i n
    n=$(disks "$1")
    echo "$CACHE/layout-$1-$KEY.qcow2"
    for ((i = 2; i <= n; i++)); do echo "$CACHE/layout-$1-$KEY.disk$i.qcow2"; done
}

build_image() { # build_image NAME OUT…
    local name=$1 start=$SECONDS roots out t adds=()
    shift
    log "building layout guest '$name' -> $*"
    WORK=$(mktemp -d "${TMPDIR:-/tmp}/goldify-layout-$name.XXXXXX")
    script "$name" >"$WORK/build.gf"
    OUT_TMP=()
    for out in "$@"; do
        t=$out.tmp.$$
        OUT_TMP+=("$t")
        qemu-img create -q -f qcow2 "$t" "$LAYOUT_SIZE" >&2
        adds+=(-a "$t")
    done
    guestfs_env 2>/dev/null
    # Don't let guestfish (and qemu) inherit the build lock.
    roots=$(guestfish --format=qcow2 "${adds[@]}" -f "$WORK/build.gf" {lockfd}>&-) ||
        die "$name: guestfish failed (script: $DATA/$name.gf)"
    # Self-check: libguestfs' own inspection finds exactly one root (the LUKS images
    # are still open in that appliance when it looks).
    [ "$(printf '%s\n' "$roots" | grep -c .)" = 1 ] || die "$name: inspection found roots: [$roots]"
    log "$name: inspect-os: $roots"
    for t in "${OUT_TMP[@]}"; do
        qemu-img convert -c -O qcow2 "$t" "$t.c" >&2
        mv -f -- "$t.c" "$t"
        qemu-img check -q "$t" >&2 || die "$name: qemu-img check failed"
    done
    # Every disk is complete before any is in place: the first disk's presence is what
    # `ensure` tests, so it goes last.
    for ((t = $#; t >= 1; t--)); do mv -f -- "${OUT_TMP[t - 1]}" "${!t}"; done
    OUT_TMP=()
    rm -rf -- "$WORK"
    WORK=
    log "$name: built in $((SECONDS - start)) s ($(du -ch "$@" | tail -n1 | cut -f1) on disk)"
}

build_if_missing() { # runs under the lock
    local name=$1
    shift
    if [ -f "$1" ]; then log "$name: built meanwhile by another process"; return 0; fi
    build_image "$name" "$@"
}

# ensure NAME — sets REPLY to the cached disk paths (one per line), building if needed.
ensure() {
    local outs
    mapfile -t outs < <(outputs "$1")
    [ -f "${outs[0]}" ] || with_lock "layout-$1" build_if_missing "$1" "${outs[@]}"
    REPLY=$(printf '%s\n' "${outs[@]}")
}

is_name() { local n; for n in "${LAYOUT_NAMES[@]}"; do [ "$n" = "$1" ] && return 0; done; return 1; }

usage() {
    cat <<EOF
usage: ${0##*/} NAME | all | --list
  NAME     build (once; cached) the layout guest NAME and print its absolute path
  all      build every image and print "NAME PATH" lines
  --list   print the image names: ${LAYOUT_NAMES[*]}
Images are cached in $CACHE as layout-NAME-$KEY.qcow2.
EOF
}

main() {
    [ $# -eq 1 ] || { usage >&2; exit 2; }
    case $1 in
        --list) printf '%s\n' "${LAYOUT_NAMES[@]}" ;;
        all)
            local n
            for n in "${LAYOUT_NAMES[@]}"; do
                ensure "$n"
                printf '%s %s\n' "$n" "${REPLY//$'\n'/ }"
            done
            ;;
        -h | --help) usage ;;
        *)
            is_name "$1" || die "unknown layout guest '$1' (known: ${LAYOUT_NAMES[*]})"
            ensure "$1"
            printf '%s\n' "$REPLY"
            ;;
    esac
}

main "$@"
