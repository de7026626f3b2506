//! The `-` backups shadow-utils leaves next to the account databases: they hold the old
//! machine's password hashes after the live files have been changed.

use super::{Ctx, Phase, Step, StepInfo, NO_OPTIONS};
use anyhow::Result;
use serde::{Deserialize, Serialize};

pub(crate) static INFO: StepInfo = StepInfo {
    name: "passwd-backups",
    summary: "remove /etc/passwd-, shadow-, group-, gshadow-, subuid-, subgid-",
    families: &[],
    options: NO_OPTIONS,
    phase: Phase::Main,
    repeatable: false,
};

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PasswdBackups {}

impl Step for PasswdBackups {
    fn info(&self) -> &'static StepInfo {
        &INFO
    }

    fn apply(&self, ctx: &mut Ctx) -> Result<()> {
        for f in ["passwd-", "shadow-", "group-", "gshadow-", "subuid-", "subgid-"] {
            ctx.remove(&format!("/etc/{f}"))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::guest::memory::MemoryGuest;
    use crate::guest::OsFacts;
    use crate::report::Action;
    use crate::steps::testing::{apply, changes, dry_run_matches};

    const BACKUPS: [&str; 6] = ["passwd-", "shadow-", "group-", "gshadow-", "subuid-", "subgid-"];

    fn guest() -> MemoryGuest {
        let g = MemoryGuest::new(OsFacts::sample("debian"));
        for f in BACKUPS {
            g.file(&format!("/etc/{}", f.trim_end_matches('-')), b"live");
        }
        for f in &BACKUPS[1..] {
            g.file(&format!("/etc/{f}"), b"old");
        }
        // A backup that is a link goes as a link; the live file stays.
        g.link("/etc/passwd-", "/etc/passwd");
        g
    }

    #[test]
    fn backups_go_live_databases_stay() {
        let g = guest();
        let report = apply(&g, "passwd-backups", "~").unwrap();
        let removed: Vec<String> = BACKUPS.iter().map(|f| format!("/etc/{f}")).collect();
        let expected: Vec<(Action, &str)> = removed.iter().map(|p| (Action::Removed, p.as_str())).collect();
        assert_eq!(changes(&report), expected);
        for f in BACKUPS {
            assert!(!g.exists(&format!("/etc/{f}")), "{f}");
            let live = format!("/etc/{}", f.trim_end_matches('-'));
            assert_eq!(g.content(&live).unwrap(), b"live", "{live}");
        }
        // Nothing to do the second time.
        assert!(apply(&g, "passwd-backups", "~").unwrap().changes.is_empty());
    }

    #[test]
    fn dry_run_reports_and_writes_nothing() {
        dry_run_matches(guest, "passwd-backups", "~");
    }
}
