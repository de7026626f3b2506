//! Empty /tmp and /var/tmp, keeping the directories (and their sticky 1777 mode).

use super::{Ctx, Phase, Step, StepInfo, NO_OPTIONS};
use anyhow::Result;
use serde::{Deserialize, Serialize};

pub static INFO: StepInfo = StepInfo {
    name: "tmp-files",
    summary: "empty /tmp and /var/tmp",
    families: &[],
    options: NO_OPTIONS,
    phase: Phase::Main,
    repeatable: false,
};

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TmpFiles {}

impl Step for TmpFiles {
    fn info(&self) -> &'static StepInfo {
        &INFO
    }

    fn apply(&self, ctx: &mut Ctx) -> Result<()> {
        ctx.empty_dir("/tmp")?;
        ctx.empty_dir("/var/tmp")?;
        Ok(())
    }
}
