//! User step: write a file with the given content, mode and owner.

use super::{resolve_owner, Ctx, FileMode, OptionDoc, Phase, Step, StepInfo};
use anyhow::Result;
use serde::{Deserialize, Serialize};

pub static INFO: StepInfo = StepInfo {
    name: "write",
    summary: "write a file (content, mode, owner)",
    families: &[],
    options: &[
        OptionDoc { name: "path", kind: "string", default: "(required)", help: "absolute guest path" },
        OptionDoc { name: "content", kind: "string", default: "(required)", help: "the file's content" },
        OptionDoc { name: "mode", kind: "octal string", default: "kept, or 0644 for a new file", help: "e.g. \"0600\"" },
        OptionDoc { name: "owner", kind: "user[:group]", default: "kept, or root", help: "names from the guest, or numbers" },
    ],
    phase: Phase::Main,
    repeatable: true,
};

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Write {
    pub path: String,
    pub content: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<FileMode>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
}

impl Step for Write {
    fn info(&self) -> &'static StepInfo {
        &INFO
    }

    fn apply(&self, ctx: &mut Ctx) -> Result<()> {
        crate::guest::components(&self.path)?;
        let owner = self.owner.as_deref().map(|o| resolve_owner(ctx, o)).transpose()?;
        ctx.write(&self.path, self.content.as_bytes())?;
        if let Some(FileMode(m)) = self.mode {
            ctx.chmod(m, &self.path)?;
        }
        if let Some((uid, gid)) = owner {
            ctx.chown(uid, gid, &self.path)?;
        }
        Ok(())
    }
}
