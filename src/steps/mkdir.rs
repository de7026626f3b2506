//! User step: create a directory (and its parents).

use super::{resolve_owner, Ctx, FileMode, OptionDoc, Phase, Step, StepInfo};
use anyhow::Result;
use serde::{Deserialize, Serialize};

pub static INFO: StepInfo = StepInfo {
    name: "mkdir",
    summary: "create a directory and its parents",
    families: &[],
    options: &[
        OptionDoc { name: "path", kind: "string", default: "(required)", help: "absolute guest path" },
        OptionDoc { name: "mode", kind: "octal string", default: "0755", help: "mode of the directory" },
        OptionDoc { name: "owner", kind: "user[:group]", default: "root", help: "names from the guest, or numbers" },
    ],
    phase: Phase::Main,
    repeatable: true,
};

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Mkdir {
    #[serde(deserialize_with = "super::validate::dir_path")]
    pub path: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<FileMode>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
}

impl Step for Mkdir {
    fn info(&self) -> &'static StepInfo {
        &INFO
    }

    fn apply(&self, ctx: &mut Ctx) -> Result<()> {
        let path = self.path.trim_end_matches('/');
        crate::guest::components(path)?;
        let owner = self.owner.as_deref().map(|o| resolve_owner(ctx, o)).transpose()?;
        ctx.mkdir_p(path)?;
        if let Some(FileMode(m)) = self.mode {
            ctx.chmod(m, path)?;
        }
        if let Some((uid, gid)) = owner {
            ctx.chown(uid, gid, path)?;
        }
        Ok(())
    }
}
