//! User step: create a directory (and its parents).

use super::{resolve_owner, Ctx, FileMode, OptionDoc, Phase, Step, StepInfo};
use anyhow::Result;
use serde::{Deserialize, Serialize};

pub(crate) static INFO: StepInfo = StepInfo {
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
pub(crate) struct Mkdir {
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

#[cfg(test)]
mod tests {
    use crate::guest::memory::MemoryGuest;
    use crate::guest::{Guest, Kind, OsFacts};
    use crate::report::Action;
    use crate::steps::testing::{apply, changes, dry_run_matches, tree};

    /// The step tests/user_steps.rs runs in a real image.
    const DATA: &str = "{path: /srv/app/data, mode: '0750', owner: alice}";

    fn guest() -> MemoryGuest {
        let g = MemoryGuest::new(OsFacts::sample("debian"));
        g.file(
            "/etc/passwd",
            b"root:x:0:0:root:/root:/bin/sh\nalice:x:1000:1001::/home/alice:/bin/sh\n",
        )
        .file("/etc/group", b"root:x:0:\nstaff:x:50:\nalice:x:1001:\n")
        .file("/srv/old/keep.txt", b"k")
        .link("/srv/etc", "/etc");
        g
    }

    #[test]
    fn creates_with_parents_mode_and_guest_owner() {
        let g = guest();
        let report = apply(&g, "mkdir", DATA).unwrap();
        assert_eq!(
            changes(&report),
            [
                (Action::Created, "/srv/app/data"),
                (Action::Chmod, "/srv/app/data"),
                (Action::Chown, "/srv/app/data"),
            ]
        );
        let m = g.lstat("/srv/app/data").unwrap().unwrap();
        assert_eq!((m.kind, m.mode, m.uid, m.gid), (Kind::Dir, 0o750, 1000, 1001));
        let parent = g.lstat("/srv/app").unwrap().unwrap();
        assert_eq!(
            (parent.mode, parent.uid),
            (0o755, 0),
            "parents are plain root directories"
        );
    }

    #[test]
    fn an_existing_directory_keeps_its_content() {
        let g = guest();
        let report = apply(&g, "mkdir", "{path: /srv/old/, owner: 'alice:staff'}").unwrap();
        assert_eq!(changes(&report), [(Action::Chown, "/srv/old")]);
        let m = g.lstat("/srv/old").unwrap().unwrap();
        assert_eq!((m.mode, m.uid, m.gid), (0o755, 1000, 50));
        assert_eq!(g.content("/srv/old/keep.txt").unwrap(), b"k");
    }

    #[test]
    fn refusals_write_nothing() {
        let g = guest();
        let before = tree(&g);
        for options in [
            "{path: srv/x}",
            "{path: /srv/../etc/x}",
            "{path: /srv/x, owner: nobody-here}",
            "{path: /srv/x, owner: 'alice:wheel'}",
            // Through a guest symlink: never onto what it points at.
            "{path: /srv/etc/cron.d}",
        ] {
            assert!(apply(&g, "mkdir", options).is_err(), "{options}");
        }
        assert_eq!(tree(&g), before);
    }

    #[test]
    fn dry_run_reports_and_writes_nothing() {
        dry_run_matches(guest, "mkdir", DATA);
    }
}
