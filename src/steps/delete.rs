//! User step: remove files, links or trees matching globs (`*`, `?`, `[..]`, `**`).

use crate::guest::Family;
use super::{check_abs, Ctx, OptionDoc, Phase, Step, StepInfo};
use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};

pub(crate) static INFO: StepInfo = StepInfo {
    name: "delete",
    summary: "remove paths matching globs",
    // Files are files on every OS: a Windows recipe deletes with it too.
    families: &Family::ALL,
    options: &[
        OptionDoc { name: "paths", kind: "list of globs", default: "(required)", help: "absolute guest paths; globs allowed" },
        OptionDoc { name: "required", kind: "bool", default: "false", help: "fail when nothing matches" },
    ],
    phase: Phase::Main,
    repeatable: true,
};

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Delete {
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

#[cfg(test)]
mod tests {
    use crate::guest::memory::MemoryGuest;
    use crate::guest::OsFacts;
    use crate::report::Action;
    use crate::steps::testing::{apply, changes, dry_run_matches, tree};

    fn guest() -> MemoryGuest {
        let g = MemoryGuest::new(OsFacts::sample("debian"));
        g.file("/home/alice/.bash_history", b"ls\n")
            .file("/home/alice/.bashrc", b"keep")
            .file("/home/bob/.bash_history", b"sudo -i\n")
            .file("/var/cache/apt/pkgcache.bin", &[0; 300])
            .file("/var/cache/apt/archives/vim.deb", b"deb")
            .file("/srv/a.tmp", b"1")
            .file("/srv/x/y/b.tmp", b"22")
            .file("/srv/x/keep.txt", b"k")
            .file("/etc/passwd", b"root:x:0:0::/root:/bin/sh\n")
            .link("/home/carol", "/etc");
        g
    }

    #[test]
    fn globs_remove_their_matches_and_only_those() {
        let g = guest();
        let report = apply(
            &g,
            "delete",
            "{paths: ['/home/*/.bash_history', '/var/cache/apt/*.bin'], required: true}",
        )
        .unwrap();
        assert_eq!(
            changes(&report),
            [
                (Action::Removed, "/home/alice/.bash_history"),
                (Action::Removed, "/home/bob/.bash_history"),
                (Action::Removed, "/var/cache/apt/pkgcache.bin"),
            ]
        );
        assert_eq!(report.freed, 3 + 8 + 300);
        assert!(g.exists("/home/alice/.bashrc") && g.exists("/var/cache/apt/archives/vim.deb"));

        // `**` reaches any depth, through real directories only.
        apply(&g, "delete", "{paths: ['/srv/**/*.tmp']}").unwrap();
        assert!(!g.exists("/srv/a.tmp") && !g.exists("/srv/x/y/b.tmp"));
        assert!(g.exists("/srv/x/keep.txt") && g.exists("/srv/x/y"));

        // A whole tree goes with what it holds.
        let report = apply(&g, "delete", "{paths: [/srv/x]}").unwrap();
        assert!(!g.exists("/srv/x") && !g.exists("/srv/x/keep.txt"));
        assert_eq!(report.freed, 1);
    }

    #[test]
    fn links_are_removed_never_followed() {
        let g = guest();
        // /home/carol -> /etc: the glob does not descend through it…
        let err = apply(&g, "delete", "{paths: ['/home/carol/*'], required: true}").unwrap_err();
        assert!(err.to_string().contains("nothing matches"), "{err:#}");
        assert!(g.exists("/etc/passwd"));
        // …and naming the link removes the link alone.
        apply(&g, "delete", "{paths: [/home/carol]}").unwrap();
        assert!(!g.exists("/home/carol"));
        assert_eq!(g.content("/etc/passwd").unwrap(), b"root:x:0:0::/root:/bin/sh\n");
    }

    #[test]
    fn required_and_bad_paths() {
        let g = guest();
        let before = tree(&g);
        let report = apply(&g, "delete", "{paths: ['/nonexistent/*']}").unwrap();
        assert!(report.changes.is_empty());
        let err = apply(&g, "delete", "{paths: ['/nonexistent/*'], required: true}").unwrap_err();
        assert!(err.to_string().contains("nothing matches"), "{err:#}");
        // One bad path refuses the whole step before anything is removed.
        let err = apply(&g, "delete", "{paths: ['/home/*/.bash_history', '/etc/../root']}").unwrap_err();
        assert!(format!("{err:#}").contains("\"..\" component"), "refused when the step is built: {err:#}");
        assert!(apply(&g, "delete", "{paths: [etc/passwd]}").is_err());
        assert_eq!(tree(&g), before);
    }

    #[test]
    fn dry_run_reports_and_writes_nothing() {
        let report = dry_run_matches(guest, "delete", "{paths: ['/home/*/.bash_history', '/srv/x']}");
        assert_eq!(report.freed, 3 + 8 + 3);
        // Globs that overlap, and a tree named before what it holds: each path is removed,
        // and reported, once.
        let options = "{paths: ['/home/*/.bash_history', '/home/alice/.*', '/srv/x', '/srv/x/keep.txt']}";
        let report = dry_run_matches(guest, "delete", options);
        assert_eq!(report.changes.len(), 4, "{:?}", changes(&report));
    }
}
