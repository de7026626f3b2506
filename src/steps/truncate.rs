//! User step: cut regular files matching globs to zero bytes, keeping owner and mode.

use crate::guest::Family;
use super::{check_abs, Ctx, OptionDoc, Phase, Step, StepInfo};
use anyhow::Result;
use serde::{Deserialize, Serialize};

pub(crate) static INFO: StepInfo = StepInfo {
    name: "truncate",
    summary: "truncate regular files matching globs to zero bytes",
    // Files are files on every OS: a Windows recipe deletes with it too.
    families: &Family::ALL,
    options: &[OptionDoc { name: "paths", kind: "list of globs", default: "(required)", help: "absolute guest paths; globs allowed" }],
    phase: Phase::Main,
    repeatable: true,
};

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Truncate {
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

#[cfg(test)]
mod tests {
    use crate::guest::memory::MemoryGuest;
    use crate::guest::{Guest, OsFacts};
    use crate::report::Action;
    use crate::steps::testing::{apply, changes, dry_run_matches, tree};

    /// The step tests/user_steps.rs runs in a real image.
    const CLOUD_LOGS: &str = "{paths: ['/var/log/cloud-init*.log']}";

    fn guest() -> MemoryGuest {
        let g = MemoryGuest::new(OsFacts::sample("debian"));
        g.file("/var/log/cloud-init.log", &[b'x'; 1000])
            .file("/var/log/cloud-init-output.log", b"output")
            .file("/var/log/cloud-init-empty.log", b"")
            .file("/var/log/syslog", b"keep")
            .file("/etc/shadow", b"root:*:::\n")
            .link("/var/log/cloud-init-evil.log", "/etc/shadow")
            .dir("/var/log/cloud-init-dir.log");
        g.chmod(0o640, "/var/log/cloud-init.log").unwrap();
        g.chown(0, 4, "/var/log/cloud-init.log").unwrap();
        g
    }

    #[test]
    fn regular_files_are_cut_to_zero_keeping_owner_and_mode() {
        let g = guest();
        let report = apply(&g, "truncate", CLOUD_LOGS).unwrap();
        assert_eq!(
            changes(&report),
            [
                (Action::Truncated, "/var/log/cloud-init-output.log"),
                (Action::Truncated, "/var/log/cloud-init.log"),
            ]
        );
        assert_eq!(report.freed, 6 + 1000);
        let m = g.lstat("/var/log/cloud-init.log").unwrap().unwrap();
        assert_eq!((m.size, m.mode, m.uid, m.gid), (0, 0o640, 0, 4));
        assert_eq!(g.content("/var/log/cloud-init-output.log").unwrap(), b"");
        // Neither a link's target nor a directory nor a file the glob does not name.
        assert_eq!(g.content("/etc/shadow").unwrap(), b"root:*:::\n");
        assert_eq!(g.readlink("/var/log/cloud-init-evil.log").unwrap(), "/etc/shadow");
        assert!(g.exists("/var/log/cloud-init-dir.log"));
        assert_eq!(g.content("/var/log/syslog").unwrap(), b"keep");
    }

    #[test]
    fn bad_paths_refuse_the_step() {
        let g = guest();
        let before = tree(&g);
        for options in [
            "{paths: [var/log/syslog]}",
            "{paths: ['/var/log/syslog', '/var/log/../../etc/shadow']}",
        ] {
            assert!(apply(&g, "truncate", options).is_err(), "{options}");
        }
        assert_eq!(tree(&g), before);
    }

    #[test]
    fn dry_run_reports_and_writes_nothing() {
        dry_run_matches(guest, "truncate", CLOUD_LOGS);
        // Globs that overlap: each file is truncated, and reported, once.
        let options = "{paths: ['/var/log/cloud-init*.log', '/var/log/cloud-init.log']}";
        let report = dry_run_matches(guest, "truncate", options);
        assert_eq!(report.changes.len(), 2, "{:?}", changes(&report));
    }
}
