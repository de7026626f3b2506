//! Discard the free space of every mounted filesystem, after every deletion (this step runs
//! in the last phase), so the golden disk stores only live data: qcow2 clusters become
//! unallocated and a raw export has holes. Swap partitions hold the old machine's memory
//! pages: they are discarded and recreated with the same UUID and label, so fstab entries
//! and resume= parameters still find them.

use super::{Ctx, OptionDoc, Phase, Step, StepInfo};
use crate::report::Action;
use anyhow::Result;
use serde::{Deserialize, Serialize};

pub static INFO: StepInfo = StepInfo {
    name: "fstrim",
    summary: "discard free space of every mounted filesystem; discard and recreate swap with the same UUID and label",
    families: &[],
    options: &[OptionDoc { name: "swap", kind: "bool", default: "true", help: "discard and recreate swap partitions" }],
    phase: Phase::Trim,
    repeatable: false,
};

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Fstrim {
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
