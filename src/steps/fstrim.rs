//! Discard the free space of every mounted filesystem, after every deletion (this step runs
//! in the last phase), so the golden disk stores only live data: qcow2 clusters become
//! unallocated and a raw export has holes. Swap partitions hold the old machine's memory
//! pages: they are discarded and recreated with the same UUID and label, so fstab entries
//! and resume= parameters still find them.

use super::{Ctx, OptionDoc, Phase, Step, StepInfo};
use crate::report::Action;
use anyhow::Result;
use serde::{Deserialize, Serialize};

pub(crate) static INFO: StepInfo = StepInfo {
    name: "fstrim",
    summary: "discard free space of every mounted filesystem; discard and recreate swap with the same UUID and label",
    // NTFS is trimmed too (ntfs-3g supports FITRIM in the appliance); Windows has no swap
    // partitions to recreate.
    families: &crate::guest::Family::ALL,
    options: &[OptionDoc { name: "swap", kind: "bool", default: "true", help: "discard and recreate swap partitions" }],
    phase: Phase::Trim,
    repeatable: false,
};

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct Fstrim {
    pub swap: bool,
}

impl Default for Fstrim {
    fn default() -> Self {
        Fstrim { swap: true }
    }
}

impl Step for Fstrim {
    fn info(&self) -> &'static StepInfo {
        &INFO
    }

    fn apply(&self, ctx: &mut Ctx) -> Result<()> {
        if self.swap {
            for fs in ctx.guest.filesystems()?.into_iter().filter(|f| f.fstype == "swap") {
                if !ctx.dry_run {
                    ctx.guest.recreate_swap(&fs.device, fs.uuid.as_deref(), fs.label.as_deref())?;
                }
                ctx.report.changes.push(crate::report::Change { path: fs.device.clone(), action: Action::Recreated, freed: 0 });
            }
        }
        let mountpoints: Vec<String> = if ctx.dry_run {
            ctx.facts().mountpoints.iter().map(|(m, _)| m.clone()).collect()
        } else {
            ctx.guest.trim()?
        };
        for mp in mountpoints {
            ctx.report.changes.push(crate::report::Change { path: mp, action: Action::Trimmed, freed: 0 });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::guest::memory::MemoryGuest;
    use crate::guest::{Filesystem, OsFacts};
    use crate::report::Action;
    use crate::steps::testing::{apply, changes, dry_run_matches, tree};

    const SWAP_UUID: &str = "bf80e171-6293-4d3f-8a01-5c6d7e8f9012";

    fn fs(device: &str, fstype: &str, mountpoint: Option<&str>) -> Filesystem {
        Filesystem {
            device: device.into(),
            fstype: fstype.into(),
            uuid: None,
            label: None,
            mountpoint: mountpoint.map(String::from),
        }
    }

    fn guest() -> MemoryGuest {
        let mut facts = OsFacts::sample("ubuntu");
        facts.mountpoints = vec![
            ("/".into(), "/dev/sda1".into()),
            ("/boot/efi".into(), "/dev/sda2".into()),
        ];
        let mut g = MemoryGuest::new(facts);
        g.filesystems = vec![
            fs("/dev/sda1", "ext4", Some("/")),
            fs("/dev/sda2", "vfat", Some("/boot/efi")),
            Filesystem {
                uuid: Some(SWAP_UUID.into()),
                label: Some("swap0".into()),
                ..fs("/dev/sda3", "swap", None)
            },
        ];
        g.file("/etc/fstab", b"UUID=x / ext4 defaults 0 1\n");
        g
    }

    #[test]
    fn trims_every_mounted_filesystem_and_recreates_swap_with_its_identity() {
        let g = guest();
        let before = tree(&g);
        let report = apply(&g, "fstrim", "~").unwrap();
        assert_eq!(
            changes(&report),
            [
                (Action::Recreated, "/dev/sda3"),
                (Action::Trimmed, "/"),
                (Action::Trimmed, "/boot/efi"),
            ]
        );
        // The same UUID and label: fstab's UUID= and resume= still find the swap.
        let swaps = g.swaps.borrow();
        let recreated: Vec<_> = swaps
            .iter()
            .map(|s| (s.device.as_str(), s.uuid.as_deref(), s.label.as_deref()))
            .collect();
        assert_eq!(recreated, [("/dev/sda3", Some(SWAP_UUID), Some("swap0"))]);
        assert_eq!(*g.trimmed.borrow(), ["/dev/sda3", "/", "/boot/efi"]);
        assert_eq!(tree(&g), before, "trimming changes no file");
    }

    #[test]
    fn swap_can_be_left_alone() {
        let g = guest();
        let report = apply(&g, "fstrim", "{swap: false}").unwrap();
        assert_eq!(
            changes(&report),
            [(Action::Trimmed, "/"), (Action::Trimmed, "/boot/efi")]
        );
        assert!(g.swaps.borrow().is_empty());
    }

    #[test]
    fn dry_run_reports_and_discards_nothing() {
        let g = guest();
        let report = crate::steps::testing::dry_run(&g, "fstrim", "~").unwrap();
        assert_eq!(report.changes.len(), 3);
        assert!(g.trimmed.borrow().is_empty() && g.swaps.borrow().is_empty());
        dry_run_matches(guest, "fstrim", "~");
    }
}
