#!/bin/sh
# Installed by `goldify verify --boot` into a throwaway clone (never into the template):
# once the system is up, print what makes this machine itself on the serial console,
# between markers, then power off. goldify reads the facts from the console log.
# POSIX sh; every probe is allowed to fail (a missing fact is reported as missing).
NONCE=@NONCE@
OUT=/dev/ttyS0
[ -c "$OUT" ] || OUT=/dev/console

# Wait for the boot to settle. Not `is-system-running --wait`: it needs systemd 240.
# This unit is Type=simple, so it is not itself a pending job that would keep the
# system "starting". Bounded, so that a boot that never finishes is still reported
# (with its pending jobs) before goldify's per-boot timeout.
SETTLE=@SETTLE@
i=0
while [ "$i" -lt "$SETTLE" ]; do
    state=$(systemctl is-system-running 2>/dev/null)
    case $state in initializing | starting) sleep 1; i=$((i + 1)) ;; *) break ;; esac
done
has_cloud_init=no
if command -v cloud-init >/dev/null 2>&1; then
    has_cloud_init=yes
    if command -v timeout >/dev/null 2>&1; then
        timeout "$SETTLE" cloud-init status --wait >/dev/null 2>&1
    else
        cloud-init status --wait >/dev/null 2>&1
    fi
fi
state=$(systemctl is-system-running 2>/dev/null)

# The first NIC: the first non-loopback link in kernel (ifindex) order.
nic=$(ip -o link show 2>/dev/null | awk -F': ' '$2 != "lo" { sub(/@.*/, "", $2); print $2; exit }')
[ -n "$nic" ] || nic=$(ls /sys/class/net 2>/dev/null | grep -vx lo | head -n 1)
# DHCP may still be running on a slow (emulated) boot: give it a minute.
i=0
while [ -n "$nic" ] && [ "$i" -lt 60 ]; do
    ip -o -4 addr show dev "$nic" 2>/dev/null | grep -q ' inet ' && break
    sleep 1; i=$((i + 1))
done

# Quiet the kernel so its messages do not cut our lines in half.
dmesg -n 1 2>/dev/null

exec >"$OUT" 2>/dev/null
emit() { printf 'GOLDIFY-VERIFY %s %s=%s\n' "$NONCE" "$1" "$(printf '%s' "$2" | tr '\r\n\t' '   ')"; n=$((n + 1)); }
n=0
printf 'GOLDIFY-VERIFY %s begin\n' "$NONCE"
emit machine-id "$(cat /etc/machine-id 2>/dev/null)"
for pub in /etc/ssh/ssh_host_*_key.pub; do
    [ -f "$pub" ] || continue
    # type and SHA-256 of the key blob: goldify prints it as ssh-keygen -l does.
    emit host-key "$(awk '{ print $1; exit }' "$pub") $(awk '{ print $2; exit }' "$pub" | base64 -d 2>/dev/null | sha256sum | cut -d' ' -f1)"
done
sshd=""
for unit in ssh.service sshd.service ssh.socket sshd.socket; do
    s=$(systemctl is-active "$unit" 2>/dev/null)
    [ -n "$sshd" ] || sshd="$unit $s"
    if [ "$s" = active ]; then sshd="$unit $s"; break; fi
done
emit sshd "$sshd"
emit nic "$nic"
if [ -n "$nic" ]; then
    addr=$(ip -o -4 addr show dev "$nic" 2>/dev/null | awk '{ for (i = 1; i < NF; i++) if ($i == "inet") { print $(i + 1); exit } }')
    emit ipv4 "$addr"
    if ip -o -4 addr show dev "$nic" 2>/dev/null | grep -q ' dynamic '; then emit ipv4-dynamic yes; else emit ipv4-dynamic no; fi
    if [ -n "$addr" ]; then
        for lease in /var/lib/dhcp/*.leases /var/lib/dhclient/*.lease* /run/systemd/netif/leases/* /var/lib/NetworkManager/*.lease /var/lib/dhcpcd/*.lease /run/dhclient*.leases; do
            [ -f "$lease" ] && grep -qs "${addr%/*}" "$lease" && { emit dhcp-lease "$lease"; break; }
        done
    fi
fi
for unit in $(systemctl --failed --plain --no-legend --no-pager 2>/dev/null | awk '{ print $1 }'); do
    emit failed-unit "$unit"
done
emit cloud-init "$has_cloud_init"
if [ "$has_cloud_init" = yes ]; then
    emit cloud-init-status "$(cloud-init status 2>/dev/null | sed -n 's/^status: //p' | head -n 1)"
    emit cloud-init-instance-id "$(cat /run/cloud-init/.instance-id /var/lib/cloud/data/instance-id 2>/dev/null | head -n 1)"
    emit cloud-init-previous-instance-id "$(cat /var/lib/cloud/data/previous-instance-id 2>/dev/null | head -n 1)"
    # Per-instance semaphores written during this boot prove a new instance ran now;
    # older ones mean cloud-init found the instance already done.
    btime=$(awk '/^btime/ { print $2 }' /proc/stat)
    new=0 old=0
    for sem in /var/lib/cloud/instance/sem/*; do
        [ -f "$sem" ] || continue
        if [ "$(stat -c %Y "$sem" 2>/dev/null || echo 0)" -ge "$btime" ]; then new=$((new + 1)); else old=$((old + 1)); fi
    done
    emit cloud-init-semaphores "new=$new old=$old"
fi
emit system-state "$state"
case $state in
initializing | starting)
    for job in $(systemctl list-jobs --no-legend --no-pager 2>/dev/null | awk '{ print $2 }'); do
        emit pending-job "$job"
    done
    ;;
esac
emit uptime "$(cut -d' ' -f1 /proc/uptime)"
emit systemd-analyze "$(systemd-analyze time 2>/dev/null | head -n 1)"
emit hostname "$(hostname 2>/dev/null || cat /etc/hostname 2>/dev/null)"
emit os "$(. /etc/os-release 2>/dev/null; echo "$PRETTY_NAME")"
printf 'GOLDIFY-VERIFY %s end count=%s\n' "$NONCE" "$n"
sync
systemctl --no-block poweroff
