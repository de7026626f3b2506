#!/usr/bin/env bash
# Installs what goldify, its fixtures and its tests need on a Debian 12 host.
# Idempotent: every part is skipped when what it provides is already present.
set -euo pipefail

need_root() { if [ "$(id -u)" -ne 0 ]; then echo "sudo"; fi; }
SUDO=$(need_root)

missing_pkgs=()
want() { # want PACKAGE [COMMAND-OR-FILE]
    local pkg=$1 probe=${2:-}
    if [ -n "$probe" ]; then
        if [[ $probe == /* ]]; then [ -e "$probe" ] && return 0; else command -v "$probe" >/dev/null 2>&1 && return 0; fi
    else
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' && return 0
    fi
    missing_pkgs+=("$pkg")
}

# qemu-utils on these hosts comes from bookworm-backports, so libguestfs must too
# (a plain install fails with "held broken packages").
backports_pkgs=()
want_bp() { local before=${#missing_pkgs[@]}; want "$@"; if [ ${#missing_pkgs[@]} -gt "$before" ]; then unset 'missing_pkgs[-1]'; backports_pkgs+=("$1"); fi; }

want_bp libguestfs-tools virt-sysprep
want_bp libguestfs-dev /usr/include/guestfs.h
want_bp linux-image-amd64
want_bp qemu-system-x86 qemu-system-x86_64
want mmdebstrap mmdebstrap
want cloud-image-utils cloud-localds
want packer packer
want skopeo skopeo
want xz-utils xz
want zstd zstd
want pkg-config pkg-config
want liblzma-dev /usr/include/lzma.h
want python3 python3
want jq jq
want time /usr/bin/time
want bc bc
# The Windows fixture (vm-fixtures/windows.sh) and the Windows steps: hive tools, NTFS,
# and the first-boot service wrapper virt-customize also uses.
want libhivex-bin hivexget
want libwin-hivex-perl hivexregedit
want ntfs-3g ntfs-3g
want rhsrvany /usr/share/virt-tools/rhsrvany.exe

if [ ${#missing_pkgs[@]} -eq 0 ] && [ ${#backports_pkgs[@]} -eq 0 ]; then
    echo "setup-host: all system packages present"
else
    . /etc/os-release
    if [ "${VERSION_CODENAME:-}" = bookworm ] && ! grep -rqs 'bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/; then
        src=/etc/apt/sources.list.d/debian.sources
        if [ -f "$src" ]; then
            uri=$(awk '/^URIs:/{print $2; exit}' "$src")
        else
            uri=$(awk '/^deb /{print $2; exit}' /etc/apt/sources.list)
        fi
        uri=${uri:-http://deb.debian.org/debian}
        echo "setup-host: adding bookworm-backports from $uri"
        printf 'Types: deb\nURIs: %s\nSuites: bookworm-backports\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' "$uri" \
            | $SUDO tee /etc/apt/sources.list.d/bookworm-backports.sources >/dev/null
    fi
    echo "setup-host: installing ${missing_pkgs[*]} ${backports_pkgs[*]}"
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -qq
    if [ ${#backports_pkgs[@]} -gt 0 ]; then
        $SUDO apt-get install -y -qq -o Dpkg::Use-Pty=0 -t bookworm-backports "${backports_pkgs[@]}" >/dev/null
    fi
    if [ ${#missing_pkgs[@]} -gt 0 ]; then
        $SUDO apt-get install -y -qq -o Dpkg::Use-Pty=0 "${missing_pkgs[@]}" >/dev/null
    fi
fi

# libguestfs' supermin reads the host kernel; Debian installs it 0600.
for k in /boot/vmlinuz-*; do
    [ -r "$k" ] && [ "$(stat -c %a "$k")" != 600 ] || $SUDO chmod 0644 "$k" 2>/dev/null || true
done

if ! command -v cargo >/dev/null 2>&1; then
    echo "setup-host: cargo not found; install a Rust toolchain (rustup) first" >&2
    exit 1
fi
