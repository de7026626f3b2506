//! Disk device names the kernel numbers by discovery order (`/dev/vda1`, `/dev/xvdb`,
//! `/dev/nvme0n1p2`…), parsed in one place: the guest's fstab and boot configuration use
//! them, and the appliance calls the same disk `/dev/sdX` whatever bus the guest used.

use regex::Regex;
use std::sync::LazyLock;

/// The bus prefixes of disks named by letter: SCSI/SATA, IDE, virtio, Xen.
const BUS: &str = "(?:s|h|v|xv)d";

/// A disk or partition name after `/dev/`: bus, letters, partition; or NVMe controller,
/// namespace, partition.
static NAME: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(&format!(r"^(?:({BUS})([a-z]+)(\d*)|nvme(\d+)n(\d+)(?:p(\d+))?)$")).expect("static regex")
});

/// A disk named by letter mentioned anywhere in a text.
static MENTION: LazyLock<Regex> = LazyLock::new(|| Regex::new(&format!(r"/dev/({BUS})[a-z]")).expect("static regex"));

/// Whether `name` (what follows `/dev/`) is a disk or partition named by letter (`sda1`,
/// `vdb`, `xvdc2`, `hda`) or an NVMe namespace or its partition (`nvme0n1p2`).
pub fn is_numbered_disk(name: &str) -> bool {
    NAME.is_match(name)
}

/// The bus prefix (`sd`, `hd`, `vd`, `xvd`) of the first disk named by letter that `text`
/// mentions as `/dev/…`.
pub fn bus_mentioned(text: &str) -> Option<&str> {
    MENTION
        .captures(text)
        .map(|c| c.get(1).expect("group 1 always takes part").as_str())
}

/// The name the appliance gives to a device the guest calls `guest_device`: the guest's
/// first disk is the appliance's `/dev/sda` whatever bus the guest used (vd, xvd, hd, sd,
/// nvme). Returns `None` for names that do not denote a partition or disk this way.
pub fn canonical_disk_name(guest_device: &str) -> Option<String> {
    let c = NAME.captures(guest_device.strip_prefix("/dev/")?)?;
    if let Some(letters) = c.get(2) {
        let part = c.get(3).map(|m| m.as_str()).unwrap_or("");
        return Some(format!("/dev/sd{}{}", letters.as_str(), part));
    }
    // The guest's first NVMe controller only.
    if c.get(4)?.as_str() != "0" {
        return None;
    }
    let ns: u32 = c.get(5)?.as_str().parse().ok()?;
    let letter = char::from(b'a' + (ns.checked_sub(1)? as u8).min(25));
    let part = c.get(6).map(|m| m.as_str()).unwrap_or("");
    Some(format!("/dev/sd{letter}{part}"))
}

#[cfg(test)]
mod tests {
    use super::canonical_disk_name as c;
    use super::*;

    #[test]
    fn guest_device_names_map_to_appliance_names() {
        assert_eq!(c("/dev/vda1").as_deref(), Some("/dev/sda1"));
        assert_eq!(c("/dev/xvdb").as_deref(), Some("/dev/sdb"));
        assert_eq!(c("/dev/hda2").as_deref(), Some("/dev/sda2"));
        assert_eq!(c("/dev/sdc10").as_deref(), Some("/dev/sdc10"));
        assert_eq!(c("/dev/nvme0n1p2").as_deref(), Some("/dev/sda2"));
        assert_eq!(c("/dev/mapper/vg-root"), None);
        assert_eq!(c("UUID=x"), None);
    }

    #[test]
    fn numbered_disks_and_mentions() {
        for n in ["sda", "vdb1", "xvdc12", "hdaa", "nvme0n1", "nvme1n2p3"] {
            assert!(is_numbered_disk(n), "{n}");
        }
        for n in ["mapper/vg0-root", "vg0/root", "md0", "sd1", "nvme0", "vda1x"] {
            assert!(!is_numbered_disk(n), "{n}");
        }
        assert_eq!(c("/dev/nvme1n1p1"), None);
        assert_eq!(
            bus_mentioned("root=UUID=x\n/dev/xvda1 / ext4\n/dev/sdb1 /d ext4"),
            Some("xvd")
        );
        assert_eq!(bus_mentioned("/dev/md0 /dev/sd /dev/hdc"), Some("hd"));
        assert_eq!(bus_mentioned("UUID=x / ext4"), None);
    }
}
