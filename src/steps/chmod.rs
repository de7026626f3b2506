//! User step: change the mode of paths matching a glob (symlinks are skipped).

use super::{Ctx, FileMode, OptionDoc, Phase, Step, StepInfo};
use crate::guest::Kind;
use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};

pub static INFO: StepInfo = StepInfo {
    name: "chmod",
    summary: "change the mode of paths matching a glob",
    families: &[],
    options: &[
        OptionDoc { name: "path", kind: "glob", default: "(required)", help: "absolute guest path; globs allowed" },
        OptionDoc { name: "mode", kind: "octal string", default: "(required)", help: "e.g. \"0600\"" },
    ],
    phase: Phase::Main,
    repeatable: true,
};

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Chmod {
    #[serde(deserialize_with = "super::validate::glob")]
    pub path: String,
    pub mode: FileMode,
}

impl Default for Chmod {
    fn default() -> Self {
        Chmod { path: String::new(), mode: FileMode(0o644) }
    }
}

impl Step for Chmod {
    fn info(&self) -> &'static StepInfo {
        &INFO
    }

    fn apply(&self, ctx: &mut Ctx) -> Result<()> {
        crate::guest::components(&self.path)?;
        let paths = ctx.glob(&self.path)?;
        if paths.is_empty() {
            bail!("nothing matches {}", self.path);
        }
        for p in paths {
            if matches!(ctx.lstat(&p)?, Some(m) if m.kind != Kind::Symlink) {
                ctx.chmod(self.mode.0, &p)?;
            }
        }
        Ok(())
    }
}
