//! The `-` backups shadow-utils leaves next to the account databases: they hold the old
//! machine's password hashes after the live files have been changed.

use super::{Ctx, Phase, Step, StepInfo, NO_OPTIONS};
use anyhow::Result;
use serde::{Deserialize, Serialize};

pub static INFO: StepInfo = StepInfo {
    name: "passwd-backups",
    summary: "remove /etc/passwd-, shadow-, group-, gshadow-, subuid-, subgid-",
    families: &[],
    options: NO_OPTIONS,
    phase: Phase::Main,
    repeatable: false,
};

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PasswdBackups {}

impl Step for PasswdBackups {
    fn info(&self) -> &'static StepInfo {
        &INFO
    }

    fn apply(&self, ctx: &mut Ctx) -> Result<()> {
        for f in ["passwd-", "shadow-", "group-", "gshadow-", "subuid-", "subgid-"] {
            ctx.remove(&format!("/etc/{f}"))?;
        }
        Ok(())
    }
}
