#!/usr/bin/env bash
# phony.sh — builds small "phony guest" disk images for goldify's integration tests.
#
# A phony guest is not bootable: it is a partitioned qcow2 disk whose filesystems
# hold a file tree that looks like a *used* Linux machine (machine-id, SSH host
# keys, logs, DHCP leases, pinned MACs, cloud-init state, caches, shell
# histories, ...), complete enough that libguestfs inspection recognises exactly
# one Linux root with the right distro. Goldify is run on copies of these images
# and the tests check what was cleaned and what survived.
#
# Usage:
#   phony.sh NAME     build (or reuse) image NAME; print its absolute path (one line)
#   phony.sh all      build every image; print "NAME PATH" lines
#   phony.sh --list   print the image names
#
# Images are cached in $FIXTURE_CACHE (see lib.sh) as NAME-<key>.qcow2, where the
# key hashes this script and lib.sh: editing either rebuilds everything, and
# concurrent callers wait on a per-image lock and build once. Logs go to stderr.
#
# How an image is built (one appliance launch per image, ~15 s under TCG):
#   1. the file tree is generated in a private temp dir (regular files and
#      directories only — never a symlink on the host), owned by whoever runs
#      this script, with default modes;
#   2. it is packed with `tar --owner=0 --group=0 --numeric-owner`;
#   3. one `guestfish --listen` server partitions/formats the disk, `tar-in`s the
#      tree, then runs a generated guestfish script that sets owners and modes
#      and creates every symlink (inside the guest image, with `ln-s`);
#   4. the server unmounts, runs `inspect-os` as a self-check, and exits; the
#      qcow2 is renamed into the cache.
#
# Known values (tests may rely on them) are listed in vm-fixtures/README.md and
# in the per-image sections below.

# shellcheck source=lib.sh
source "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/lib.sh"
umask 022

PHONY_NAMES=(debian ubuntu rhel lvm hostile hardlinks)
PHONY_SIZE=1G          # virtual size of every image (sparse qcow2)
PHONY_MTIME='2024-05-01 12:00:00 UTC'

# Fixed identities, so tests can assert exact values.
DEBIAN_ROOT_UUID=6a3b9e2c-1f4d-4e8a-9b7c-0d1e2f3a4b5c
UBUNTU_ROOT_UUID=7b4cad3d-2e5f-4f9b-8c8d-1e2f3a4b5c6d
UBUNTU_ESP_SERIAL=1A2B-3C4D   # vfat volume id; fstab: UUID=1A2B-3C4D
RHEL_ROOT_UUID=8c5dbe4e-3f60-4a0c-9d9e-2f3a4b5c6d7e
LVM_BOOT_UUID=9d6ecf5f-4071-4b1d-8eaf-3a4b5c6d7e8f
LVM_ROOT_UUID=ae7fd060-5182-4c2e-9fb0-4b5c6d7e8f90
LVM_SWAP_UUID=bf80e171-6293-4d3f-8a01-5c6d7e8f9012
HOSTILE_ROOT_UUID=c091f282-73a4-4e40-9b12-6d7e8f901234
HARDLINKS_ROOT_UUID=d1a2b3c4-84b5-4f51-ac23-7e8f90123456

KEY=$(fixture_key "$FIXTURES/phony.sh")
CACHE=$(cd "$FIXTURE_CACHE" && pwd -P)

# ---------------------------------------------------------------------------
# Tree helpers. $T is the tree root on the host; paths are guest-absolute.
# Owners/modes are not applied on the host: they are queued as guestfish
# commands in $POST and applied inside the guest after tar-in.
# ---------------------------------------------------------------------------
T=
POST=
LINKF=

_safe_path() { # refuse anything the guestfish script quoting can't carry
    case $1 in
        /*) ;;
        *) die "tree path must be absolute: $1" ;;
    esac
    case $1 in
        *'"'* | *'\'* | *$'\n'* | *'/../'* | *'/..') die "unsupported path for metadata: $1" ;;
    esac
}
_meta() { # _meta PATH MODE OWNER — queue chmod/chown unless default
    local path=$1 mode=$2 own=$3
    [[ $mode == 0* ]] || mode=0$mode   # guestfish reads integers C-style: octal needs a 0
    [ "$mode" = - ] || { _safe_path "$path"; printf 'chmod %s "%s"\n' "$mode" "$path" >>"$POST"; }
    if [ "$own" != 0:0 ]; then
        _safe_path "$path"
        printf 'chown %s %s "%s"\n' "${own%%:*}" "${own##*:}" "$path" >>"$POST"
    fi
}
# put PATH [MODE] [UID:GID] — write stdin to PATH (parents created, mode 0755).
put() {
    local path=$1 mode=${2:-0644} own=${3:-0:0}
    local h="$T$path"
    mkdir -p -- "$(dirname -- "$h")"
    cat >"$h"
    [ "$mode" = 0644 ] && [ "$own" = 0:0 ] && return 0
    _meta "$path" "$mode" "$own"
}
# text PATH CONTENT [MODE] [UID:GID] — like put, content from an argument (+ newline).
text() { printf '%s\n' "$2" | put "$1" "${3:-0644}" "${4:-0:0}"; }
# empty PATH [MODE] [UID:GID] — an empty file.
empty() { put "$1" "${2:-0644}" "${3:-0:0}" </dev/null; }
# dir PATH [MODE] [UID:GID]
dir() {
    local path=$1 mode=${2:-0755} own=${3:-0:0}
    mkdir -p -- "$T$path"
    [ "$mode" = 0755 ] && [ "$own" = 0:0 ] && return 0
    _meta "$path" "$mode" "$own"
}
# lnk TARGET LINKNAME — symlink created inside the guest (guestfish ln-s), after
# all owners/modes are applied. Never created on the host.
lnk() {
    _safe_path "$2"
    case $1 in '' | *'"'* | *'\'* | *$'\n'*) die "unsupported link target: $1" ;; esac
    printf 'ln-s "%s" "%s"\n' "$1" "$2" >>"$LINKF"
}
# hln EXISTING LINKNAME — a hard link (another name of EXISTING's inode) created inside
# the guest (guestfish ln) with the symlinks, after all owners/modes are applied.
# Whatever LINKNAME was in the tree is removed first.
hln() {
    _safe_path "$1"
    _safe_path "$2"
    printf 'rm-f "%s"\nln "%s" "%s"\n' "$2" "$1" "$2" >>"$LINKF"
}
# bin PATH — a real ELF executable (the host's ls), for libguestfs arch detection.
bin() { mkdir -p -- "$(dirname -- "$T$1")"; cp -- "${2:-/usr/bin/ls}" "$T$1"; chmod 0755 -- "$T$1"; }
# prand SEED BYTES — deterministic pseudo-random bytes.
prand() {
    local seed
    seed=$(printf '%s' "$1" | cksum | cut -d' ' -f1)
    perl -e 'srand($ARGV[0]); print map { chr int rand 256 } 1..$ARGV[1]' "$seed" "$2"
}
b64() { base64 -w "${1:-70}"; }

# ---------------------------------------------------------------------------
# Building blocks shared by the images.
# Per-image globals (set by tree_NAME, which runs in a subshell):
#   G_HOST G_MID(machine-id) G_MAC G_IP G_FAMILY(deb|rhel) G_LOGOWN(uid:gid of
#   rsyslog files) G_KVER G_KBUILDER G_CLOUD_DISTRO G_CLOUD_USER, and the hostile
#   switches G_NO_VARTMP G_NO_VARLOG G_ROOT_HISTORY_LINK G_MACHINE_ID_LINK G_RSA_KEY_DIR
# ---------------------------------------------------------------------------
t_skeleton() {
    local d
    for d in /dev /proc /sys /run /mnt /opt /srv /media /home /boot \
             /usr/bin /usr/sbin /usr/lib /usr/lib64 /usr/share /usr/local/bin \
             /var/lib /var/cache /var/spool /var/mail /var/backups /var/opt /var/local; do
        dir "$d"
    done
    if [ "$G_FAMILY" = rhel ]; then dir /root 0550; else dir /root 0700; fi
    dir /tmp 1777
    [ "${G_NO_VARTMP:-}" ] || dir /var/tmp 1777
    [ "${G_NO_VARLOG:-}" ] || dir /var/log
    # usrmerge layout (Debian 12, Ubuntu 22.04, EL9): /bin -> usr/bin etc.
    lnk usr/bin /bin
    lnk usr/sbin /sbin
    lnk usr/lib /lib
    lnk usr/lib64 /lib64
    lnk ../run /var/run
    lnk ../run/lock /var/lock
    # Real ELF binaries: inspection derives the architecture from /bin/bash, /bin/ls...
    bin /usr/bin/ls
    bin /usr/bin/bash /usr/bin/bash
    lnk bash /usr/bin/sh
    # systemd as init (goldify decides machine-id and first-boot units on it).
    bin /usr/lib/systemd/systemd
    lnk ../lib/systemd/systemd /usr/sbin/init
    [ "$G_FAMILY" != rhel ] || text /usr/bin/dnf $'#!/usr/bin/python3\n# phony dnf placeholder' 0755
}

t_accounts_deb() {
    put /etc/passwd <<EOF
root:x:0:0:root:/root:/bin/bash
daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin
bin:x:2:2:bin:/bin:/usr/sbin/nologin
sys:x:3:3:sys:/dev:/usr/sbin/nologin
sync:x:4:65534:sync:/bin:/bin/sync
games:x:5:60:games:/usr/games:/usr/sbin/nologin
man:x:6:12:man:/var/cache/man:/usr/sbin/nologin
lp:x:7:7:lp:/var/spool/lpd:/usr/sbin/nologin
mail:x:8:8:mail:/var/mail:/usr/sbin/nologin
news:x:9:9:news:/var/spool/news:/usr/sbin/nologin
uucp:x:10:10:uucp:/var/spool/uucp:/usr/sbin/nologin
proxy:x:13:13:proxy:/bin:/usr/sbin/nologin
www-data:x:33:33:www-data:/var/www:/usr/sbin/nologin
backup:x:34:34:backup:/var/backups:/usr/sbin/nologin
list:x:38:38:Mailing List Manager:/var/list:/usr/sbin/nologin
irc:x:39:39:ircd:/run/ircd:/usr/sbin/nologin
_apt:x:42:65534::/nonexistent:/usr/sbin/nologin
nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin
systemd-network:x:998:998:systemd Network Management:/:/usr/sbin/nologin
messagebus:x:100:107::/nonexistent:/usr/sbin/nologin
systemd-timesync:x:997:997:systemd Time Synchronization:/:/usr/sbin/nologin
sshd:x:101:65534::/run/sshd:/usr/sbin/nologin
syslog:x:104:111::/home/syslog:/usr/sbin/nologin
alice:x:1000:1000:Alice Example,,,:/home/alice:/bin/bash
EOF
    put /etc/group <<EOF
root:x:0:
daemon:x:1:
bin:x:2:
sys:x:3:
adm:x:4:syslog,alice
tty:x:5:
disk:x:6:
lp:x:7:
mail:x:8:
news:x:9:
uucp:x:10:
man:x:12:
proxy:x:13:
kmem:x:15:
dialout:x:20:
cdrom:x:24:alice
sudo:x:27:alice
audio:x:29:
www-data:x:33:
backup:x:34:
operator:x:37:
shadow:x:42:
utmp:x:43:
video:x:44:
plugdev:x:46:alice
staff:x:50:
users:x:100:alice
nogroup:x:65534:
systemd-journal:x:999:
systemd-network:x:998:
systemd-timesync:x:997:
messagebus:x:107:
syslog:x:111:
alice:x:1000:
EOF
    put /etc/shadow 0640 0:42 <<'EOF'
root:$y$j9T$Qm3Xo1yYg6dF0s8tJm0yC/$8fJ2o1mXcVwz7jS0Rk3yQe0sXrL4uP2Yb6nT9aD5qE1:19844:0:99999:7:::
daemon:*:19844:0:99999:7:::
bin:*:19844:0:99999:7:::
sys:*:19844:0:99999:7:::
sync:*:19844:0:99999:7:::
games:*:19844:0:99999:7:::
man:*:19844:0:99999:7:::
lp:*:19844:0:99999:7:::
mail:*:19844:0:99999:7:::
news:*:19844:0:99999:7:::
uucp:*:19844:0:99999:7:::
proxy:*:19844:0:99999:7:::
www-data:*:19844:0:99999:7:::
backup:*:19844:0:99999:7:::
list:*:19844:0:99999:7:::
irc:*:19844:0:99999:7:::
_apt:*:19844:0:99999:7:::
nobody:*:19844:0:99999:7:::
systemd-network:!*:19844::::::
messagebus:!:19844::::::
systemd-timesync:!*:19844::::::
sshd:!:19844::::::
syslog:!:19844::::::
alice:$y$j9T$z7WkLq0Fh3Ui1vB9eN4sR.$Gm5pT2cV8xY1zA3bD6fH9jK0lN4qS7uW2eR5tY8iO1P:19845:0:99999:7:::
EOF
    awk -F: '{print $1":*::"}' "$T/etc/group" | put /etc/gshadow 0640 0:42
    # The "-" backups are the previous generation: before alice got sudo and
    # before the syslog user existed.
    grep -v '^syslog:' "$T/etc/passwd" | put /etc/passwd-
    sed -e 's/^sudo:x:27:alice$/sudo:x:27:/' -e '/^syslog:/d' "$T/etc/group" | put /etc/group-
    grep -v '^syslog:' "$T/etc/shadow" | put /etc/shadow- 0600
    grep -v '^syslog:' "$T/etc/gshadow" | put /etc/gshadow- 0600
    text /etc/shells $'# /etc/shells: valid login shells\n/bin/sh\n/usr/bin/sh\n/bin/bash\n/usr/bin/bash'
    text /etc/sudoers.d/90-alice 'alice ALL=(ALL) NOPASSWD:ALL' 0440
}

t_accounts_rhel() {
    put /etc/passwd <<EOF
root:x:0:0:root:/root:/bin/bash
bin:x:1:1:bin:/bin:/sbin/nologin
daemon:x:2:2:daemon:/sbin:/sbin/nologin
adm:x:3:4:adm:/var/adm:/sbin/nologin
lp:x:4:7:lp:/var/spool/lpd:/sbin/nologin
sync:x:5:0:sync:/sbin:/bin/sync
shutdown:x:6:0:shutdown:/sbin:/sbin/shutdown
halt:x:7:0:halt:/sbin:/sbin/halt
mail:x:8:12:mail:/var/spool/mail:/sbin/nologin
operator:x:11:0:operator:/root:/sbin/nologin
games:x:12:100:games:/usr/games:/sbin/nologin
ftp:x:14:50:FTP User:/var/ftp:/sbin/nologin
nobody:x:65534:65534:Kernel Overflow User:/:/sbin/nologin
systemd-coredump:x:999:997:systemd Core Dumper:/:/sbin/nologin
dbus:x:81:81:System message bus:/:/sbin/nologin
tss:x:59:59:Account used for TPM access:/dev/null:/sbin/nologin
sssd:x:998:996:User for sssd:/:/sbin/nologin
chrony:x:997:995:chrony system user:/var/lib/chrony:/sbin/nologin
sshd:x:74:74:Privilege-separated SSH:/usr/share/empty.sshd:/sbin/nologin
alice:x:1000:1000:Alice Example:/home/alice:/bin/bash
EOF
    put /etc/group <<EOF
root:x:0:
bin:x:1:
daemon:x:2:
sys:x:3:
adm:x:4:
tty:x:5:
disk:x:6:
lp:x:7:
mem:x:8:
kmem:x:9:
wheel:x:10:alice
cdrom:x:11:
mail:x:12:
man:x:15:
dialout:x:18:
floppy:x:19:
games:x:20:
tape:x:33:
video:x:39:
ftp:x:50:
lock:x:54:
audio:x:63:
users:x:100:
nobody:x:65534:
utmp:x:22:
utempter:x:35:
input:x:999:
systemd-journal:x:190:
systemd-coredump:x:997:
dbus:x:81:
tss:x:59:
ssh_keys:x:994:
sssd:x:996:
chrony:x:995:
sshd:x:74:
alice:x:1000:
EOF
    put /etc/shadow 0000 <<'EOF'
root:$6$Zp3Vn8rL$0xJ7wK2mQ9sT4uV6yA1cE3gI5kM7oQ9sU1wY3aC5eG7iK9mO1qS3uW5yA7cE9gI1kM3oQ5sU7wY9aC1eG3iK5m:19844:0:99999:7:::
bin:*:19469:0:99999:7:::
daemon:*:19469:0:99999:7:::
adm:*:19469:0:99999:7:::
lp:*:19469:0:99999:7:::
sync:*:19469:0:99999:7:::
shutdown:*:19469:0:99999:7:::
halt:*:19469:0:99999:7:::
mail:*:19469:0:99999:7:::
operator:*:19469:0:99999:7:::
games:*:19469:0:99999:7:::
ftp:*:19469:0:99999:7:::
nobody:*:19469:0:99999:7:::
systemd-coredump:!!:19844::::::
dbus:!!:19844::::::
tss:!!:19844::::::
sssd:!!:19844::::::
chrony:!!:19844::::::
sshd:!!:19844::::::
alice:$6$Qr8Tn2pL$9zH4xJ6kL8mN0pR2tV4xZ6bD8fH0jL2nP4rT6vX8zB0dF2hJ4lN6pR8tV0xZ2bD4fH6jL8nP0rT2vX4zB6dF8:19845:0:99999:7:::
EOF
    awk -F: '{print $1":!::"}' "$T/etc/group" | put /etc/gshadow 0000
    grep -v '^alice:' "$T/etc/passwd" | put /etc/passwd-
    grep -v '^alice:' "$T/etc/group" | sed 's/^wheel:x:10:alice$/wheel:x:10:/' | put /etc/group-
    grep -v '^alice:' "$T/etc/shadow" | put /etc/shadow- 0000
    grep -v '^alice:' "$T/etc/gshadow" | put /etc/gshadow- 0000
    text /etc/shells $'/bin/sh\n/bin/bash\n/usr/bin/sh\n/usr/bin/bash'
    text /etc/sudoers.d/90-cloud-init-users $'# Created by cloud-init v. 23.4 on Wed, 01 May 2024 12:00:55 +0000\n\n# User rules for alice\nalice ALL=(ALL) NOPASSWD:ALL' 0440
}

# Home directory of alice (uid 1000) with histories; files that must SURVIVE
# cleaning are .bashrc, .profile, .ssh/authorized_keys and Documents/notes.txt.
t_home_alice() {
    local h=/home/alice u=1000:1000
    dir $h 0750 $u
    dir $h/.ssh 0700 $u
    dir $h/Documents 0755 $u
    dir $h/.cache 0700 $u
    text $h/.bashrc $'# ~/.bashrc: executed by bash(1) for non-login shells.\ncase $- in *i*) ;; *) return;; esac\nHISTCONTROL=ignoreboth\nHISTSIZE=1000\nalias ll=\'ls -alF\'' 0644 $u
    text $h/.profile $'# ~/.profile: executed by the command interpreter for login shells.\nif [ -n "$BASH_VERSION" ] && [ -f "$HOME/.bashrc" ]; then . "$HOME/.bashrc"; fi\nPATH="$HOME/.local/bin:$PATH"' 0644 $u
    text $h/.ssh/authorized_keys "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHpH2bqUq9cR6b0s7y0e8gT1kLx3mN5pQ7rS9tV1wX3z alice@laptop" 0600 $u
    text $h/.ssh/known_hosts "|1|r8Q1cV0p1k2Zx9sW3y4a5b6c7d8=|Zq8lV1mN2bX3cV4=| ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGitlabHostKeyPhonyPhonyPhonyPhonyPhony01" 0644 $u
    text $h/Documents/notes.txt $'TODO before templating:\n- deploy app v2.3\n- this file must survive goldify' 0644 $u
    empty $h/.cache/motd.legal-displayed 0644 $u
    put $h/.bash_history 0600 $u <<'EOF'
sudo apt update
sudo apt install -y postgresql-client
psql -h db.internal -U app -W
export AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY
ssh deploy@10.20.30.40
vim ~/.ssh/config
history | grep psql
exit
EOF
    put $h/.zsh_history 0600 $u <<'EOF'
: 1714560000:0;cd ~/src/app
: 1714560012:0;git pull --rebase
: 1714560031:3;make deploy TOKEN=ghp_phonyphonyphonyphonyphonyphony0000
: 1714560100:0;exit
EOF
    put $h/.python_history 0600 $u <<'EOF'
import requests
requests.get("https://internal.example/api", auth=("alice", "hunter2"))
exit()
EOF
    put $h/.lesshst 0600 $u <<'EOF'
.less-history-file:
.search
"password
"ERROR
.shell
"ls
EOF
    put $h/.viminfo 0600 $u <<'EOF'
# This viminfo file was generated by Vim 9.0.
# You may edit it if you're careful!

# Viminfo version
|1,4

# Value of 'encoding' when this file was written
*encoding=utf-8

# hlsearch on (H) or off (h):
~h
# Command Line History (newest to oldest):
:wq
|2,0,1714560200,,"wq"

# File marks:
'0  12  0  ~/.ssh/config
|4,48,12,0,1714560200,"~/.ssh/config"

# History of marks within files (newest to oldest):

> ~/.ssh/config
	*	1714560198	0
	"	12	0
EOF
}

t_root_home() {
    text /root/.bashrc $'# ~/.bashrc: executed by bash(1) for non-login shells.\nexport LS_OPTIONS=\'--color=auto\'' 0644
    text /root/.profile $'# ~/.profile: executed by Bourne-compatible login shells.\nif [ "$BASH" ]; then if [ -f ~/.bashrc ]; then . ~/.bashrc; fi; fi\nmesg n 2> /dev/null || true' 0644
    dir /root/.ssh 0700
    text /root/.ssh/authorized_keys 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOpsKeyPhonyPhonyPhonyPhonyPhonyPhonyPhony01 ops@bastion' 0600
    [ "${G_ROOT_HISTORY_LINK:-}" ] || put /root/.bash_history 0600 <<EOF
ip a
cat /var/lib/dhcp/dhclient.eth0.leases
systemctl restart ssh
passwd alice
mysql -uroot -pS3cr3tRootPw!
journalctl -xe
echo "$G_HOST" > /etc/hostname
poweroff
EOF
    put /root/.zsh_history 0600 <<'EOF'
: 1714561000:0;tail -f /var/log/syslog
: 1714561020:0;rm -rf /tmp/build
EOF
    put /root/.python_history 0600 <<'EOF'
import crypt
crypt.crypt("Winter2024!", crypt.mksalt(crypt.METHOD_SHA512))
EOF
    put /root/.lesshst 0600 <<'EOF'
.less-history-file:
.search
"Failed password
EOF
    put /root/.viminfo 0600 <<'EOF'
# This viminfo file was generated by Vim 9.0.
# You may edit it if you're careful!

# Command Line History (newest to oldest):
:wq
# File marks:
'0  3  0  /etc/ssh/sshd_config
EOF
}

# hostname, hosts, machine-id and other per-boot/per-machine secrets.
t_identity() {
    text /etc/hostname "$G_HOST"
    put /etc/hosts <<EOF
127.0.0.1	localhost
127.0.1.1	$G_HOST.lan	$G_HOST

# The following lines are desirable for IPv6 capable hosts
::1     localhost ip6-localhost ip6-loopback
ff02::1 ip6-allnodes
ff02::2 ip6-allrouters
EOF
    # (hostile: /etc/machine-id is a symlink trap instead)
    [ -n "${G_MACHINE_ID_LINK:-}" ] || text /etc/machine-id "$G_MID" 0444
    # Debian/Ubuntu ship /var/lib/dbus/machine-id as a symlink to /etc/machine-id.
    dir /var/lib/dbus
    lnk /etc/machine-id /var/lib/dbus/machine-id
    dir /var/lib/systemd 0755
    prand "1$G_MID" 512 | put /var/lib/systemd/random-seed 0600
    prand "2$G_MID" 32 | put /var/lib/systemd/credential.secret 0400
    dir /var/lib/systemd/timers
    empty /var/lib/systemd/timers/stamp-apt-daily.timer
    [ "$G_FAMILY" != deb ] || empty /var/lib/systemd/timesync/clock 0644 997:997
    text /etc/timezone Etc/UTC
    lnk /usr/share/zoneinfo/Etc/UTC /etc/localtime
    text /etc/resolv.conf $'# Generated by NetworkManager / dhclient\nsearch lan\nnameserver 192.168.122.1'
}

t_os_debian() {
    put /usr/lib/os-release <<'EOF'
PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"
NAME="Debian GNU/Linux"
VERSION_ID="12"
VERSION="12 (bookworm)"
VERSION_CODENAME=bookworm
ID=debian
HOME_URL="https://www.debian.org/"
SUPPORT_URL="https://www.debian.org/support"
BUG_REPORT_URL="https://bugs.debian.org/"
EOF
    lnk ../usr/lib/os-release /etc/os-release
    text /etc/debian_version 12.5
    text /etc/issue 'Debian GNU/Linux 12 \n \l'
    put /etc/apt/sources.list <<'EOF'
deb http://deb.debian.org/debian bookworm main non-free-firmware
deb-src http://deb.debian.org/debian bookworm main non-free-firmware

deb http://security.debian.org/debian-security bookworm-security main non-free-firmware
deb-src http://security.debian.org/debian-security bookworm-security main non-free-firmware

# bookworm-updates, to get updates before a point release is made;
deb http://deb.debian.org/debian bookworm-updates main non-free-firmware
EOF
    dir /etc/apt/sources.list.d
    dir /etc/apt/apt.conf.d
    text /etc/apt/apt.conf.d/01autoremove $'APT::NeverAutoRemove\n{\n        "^linux-image-6\\.1\\.0-18-amd64$";\n};'
}

t_os_ubuntu() {
    put /usr/lib/os-release <<'EOF'
PRETTY_NAME="Ubuntu 22.04.4 LTS"
NAME="Ubuntu"
VERSION_ID="22.04"
VERSION="22.04.4 LTS (Jammy Jellyfish)"
VERSION_CODENAME=jammy
ID=ubuntu
ID_LIKE=debian
HOME_URL="https://www.ubuntu.com/"
SUPPORT_URL="https://help.ubuntu.com/"
BUG_REPORT_URL="https://bugs.launchpad.net/ubuntu/"
PRIVACY_POLICY_URL="https://www.ubuntu.com/legal/terms-and-policies/privacy-policy"
UBUNTU_CODENAME=jammy
EOF
    lnk ../usr/lib/os-release /etc/os-release
    put /etc/lsb-release <<'EOF'
DISTRIB_ID=Ubuntu
DISTRIB_RELEASE=22.04
DISTRIB_CODENAME=jammy
DISTRIB_DESCRIPTION="Ubuntu 22.04.4 LTS"
EOF
    text /etc/debian_version bookworm/sid
    text /etc/issue 'Ubuntu 22.04.4 LTS \n \l'
    put /etc/apt/sources.list <<'EOF'
deb http://archive.ubuntu.com/ubuntu jammy main restricted universe multiverse
deb http://archive.ubuntu.com/ubuntu jammy-updates main restricted universe multiverse
deb http://archive.ubuntu.com/ubuntu jammy-backports main restricted universe multiverse
deb http://security.ubuntu.com/ubuntu jammy-security main restricted universe multiverse
EOF
    dir /etc/apt/sources.list.d
}

t_os_alma() {
    put /etc/os-release <<'EOF'
NAME="AlmaLinux"
VERSION="9.4 (Seafoam Ocelot)"
ID="almalinux"
ID_LIKE="rhel centos fedora"
VERSION_ID="9.4"
PLATFORM_ID="platform:el9"
PRETTY_NAME="AlmaLinux 9.4 (Seafoam Ocelot)"
ANSI_COLOR="0;34"
LOGO="fedora-logo-icon"
CPE_NAME="cpe:/o:almalinux:almalinux:9::baseos"
HOME_URL="https://almalinux.org/"
DOCUMENTATION_URL="https://wiki.almalinux.org/"
BUG_REPORT_URL="https://bugs.almalinux.org/"

ALMALINUX_MANTISBT_PROJECT="AlmaLinux-9"
ALMALINUX_MANTISBT_PROJECT_VERSION="9.4"
REDHAT_SUPPORT_PRODUCT="AlmaLinux"
REDHAT_SUPPORT_PRODUCT_VERSION="9.4"
SUPPORT_END=2032-06-01
EOF
    cp "$T/etc/os-release" "$T/usr/lib/os-release"
    # As on AlmaLinux: redhat-release and system-release are symlinks to almalinux-release.
    text /etc/almalinux-release 'AlmaLinux release 9.4 (Seafoam Ocelot)'
    lnk almalinux-release /etc/redhat-release
    lnk almalinux-release /etc/system-release
    text /etc/system-release-cpe 'cpe:/o:almalinux:almalinux:9::baseos'
    put /etc/yum.repos.d/almalinux-baseos.repo <<'EOF'
[baseos]
name=AlmaLinux $releasever - BaseOS
mirrorlist=https://mirrors.almalinux.org/mirrorlist/$releasever/baseos
enabled=1
gpgcheck=1
countme=1
gpgkey=file:///etc/pki/rpm-gpg/RPM-GPG-KEY-AlmaLinux-9
EOF
    text /etc/dnf/dnf.conf $'[main]\ngpgcheck=1\ninstallonly_limit=3\nclean_requirements_on_remove=True\nbest=True\nskip_if_unavailable=False'
    dir /etc/sysconfig
    text /etc/sysconfig/network '# Created by anaconda'
    text /etc/sysconfig/kernel $'UPDATEDEFAULT=yes\nDEFAULTKERNEL=kernel-core'
}

# /var/lib/dpkg/status — lets inspection list applications and goldify see
# that openssh-server / cloud-init are installed.
t_dpkg_status() { # t_dpkg_status "name version arch section" ...
    local line name ver arch sect
    dir /var/lib/dpkg
    dir /var/lib/dpkg/info
    for line in "$@"; do
        read -r name ver arch sect <<<"$line"
        printf 'Package: %s\nStatus: install ok installed\nPriority: optional\nSection: %s\nInstalled-Size: 1024\nMaintainer: Phony Maintainer <phony@example.org>\nArchitecture: %s\nVersion: %s\nDescription: %s (phony fixture entry)\n\n' \
            "$name" "$sect" "$arch" "$ver" "$name"
        printf '/.\n/usr\n/usr/share/doc/%s\n' "$name" >"$T/var/lib/dpkg/info/$name.list"
    done | put /var/lib/dpkg/status
    cp "$T/var/lib/dpkg/status" "$T/var/lib/dpkg/status-old"
}

# /var/lib/rpm/rpmdb.sqlite (rpm >= 4.16 sqlite format) with hand-built header
# blobs, plus the minimal rpm config that librpm reads *inside the guest* when
# libguestfs lists applications (without it virt-inspector fails on this guest).
# Args: "name epoch|- version release arch group summary..."
t_rpmdb() {
    dir /var/lib/rpm
    empty /var/lib/rpm/.rpm.lock
    put /usr/lib/rpm/macros <<'EOF'
# phony fixture: the few rpm macros librpm needs to find the database
%_usr		/usr
%_var		/var
%_dbpath	%{_var}/lib/rpm
%_db_backend	sqlite
EOF
    put /usr/lib/rpm/rpmrc <<'EOF'
# phony fixture: minimal rpmrc
optflags: x86_64 -O2 -g
arch_canon:	x86_64:	x86_64	1
os_canon:	Linux:	Linux	1
buildarchtranslate: x86_64: x86_64
arch_compat: x86_64: amd64 em64t athlon noarch
os_compat: Linux: Linux
buildarch_compat: x86_64: noarch
EOF
    if ! command -v python3 >/dev/null 2>&1; then
        log "warning: python3 missing; rhel gets no rpm database (virt-inspector will fail to list its applications)"
        return 0
    fi
    python3 -c "$RPMDB_PY" "$T/var/lib/rpm/rpmdb.sqlite" "$@"
}
RPMDB_PY=$(cat <<'END_OF_PYTHON'
import sqlite3, struct, sys
RPM_INT32, RPM_STRING, RPM_I18NSTRING = 4, 6, 9
def header_blob(tags):
    # rpm header as stored in the rpmdb: il, dl, index entries, data (no magic, no region)
    ents, data = [], b""
    for tag, typ, val in sorted(tags):
        if typ == RPM_INT32:
            while len(data) % 4:
                data += b"\0"
            off = len(data); data += struct.pack(">I", val)
        else:
            off = len(data); data += val.encode() + b"\0"
        ents.append(struct.pack(">iIiI", tag, typ, off, 1))
    return struct.pack(">II", len(ents), len(data)) + b"".join(ents) + data
db = sqlite3.connect(sys.argv[1])
db.execute("PRAGMA journal_mode = DELETE")   # no -wal/-shm needed to read it read-only
db.execute("CREATE TABLE 'Packages' (hnum INTEGER PRIMARY KEY AUTOINCREMENT,blob BLOB NOT NULL)")
for t in ["Name", "Basenames", "Group", "Requirename", "Providename", "Conflictname",
          "Obsoletename", "Triggername", "Dirnames", "Installtid", "Sigmd5", "Sha1header",
          "Filetriggername", "Transfiletriggername", "Recommendname", "Suggestname",
          "Supplementname", "Enhancename"]:
    kt = "BLOB" if t in ("Installtid", "Sigmd5") else "TEXT"
    db.execute(f"CREATE TABLE '{t}' (key '{kt}' NOT NULL, hnum INTEGER NOT NULL, idx INTEGER NOT NULL, FOREIGN KEY (hnum) REFERENCES 'Packages'(hnum))")
    if kt == "TEXT":
        db.execute(f"CREATE INDEX '{t}_key_idx' ON '{t}'(key ASC)")
for n, line in enumerate(sys.argv[2:], start=1):
    name, epoch, ver, rel, arch, group, *summary = line.split()
    summary = " ".join(summary)
    tags = [(1000, RPM_STRING, name), (1001, RPM_STRING, ver), (1002, RPM_STRING, rel),
            (1004, RPM_I18NSTRING, summary), (1005, RPM_I18NSTRING, summary + " (phony fixture entry)"),
            (1008, RPM_INT32, 1714564800), (1009, RPM_INT32, 1048576),
            (1014, RPM_STRING, "GPL-2.0-or-later"), (1016, RPM_I18NSTRING, group),
            (1020, RPM_STRING, "https://almalinux.org/"), (1021, RPM_STRING, "linux"),
            (1022, RPM_STRING, arch), (1044, RPM_STRING, f"{name}-{ver}-{rel}.src.rpm")]
    if epoch != "-":
        tags.append((1003, RPM_INT32, int(epoch)))
    db.execute("INSERT INTO Packages (hnum, blob) VALUES (?, ?)", (n, header_blob(tags)))
    for t in ("Name", "Providename"):
        db.execute(f"INSERT INTO '{t}' (key, hnum, idx) VALUES (?, ?, 0)", (name, n))
    db.execute("INSERT INTO 'Group' (key, hnum, idx) VALUES (?, ?, 0)", (group, n))
db.commit()
db.close()
END_OF_PYTHON
)

# OpenSSH server: host keys (dummy but well-formed), config, binary, unit.
t_ssh() {
    local unit_dir=/usr/lib/systemd/system unit=ssh.service t kp
    [ "$G_FAMILY" = rhel ] && unit=sshd.service
    dir /etc/ssh
    dir /etc/ssh/sshd_config.d
    for t in rsa ecdsa ed25519; do
        kp=/etc/ssh/ssh_host_${t}_key
        # (hostile: ssh_host_rsa_key is a directory; only its .pub is a file)
        if [ -z "${G_RSA_KEY_DIR:-}" ] || [ $t != rsa ]; then
            {
                echo '-----BEGIN OPENSSH PRIVATE KEY-----'
                { printf 'openssh-key-v1\0'; prand "$t$G_MID" 380; } | b64 70
                echo '-----END OPENSSH PRIVATE KEY-----'
            } | put "$kp" 0600
        fi
        case $t in
            rsa) printf 'ssh-rsa %s root@%s\n' "$(prand "p$t$G_MID" 279 | b64 0)" "$G_HOST" ;;
            ecdsa) printf 'ecdsa-sha2-nistp256 %s root@%s\n' "$(prand "p$t$G_MID" 104 | b64 0)" "$G_HOST" ;;
            ed25519) printf 'ssh-ed25519 %s root@%s\n' "$(prand "p$t$G_MID" 51 | b64 0)" "$G_HOST" ;;
        esac | put "$kp.pub" 0644
    done
    put /etc/ssh/sshd_config <<'EOF'
# This is the sshd server system-wide configuration file.  See
# sshd_config(5) for more information.

Include /etc/ssh/sshd_config.d/*.conf

#Port 22
#HostKey /etc/ssh/ssh_host_rsa_key
#HostKey /etc/ssh/ssh_host_ecdsa_key
#HostKey /etc/ssh/ssh_host_ed25519_key
PermitRootLogin prohibit-password
KbdInteractiveAuthentication no
UsePAM yes
X11Forwarding yes
PrintMotd no
AcceptEnv LANG LC_*
Subsystem	sftp	/usr/lib/openssh/sftp-server
EOF
    text /etc/ssh/sshd_config.d/50-cloud-init.conf 'PasswordAuthentication no'
    text /etc/ssh/ssh_config $'Host *\n    SendEnv LANG LC_*\n    HashKnownHosts yes\n    GSSAPIAuthentication yes'
    text /etc/ssh/moduli '# Time Type Tests Tries Size Generator Modulus'
    text /usr/sbin/sshd $'#!/bin/sh\n# phony fixture placeholder for OpenSSH sshd\nexit 0' 0755
    text /usr/bin/ssh-keygen $'#!/bin/sh\n# phony fixture placeholder for ssh-keygen\nexit 0' 0755
    put $unit_dir/$unit <<EOF
[Unit]
Description=OpenBSD Secure Shell server
Documentation=man:sshd(8) man:sshd_config(5)
After=network.target auditd.service
ConditionPathExists=!/etc/ssh/sshd_not_to_be_run

[Service]
EnvironmentFile=-/etc/default/ssh
ExecStartPre=/usr/sbin/sshd -t
ExecStart=/usr/sbin/sshd -D \$SSHD_OPTS
ExecReload=/usr/sbin/sshd -t
ExecReload=/bin/kill -HUP \$MAINPID
KillMode=process
Restart=on-failure
RestartPreventExitStatus=255
Type=notify
RuntimeDirectory=sshd
RuntimeDirectoryMode=0755

[Install]
WantedBy=multi-user.target
$([ $unit = ssh.service ] && echo 'Alias=sshd.service')
EOF
    dir /etc/systemd/system/multi-user.target.wants
    lnk $unit_dir/$unit /etc/systemd/system/multi-user.target.wants/$unit
    [ $unit = ssh.service ] && lnk $unit_dir/ssh.service /etc/systemd/system/sshd.service
    if [ "$G_FAMILY" = rhel ]; then
        text $unit_dir/sshd-keygen@.service $'[Unit]\nDescription=OpenSSH %i Server Key Generation\nConditionFileNotEmpty=|!/etc/ssh/ssh_host_%i_key\n\n[Service]\nType=oneshot\nExecStart=/usr/libexec/openssh/sshd-keygen %i'
    fi
}

# cloud-init state of a finished first boot (iid-123, NoCloud datasource).
t_cloud() {
    local c=/var/lib/cloud i=/var/lib/cloud/instances/iid-123 logown=${G_LOGOWN:-0:4}
    put $c/seed/nocloud/user-data 0600 <<EOF
#cloud-config
hostname: $G_HOST
users:
  - name: alice
    sudo: ALL=(ALL) NOPASSWD:ALL
    shell: /bin/bash
    lock_passwd: false
    passwd: \$6\$rounds=4096\$phony\$Kj0mYtYQzGq3b8mQb0x0xVYV6l3pB6d0/6QF0VqFv8ZpO2o1Fq9xP3m1w5n7b9c2d4e6f8g0h2j4k6l8m0n2p4
    ssh_authorized_keys:
      - ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHpH2bqUq9cR6b0s7y0e8gT1kLx3mN5pQ7rS9tV1wX3z alice@laptop
chpasswd:
  expire: false
  users:
    - {name: root, password: "R00tPassw0rd!", type: text}
ssh_pwauth: false
runcmd:
  - [ sh, -c, "echo provisioned > /etc/provisioned-by-cloud-init" ]
EOF
    put $c/seed/nocloud/meta-data <<EOF
instance-id: iid-123
local-hostname: $G_HOST
EOF
    text $c/seed/nocloud/network-config $'version: 2\nethernets:\n  eth0:\n    match:\n      macaddress: '"$G_MAC"$'\n    dhcp4: true'
    dir $i/handlers
    dir $i/scripts
    dir $i/sem
    text $i/boot-finished '42.13 - Wed, 01 May 2024 12:01:07 +0000 - v. 23.4.4'
    cp "$T$c/seed/nocloud/user-data" "$T$i/user-data.txt"
    text $i/user-data.txt.i $'Content-Type: multipart/mixed; boundary="===============5187392917045328450=="\nMIME-Version: 1.0\nNumber-Attachments: 1\n\n--===============5187392917045328450==\nContent-Type: text/cloud-config\n\n#cloud-config\nhostname: '"$G_HOST"$'\n--===============5187392917045328450==--' 0600
    empty $i/vendor-data.txt 0600
    empty $i/vendor-data.txt.i 0600
    empty $i/vendor-data2.txt 0600
    text $i/cloud-config.txt $'#cloud-config\n{}' 0600
    text $i/datasource 'DataSourceNoCloud: DataSourceNoCloud [seed=/var/lib/cloud/seed/nocloud][dsmode=net]'
    text $i/network-config.json '{"version": 2, "ethernets": {"eth0": {"dhcp4": true, "match": {"macaddress": "'"$G_MAC"'"}}}}' 0600
    { printf '\x80\x04\x95\x00\x10\x00\x00\x00\x00\x00\x00\x8c\x1ecloudinit.sources.DataSourceNoCloud\x94'; prand "pkl$G_MID" 2048; } | put $i/obj.pkl 0400
    text $i/sem/config_ssh 'ssh-keys written' 0644
    text $i/sem/config_users_groups '1714564867.18' 0644
    text $i/sem/config_set_hostname '1714564866.91' 0644
    text $i/sem/config_scripts_user '1714564867.9' 0644
    text $i/sem/consume_data '1714564866.51' 0644
    text $i/scripts/runcmd $'#!/bin/sh\nsh -c \'echo provisioned > /etc/provisioned-by-cloud-init\'' 0700
    lnk $i $c/instance
    text $c/data/instance-id iid-123
    text $c/data/previous-instance-id iid-123
    text $c/data/previous-datasource 'DataSourceNoCloud: DataSourceNoCloud [seed=/var/lib/cloud/seed/nocloud][dsmode=net]'
    text $c/data/previous-hostname "$G_HOST"
    text $c/data/set-hostname '{"fqdn": "'"$G_HOST"'.lan", "hostname": "'"$G_HOST"'"}'
    text $c/data/python-version '{"major": 3, "minor": 11, "micro": 2}'
    text $c/data/result.json $'{\n "v1": {\n  "datasource": "DataSourceNoCloud [seed=/var/lib/cloud/seed/nocloud][dsmode=net]",\n  "errors": []\n }\n}'
    text $c/data/status.json $'{\n "v1": {\n  "datasource": "DataSourceNoCloud",\n  "stage": null,\n  "init": {"errors": [], "finished": 1714564866.8, "start": 1714564865.2}\n }\n}'
    text $c/data/instance-data.json '{"v1": {"instance_id": "iid-123", "local_hostname": "'"$G_HOST"'", "platform": "nocloud"}}' 0644
    text $c/data/instance-data-sensitive.json '{"v1": {"instance_id": "iid-123"}, "sensitive_keys": ["merged_cfg"]}' 0600
    text $c/sem/config_scripts_per_once.once '1714564867.4'
    dir $c/scripts/per-boot
    dir $c/scripts/per-instance
    dir $c/scripts/per-once
    dir $c/scripts/vendor
    # stale runtime data (an image captured without a clean shutdown)
    text /run/cloud-init/instance-data.json '{"v1": {"instance_id": "iid-123"}}'
    text /run/cloud-init/result.json '{"v1": {"errors": []}}'
    # Config that must SURVIVE: cloud.cfg and the packaged fragments.
    put /etc/cloud/cloud.cfg <<EOF
# The top level settings are used as module
# and base configuration.
users:
   - default
disable_root: true
preserve_hostname: false
datasource_list: [ NoCloud, ConfigDrive, OpenStack, Ec2, None ]
cloud_init_modules:
 - seed_random
 - bootcmd
 - write_files
 - growpart
 - resizefs
 - set_hostname
 - update_hostname
 - update_etc_hosts
 - users_groups
 - ssh
system_info:
   distro: ${G_CLOUD_DISTRO:-debian}
   default_user:
     name: ${G_CLOUD_USER:-debian}
EOF
    text /etc/cloud/cloud.cfg.d/05_logging.cfg $'_log:\n - &log_base |\n   [loggers]\n   keys=root,cloudinit'
    text /etc/cloud/ds-identify.cfg 'policy: enabled'
    if [ "$G_FAMILY" = deb ]; then
    text /etc/cloud/cloud.cfg.d/90_dpkg.cfg '# to update this file, run dpkg-reconfigure cloud-init
datasource_list: [ NoCloud, ConfigDrive, OpenStack, Ec2, None ]'
    # Installer leftovers (curtin / subiquity) that pin the installation-time NIC.
    put /etc/cloud/cloud.cfg.d/50-curtin-networking.cfg <<EOF
network:
  ethernets:
    eth0:
      dhcp4: true
      match:
        macaddress: '$G_MAC'
      set-name: eth0
  version: 2
EOF
    put /etc/cloud/cloud.cfg.d/99-installer.cfg 0600 <<EOF
datasource:
  None:
    metadata:
      instance-id: 7f0cc6e4-bdc6-4d5c-a0d5-9c3f8e7a1b2c
    userdata_raw: "#cloud-config\\ngrowpart:\\n  mode: 'off'\\nlocale: en_US.UTF-8\\npreserve_hostname: true\\nresize_rootfs: false\\nssh_pwauth: true\\nusers:\\n- gecos: Alice Example\\n  groups: adm,cdrom,dip,lxd,plugdev,sudo\\n  lock_passwd: false\\n  name: alice\\n  passwd: \$6\$phony\$phonyhash\\n  shell: /bin/bash\\n"
datasource_list: [None]
EOF
    text /etc/cloud/cloud.cfg.d/curtin-preserve-sources.cfg 'apt: {preserve_sources_list: true}'
    fi
    put /var/log/cloud-init.log 0640 "$logown" <<EOF
2024-05-01 12:00:44,312 - util.py[DEBUG]: Cloud-init v. 23.4.4 running 'init-local' at Wed, 01 May 2024 12:00:44 +0000. Up 5.21 seconds.
2024-05-01 12:00:44,402 - __init__.py[DEBUG]: Seeing if we can get any data from DataSourceNoCloud
2024-05-01 12:00:44,519 - stages.py[INFO]: Loaded datasource DataSourceNoCloud - DataSourceNoCloud [seed=/var/lib/cloud/seed/nocloud][dsmode=net]
2024-05-01 12:00:44,621 - stages.py[DEBUG]: previous iid found to be NO_PREVIOUS_INSTANCE_ID
2024-05-01 12:00:44,702 - util.py[DEBUG]: Writing to /var/lib/cloud/data/instance-id - wb: [644] 8 bytes
2024-05-01 12:00:45,113 - cc_set_hostname.py[DEBUG]: Setting the hostname to $G_HOST.lan ($G_HOST)
2024-05-01 12:00:46,870 - cc_ssh.py[DEBUG]: Generating keypair for ed25519
2024-05-01 12:01:07,205 - util.py[DEBUG]: Cloud-init v. 23.4.4 finished at Wed, 01 May 2024 12:01:07 +0000. Datasource DataSourceNoCloud [seed=/var/lib/cloud/seed/nocloud][dsmode=net].  Up 27.99 seconds
EOF
    put /var/log/cloud-init-output.log 0640 "$logown" <<EOF
Cloud-init v. 23.4.4 running 'init' at Wed, 01 May 2024 12:00:46 +0000. Up 7.03 seconds.
ci-info: ++++++++++++++++++++++++++++++++++++++Net device info++++++++++++++++++++++++++++++++++++++
ci-info: | Device |  Up  |    Address     |      Mask     | Scope  |     Hw-Address    |
ci-info: |  eth0  | True | $G_IP | 255.255.255.0 | global | $G_MAC |
Generating public/private ed25519 key pair.
The key fingerprint is:
SHA256:Zf3hPhonyFingerprintPhonyFingerprintPhony0 root@$G_HOST
Cloud-init v. 23.4.4 finished at Wed, 01 May 2024 12:01:07 +0000. Datasource DataSourceNoCloud.  Up 27.99 seconds
EOF
}

# utmp/wtmp records (struct utmp, 384 bytes each).
utmp_records() { # utmp_records "type pid line id user host epoch" ...
    perl -e '
        for (@ARGV) {
            my ($type, $pid, $line, $id, $user, $host, $t) = split / /;
            my @ip = $host =~ /^(\d+)\.(\d+)\.(\d+)\.(\d+)$/ ? ($1,$2,$3,$4) : (0,0,0,0);
            print pack("s x2 l a32 a4 a32 a256 s s l l l a16 a20",
                       $type, $pid, $line, $id, $user, $host, 0, 0, 0, $t, 0,
                       pack("C4", @ip), "");
        }' -- "$@"
}

t_login_records() { # wtmp btmp lastlog with utmp group $1
    local g=$1
    utmp_records \
        "2 0 ~ ~~ reboot ${G_KVER:-6.1.0-18-amd64} 1714564840" \
        "7 812 pts/0 ts/0 alice 192.168.122.1 1714565000" \
        "8 812 pts/0 ts/0 - - 1714566000" \
        "7 1290 pts/0 ts/0 root 10.20.30.5 1714570000" |
        put /var/log/wtmp 0664 "0:$g"
    utmp_records \
        "6 2210 ssh:notty ssh admin 203.0.113.77 1714571000" \
        "6 2211 ssh:notty ssh oracle 203.0.113.77 1714571003" |
        put /var/log/btmp 0660 "0:$g"
    perl -e 'my $rec = sub { pack("l a32 a256", @_) };
             print $rec->(1714570000, "pts/0", "10.20.30.5");
             print "\0" x (292 * 999);
             print $rec->(1714565000, "pts/0", "192.168.122.1");' |
        put /var/log/lastlog 0664 "0:$g"
    empty /var/log/faillog 0644
}

t_journal() { # t_journal GID
    local j=/var/log/journal/$G_MID
    dir /var/log/journal 2755 "0:$1"
    dir "$j" 2755 "0:$1"
    { printf 'LPKSHHRH\0\0\0\0\0\0\0\0'; prand "j$G_MID" 8176; } | put "$j/system.journal" 0640 "0:$1"
    { printf 'LPKSHHRH\0\0\0\0\0\0\0\0'; prand "u$G_MID" 4080; } | put "$j/user-1000.journal" 0640 "0:$1"
    { printf 'LPKSHHRH\0\0\0\0\0\0\0\0'; prand "a$G_MID" 4080; } | put "$j/system@6f2b1c8d9e0a4b3c8d7e6f5a4b3c2d1e-0000000000000001-000617638a1f2b3c.journal" 0640 "0:$1"
}

# Debian-family logs. $G_LOGOWN is the owner of rsyslog files (root:adm on
# Debian, syslog:adm on Ubuntu).
t_logs_deb() {
    local o=${G_LOGOWN:-0:4}
    put /var/log/syslog 0640 "$o" <<EOF
May  1 12:30:01 $G_HOST CRON[1402]: (root) CMD (command -v debian-sa1 > /dev/null && debian-sa1 1 1)
May  1 12:31:07 $G_HOST dhclient[611]: DHCPACK of $G_IP from 192.168.122.1 (xid=0x5b3c1f0a)
May  1 12:31:07 $G_HOST dhclient[611]: bound to $G_IP -- renewal in 1612 seconds.
May  1 12:35:12 $G_HOST systemd[1]: Started session-4.scope - Session 4 of User alice.
May  1 12:40:00 $G_HOST kernel: [ 3600.123456] virtio_net virtio0 eth0: link up
EOF
    put /var/log/syslog.1 0640 "$o" <<EOF
Apr 30 23:59:01 $G_HOST CRON[1101]: (root) CMD (test -x /usr/sbin/anacron || run-parts --report /etc/cron.daily)
Apr 30 23:59:59 $G_HOST rsyslogd: [origin software="rsyslogd"] rsyslogd was HUPed
EOF
    printf 'Apr 29 08:00:00 %s systemd[1]: Starting apt-daily.service - Daily apt download activities...\nApr 29 08:00:04 %s systemd[1]: Finished apt-daily.service.\n' "$G_HOST" "$G_HOST" |
        gzip -9n | put /var/log/syslog.2.gz 0640 "$o"
    put /var/log/auth.log 0640 "$o" <<EOF
May  1 12:34:56 $G_HOST sshd[812]: Accepted publickey for alice from 192.168.122.1 port 51234 ssh2: ED25519 SHA256:Zf3hPhonyFingerprintPhony0
May  1 12:34:56 $G_HOST sshd[812]: pam_unix(sshd:session): session opened for user alice(uid=1000) by (uid=0)
May  1 12:35:40 $G_HOST sudo:    alice : TTY=pts/0 ; PWD=/home/alice ; USER=root ; COMMAND=/usr/bin/apt update
May  1 13:16:40 $G_HOST sshd[2210]: Failed password for invalid user admin from 203.0.113.77 port 40022 ssh2
EOF
    put /var/log/kern.log 0640 "$o" <<EOF
May  1 12:00:40 $G_HOST kernel: [    0.000000] Linux version ${G_KVER:-6.1.0-18-amd64} (${G_KBUILDER:-debian-kernel@lists.debian.org})
May  1 12:00:40 $G_HOST kernel: [    0.412345] virtio_net virtio0 eth0: renamed from ens3
EOF
    put /var/log/messages 0640 "$o" <<EOF
May  1 12:00:41 $G_HOST kernel: [    1.000000] EXT4-fs (sda1): mounted filesystem with ordered data mode.
EOF
    put /var/log/dpkg.log <<'EOF'
2024-05-01 12:35:51 startup archives unpack
2024-05-01 12:35:52 install foo:amd64 <none> 1.0
2024-05-01 12:35:52 status half-installed foo:amd64 1.0
2024-05-01 12:35:53 status installed foo:amd64 1.0
EOF
    text /var/log/alternatives.log 'update-alternatives 2024-05-01 12:35:53: run with --install /usr/bin/editor editor /usr/bin/vim.basic 30'
    dir /var/log/apt
    put /var/log/apt/history.log <<'EOF'

Start-Date: 2024-05-01  12:35:50
Commandline: apt install -y foo
Requested-By: alice (1000)
Install: foo:amd64 (1.0)
End-Date: 2024-05-01  12:35:53
EOF
    put /var/log/apt/term.log 0640 0:4 <<'EOF'

Log started: 2024-05-01  12:35:50
Selecting previously unselected package foo.
Preparing to unpack .../archives/foo_1.0_amd64.deb ...
Log ended: 2024-05-01  12:35:53
EOF
    dir /var/log/private 0700
    dir /var/log/installer
    text /var/log/installer/syslog 'Apr 30 10:00:00 debian-installer: phony installer log' 0640 0:4
    text /var/log/bootstrap.log 'I: Retrieving InRelease (phony)'
    t_login_records 43
    t_journal 999
}

t_logs_rhel() {
    put /var/log/messages 0600 <<EOF
May  1 12:00:43 $G_HOST kernel: Linux version 5.14.0-427.13.1.el9_4.x86_64 (mockbuild@x64-builder02.almalinux.org)
May  1 12:00:49 $G_HOST NetworkManager[702]: <info>  [1714564849.3412] dhcp4 (eth0): state changed new lease, address=$G_IP
May  1 12:35:12 $G_HOST systemd[1]: Started Session 4 of User alice.
EOF
    printf 'Apr 28 03:11:00 %s systemd[1]: Started dnf makecache.\n' "$G_HOST" | put /var/log/messages-20240428 0600
    put /var/log/secure 0600 <<EOF
May  1 12:34:56 $G_HOST sshd[1812]: Accepted publickey for alice from 192.168.122.1 port 51234 ssh2: ED25519 SHA256:Zf3hPhonyFingerprintPhony0
May  1 12:35:40 $G_HOST sudo[1850]:   alice : TTY=pts/0 ; PWD=/home/alice ; USER=root ; COMMAND=/bin/dnf install -y foo
EOF
    dir /var/log/audit 0700
    put /var/log/audit/audit.log 0600 <<'EOF'
type=DAEMON_START msg=audit(1714564843.101:5234): op=start ver=3.1.2 format=enriched kernel=5.14.0-427.13.1.el9_4.x86_64 auid=4294967295 pid=675 uid=0 ses=4294967295 subj=system_u:system_r:auditd_t:s0 res=success
type=USER_LOGIN msg=audit(1714565696.310:212): pid=1812 uid=0 auid=1000 ses=4 subj=system_u:system_r:sshd_t:s0-s0:c0.c1023 msg='op=login id=1000 exe="/usr/sbin/sshd" hostname=? addr=192.168.122.1 terminal=/dev/pts/0 res=success'
EOF
    put /var/log/dnf.log <<'EOF'
2024-05-01T12:35:50+0000 INFO --- logging initialized ---
2024-05-01T12:35:50+0000 DDEBUG timer: config: 3 ms
2024-05-01T12:35:52+0000 DEBUG Installed: foo-1.0-1.el9.x86_64
EOF
    text /var/log/dnf.rpm.log '2024-05-01T12:35:52+0000 SUBDEBUG Installed: foo-1.0-1.el9.x86_64'
    text /var/log/dnf.librepo.log '2024-05-01T12:35:50+0000 INFO Librepo version: 1.14.5'
    text /var/log/hawkey.log '2024-05-01T12:35:50+0000 INFO === Started libdnf-0.69.0 ==='
    text /var/log/cron 'May  1 13:01:01 '"$G_HOST"' CROND[2001]: (root) CMD (run-parts /etc/cron.hourly)' 0600
    empty /var/log/maillog 0600
    empty /var/log/spooler 0600
    text /var/log/boot.log '[  OK  ] Finished Wait for udev To Complete Device Initialization.' 0600
    dir /var/log/anaconda 0700
    text /var/log/anaconda/anaconda.log '10:12:44,123 INF main: /usr/libexec/anaconda/anaconda --kickstart /run/install/ks.cfg' 0600
    text /var/log/anaconda/ks-script-abc123.log 'phony kickstart output' 0600
    dir /var/log/chrony 0755 997:995
    dir /var/log/sssd 0700 998:996
    dir /var/log/private 0700
    t_login_records 22
    t_journal 190
}

t_apt_cache() {
    local a=/var/cache/apt/archives
    dir $a/partial 0700 42:0
    empty $a/lock 0640
    # A real ar(1) archive that looks like a .deb.
    {
        printf '!<arch>\n'
        printf '%-16s%-12s%-6s%-6s%-8s%-10s`\n' debian-binary 1714564800 0 0 100644 4
        printf '2.0\n'
        printf '%-16s%-12s%-6s%-6s%-8s%-10s`\n' control.tar.xz 1714564800 0 0 100644 512
        prand foodeb 512
    } | put $a/foo_1.0_amd64.deb
    cp "$T$a/foo_1.0_amd64.deb" "$T$a/libbar2_2.4.1-1_amd64.deb"
    { printf '\x54\x17\xd0\x98'; prand pkgcache 16380; } | put /var/cache/apt/pkgcache.bin
    { printf '\x54\x17\xd0\x98'; prand srcpkgcache 8188; } | put /var/cache/apt/srcpkgcache.bin
    dir /var/lib/apt/lists/partial 0700 42:0
    empty /var/lib/apt/lists/lock 0640
    text /var/lib/apt/lists/deb.debian.org_debian_dists_bookworm_InRelease $'-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA256\n\nOrigin: Debian\nLabel: Debian\nSuite: stable\nCodename: bookworm'
    text /var/cache/man/index.db 'phony man index' 0644 6:12
    dir /var/cache/debconf
    text /var/cache/debconf/config.dat $'Name: debconf/frontend\nTemplate: debconf/frontend\nValue: Noninteractive\nOwners: debconf'
}

# /tmp and /var/tmp junk: files, a dotfile, subdirectories.
t_tmp_junk() {
    text /tmp/junk.txt 'scratch output from a build'
    text /tmp/.hidden-session 'ssh-agent socket leftovers'
    dir /tmp/.X11-unix 1777
    dir /tmp/build/obj
    prand obj 4096 | put /tmp/build/obj/main.o
    text /tmp/build/Makefile 'all: ; @echo phony'
    dir /tmp/systemd-private-3c1e2a9f7b8d4e6f9a0b1c2d3e4f5a6b-chrony.service-Qm1xZr 0700
    dir /tmp/systemd-private-3c1e2a9f7b8d4e6f9a0b1c2d3e4f5a6b-chrony.service-Qm1xZr/tmp 1777
    text /tmp/tmp.k3J9dLq2 'mktemp leftover' 0600 1000:1000
    if [ -z "${G_NO_VARTMP:-}" ]; then
        text /var/tmp/.cache-probe 'dotfile in /var/tmp'
        text /var/tmp/core.1234 'not really a core dump'
        dir /var/tmp/cloud-init 0700
        text /var/tmp/cloud-init/cloud-init-dhcp-x1.lease 'lease { interface "eth0"; }'
        dir /var/tmp/systemd-private-3c1e2a9f7b8d4e6f9a0b1c2d3e4f5a6b-systemd-logind.service-aB2cD3 0700
        dir /var/tmp/systemd-private-3c1e2a9f7b8d4e6f9a0b1c2d3e4f5a6b-systemd-logind.service-aB2cD3/tmp 1777
        dir /var/tmp/dnf-alice-q9w8e7 0700 1000:1000
        text /var/tmp/dnf-alice-q9w8e7/locks 'x' 0644 1000:1000
    fi
}

dhclient_lease() { # dhclient_lease IFACE
    cat <<EOF
lease {
  interface "$1";
  fixed-address $G_IP;
  option subnet-mask 255.255.255.0;
  option routers 192.168.122.1;
  option dhcp-lease-time 3600;
  option dhcp-message-type 5;
  option domain-name-servers 192.168.122.1;
  option dhcp-server-identifier 192.168.122.1;
  option host-name "$G_HOST";
  option domain-name "lan";
  renew 3 2024/05/01 12:31:07;
  rebind 3 2024/05/01 12:54:52;
  expire 3 2024/05/01 13:02:22;
}
EOF
}

sd_lease() { # systemd-networkd / NetworkManager internal lease format
    cat <<EOF
# This is private data. Do not parse.
ADDRESS=$G_IP
NETMASK=255.255.255.0
ROUTER=192.168.122.1
SERVER_ADDRESS=192.168.122.1
T1=1800
T2=3150
LIFETIME=3600
DNS=192.168.122.1
DOMAINNAME=lan
HOSTNAME=$G_HOST
CLIENTID=ff$(printf '%s' "$G_MID" | cut -c1-8)00020000ab11$(printf '%s' "$G_MID" | cut -c9-24)
EOF
}

# ---------------------------------------------------------------------------
# Image definitions. Each defines tree_NAME (host side) and disk_NAME
# (guestfish side: partition, format, mount at /, then tar-in happens).
# ---------------------------------------------------------------------------

# 1. debian — Debian 12, MBR, one ext4 partition, fstab with /dev/sda1.
tree_debian() {
    G_HOST=used-debian G_MID=5f1c0e8a9b2d4c6e8f0a1b2c3d4e5f60 G_MAC=52:54:00:3a:7c:11
    G_IP=192.168.122.57 G_FAMILY=deb G_LOGOWN=0:4
    t_skeleton; t_os_debian; t_accounts_deb; t_identity; t_root_home; t_home_alice
    put /etc/fstab <<'EOF'
# /etc/fstab: static file system information.
#
# Use 'blkid' to print the universally unique identifier for a
# device; this may be used with UUID= as a more robust way to name devices
# that works even if disks are added and removed. See fstab(5).
#
# <file system> <mount point>   <type>  <options>       <dump>  <pass>
/dev/sda1       /               ext4    errors=remount-ro 0       1
proc            /proc           proc    defaults        0       0
tmpfs           /dev/shm        tmpfs   defaults,nosuid,nodev,noexec 0 0
EOF
    put /etc/network/interfaces <<EOF
# This file describes the network interfaces available on your system
# and how to activate them. For more information, see interfaces(5).

source /etc/network/interfaces.d/*

# The loopback network interface
auto lo
iface lo inet loopback

# The primary network interface
allow-hotplug ens3
iface ens3 inet dhcp
	hwaddress ether $G_MAC
EOF
    put /etc/network/interfaces.d/eth0 <<'EOF'
auto eth0
iface eth0 inet static
	address 10.20.30.41/24
	gateway 10.20.30.1
	hwaddress ether 52:54:00:3a:7c:12
	dns-nameservers 10.20.30.1
EOF
    put /etc/udev/rules.d/70-persistent-net.rules <<EOF
# This file was automatically generated by the /lib/udev/write_net_rules
# program, run by the persistent-net-generator.rules rules file.
#
# You can modify it, as long as you keep each rule on a single
# line, and change only the value of the NAME= key.

# PCI device 0x1af4:0x1000 (virtio-pci)
SUBSYSTEM=="net", ACTION=="add", DRIVERS=="?*", ATTR{address}=="$G_MAC", ATTR{dev_id}=="0x0", ATTR{type}=="1", KERNEL=="eth*", NAME="eth0"

# PCI device 0x1af4:0x1000 (virtio-pci)
SUBSYSTEM=="net", ACTION=="add", DRIVERS=="?*", ATTR{address}=="52:54:00:3a:7c:12", ATTR{dev_id}=="0x0", ATTR{type}=="1", KERNEL=="eth*", NAME="eth1"
EOF
    dhclient_lease eth0 | put /var/lib/dhcp/dhclient.eth0.leases
    dhclient_lease ens3 | put /var/lib/dhcp/dhclient.ens3.leases
    empty /var/lib/dhcp/dhclient.leases
    t_ssh; t_cloud; t_logs_deb; t_apt_cache; t_tmp_junk
    t_dpkg_status "base-files 12.4+deb12u5 amd64 admin" "bash 5.2.15-2+b2 amd64 shells" \
        "openssh-server 1:9.2p1-2+deb12u2 amd64 net" "openssh-client 1:9.2p1-2+deb12u2 amd64 net" \
        "cloud-init 22.4.2-1 all admin" "ifupdown 0.8.41 amd64 admin" "isc-dhcp-client 4.4.3-P1-2 amd64 net" \
        "systemd 252.22-1~deb12u1 amd64 admin" "rsyslog 8.2302.0-1 amd64 admin" \
        "linux-image-6.1.0-18-amd64 6.1.76-1 amd64 kernel" "foo 1.0 amd64 misc"
}
disk_debian() {
    gf part-disk /dev/sda mbr
    gf part-set-bootable /dev/sda 1 true
    gf mkfs ext4 /dev/sda1 blocksize:4096 label:debian-root
    gf set-uuid /dev/sda1 "$DEBIAN_ROOT_UUID"
    gf mount /dev/sda1 /
}

# 2. ubuntu — Ubuntu 22.04, GPT: ESP (vfat, /boot/efi) + ext4 root; fstab by UUID;
#    netplan, networkd and NetworkManager state.
tree_ubuntu() {
    G_HOST=used-ubuntu G_MID=7a2d1f9b3c4e5a6b7c8d9e0f1a2b3c4d G_MAC=52:54:00:4b:8d:22
    G_IP=192.168.122.58 G_FAMILY=deb G_LOGOWN=104:4 G_CLOUD_DISTRO=ubuntu G_CLOUD_USER=ubuntu
    G_KVER=5.15.0-105-generic G_KBUILDER=buildd@lcy02-amd64-007
    t_skeleton; t_os_ubuntu; t_accounts_deb; t_identity; t_root_home; t_home_alice
    put /etc/fstab <<EOF
# /etc/fstab: static file system information.
#
# Use 'blkid' to print the universally unique identifier for a
# device; this may be used with UUID= as a more robust way to name devices
# that works even if disks are added and removed. See fstab(5).
#
# <file system> <mount point>   <type>  <options>       <dump>  <pass>
# / was on /dev/sda2 during curtin installation
UUID=$UBUNTU_ROOT_UUID / ext4 defaults 0 1
# /boot/efi was on /dev/sda1 during curtin installation
UUID=$UBUNTU_ESP_SERIAL /boot/efi vfat umask=0077 0 1
/swap.img	none	swap	sw	0	0
EOF
    put /etc/netplan/50-cloud-init.yaml 0600 <<EOF
# This file is generated from information provided by the datasource.  Changes
# to it will not persist across an instance reboot.  To disable cloud-init's
# network configuration capabilities, write a file
# /etc/cloud/cloud.cfg.d/99-disable-network-config.cfg with the following:
# network: {config: disabled}
network:
    ethernets:
        ens3:
            dhcp4: true
            match:
                macaddress: $G_MAC
            set-name: ens3
    version: 2
EOF
    put /etc/netplan/00-installer-config.yaml 0600 <<EOF
# This is the network config written by 'subiquity'
network:
  ethernets:
    enp1s0:
      dhcp4: true
      match:
        macaddress: 52:54:00:4b:8d:23
      set-name: enp1s0
  version: 2
EOF
    put /etc/systemd/network/10-eth.link <<EOF
[Match]
MACAddress=$G_MAC

[Link]
Name=ens3
EOF
    put /etc/systemd/network/20-wired.network <<EOF
[Match]
MACAddress=$G_MAC

[Network]
DHCP=ipv4
DNS=192.168.122.1
EOF
    # netplan-generated runtime copies (stale in an offline image)
    text /run/systemd/network/10-netplan-ens3.network $'[Match]\nMACAddress='"$G_MAC"$'\nName=ens3\n\n[Network]\nDHCP=ipv4'
    text /run/systemd/network/10-netplan-ens3.link $'[Match]\nMACAddress='"$G_MAC"$'\n\n[Link]\nName=ens3'
    sd_lease | put /var/lib/systemd/netif/leases/2
    sd_lease | put /run/systemd/netif/leases/2
    text /run/systemd/netif/links/2 $'# This is private data. Do not parse.\nADMIN_STATE=configured\nOPER_STATE=routable\nDHCP4_ADDRESS='"$G_IP"
    dir /var/lib/NetworkManager 0700
    sd_lease | put /var/lib/NetworkManager/internal-0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d-ens3.lease 0644
    prand "nmsecret$G_MID" 32 | put /var/lib/NetworkManager/secret_key 0600
    text /var/lib/NetworkManager/NetworkManager.state $'[main]\nNetworkingEnabled=true\nWirelessEnabled=true\nWWANEnabled=true'
    text /var/lib/NetworkManager/timestamps $'[timestamps]\n0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d=1714564867'
    text /var/lib/NetworkManager/seen-bssids '[seen-bssids]'
    dhclient_lease ens3 | put /var/lib/dhcp/dhclient.ens3.leases
    t_ssh; t_cloud; t_logs_deb; t_apt_cache; t_tmp_junk
    # Ubuntu installer logs (subiquity) — contain the autoinstall config.
    dir /var/log/installer 0755
    text /var/log/installer/autoinstall-user-data $'#cloud-config\nautoinstall:\n  identity: {hostname: '"$G_HOST"', username: alice, password: "$6$phony$phonyhash"}\n  version: 1' 0600
    text /var/log/installer/subiquity-server-debug.log '2024-04-30 10:00:00,000 DEBUG subiquity:123 phony subiquity log' 0600
    text /var/log/installer/curtin-install.log 'curtin: Installation started. (phony)' 0600
    text /var/log/ubuntu-advantage.log '2024-05-01T12:00:00 phony' 0600
    text /var/log/landscape/sysinfo.log 'phony' 0644
    # ESP contents are written via guestfish in post_ubuntu (tar cannot chown on vfat).
    t_dpkg_status "base-files 12ubuntu4.6 amd64 admin" "bash 5.1-6ubuntu1.1 amd64 shells" \
        "openssh-server 1:8.9p1-3ubuntu0.7 amd64 net" "openssh-client 1:8.9p1-3ubuntu0.7 amd64 net" \
        "cloud-init 23.4.4-0ubuntu0~22.04.1 all admin" "netplan.io 0.106.1-7ubuntu0.22.04.2 amd64 net" \
        "network-manager 1.36.6-0ubuntu2 amd64 net" "systemd 249.11-0ubuntu3.12 amd64 admin" \
        "rsyslog 8.2112.0-2ubuntu2.2 amd64 admin" "linux-image-5.15.0-105-generic 5.15.0-105.115 amd64 kernel" \
        "grub-efi-amd64-signed 1.187.6+2.06-2ubuntu14.4 amd64 admin" "foo 1.0 amd64 misc"
}
disk_ubuntu() {
    gf part-init /dev/sda gpt
    gf part-add /dev/sda p 2048 264191          # 128 MiB ESP
    gf part-add /dev/sda p 264192 -2048
    gf part-set-gpt-type /dev/sda 1 C12A7328-F81F-11D2-BA4B-00A0C93EC93B
    gf part-set-name /dev/sda 1 EFI-SYSTEM
    gf part-set-gpt-type /dev/sda 2 0FC63DAF-8483-4772-8E79-3D69D8477DE4
    gf mkfs vfat /dev/sda1 label:UEFI
    # Give the ESP a known volume id: patch the serial in the FAT boot sector.
    local off s=${UBUNTU_ESP_SERIAL/-/}
    if gfo pread-device /dev/sda1 8 0x36 | grep -q '^FAT1[26]'; then off=39
    elif gfo pread-device /dev/sda1 8 0x52 | grep -q '^FAT32'; then off=67
    else die "unknown FAT variant on ESP"; fi
    printf "\\x${s:6:2}\\x${s:4:2}\\x${s:2:2}\\x${s:0:2}" >"$WORK/serial.bin"
    gf upload-offset "$WORK/serial.bin" /dev/sda1 "$off"
    [ "$(gfo vfs-uuid /dev/sda1)" = "$UBUNTU_ESP_SERIAL" ] || die "ESP serial not applied"
    gf mkfs ext4 /dev/sda2 blocksize:4096 label:cloudimg-rootfs
    gf set-uuid /dev/sda2 "$UBUNTU_ROOT_UUID"
    gf mount /dev/sda2 /
}
post_ubuntu() {
    gf mkdir-p /boot/efi
    gf chmod 0700 /boot/efi
    gf mount /dev/sda1 /boot/efi
    gf mkdir-p /boot/efi/EFI/ubuntu
    gf mkdir-p /boot/efi/EFI/BOOT
    gf write /boot/efi/EFI/ubuntu/grub.cfg "search.fs_uuid $UBUNTU_ROOT_UUID root
set prefix=(\$root)'/boot/grub'
configfile \$prefix/grub.cfg
"
    gf write /boot/efi/EFI/ubuntu/shimx64.efi "MZ phony shim"
    gf write /boot/efi/EFI/BOOT/BOOTX64.EFI "MZ phony shim"
    gf write /boot/efi/EFI/BOOT/fbx64.efi "MZ phony fallback"
    # Ubuntu's default swap file.
    gf fallocate64 /swap.img 16777216
    gf chmod 0600 /swap.img
    gf mkswap-file /swap.img
}

# 3. rhel — AlmaLinux 9.4, GPT (BIOS boot + XFS root), fstab by UUID,
#    ifcfg + NetworkManager keyfile, dhclient/dhcpcd/NM leases, SELinux.
tree_rhel() {
    G_HOST=used-rhel G_MID=9c8b7a6f5e4d3c2b1a0f9e8d7c6b5a49 G_MAC=52:54:00:5c:11:3e
    G_IP=192.168.122.63 G_FAMILY=rhel G_LOGOWN=0:0 G_CLOUD_DISTRO=rhel G_CLOUD_USER=cloud-user
    G_KVER=5.14.0-427.13.1.el9_4.x86_64
    local nmu=5fb06bd0-0bb0-7ffb-45f1-d6edd65f3e03
    t_skeleton; t_os_alma; t_accounts_rhel; t_identity; t_root_home; t_home_alice
    put /etc/fstab <<EOF

#
# /etc/fstab
# Created by anaconda on Tue Apr 30 10:12:44 2024
#
# Accessible filesystems, by reference, are maintained under '/dev/disk/'.
# See man pages fstab(5), findfs(8), mount(8) and/or blkid(8) for more info.
#
# After editing this file, run 'systemctl daemon-reload' to update systemd
# units generated from this file.
#
UUID=$RHEL_ROOT_UUID /                       xfs     defaults        0 0
EOF
    put /etc/sysconfig/network-scripts/ifcfg-eth0 <<EOF
# Generated by dracut initrd
NAME="eth0"
DEVICE="eth0"
ONBOOT=yes
NETBOOT=yes
UUID="$nmu"
IPV6INIT=yes
BOOTPROTO=dhcp
TYPE=Ethernet
HWADDR=$G_MAC
EOF
    put /etc/NetworkManager/system-connections/eth0.nmconnection 0600 <<EOF
[connection]
id=System eth0
uuid=$nmu
type=ethernet
autoconnect-priority=-999
interface-name=eth0
timestamp=1714564867

[ethernet]
mac-address=${G_MAC^^}

[ipv4]
method=auto

[ipv6]
addr-gen-mode=eui64
method=auto

[proxy]
EOF
    text /etc/NetworkManager/NetworkManager.conf $'[main]\n#plugins=keyfile,ifcfg-rh'
    dir /var/lib/NetworkManager 0755
    sd_lease | put /var/lib/NetworkManager/internal-$nmu-eth0.lease
    dhclient_lease eth0 | put /var/lib/NetworkManager/dhclient-$nmu-eth0.lease
    prand "nmsecret$G_MID" 32 | put /var/lib/NetworkManager/secret_key 0600
    text /var/lib/NetworkManager/NetworkManager-intern.conf $'# Internal configuration file. This file is written and read\n# by NetworkManager and its configuration values are merged\n# with the configuration from NetworkManager.conf.'
    text /var/lib/NetworkManager/timestamps $'[timestamps]\n'"$nmu"'=1714564867'
    dhclient_lease eth0 | put /var/lib/dhclient/dhclient--eth0.lease
    dhclient_lease eth0 | put /var/lib/dhclient/dhclient-$nmu-eth0.lease
    { printf '\x02\x01\x06\x00\x5b\x3c\x1f\x0a'; prand "dhcpcd$G_MID" 540; } | put /var/lib/dhcpcd/eth0.lease 0644
    text /var/lib/dhcpcd/duid '00:04:'"$(printf '%s' "$G_MID" | sed 's/../&:/g; s/:$//' | cut -c1-47)"
    # SELinux
    put /etc/selinux/config <<'EOF'

# This file controls the state of SELinux on the system.
# SELINUX= can take one of these three values:
#     enforcing - SELinux security policy is enforced.
#     permissive - SELinux prints warnings instead of enforcing.
#     disabled - No SELinux policy is loaded.
SELINUX=enforcing
# SELINUXTYPE= can take one of these three values:
#     targeted - Targeted processes are protected,
#     minimum - Modification of targeted policy. Only selected processes are protected.
#     mls - Multi Level Security protection.
SELINUXTYPE=targeted
EOF
    put /etc/selinux/targeted/contexts/files/file_contexts <<'EOF'
/.*	system_u:object_r:default_t:s0
/[^/]+	--	system_u:object_r:etc_runtime_t:s0
/bin	-l	system_u:object_r:bin_t:s0
/usr/bin(/.*)?	system_u:object_r:bin_t:s0
/usr/sbin(/.*)?	system_u:object_r:bin_t:s0
/usr/sbin/sshd	--	system_u:object_r:sshd_exec_t:s0
/etc(/.*)?	system_u:object_r:etc_t:s0
/etc/shadow.*	--	system_u:object_r:shadow_t:s0
/etc/gshadow.*	--	system_u:object_r:shadow_t:s0
/etc/machine-id	--	system_u:object_r:machineid_t:s0
/etc/hostname	--	system_u:object_r:hostname_etc_t:s0
/etc/ssh/ssh_host.*_key	--	system_u:object_r:sshd_key_t:s0
/etc/ssh/ssh_host.*_key\.pub	--	system_u:object_r:sshd_key_t:s0
/etc/NetworkManager(/.*)?	system_u:object_r:NetworkManager_etc_t:s0
/etc/NetworkManager/system-connections(/.*)?	system_u:object_r:NetworkManager_etc_rw_t:s0
/var/log(/.*)?	system_u:object_r:var_log_t:s0
/var/log/audit(/.*)?	system_u:object_r:auditd_log_t:s0
/var/lib/NetworkManager(/.*)?	system_u:object_r:NetworkManager_var_lib_t:s0
/var/lib/dhclient(/.*)?	system_u:object_r:dhcpc_state_t:s0
/var/lib/cloud(/.*)?	system_u:object_r:cloud_var_lib_t:s0
/var/cache/dnf(/.*)?	system_u:object_r:rpm_var_cache_t:s0
/var/lib/rpm(/.*)?	system_u:object_r:rpm_var_lib_t:s0
/tmp(/.*)?	system_u:object_r:tmp_t:s0
/var/tmp(/.*)?	system_u:object_r:tmp_t:s0
/root(/.*)?	system_u:object_r:admin_home_t:s0
/home/[^/]+	-d	unconfined_u:object_r:user_home_dir_t:s0
/home/[^/]+/.+	unconfined_u:object_r:user_home_t:s0
EOF
    empty /etc/selinux/targeted/contexts/files/file_contexts.local
    text /etc/selinux/targeted/seusers $'root:unconfined_u:s0-s0:c0.c1023\n__default__:unconfined_u:s0-s0:c0.c1023'
    dir /etc/selinux/targeted/policy
    { printf '\x8c\xff\x7c\xf9'; prand policy 4092; } | put /etc/selinux/targeted/policy/policy.33
    # dnf / yum caches and the rpm database directory
    local d=/var/cache/dnf
    dir $d
    dir $d/appstream-8b3f1e6a2c9d4e7f/repodata
    dir $d/appstream-8b3f1e6a2c9d4e7f/packages
    dir $d/baseos-4a2c9e1b7d3f5a6c/repodata
    prand repomd 2048 | put $d/appstream-8b3f1e6a2c9d4e7f/repodata/3f2a-primary.xml.zst
    text $d/appstream-8b3f1e6a2c9d4e7f/repodata/repomd.xml '<?xml version="1.0" encoding="UTF-8"?><repomd xmlns="http://linux.duke.edu/metadata/repo"/>'
    { printf '\xed\xab\xee\xdb\x03\x00\x00\x01'; prand fooRpm 1016; } | put $d/appstream-8b3f1e6a2c9d4e7f/packages/foo-1.0-1.el9.x86_64.rpm
    text $d/baseos-4a2c9e1b7d3f5a6c/repodata/repomd.xml '<?xml version="1.0" encoding="UTF-8"?><repomd xmlns="http://linux.duke.edu/metadata/repo"/>'
    prand solv 4096 | put $d/appstream.solv
    prand solvx 2048 | put $d/appstream-filenames.solvx
    text $d/expired_repos.json '[]'
    empty $d/last_makecache 0644
    text $d/metadata_lock.pid '1402'
    text $d/packages.db 'SQLite format 3 (phony)'
    dir /var/cache/yum/x86_64/9/baseos
    empty /var/cache/yum/x86_64/9/baseos/cachecookie
    text /var/cache/yum/x86_64/9/timedhosts.txt 'mirror.example.org 0.123'
    dir /var/lib/dnf
    text /var/lib/dnf/history.sqlite 'SQLite format 3 (phony dnf history)'
    t_rpmdb \
        "almalinux-release - 9.4 1.el9 x86_64 System/Base AlmaLinux release files" \
        "bash - 5.1.8 9.el9 x86_64 System/Shells The GNU Bourne Again shell" \
        "systemd - 252 32.el9_4.alma.1 x86_64 System/Base System and Service Manager" \
        "openssh-server - 8.7p1 38.el9 x86_64 System/Servers An open source SSH server daemon" \
        "openssh-clients - 8.7p1 38.el9 x86_64 Applications/Internet An open source SSH client applications" \
        "NetworkManager 1 1.46.0 4.el9_4 x86_64 System/Base Network connection manager and user applications" \
        "dhcp-client 12 4.4.2 19.b1.el9 x86_64 System/Base Provides the ISC DHCP client daemon and dhclient-script" \
        "cloud-init - 23.4 7.el9_4.alma.1 noarch System/Base Cloud instance init scripts" \
        "dnf - 4.14.0 9.el9 noarch System/Base Package manager" \
        "selinux-policy-targeted - 38.1.35 2.el9_4 noarch System/Base SELinux targeted policy" \
        "kernel-core 0 5.14.0 427.13.1.el9_4 x86_64 System/Kernel The Linux kernel" \
        "foo - 1.0 1.el9 x86_64 Applications/System A package installed by hand"
    text /usr/bin/rpm $'#!/bin/sh\n# phony rpm placeholder' 0755
    t_ssh; t_cloud; t_logs_rhel; t_tmp_junk
}
disk_rhel() {
    gf part-init /dev/sda gpt
    gf part-add /dev/sda p 2048 4095               # BIOS boot partition
    gf part-set-gpt-type /dev/sda 1 21686148-6449-6E6F-744E-656564454649
    gf part-add /dev/sda p 4096 -2048
    gf part-set-gpt-type /dev/sda 2 0FC63DAF-8483-4772-8E79-3D69D8477DE4
    # XFS like EL9, if this libguestfs appliance has it (Debian: libguestfs-xfs).
    # (a failing command would end the guestfish server, so probe first)
    if [ "$(gfo feature-available xfs)" = true ]; then
        RHEL_FS=xfs
        gf mkfs xfs /dev/sda2 label:root
    else
        RHEL_FS=ext4
        log "rhel: no XFS support in the appliance; using ext4 for the root filesystem"
        gf mkfs ext4 /dev/sda2 blocksize:4096 label:root
    fi
    gf set-uuid /dev/sda2 "$RHEL_ROOT_UUID"
    gf mount /dev/sda2 /
}
post_rhel() {
    if [ "$RHEL_FS" != xfs ]; then
        gf write /etc/fstab "$(sed 's/ xfs  / ext4 /' "$T/etc/fstab")
"
    fi
}

# 4. lvm — Debian-like on LVM: /boot ext4 on sda1, PV sda2 -> VG vg0 with LVs
#    root (ext4) and swap (label swap0). fstab uses device-mapper paths.
tree_lvm() {
    G_HOST=used-lvm G_MID=b1c2d3e4f5a6478899aabbccddeeff00 G_MAC=52:54:00:6d:22:4f
    G_IP=192.168.122.64 G_FAMILY=deb G_LOGOWN=0:4
    t_skeleton; t_os_debian; t_accounts_deb; t_identity; t_root_home; t_home_alice
    put /etc/fstab <<EOF
# /etc/fstab: static file system information.
#
# <file system> <mount point>   <type>  <options>       <dump>  <pass>
/dev/mapper/vg0-root /               ext4    errors=remount-ro 0       1
# /boot was on /dev/sda1 during installation
UUID=$LVM_BOOT_UUID /boot           ext4    defaults        0       2
/dev/vg0/swap   none            swap    sw              0       0
EOF
    text /etc/initramfs-tools/conf.d/resume "RESUME=UUID=$LVM_SWAP_UUID"
    put /etc/network/interfaces <<EOF
source /etc/network/interfaces.d/*
auto lo
iface lo inet loopback
allow-hotplug ens3
iface ens3 inet dhcp
EOF
    dir /etc/network/interfaces.d
    dhclient_lease ens3 | put /var/lib/dhcp/dhclient.ens3.leases
    dir /etc/lvm/archive 0700
    dir /etc/lvm/backup 0700
    text /etc/lvm/backup/vg0 $'# Generated by LVM2 version 2.03.16(2) (2022-05-18): Wed May  1 12:00:00 2024\ncontents = "Text Format Volume Group"\nversion = 1\ndescription = "phony"' 0600
    text /boot/grub/grub.cfg $'# phony grub.cfg\nmenuentry "Debian GNU/Linux" {\n  search --no-floppy --fs-uuid --set=root '"$LVM_BOOT_UUID"$'\n  linux /vmlinuz-6.1.0-18-amd64 root=/dev/mapper/vg0-root ro quiet\n  initrd /initrd.img-6.1.0-18-amd64\n}' 0444
    text /boot/config-6.1.0-18-amd64 $'CONFIG_64BIT=y\nCONFIG_X86_64=y'
    text /boot/System.map-6.1.0-18-amd64 'ffffffff81000000 T _text'
    t_ssh; t_logs_deb; t_tmp_junk
    t_dpkg_status "base-files 12.4+deb12u5 amd64 admin" "bash 5.2.15-2+b2 amd64 shells" \
        "lvm2 2.03.16-2 amd64 admin" "openssh-server 1:9.2p1-2+deb12u2 amd64 net" \
        "systemd 252.22-1~deb12u1 amd64 admin"
}
disk_lvm() {
    gf part-init /dev/sda mbr
    gf part-add /dev/sda p 2048 264191            # /boot, 128 MiB
    gf part-add /dev/sda p 264192 -1
    gf part-set-bootable /dev/sda 1 true
    gf part-set-mbr-id /dev/sda 2 0x8e
    gf pvcreate /dev/sda2
    gf vgcreate vg0 /dev/sda2
    gf lvcreate swap vg0 64
    gf lvcreate-free root vg0 100
    gf mkfs ext4 /dev/sda1 label:boot
    gf set-uuid /dev/sda1 "$LVM_BOOT_UUID"
    gf mkfs ext4 /dev/vg0/root blocksize:4096 label:root
    gf set-uuid /dev/vg0/root "$LVM_ROOT_UUID"
    gf mkswap /dev/vg0/swap label:swap0 uuid:"$LVM_SWAP_UUID"
    gf mount /dev/vg0/root /
    gf mkdir /boot
    gf mount /dev/sda1 /boot
}

# 5. hostile — Debian-like guest whose file tree attacks a careless cleaner.
#    Every trap below is created INSIDE the guest image (guestfish ln-s etc.);
#    nothing here is ever a symlink on the host.
#
#    Trap (what a correct goldify must do)                     tests
#    /var/log -> /etc        (absolute symlink)                log truncation must not follow it:
#                                                              every /etc file keeps its content
#    /var/tmp -> /                                             emptying /var/tmp must not wipe /
#    /root/.bash_history -> /etc/shadow                        history truncation must not empty shadow
#    /etc/machine-id -> /etc/shadow                            machine-id reset replaces the link,
#                                                              never writes through it
#    /var/lib/dbus/machine-id -> /etc/machine-id (chain)       same, two hops
#    /var/lib/cloud/instance -> /etc                           removing cloud-init state removes the
#                                                              link, never recurses into /etc
#    /tmp/escape -> /../../../../etc                           ".." above / must stay inside the guest
#    /tmp/host-canary -> /home/../../../tmp/host-canary        must never resolve against the HOST
#                                                              (tests may create /tmp/host-canary on
#                                                              the host and check it survives)
#    names "evil\nname.log", "with space.log", "-rf",          in /tmp and /var/cache/apt/archives:
#    "--no-preserve-root", "*"                                 no shell/glob/line-splitting bugs;
#                                                              only those files are affected
#    /var/cache/huge.bin, 100 GiB apparent, sparse             must not be read/copied/zeroed
#                                                              block by block (time, disk space)
#    /etc/fstab with a 70 KiB comment line                     bounded line handling; the
#                                                              /dev/sda1 root entry is still rewritten
#    /etc/ssh/ssh_host_rsa_key is a DIRECTORY (with a file)    key removal must not rm -r it
#                                                              blindly nor crash
#    /etc/hostname is 10 MiB (one short line + 10 MiB line)    bounded reads; libguestfs reports no
#                                                              hostname (file > 2 MiB)
hostile_fstab_long_comment_len=70000
tree_hostile() {
    G_HOST=used-hostile G_MID=d4e5f6a7b8c94d0e9f1a2b3c4d5e6f70 G_MAC=52:54:00:7e:33:50
    G_IP=192.168.122.66 G_FAMILY=deb G_LOGOWN=0:4
    G_NO_VARTMP=1 G_NO_VARLOG=1 G_ROOT_HISTORY_LINK=1 G_MACHINE_ID_LINK=1 G_RSA_KEY_DIR=1
    t_skeleton; t_os_debian; t_accounts_deb; t_identity; t_root_home; t_home_alice
    # /etc/hostname: a sane first line followed by a 10 MiB line without newline.
    { printf '%s\n' "$G_HOST"; head -c 10485760 /dev/zero | tr '\0' 'A'; } | put /etc/hostname
    {
        printf '# /etc/fstab: static file system information.\n'
        printf '# %s\n' "$(head -c "$hostile_fstab_long_comment_len" /dev/zero | tr '\0' 'x')"
        printf '/dev/sda1       /               ext4    errors=remount-ro 0       1\n'
        printf 'proc            /proc           proc    defaults        0       0\n'
    } | put /etc/fstab
    # ssh_host_rsa_key is a directory with something inside it.
    dir /etc/ssh/ssh_host_rsa_key 0700
    text /etc/ssh/ssh_host_rsa_key/precious 'a file inside a directory named like a host key'
    # A marker so tests can verify /etc/shadow survived verbatim.
    printf 'phonymarker:*:19844:0:99999:7:::\n' >>"$T/etc/shadow"
    t_ssh
    dir /var/lib/cloud
    dir /var/cache/apt/archives/partial 0700 42:0
    # Odd file names (created on the host inside the private tree; tar carries them).
    local d n
    for d in /tmp /var/cache/apt/archives; do
        mkdir -p -- "$T$d"
        for n in $'evil\nname.log' 'with space.log' '-rf' '--no-preserve-root' '*'; do
            printf 'odd name: %q\n' "$n" >"$T$d/$n"
        done
    done
    cp "$T/var/cache/apt/archives/with space.log" "$T/var/cache/apt/archives/pkg with spaces_1.0_amd64.deb"
    cp "$T/var/cache/apt/archives/with space.log" "$T/var/cache/apt/archives/"$'evil\nname_1.0_amd64.deb'
    text /tmp/regular-junk.txt 'ordinary junk next to the traps'
    t_dpkg_status "base-files 12.4+deb12u5 amd64 admin" "bash 5.2.15-2+b2 amd64 shells" \
        "openssh-server 1:9.2p1-2+deb12u2 amd64 net" "cloud-init 22.4.2-1 all admin"
    # The symlink traps (inside the guest).
    lnk /etc /var/log
    lnk / /var/tmp
    lnk /etc/shadow /root/.bash_history
    lnk /etc/shadow /etc/machine-id
    lnk /etc /var/lib/cloud/instance
    lnk /../../../../etc /tmp/escape
    lnk /home/../../../tmp/host-canary /tmp/host-canary
}
disk_hostile() {
    gf part-disk /dev/sda mbr
    gf part-set-bootable /dev/sda 1 true
    gf mkfs ext4 /dev/sda1 blocksize:4096 label:hostile-root
    gf set-uuid /dev/sda1 "$HOSTILE_ROOT_UUID"
    gf mount /dev/sda1 /
}
post_hostile() {
    gf touch /var/cache/huge.bin
    gf truncate-size /var/cache/huge.bin 107374182400
}

# 6. hardlinks — the debian guest where hostile hard links give sensitive files a
#    second name that a cleaning step writes. Created INSIDE the guest (guestfish ln).
#
#    Hard link (one inode, several names)                          step that writes a name
#    /etc/shadow = /var/log/x.log                                  logs truncates x.log
#    /etc/gshadow = /etc/machine-id = /srv/gshadow.alias           machine-id writes + chmods
#                                                                  machine-id; tests chmod the alias
#    /etc/passwd = /root/.bash_history = /srv/passwd.alias         shell-history removes the
#                                                                  history; tests write the alias
#    /etc/group = /etc/hostname                                    hostname writes /etc/hostname
#    /etc/hosts = /srv/hosts.saved                                 hostname edits /etc/hosts
#    Expected: every file keeps its bytes, owner and mode under every name no step
#    names; the names steps write get an inode of their own (nlink 1 afterwards).
tree_hardlinks() {
    tree_debian
    hln /etc/shadow /var/log/x.log
    hln /etc/gshadow /etc/machine-id
    hln /etc/gshadow /srv/gshadow.alias
    hln /etc/passwd /root/.bash_history
    hln /etc/passwd /srv/passwd.alias
    hln /etc/group /etc/hostname
    hln /etc/hosts /srv/hosts.saved
}
disk_hardlinks() {
    gf part-disk /dev/sda mbr
    gf part-set-bootable /dev/sda 1 true
    gf mkfs ext4 /dev/sda1 blocksize:4096 label:hardlinks-root
    gf set-uuid /dev/sda1 "$HARDLINKS_ROOT_UUID"
    gf mount /dev/sda1 /
}

# ---------------------------------------------------------------------------
# guestfish session
# ---------------------------------------------------------------------------
GF_PID=
WORK=
OUT_TMP=

gf() { guestfish --remote="$GF_PID" -- "$@" >&2; }
gfo() { guestfish --remote="$GF_PID" -- "$@"; }

gf_start() { # gf_start DISK
    local out
    # Don't let the server (and qemu) inherit the build lock.
    if [ -n "${lockfd:-}" ]; then
        out=$(guestfish --listen --format=qcow2 -a "$1" {lockfd}>&-)
    else
        out=$(guestfish --listen --format=qcow2 -a "$1")
    fi
    GUESTFISH_PID=
    eval "$out"
    GF_PID=$GUESTFISH_PID
    unset GUESTFISH_PID
    [ -n "$GF_PID" ] || die "guestfish did not start"
}

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
    [ -n "$WORK" ] && rm -rf -- "$WORK"
    [ -n "$OUT_TMP" ] && rm -f -- "$OUT_TMP" "$OUT_TMP.c"
    WORK= OUT_TMP=
}
trap cleanup EXIT
trap 'exit 130' INT TERM

gen_tree() { # gen_tree NAME — fills $T, $POST (uses $LINKF)
    mkdir -p "$T"; : >"$POST"; : >"$LINKF"
    ( "tree_$1" )   # a subshell, so the per-image G_* settings don't leak
    if find "$T" -type l | grep -q .; then die "host tree contains a symlink (bug)"; fi
    cat "$LINKF" >>"$POST"   # symlinks last: owners/modes never go through a link
}

build_image() { # build_image NAME OUT
    local name=$1 out=$2 start=$SECONDS roots root i
    log "building phony guest '$name' -> $out"
    WORK=$(mktemp -d "${TMPDIR:-/tmp}/goldify-phony-$name.XXXXXX")
    T=$WORK/root POST=$WORK/post.gf LINKF=$WORK/links.gf
    gen_tree "$name"
    tar --owner=0 --group=0 --numeric-owner --sort=name --mtime="$PHONY_MTIME" \
        -C "$T" -cf "$WORK/root.tar" .
    log "$name: tree $(du -sh "$T" | cut -f1), $(wc -l <"$POST") guestfish post-commands"

    OUT_TMP=$out.tmp.$$
    qemu-img create -q -f qcow2 "$OUT_TMP" "$PHONY_SIZE" >&2
    guestfs_env 2>/dev/null
    gf_start "$OUT_TMP"
    gf run
    "disk_$name"
    gf tar-in "$WORK/root.tar" /
    guestfish --remote="$GF_PID" <"$POST" >&2 || die "$name: applying owners/modes/symlinks failed"
    if declare -F "post_$name" >/dev/null; then "post_$name"; fi
    gf sync
    gf umount-all
    # Self-check: libguestfs inspection must find exactly one Linux root.
    roots=$(gfo inspect-os)
    [ "$(printf '%s\n' "$roots" | grep -c .)" = 1 ] || die "$name: inspection found roots: [$roots]"
    root=$roots
    log "$name: inspect-os: $root type=$(gfo inspect-get-type "$root") distro=$(gfo inspect-get-distro "$root")" \
        "version=$(gfo inspect-get-major-version "$root").$(gfo inspect-get-minor-version "$root")" \
        "arch=$(gfo inspect-get-arch "$root") product='$(gfo inspect-get-product-name "$root")'" \
        "hostname=$(gfo inspect-get-hostname "$root")"
    [ "$(gfo inspect-get-type "$root")" = linux ] || die "$name: not detected as linux"
    gf_stop
    # Rewrite the image compressed: zeroed clusters vanish and the XFS log
    # (64 MiB of a repeating pattern) shrinks to almost nothing.
    qemu-img convert -c -O qcow2 "$OUT_TMP" "$OUT_TMP.c" >&2
    mv -f -- "$OUT_TMP.c" "$OUT_TMP"
    qemu-img check -q "$OUT_TMP" >&2 || die "$name: qemu-img check failed"
    mv -f -- "$OUT_TMP" "$out"
    OUT_TMP=
    rm -rf -- "$WORK"; WORK=
    log "$name: built in $((SECONDS - start)) s ($(du -h "$out" | cut -f1) on disk)"
}

usage() {
    cat <<EOF
usage: ${0##*/} NAME | all | --list
  NAME     build (once; cached) the phony guest image NAME and print its absolute path
  all      build every image and print "NAME PATH" lines
  --list   print the image names: ${PHONY_NAMES[*]}
  --tree NAME DIR   (debugging) only generate NAME's host-side tree in DIR/root and
                    the guestfish owner/mode/symlink script in DIR/post.gf
Images are cached in $CACHE as NAME-$KEY.qcow2.
EOF
}

build_if_missing() { # runs under the lock
    if [ -f "$2" ]; then log "$1: built meanwhile by another process"; return 0; fi
    build_image "$1" "$2"
}

# ensure NAME — sets REPLY to the cached image path, building it if needed.
ensure() {
    local name=$1 out="$CACHE/$1-$KEY.qcow2"
    if [ ! -f "$out" ]; then
        with_lock "phony-$name" build_if_missing "$name" "$out"
    fi
    REPLY=$out
}

is_name() { local n; for n in "${PHONY_NAMES[@]}"; do [ "$n" = "$1" ] && return 0; done; return 1; }

main() {
    if [ "${1:-}" = --tree ] && [ $# -eq 3 ]; then
        is_name "$2" || die "unknown phony guest '$2'"
        mkdir -p "$3"; [ -z "$(ls -A "$3")" ] || die "$3 is not empty"
        T=$(cd "$3" && pwd)/root POST=$(cd "$3" && pwd)/post.gf LINKF=$(cd "$3" && pwd)/links.gf
        gen_tree "$2"; rm -f "$LINKF"
        return 0
    fi
    [ $# -le 1 ] || { usage >&2; exit 2; }
    case ${1:-} in
        --list) printf '%s\n' "${PHONY_NAMES[@]}" ;;
        all)
            local n
            for n in "${PHONY_NAMES[@]}"; do
                ensure "$n"
                printf '%s %s\n' "$n" "$REPLY"
            done
            ;;
        -h | --help) usage ;;
        '') usage >&2; exit 2 ;;
        *)
            is_name "$1" || die "unknown phony guest '$1' (known: ${PHONY_NAMES[*]})"
            ensure "$1"
            printf '%s\n' "$REPLY"
            ;;
    esac
}

main "$@"
