//! Files goldify wrote carry no SELinux label. Where SELinux is configured (enforcing or
//! permissive in /etc/selinux/config), /.autorelabel makes the first boot relabel the whole
//! filesystem and reboot once — what virt-sysprep's selinux-relabel operation falls back to
//! when it cannot run setfiles. Skipped where SELinux is disabled or absent.

use super::{Ctx, Phase, Step, StepInfo, NO_OPTIONS};
use anyhow::Result;
use serde::{Deserialize, Serialize};

pub static INFO: StepInfo = StepInfo {
    name: "selinux-relabel",
    summary: "where SELinux is configured, request a relabel at first boot (/.autorelabel)",
    families: &[],
    options: NO_OPTIONS,
    phase: Phase::Main,
    repeatable: false,
};

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SelinuxRelabel {}

impl Step for SelinuxRelabel {
    fn info(&self) -> &'static StepInfo {
        &INFO
    }

    fn apply(&self, ctx: &mut Ctx) -> Result<()> {
        if !ctx.facts().selinux {
            ctx.report.skipped = Some("SELinux is not configured in this guest".into());
            return Ok(());
        }
        if ctx.lstat("/.autorelabel")?.is_none() {
            ctx.write("/.autorelabel", b"")?;
        }
        Ok(())
    }
}
