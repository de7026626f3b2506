//! Files goldify wrote carry no SELinux label. Where SELinux is configured (enforcing or
//! permissive in /etc/selinux/config), /.autorelabel makes the first boot relabel the whole
//! filesystem and reboot once — what virt-sysprep's selinux-relabel operation falls back to
//! when it cannot run setfiles. Skipped where SELinux is disabled or absent.

use super::{Ctx, Phase, Step, StepInfo, NO_OPTIONS};
use anyhow::Result;
use serde::{Deserialize, Serialize};

pub(crate) static INFO: StepInfo = StepInfo {
    name: "selinux-relabel",
    summary: "where SELinux is configured, request a relabel at first boot (/.autorelabel)",
    families: &[],
    options: NO_OPTIONS,
    phase: Phase::Main,
    repeatable: false,
};

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SelinuxRelabel {}

impl Step for SelinuxRelabel {
    fn info(&self) -> &'static StepInfo {
        &INFO
    }

    fn apply(&self, ctx: &mut Ctx) -> Result<()> {
        if !ctx.facts().selinux {
            ctx.report.skipped = Some("SELinux is not configured in this guest".into());
            return Ok(());
        }
        if ctx.lstat("/.autorelabel")?.is_none() {
            ctx.write("/.autorelabel", b"")?;
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

    fn guest(selinux: bool) -> MemoryGuest {
        let mut facts = OsFacts::sample("almalinux");
        facts.selinux = selinux;
        let g = MemoryGuest::new(facts);
        g.file("/etc/selinux/config", b"SELINUX=enforcing\n");
        g
    }

    #[test]
    fn configured_selinux_gets_a_relabel_at_first_boot() {
        let g = guest(true);
        let report = apply(&g, "selinux-relabel", "~").unwrap();
        assert_eq!(changes(&report), [(Action::Created, "/.autorelabel")]);
        assert!(report.skipped.is_none());
        let m = g.lstat("/.autorelabel").unwrap().unwrap();
        assert_eq!((m.size, m.uid), (0, 0));
        // Already requested: nothing to do.
        assert!(apply(&g, "selinux-relabel", "~").unwrap().changes.is_empty());
    }

    #[test]
    fn without_selinux_the_step_is_skipped() {
        let g = guest(false);
        let before = tree(&g);
        let report = apply(&g, "selinux-relabel", "~").unwrap();
        assert!(report.skipped.as_deref().is_some_and(|s| s.contains("not configured")));
        assert!(report.changes.is_empty());
        assert_eq!(tree(&g), before);
    }

    #[test]
    fn dry_run_reports_and_writes_nothing() {
        dry_run_matches(|| guest(true), "selinux-relabel", "~");
    }
}
