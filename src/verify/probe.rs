//! The report unit goldify puts into a clone: a oneshot-like systemd service and its
//! script (report.sh), which print the clone's facts on the serial console once the system
//! is up, then power the clone off. Installed into an overlay over the template, never into
//! the template itself.

use crate::guest::{facts::Init, Guest};
use crate::steps::Ctx;
use anyhow::{bail, Context, Result};

pub const SCRIPT_PATH: &str = "/usr/lib/goldify/verify-report.sh";
pub const UNIT_NAME: &str = "goldify-verify-report.service";

const SCRIPT: &str = include_str!("report.sh");
const UNIT: &str = include_str!("report.service");

/// The script with this run's nonce (only lines tagged with it are read back) and how
/// long it waits for the boot to settle before it reports anyway.
pub fn script(nonce: &str, settle_seconds: u64) -> String {
    SCRIPT
        .replace("@NONCE@", nonce)
        .replace("@SETTLE@", &settle_seconds.to_string())
}

/// Install the report unit, enabled for multi-user.target.
pub fn install(guest: &dyn Guest, nonce: &str, settle_seconds: u64) -> Result<()> {
    let facts = guest.facts();
    if facts.init != Init::Systemd {
        bail!(
            "verify --boot reports through a systemd unit; this guest ({} {}) does not run systemd ({:?})",
            facts.distro,
            facts.version(),
            facts.init
        );
    }
    if !nonce.chars().all(|c| c.is_ascii_alphanumeric()) {
        bail!("internal error: nonce {nonce:?} is not alphanumeric");
    }
    let mut ctx = Ctx::new(guest, false, "verify");
    let unit_path = format!("/etc/systemd/system/{UNIT_NAME}");
    (|| -> Result<()> {
        ctx.mkdir_p("/usr/lib/goldify")?;
        ctx.write(SCRIPT_PATH, script(nonce, settle_seconds).as_bytes())?;
        ctx.chmod(0o755, SCRIPT_PATH)?;
        ctx.mkdir_p("/etc/systemd/system")?;
        ctx.write(&unit_path, UNIT.as_bytes())?;
        ctx.chmod(0o644, &unit_path)?;
        ctx.enable_unit(UNIT_NAME, "multi-user.target")
    })()
    .context("installing the report unit into the clone")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::guest::memory::MemoryGuest;
    use crate::guest::OsFacts;

    #[test]
    fn installs_script_and_enabled_unit() {
        let g = MemoryGuest::new(OsFacts::sample("debian"));
        install(&g, "abc123", 300).unwrap();
        let script = String::from_utf8(g.content(SCRIPT_PATH).unwrap()).unwrap();
        assert!(script.contains("NONCE=abc123\n"), "{script}");
        assert!(script.contains("SETTLE=300\n"), "{script}");
        assert!(!script.contains("@NONCE@") && !script.contains("@SETTLE@"));
        assert!(g.content(&format!("/etc/systemd/system/{UNIT_NAME}")).is_some());
        assert!(g.exists(&format!("/etc/systemd/system/multi-user.target.wants/{UNIT_NAME}")));
    }

    #[test]
    fn refuses_guests_without_systemd() {
        let mut facts = OsFacts::sample("alpinelinux");
        facts.init = Init::Openrc;
        let err = install(&MemoryGuest::new(facts), "abc", 300).unwrap_err();
        assert!(format!("{err:#}").contains("does not run systemd"), "{err:#}");
    }

    #[test]
    fn script_is_valid_posix_sh() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("report.sh");
        std::fs::write(&p, script("abc", 300)).unwrap();
        crate::exec::run("sh", ["-n".as_ref(), p.as_os_str()]).unwrap();
    }
}
