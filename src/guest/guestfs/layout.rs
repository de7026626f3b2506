//! The disk's partitioning as publish targets describe it: partition table, partitions,
//! EFI system partition, and the partition under root (through LVM when root is a logical
//! volume).

use super::GuestfsGuest;
use crate::guest::api::Api;
use crate::guest::{Layout, Partition};
use anyhow::{anyhow, Context, Result};

impl GuestfsGuest {
    /// [`Guest::layout`](crate::guest::Guest::layout).
    pub(super) fn disk_layout(&self) -> Result<Layout> {
        let g = &self.g;
        let devices = g.list_devices().api().context("listing disks")?;
        let disk = devices.first().ok_or_else(|| anyhow!("the appliance sees no disk"))?;
        let table = g.part_get_parttype(disk).ok();
        let mut partitions = Vec::new();
        for device in g.list_partitions().api().context("listing partitions")? {
            if g.part_to_dev(&device).ok().as_deref() != Some(disk.as_str()) {
                continue;
            }
            let number = g
                .part_to_partnum(&device)
                .api()
                .with_context(|| format!("reading {device}"))?;
            let size = g.blockdev_getsize64(&device).map(|s| s.max(0) as u64).unwrap_or(0);
            // The EFI system partition type: UEFI spec §5.3.3 (GPT) and the MBR type 0xef.
            let esp = match table.as_deref() {
                Some("gpt") => g
                    .part_get_gpt_type(disk, number)
                    .map(|t| t.eq_ignore_ascii_case("C12A7328-F81F-11D2-BA4B-00A0C93EC93B"))
                    .unwrap_or(false),
                Some("msdos") => g.part_get_mbr_id(disk, number).map(|id| id == 0xef).unwrap_or(false),
                _ => false,
            };
            let fstype = g.vfs_type(&device).ok().filter(|t| !t.is_empty());
            partitions.push(Partition {
                device,
                number: number.max(0) as u32,
                size,
                fstype,
                esp,
            });
        }
        let root = self.facts.root.strip_prefix("btrfsvol:").unwrap_or(&self.facts.root);
        let root_partition = if let Some(p) = partitions
            .iter()
            .find(|p| root == p.device || root.starts_with(&format!("{}/", p.device)))
        {
            Some(p.device.clone())
        } else if g.is_lv(root).unwrap_or(false) {
            // The physical volume under root's volume group (the first, if it spans several).
            let lv = g
                .lvm_canonical_lv_name(root)
                .api()
                .with_context(|| format!("naming {root}"))?;
            let vg = lv
                .trim_start_matches("/dev/")
                .split('/')
                .next()
                .unwrap_or_default()
                .to_string();
            let wanted: Vec<String> = g
                .vgpvuuids(&vg)
                .api()
                .unwrap_or_default()
                .iter()
                .map(|u| u.replace('-', ""))
                .collect();
            g.pvs()
                .api()
                .unwrap_or_default()
                .into_iter()
                .filter(|pv| {
                    g.pvuuid(pv)
                        .map(|u| wanted.contains(&u.replace('-', "")))
                        .unwrap_or(false)
                })
                .map(|pv| g.canonical_device_name(&pv).unwrap_or(pv))
                .find(|pv| partitions.iter().any(|p| &p.device == pv))
        } else {
            None
        };
        Ok(Layout {
            table,
            partitions,
            root_partition,
        })
    }
}
