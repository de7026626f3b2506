//! User step: remove files, links or trees matching globs (`*`, `?`, `[..]`, `**`).

use super::{check_abs, Ctx, OptionDoc, Phase, Step, StepInfo};
use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};

pub static INFO: StepInfo = StepInfo {
    name: "delete",
    summary: "remove paths matching globs",
    families: &[],
    options: &[
        OptionDoc { name: "paths", kind: "list of globs", default: "(required)", help: "absolute guest paths; globs allowed" },
        OptionDoc { name: "required", kind: "bool", default: "false", help: "fail when nothing matches" },
    ],
    phase: Phase::Main,
    repeatable: true,
};

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Delete {
    #[serde(deserialize_with = "super::validate::deletable_globs")]
    pub paths: Vec<String>,
    #[serde(default)]
    pub required: bool,
}

impl Step for Delete {
    fn info(&self) -> &'static StepInfo {
        &INFO
    }

    fn apply(&self, ctx: &mut Ctx) -> Result<()> {
        check_abs(&self.paths)?;
        let mut n = 0;
        for p in &self.paths {
            for path in ctx.glob(p)? {
                n += usize::from(ctx.remove(&path)?);
            }
        }
        if n == 0 && self.required {
            bail!("nothing matches {:?}", self.paths);
        }
        Ok(())
    }
}
