//! Remove the SSH host keys, and make sure every clone generates its own at first boot.
//!
//! Fedora/RHEL (sshd-keygen@.service), SUSE (sshd-gen-keys-start), Alpine (the OpenRC sshd
//! script) and Arch (sshdgenkeys.service) regenerate missing keys by themselves. Debian and
//! Ubuntu do not: their openssh-server generates keys only in its postinst, so without
//! cloud-init a clone would come up with no keys and sshd would refuse to start (the gap
//! virt-sysprep leaves). There goldify installs a small unit that runs `ssh-keygen -A`
//! before sshd whenever a key is missing. It is harmless next to cloud-init, whose cc_ssh
//! replaces the keys anyway, so it is installed whether cloud-init is present or not.

use super::{Ctx, OptionDoc, Phase, Step, StepInfo};
use crate::guest::{facts::Init, Family};
use anyhow::Result;
use serde::{Deserialize, Serialize};

pub(crate) static INFO: StepInfo = StepInfo {
    name: "ssh-host-keys",
    summary: "remove /etc/ssh/ssh_host_*; on Debian/Ubuntu install a first-boot unit that runs ssh-keygen -A before sshd",
    families: &[],
    options: &[OptionDoc {
        name: "regenerate",
        kind: "auto|always|never",
        default: "auto",
        help: "install goldify's keygen unit: where the distro lacks one (auto), on every systemd guest, or never",
    }],
    phase: Phase::Main,
    repeatable: false,
};

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Regenerate {
    #[default]
    Auto,
    Always,
    Never,
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct SshHostKeys {
    pub regenerate: Regenerate,
}

pub(crate) const UNIT_NAME: &str = "goldify-ssh-keygen.service";

const UNIT: &str = "\
# Installed by goldify: a golden image carries no SSH host keys, and this distribution
# does not create them at boot by itself. Runs only while a host key is missing.
[Unit]
Description=Generate SSH host keys (goldify)
Before=ssh.service sshd.service ssh.socket
ConditionPathExistsGlob=!/etc/ssh/ssh_host_*_key

[Service]
Type=oneshot
ExecStart=/usr/bin/ssh-keygen -A
RemainAfterExit=yes

[Install]
WantedBy=multi-user.target
";

impl Step for SshHostKeys {
    fn info(&self) -> &'static StepInfo {
        &INFO
    }

    fn apply(&self, ctx: &mut Ctx) -> Result<()> {
        for path in ctx.glob("/etc/ssh/ssh_host_*")? {
            ctx.remove(&path)?;
        }
        let f = ctx.facts().clone();
        let install = match self.regenerate {
            Regenerate::Never => false,
            Regenerate::Always => true,
            Regenerate::Auto => f.family == Family::Debian,
        };
        if !install {
            return Ok(());
        }
        if f.init != Init::Systemd {
            ctx.warn("not a systemd guest: cannot install the first-boot SSH key unit; keys must be generated another way");
            return Ok(());
        }
        let has_sshd = crate::guest::resolve(ctx.guest, "/usr/sbin/sshd")?.is_some();
        if !has_sshd {
            // No OpenSSH server: nothing would use the keys.
            return Ok(());
        }
        ctx.mkdir_p("/etc/systemd/system")?;
        ctx.write(&format!("/etc/systemd/system/{UNIT_NAME}"), UNIT.as_bytes())?;
        ctx.enable_unit(UNIT_NAME, "multi-user.target")?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::guest::memory::MemoryGuest;
    use crate::guest::OsFacts;

    #[test]
    fn debian_gets_unit_rhel_does_not() {
        let g = MemoryGuest::new(OsFacts::sample("debian"));
        g.file("/etc/ssh/ssh_host_ed25519_key", b"k").file("/etc/ssh/ssh_host_ed25519_key.pub", b"p");
        g.file("/etc/ssh/sshd_config", b"x").file("/usr/sbin/sshd", b"elf");
        let mut ctx = Ctx::new(&g, false, "ssh-host-keys");
        SshHostKeys::default().apply(&mut ctx).unwrap();
        assert!(!g.exists("/etc/ssh/ssh_host_ed25519_key"));
        assert!(g.exists("/etc/ssh/sshd_config"));
        assert!(g.exists("/etc/systemd/system/goldify-ssh-keygen.service"));
        assert!(g.exists("/etc/systemd/system/multi-user.target.wants/goldify-ssh-keygen.service"));

        let mut facts = OsFacts::sample("almalinux");
        facts.major = 9;
        let g = MemoryGuest::new(facts);
        g.file("/etc/ssh/ssh_host_rsa_key", b"k").file("/usr/sbin/sshd", b"elf");
        let mut ctx = Ctx::new(&g, false, "ssh-host-keys");
        SshHostKeys::default().apply(&mut ctx).unwrap();
        assert!(!g.exists("/etc/ssh/ssh_host_rsa_key"));
        assert!(!g.exists("/etc/systemd/system/goldify-ssh-keygen.service"));
    }

    #[test]
    fn dry_run_writes_nothing() {
        let g = MemoryGuest::new(OsFacts::sample("debian"));
        g.file("/etc/ssh/ssh_host_rsa_key", b"k").file("/usr/sbin/sshd", b"elf");
        let mut ctx = Ctx::new(&g, true, "ssh-host-keys");
        SshHostKeys::default().apply(&mut ctx).unwrap();
        assert!(g.exists("/etc/ssh/ssh_host_rsa_key"));
        assert!(!g.exists("/etc/systemd/system/goldify-ssh-keygen.service"));
        assert!(ctx.report.changes.iter().any(|c| c.path == "/etc/ssh/ssh_host_rsa_key"));
    }
}
