//! Empty /tmp and /var/tmp, keeping the directories (and their sticky 1777 mode), and the
//! stale contents of /run an image captured without a clean shutdown carries (a tmpfs
//! hides them at boot, but they still leak the old machine's state to anyone who reads
//! the image).

use super::{Ctx, Phase, Step, StepInfo, NO_OPTIONS};
use anyhow::Result;
use serde::{Deserialize, Serialize};

pub static INFO: StepInfo = StepInfo {
    name: "tmp-files",
    summary: "empty /tmp, /var/tmp and the stale contents of /run",
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
        ctx.empty_dir("/run")?;
        Ok(())
    }
}
