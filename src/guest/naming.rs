//! How the guest names its network interface and its disks, read from its own
//! configuration: what a template repository must tell the hypervisor (VMmanager's
//! `network_device`, the device of the partition to grow).

use super::Guest;

const CONFIG_LIMIT: u64 = 1 << 20;

fn read_text(guest: &dyn Guest, path: &str) -> Option<String> {
    guest
        .read(path, CONFIG_LIMIT)
        .ok()
        .map(|b| String::from_utf8_lossy(&b).into_owned())
}

fn files_in(guest: &dyn Guest, dir: &str, suffix: &str) -> Vec<String> {
    match guest.lstat(dir) {
        Ok(Some(m)) if m.kind == super::Kind::Dir => {}
        _ => return Vec::new(),
    }
    guest
        .list(dir)
        .unwrap_or_default()
        .into_iter()
        .filter(|n| n.ends_with(suffix))
        .map(|n| super::join(dir, &n))
        .collect()
}

fn usable(name: &str) -> bool {
    !name.is_empty() && name != "lo" && !name.contains(['*', '?', '[', '/', ' '])
}

/// The interface the guest's own network configuration brings up: ifupdown, netplan,
/// ifcfg, NetworkManager keyfiles, systemd-networkd, in that order.
pub fn network_device(guest: &dyn Guest) -> Option<String> {
    let mut ifupdown = vec!["/etc/network/interfaces".to_string()];
    ifupdown.extend(files_in(guest, "/etc/network/interfaces.d", ""));
    for f in ifupdown {
        if let Some(t) = read_text(guest, &f) {
            for l in t.lines() {
                let w: Vec<&str> = l.split_whitespace().collect();
                if w.first() == Some(&"iface") && w.len() >= 2 && usable(w[1]) {
                    return Some(w[1].to_string());
                }
            }
        }
    }
    for f in files_in(guest, "/etc/netplan", ".yaml") {
        let Some(t) = read_text(guest, &f) else { continue };
        let Ok(v) = serde_yaml::from_str::<serde_yaml::Value>(&t) else {
            continue;
        };
        if let Some(eths) = v
            .get("network")
            .and_then(|n| n.get("ethernets"))
            .and_then(|e| e.as_mapping())
        {
            for (k, cfg) in eths {
                let name = cfg.get("set-name").and_then(|s| s.as_str()).or_else(|| {
                    // An id with a `match:` is a label, not an interface name.
                    if cfg.get("match").is_some() {
                        None
                    } else {
                        k.as_str()
                    }
                });
                if let Some(n) = name.filter(|n| usable(n)) {
                    return Some(n.to_string());
                }
            }
        }
    }
    let key = |t: &str, k: &str| {
        t.lines().find_map(|l| {
            let l = l.trim();
            l.strip_prefix(k).map(|v| v.trim().trim_matches('"').to_string())
        })
    };
    for f in files_in(guest, "/etc/sysconfig/network-scripts", "") {
        if !f.rsplit('/').next().unwrap_or("").starts_with("ifcfg-") {
            continue;
        }
        if let Some(n) = read_text(guest, &f)
            .and_then(|t| key(&t, "DEVICE="))
            .filter(|n| usable(n))
        {
            return Some(n);
        }
    }
    for f in files_in(guest, "/etc/NetworkManager/system-connections", ".nmconnection") {
        if let Some(n) = read_text(guest, &f)
            .and_then(|t| key(&t, "interface-name="))
            .filter(|n| usable(n))
        {
            return Some(n);
        }
    }
    for f in files_in(guest, "/etc/systemd/network", ".network") {
        if let Some(n) = read_text(guest, &f)
            .and_then(|t| key(&t, "Name="))
            .filter(|n| usable(n))
        {
            return Some(n);
        }
    }
    None
}

/// How the guest names its disks (`vd`, `sd`, `xvd`, `hd`), from the device names its
/// fstab and boot configuration mention; `vd` (virtio, what VMmanager's KVM VMs get) when
/// they only use UUIDs.
pub fn disk_prefix(guest: &dyn Guest) -> String {
    for f in [
        "/etc/fstab",
        "/etc/default/grub",
        "/boot/grub/grub.cfg",
        "/boot/grub2/grub.cfg",
    ] {
        if let Some(bus) = read_text(guest, f).as_deref().and_then(super::devices::bus_mentioned) {
            return bus.to_string();
        }
    }
    "vd".into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::guest::memory::MemoryGuest;
    use crate::guest::OsFacts;

    #[test]
    fn network_device_from_each_kind_of_config() {
        let g = MemoryGuest::new(OsFacts::sample("debian"));
        assert_eq!(network_device(&g), None);
        g.file("/etc/systemd/network/10-x.network", b"[Match]\nName=enp1s0\n");
        assert_eq!(network_device(&g).as_deref(), Some("enp1s0"));
        g.file(
            "/etc/netplan/50-cloud-init.yaml",
            b"network:\n  version: 2\n  ethernets:\n    id0:\n      match: {macaddress: 'x'}\n      set-name: ens4\n",
        );
        assert_eq!(network_device(&g).as_deref(), Some("ens4"));
        g.file(
            "/etc/network/interfaces",
            b"auto lo\niface lo inet loopback\nsource /etc/network/interfaces.d/*\n",
        );
        g.file(
            "/etc/network/interfaces.d/50-cloud-init",
            b"auto eth0\niface eth0 inet dhcp\n",
        );
        assert_eq!(network_device(&g).as_deref(), Some("eth0"));
        let r = MemoryGuest::new(OsFacts::sample("rocky"));
        r.file("/etc/sysconfig/network-scripts/ifcfg-lo", b"DEVICE=lo\n");
        r.file(
            "/etc/sysconfig/network-scripts/ifcfg-eth1",
            b"DEVICE=\"eth1\"\nBOOTPROTO=dhcp\n",
        );
        assert_eq!(network_device(&r).as_deref(), Some("eth1"));
    }

    #[test]
    fn disk_naming() {
        let g = MemoryGuest::new(OsFacts::sample("debian"));
        assert_eq!(disk_prefix(&g), "vd");
        g.file(
            "/etc/fstab",
            b"UUID=x / ext4 defaults 0 1\n/dev/sdb1 /data ext4 defaults 0 2\n",
        );
        assert_eq!(disk_prefix(&g), "sd");
    }
}
