//! User step: create a symlink in the guest. The target is stored as given; goldify itself
//! never follows guest links.

use super::{Ctx, OptionDoc, Phase, Step, StepInfo};
use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};

pub static INFO: StepInfo = StepInfo {
    name: "symlink",
    summary: "create a symlink",
    families: &[],
    options: &[
        OptionDoc { name: "target", kind: "string", default: "(required)", help: "what the link points to" },
        OptionDoc { name: "link", kind: "string", default: "(required)", help: "absolute guest path of the link" },
        OptionDoc { name: "force", kind: "bool", default: "false", help: "replace an existing file or link" },
    ],
    phase: Phase::Main,
    repeatable: true,
};

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Symlink {
    #[serde(deserialize_with = "super::validate::link_target")]
    pub target: String,
    #[serde(deserialize_with = "super::validate::file_path")]
    pub link: String,
    #[serde(default)]
    pub force: bool,
}

impl Step for Symlink {
    fn info(&self) -> &'static StepInfo {
        &INFO
    }

    fn apply(&self, ctx: &mut Ctx) -> Result<()> {
        crate::guest::components(&self.link)?;
        if self.target.is_empty() || self.target.contains('\0') {
            bail!("symlink target must be a non-empty path");
        }
        if let Some(m) = ctx.lstat(&self.link)? {
            if m.kind == crate::guest::Kind::Symlink && ctx.guest.readlink(&self.link)? == self.target {
                return Ok(());
            }
            if !self.force {
                bail!("{} already exists (set `force: true` to replace it)", self.link);
            }
            ctx.remove(&self.link)?;
        }
        ctx.symlink(&self.target, &self.link)
    }
}
