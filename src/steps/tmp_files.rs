//! Empty /tmp and /var/tmp, keeping the directories (and their sticky 1777 mode), and the
//! stale contents of /run an image captured without a clean shutdown carries (a tmpfs
//! hides them at boot, but they still leak the old machine's state to anyone who reads
//! the image).

use super::{Ctx, Phase, Step, StepInfo, NO_OPTIONS};
use anyhow::Result;
use serde::{Deserialize, Serialize};

pub(crate) static INFO: StepInfo = StepInfo {
    name: "tmp-files",
    summary: "empty /tmp, /var/tmp and the stale contents of /run",
    families: &[],
    options: NO_OPTIONS,
    phase: Phase::Main,
    repeatable: false,
};

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TmpFiles {}

impl Step for TmpFiles {
    fn info(&self) -> &'static StepInfo {
        &INFO
    }

    fn apply(&self, ctx: &mut Ctx) -> Result<()> {
        ctx.empty_dir("/tmp")?;
        ctx.empty_dir("/var/tmp")?;
        ctx.empty_dir("/run")?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::guest::memory::MemoryGuest;
    use crate::guest::{Guest, OsFacts};
    use crate::steps::testing::{apply, dry_run_matches};

    fn guest() -> MemoryGuest {
        let g = MemoryGuest::new(OsFacts::sample("debian"));
        g.file("/tmp/build.log", b"x")
            .file("/tmp/.X11-unix/X0", b"")
            .file("/tmp/-rf", b"leading dash")
            .file("/tmp/with\nnewline", b"odd name")
            .file("/var/tmp/systemd-private-abc/tmp/f", &[0; 100])
            .file("/run/sshd.pid", b"812\n")
            .file("/run/lock/subsys/x", b"")
            .file("/etc/fstab", b"keep\n");
        g.chmod(0o1777, "/tmp").unwrap();
        g.chmod(0o1777, "/var/tmp").unwrap();
        g
    }

    #[test]
    fn contents_go_the_sticky_directories_stay() {
        let g = guest();
        let report = apply(&g, "tmp-files", "~").unwrap();
        for dir in ["/tmp", "/var/tmp", "/run"] {
            assert!(g.list(dir).unwrap().is_empty(), "{dir}: {:?}", g.list(dir));
        }
        assert_eq!(g.lstat("/tmp").unwrap().unwrap().mode, 0o1777);
        assert_eq!(g.lstat("/var/tmp").unwrap().unwrap().mode, 0o1777);
        assert_eq!(g.content("/etc/fstab").unwrap(), b"keep\n");
        assert_eq!(report.freed, 1 + 12 + 8 + 100 + 4);
    }

    #[test]
    fn a_symlinked_tmp_is_not_followed() {
        // The hostile fixture's /var/tmp -> /: emptying it would empty the guest.
        let g = MemoryGuest::new(OsFacts::sample("debian"));
        g.file("/etc/fstab", b"keep\n").link("/var/tmp", "/");
        let report = apply(&g, "tmp-files", "~").unwrap();
        assert!(report.changes.is_empty());
        assert_eq!(report.warnings.len(), 1, "{:?}", report.warnings);
        assert_eq!(g.content("/etc/fstab").unwrap(), b"keep\n");
        assert_eq!(g.readlink("/var/tmp").unwrap(), "/");
    }

    #[test]
    fn dry_run_reports_and_writes_nothing() {
        dry_run_matches(guest, "tmp-files", "~");
    }
}
