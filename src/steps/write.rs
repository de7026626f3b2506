//! User step: write a file with the given content, mode and owner.

use super::{resolve_owner, Ctx, FileMode, OptionDoc, Phase, Step, StepInfo};
use anyhow::Result;
use serde::{Deserialize, Serialize};

pub(crate) static INFO: StepInfo = StepInfo {
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
pub(crate) struct Write {
    #[serde(deserialize_with = "super::validate::file_path")]
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::guest::memory::MemoryGuest;
    use crate::guest::{Guest, OsFacts};

    #[test]
    fn owner_names_come_from_the_guest() {
        let g = MemoryGuest::new(OsFacts::sample("debian"));
        g.file("/etc/passwd", b"root:x:0:0:root:/root:/bin/bash\nalice:x:1000:1000::/home/alice:/bin/bash\n");
        g.file("/etc/group", b"root:x:0:\nsudo:x:27:alice\nalice:x:1000:\n");
        let step = Write { path: "/etc/motd".into(), content: "hi\n".into(), mode: Some(FileMode(0o600)), owner: Some("alice:sudo".into()) };
        let mut ctx = Ctx::new(&g, false, "write");
        step.apply(&mut ctx).unwrap();
        let m = g.lstat("/etc/motd").unwrap().unwrap();
        assert_eq!((m.mode, m.uid, m.gid), (0o600, 1000, 27));
        let step = Write { owner: Some("alice".into()), ..step };
        step.apply(&mut Ctx::new(&g, false, "write")).unwrap();
        assert_eq!(g.lstat("/etc/motd").unwrap().unwrap().gid, 1000);
        let step = Write { owner: Some("alice:wheel".into()), ..step };
        assert!(step.apply(&mut Ctx::new(&g, false, "write")).is_err());
    }
}
