//! User step: cut regular files matching globs to zero bytes, keeping owner and mode.

use super::{check_abs, Ctx, OptionDoc, Phase, Step, StepInfo};
use anyhow::Result;
use serde::{Deserialize, Serialize};

pub static INFO: StepInfo = StepInfo {
    name: "truncate",
    summary: "truncate regular files matching globs to zero bytes",
    families: &[],
    options: &[OptionDoc { name: "paths", kind: "list of globs", default: "(required)", help: "absolute guest paths; globs allowed" }],
    phase: Phase::Main,
    repeatable: true,
};

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Truncate {
    #[serde(deserialize_with = "super::validate::globs")]
    pub paths: Vec<String>,
}

impl Step for Truncate {
    fn info(&self) -> &'static StepInfo {
        &INFO
    }

    fn apply(&self, ctx: &mut Ctx) -> Result<()> {
        check_abs(&self.paths)?;
        for p in &self.paths {
            for path in ctx.glob(p)? {
                ctx.truncate(&path)?;
            }
        }
        Ok(())
    }
}
