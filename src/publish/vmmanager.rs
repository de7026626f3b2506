//! `vmmanager`: the golden disk as a raw image compressed with xz (`<image_name>.xz`) and
//! its entry in the repository's `metadata.json`. Field meanings follow VMmanager's
//! documentation of OS template repositories
//! (<https://docs.ispsystem.com/vmmanager-admin/templates/os-templates-repositories>).
//! Facts about the guest (root partition, EFI, network device) were gathered while the
//! guest was open; this module never reopens it.

use super::settings::{file_safe, Vmmanager};
use super::GuestInfo;
use crate::guest::Guest;
use regex::Regex;
use serde_json::{json, Map, Value};
use std::sync::LazyLock;

const MIB: u64 = 1 << 20;

pub fn mib_ceil(bytes: u64) -> u64 {
    bytes.div_ceil(MIB)
}

/// The template's name: the setting, else --name, else `<distro>-<major>`.
pub fn template_name(setting: Option<&str>, run_name: Option<&str>, info: &GuestInfo) -> String {
    setting
        .or(run_name)
        .map(str::to_string)
        .unwrap_or_else(|| format!("{}-{}", info.os.distro, info.os.major))
}

/// Default tags: OS type, distro, distro+major (`linux`, `debian`, `debian12`).
pub fn default_tags(info: &GuestInfo) -> Vec<String> {
    let mut tags = vec![
        info.os.os_type.clone(),
        info.os.distro.clone(),
        format!("{}{}", info.os.distro, info.os.major),
    ];
    tags.retain(|t| t != "unknown" && !t.is_empty());
    tags.dedup();
    tags
}

/// The partition to grow, as the deployed guest will name it: the guest's own disk
/// naming (`vd`, `sd`, `xvd`) and the number of the partition holding root.
pub fn expand(setting: Option<&str>, info: &GuestInfo) -> Option<String> {
    match setting {
        Some(s) if s != "auto" => return Some(s.to_string()),
        _ => {}
    }
    let root = info.layout.root_partition.as_ref()?;
    let part = info.layout.partitions.iter().find(|p| &p.device == root)?;
    Some(format!("/dev/{}a{}", info.disk_prefix, part.number))
}

/// The entry for `metadata.json`, in the order VMmanager's documentation lists the fields.
#[allow(clippy::too_many_arguments)]
pub fn entry(
    s: &Vmmanager,
    name: &str,
    file_name: &str,
    image_name: &str,
    info: &GuestInfo,
    virtual_size: u64,
    archive_size: u64,
    sha1: &str,
    updated_at: &str,
) -> Map<String, Value> {
    let image_size_mib = mib_ceil(virtual_size);
    let mut m = Map::new();
    m.insert("name".into(), json!(name));
    m.insert(
        "tags".into(),
        json!(s.tags.clone().unwrap_or_else(|| default_tags(info))),
    );
    m.insert("file_name".into(), json!(file_name));
    m.insert("image_name".into(), json!(image_name));
    match expand(s.expand.as_deref(), info) {
        Some(e) => {
            m.insert("expand".into(), json!(e));
        }
        None => tracing::warn!("vmmanager: root is not on a partition; `expand` left out (set it in the recipe)"),
    }
    match info.network_device.clone().or_else(|| s.network_device.clone()) {
        Some(d) => {
            m.insert("network_device".into(), json!(d));
        }
        None => {
            tracing::warn!("vmmanager: no network device found in the guest or the recipe; `network_device` left out")
        }
    }
    m.insert("archive_size_mib".into(), json!(mib_ceil(archive_size)));
    m.insert(
        "cpu_mode".into(),
        serde_json::to_value(s.cpu_mode).unwrap_or(json!("default")),
    );
    m.insert("image_size_mib".into(), json!(image_size_mib));
    m.insert(
        "min_size_mib".into(),
        json!(s.min_size_mib.unwrap_or(0).max(image_size_mib)),
    );
    m.insert("updated_at".into(), json!(updated_at));
    m.insert("checksum".into(), json!(sha1));
    m.insert(
        "efi_boot".into(),
        json!(s
            .efi_boot
            .unwrap_or_else(|| info.layout.partitions.iter().any(|p| p.esp))),
    );
    m
}

pub fn image_name(s: &Vmmanager, name: &str) -> String {
    s.image_name.clone().unwrap_or_else(|| file_safe(name))
}

/// UTC now as `YYYY-MM-DD HH:MM:SS` (VMmanager's `updated_at`).
pub fn utc_now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    utc(secs)
}

pub fn utc(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Civil date from days since 1970-01-01 (Howard Hinnant's days_from_civil, inverted).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

// ---------------------------------------------------------------------------------------
// Facts read from the guest while it is open

const CONFIG_LIMIT: u64 = 1 << 20;

fn read_text(guest: &dyn Guest, path: &str) -> Option<String> {
    guest
        .read(path, CONFIG_LIMIT)
        .ok()
        .map(|b| String::from_utf8_lossy(&b).into_owned())
}

fn files_in(guest: &dyn Guest, dir: &str, suffix: &str) -> Vec<String> {
    match guest.lstat(dir) {
        Ok(Some(m)) if m.kind == crate::guest::Kind::Dir => {}
        _ => return Vec::new(),
    }
    guest
        .list(dir)
        .unwrap_or_default()
        .into_iter()
        .filter(|n| n.ends_with(suffix))
        .map(|n| crate::guest::join(dir, &n))
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

static DISK_NAME: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"/dev/(xvd|vd|sd|hd)[a-z]").expect("static regex"));

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
        if let Some(c) = read_text(guest, f).as_deref().and_then(|t| DISK_NAME.captures(t)) {
            return c[1].to_string();
        }
    }
    "vd".into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::guest::memory::MemoryGuest;
    use crate::guest::{Layout, OsFacts, Partition};

    fn info() -> GuestInfo {
        GuestInfo {
            os: OsFacts::sample("debian"),
            layout: Layout {
                table: Some("gpt".into()),
                partitions: vec![
                    Partition {
                        device: "/dev/sda1".into(),
                        number: 1,
                        size: 1 << 20,
                        fstype: None,
                        esp: false,
                    },
                    Partition {
                        device: "/dev/sda15".into(),
                        number: 15,
                        size: 100 << 20,
                        fstype: Some("vfat".into()),
                        esp: true,
                    },
                    Partition {
                        device: "/dev/sda2".into(),
                        number: 2,
                        size: 3 << 30,
                        fstype: Some("ext4".into()),
                        esp: false,
                    },
                ],
                root_partition: Some("/dev/sda2".into()),
            },
            network_device: Some("ens3".into()),
            disk_prefix: "vd".into(),
        }
    }

    #[test]
    fn entry_fills_what_the_image_tells() {
        let s = Vmmanager {
            min_size_mib: Some(1000),
            ..Default::default()
        };
        let e = entry(
            &s,
            "debian-12",
            "debian-12.xz",
            "debian-12",
            &info(),
            4 << 30,
            300 * MIB + 1,
            "ab",
            "2024-01-02 03:04:05",
        );
        let keys: Vec<&str> = e.keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                "name",
                "tags",
                "file_name",
                "image_name",
                "expand",
                "network_device",
                "archive_size_mib",
                "cpu_mode",
                "image_size_mib",
                "min_size_mib",
                "updated_at",
                "checksum",
                "efi_boot"
            ]
        );
        assert_eq!(e["expand"], "/dev/vda2");
        assert_eq!(e["network_device"], "ens3");
        assert_eq!(e["archive_size_mib"], 301);
        assert_eq!(e["image_size_mib"], 4096);
        assert_eq!(e["min_size_mib"], 4096, "never less than the image");
        assert_eq!(e["efi_boot"], true);
        assert_eq!(e["cpu_mode"], "default");
        assert_eq!(e["tags"], json!(["linux", "debian", "debian12"]));
        let s = Vmmanager {
            expand: Some("/dev/sda1".into()),
            efi_boot: Some(false),
            min_size_mib: Some(10_000),
            ..Default::default()
        };
        let e = entry(&s, "d", "d.xz", "d", &info(), 4 << 30, 1, "ab", "x");
        assert_eq!(
            (
                e["expand"].as_str(),
                e["efi_boot"].as_bool(),
                e["min_size_mib"].as_u64()
            ),
            (Some("/dev/sda1"), Some(false), Some(10_000))
        );
    }

    #[test]
    fn utc_format() {
        assert_eq!(utc(0), "1970-01-01 00:00:00");
        assert_eq!(utc(951_782_400), "2000-02-29 00:00:00");
        assert_eq!(utc(1_704_164_645), "2024-01-02 03:04:05");
    }

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
