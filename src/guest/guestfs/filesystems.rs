//! Which filesystems the disk holds, asked of the appliance once: the quick way for plain
//! partitions, libguestfs' full scan otherwise; and the filesystem a guest device name means.

use super::GuestfsGuest;
use crate::guest::api::Api;
use crate::guest::devices::canonical_disk_name;
use crate::guest::Filesystem;
use anyhow::{Context, Result};

impl GuestfsGuest {
    /// (device, type) of every filesystem on the disk, sorted by device, as libguestfs'
    /// `list_filesystems` gives them; asked for once.
    pub(super) fn fs_table(&self) -> Result<Vec<(String, String)>> {
        if let Some(t) = self.fs_table.borrow().as_ref() {
            return Ok(t.clone());
        }
        let mut t = match self.plain_filesystems()? {
            Some(t) => t,
            None => self.g.list_filesystems().api()?.into_iter().collect(),
        };
        t.sort();
        *self.fs_table.borrow_mut() = Some(t.clone());
        Ok(t)
    }

    /// The filesystems of a disk made of plain partitions (or one unpartitioned
    /// filesystem), typed with one blkid each. `None` when anything on the disk needs
    /// libguestfs' full scan: LVM, md or other RAID members, btrfs (subvolumes), or a type
    /// this does not know. `list_filesystems` does that scan on every call, running the LVM,
    /// md and LDM tools, which under TCG costs a second or more even on a plain disk.
    fn plain_filesystems(&self) -> Result<Option<Vec<(String, String)>>> {
        const PLAIN: [&str; 9] = ["ext2", "ext3", "ext4", "xfs", "vfat", "swap", "f2fs", "crypto_LUKS", ""];
        let mut out = Vec::new();
        for dev in self.block_devices()? {
            // blkid finding nothing (a BIOS boot or extended partition) is an empty type.
            let fstype = self.g.vfs_type(&dev).unwrap_or_default();
            if !PLAIN.contains(&fstype.as_str()) {
                return Ok(None);
            }
            out.push((
                dev,
                if fstype.is_empty() {
                    "unknown".to_string()
                } else {
                    fstype
                },
            ));
        }
        Ok(Some(out))
    }

    /// Every partition, and every disk that has none (an unpartitioned filesystem or
    /// member): where blkid may find something.
    fn block_devices(&self) -> Result<Vec<String>> {
        let parts = self.g.list_partitions().api().context("listing partitions")?;
        let mut out = Vec::new();
        for dev in self.g.list_devices().api().context("listing devices")? {
            let own: Vec<&String> = parts.iter().filter(|p| is_partition_of(p, &dev)).collect();
            if own.is_empty() {
                out.push(dev);
            } else {
                out.extend(own.into_iter().cloned());
            }
        }
        Ok(out)
    }

    /// Why no OS may have been found: the disks hold members of an MD array or an LVM
    /// volume group, which the appliance assembles only when every member is there
    /// (libguestfs' init runs `mdadm -As --no-degraded`, and LVM does not activate a
    /// volume group missing a physical volume).
    pub(super) fn members_hint(&self) -> Option<String> {
        let members: Vec<String> = self
            .block_devices()
            .unwrap_or_default()
            .into_iter()
            .filter(|d| {
                let t = self.g.vfs_type(d).unwrap_or_default();
                t == "linux_raid_member" || t == "LVM2_member"
            })
            .collect();
        (!members.is_empty()).then(|| {
            format!(
                "{} {} of an MD array or a volume group; if the guest is on several disks, give them all (goldify run RECIPE DISK1 DISK2 …)",
                members.join(", "),
                if members.len() == 1 { "is a member" } else { "are members" }
            )
        })
    }

    /// [`Guest::filesystems`](crate::guest::Guest::filesystems).
    pub(super) fn list_filesystems(&self) -> Result<Vec<Filesystem>> {
        let mut out = Vec::new();
        for (device, fstype) in self.fs_table().context("listing filesystems")? {
            if fstype == "unknown" || fstype.is_empty() {
                continue;
            }
            let (uuid, label) = self
                .fs_ids
                .borrow_mut()
                .entry(device.clone())
                .or_insert_with(|| {
                    let nonempty = |r: std::result::Result<String, guestfs::Error>| r.ok().filter(|s| !s.is_empty());
                    (nonempty(self.g.vfs_uuid(&device)), nonempty(self.g.vfs_label(&device)))
                })
                .clone();
            out.push(Filesystem {
                uuid,
                label,
                mountpoint: self.mounted.iter().find(|(_, d)| *d == device).map(|(m, _)| m.clone()),
                device,
                fstype,
            });
        }
        Ok(out)
    }

    /// [`Guest::resolve_device`](crate::guest::Guest::resolve_device).
    pub(super) fn find_device(&self, guest_device: &str) -> Result<Option<Filesystem>> {
        let wanted = if let Some(c) = canonical_disk_name(guest_device) {
            c
        } else if guest_device.starts_with("/dev/mapper/") || guest_device.matches('/').count() == 3 {
            match self.g.lvm_canonical_lv_name(guest_device) {
                Ok(n) => n,
                Err(_) => return Ok(None),
            }
        } else {
            return Ok(None);
        };
        let canon = |d: &str| self.g.canonical_device_name(d).unwrap_or_else(|_| d.to_string());
        let wanted = canon(&wanted);
        Ok(self
            .list_filesystems()?
            .into_iter()
            .find(|f| canon(&f.device) == wanted))
    }
}

/// `part` is a partition of the appliance device `dev` (/dev/sda1 of /dev/sda; the
/// appliance names every disk sdX).
fn is_partition_of(part: &str, dev: &str) -> bool {
    part.strip_prefix(dev)
        .is_some_and(|rest| !rest.is_empty() && rest.trim_start_matches('p').bytes().all(|b| b.is_ascii_digit()))
}
