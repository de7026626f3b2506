#!/usr/bin/env bash
# layouts.sh — small guests laid out the way real distributions lay them out, for the
# inspection tests (issue 11): btrfs subvolumes, release files other than os-release,
# CoreOS' separate /usr, LUKS on a partition and inside LVM.
#
# Usage:
#   layouts.sh NAME     build (or reuse) image NAME; print its absolute path (one line)
#   layouts.sh all      build every image; print "NAME PATH" lines
#   layouts.sh --list   print the image names
#
# Everything an image holds is data under vm-fixtures/layouts/:
#   NAME.gf        the guestfish commands that partition and format the disk, mount its
#                  filesystems and fill them; `%tar:DIR%` stands for a tarball of
#                  layouts/DIR (owned by root), `%key%` for the LUKS passphrase;
#   DIR/…          the file trees (tens of files: accounts, release files, a history, ssh
#                  host key files, a log); layouts/common is shared;
#   key            the passphrase of the LUKS images (a test key, not a secret).
# Symlinks never live on the host: the .gf scripts make them with ln-s inside the guest.
# Images are cached in $FIXTURE_CACHE as layout-NAME-<key>.qcow2, the key hashing this
# script, lib.sh and everything under layouts/, so editing any of them rebuilds.

# shellcheck source=lib.sh
source "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/lib.sh"
umask 022

LAYOUT_NAMES=(btrfs ubuntu-lsb arch fedora-release coreos luks-part luks-lv)
LAYOUT_SIZE=1G
LAYOUT_MTIME='2024-05-01 12:00:00 UTC'
DATA=$FIXTURES/layouts

data_hash() { # every data file, by name and content, in a stable order
    (cd "$DATA" && find . -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum)
}
KEY=$(data_hash | fixture_key "$FIXTURES/layouts.sh" -)
CACHE=$(cd "$FIXTURE_CACHE" && pwd -P)
WORK=
OUT_TMP=

cleanup() {
    [ -n "$WORK" ] && rm -rf -- "$WORK"
    [ -n "$OUT_TMP" ] && rm -f -- "$OUT_TMP" "$OUT_TMP.c"
    WORK= OUT_TMP=
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

build_image() { # build_image NAME OUT
    local name=$1 out=$2 start=$SECONDS roots
    log "building layout guest '$name' -> $out"
    WORK=$(mktemp -d "${TMPDIR:-/tmp}/goldify-layout-$name.XXXXXX")
    script "$name" >"$WORK/build.gf"
    OUT_TMP=$out.tmp.$$
    qemu-img create -q -f qcow2 "$OUT_TMP" "$LAYOUT_SIZE" >&2
    guestfs_env 2>/dev/null
    # Don't let guestfish (and qemu) inherit the build lock.
    roots=$(guestfish --format=qcow2 -a "$OUT_TMP" -f "$WORK/build.gf" {lockfd}>&-) ||
        die "$name: guestfish failed (script: $DATA/$name.gf)"
    # Self-check: libguestfs' own inspection finds exactly one root (the LUKS images
    # are still open in that appliance when it looks).
    [ "$(printf '%s\n' "$roots" | grep -c .)" = 1 ] || die "$name: inspection found roots: [$roots]"
    log "$name: inspect-os: $roots"
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

# ensure NAME — sets REPLY to the cached image path, building it if needed.
ensure() {
    local out="$CACHE/layout-$1-$KEY.qcow2"
    [ -f "$out" ] || with_lock "layout-$1" build_if_missing "$1" "$out"
    REPLY=$out
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
                printf '%s %s\n' "$n" "$REPLY"
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
