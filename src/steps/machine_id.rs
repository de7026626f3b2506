//! Leave /etc/machine-id in systemd's first-boot state, so each clone gets its own ID.
//!
//! machine-id(5): a file containing "uninitialized" (systemd ≥ 247) is treated like a
//! missing one: a new ID is generated *and* first-boot units (ConditionFirstBoot=yes) run.
//! An empty file gives a new ID without first-boot semantics and works with a read-only
//! /etc. Removing the file only works when /etc is writable at boot. cloud-init's own
//! `clean --machine-id` writes "uninitialized\n" with mode 0444 (cloudinit/cmd/clean.py);
//! we do the same. Older systemd (RHEL 8: 239, Ubuntu 20.04: 245, Debian 10: 241) does not
//! know "uninitialized", so there the default falls back to an empty file.
//!
//! /var/lib/dbus/machine-id: systemd falls back to it when /etc/machine-id holds no valid
//! ID, unless it is a symlink; a stale copy would hand the old ID to every clone. It becomes
//! the symlink to /etc/machine-id that dbus ships on systemd systems.
//!
//! This step runs in the last phase: no later step can write an ID back (virt-sysprep's
//! customize step runs after its machine-id operation and does exactly that).

use super::{Ctx, OptionDoc, Phase, Step, StepInfo};
use crate::guest::{facts::Init, Family, Kind};
use anyhow::Result;
use serde::{Deserialize, Serialize};

pub(crate) static INFO: StepInfo = StepInfo {
    name: "machine-id",
    summary: "leave /etc/machine-id in systemd's first-boot state; drop the dbus copy and the random seeds",
    families: &[],
    options: &[OptionDoc {
        name: "mode",
        kind: "uninitialized|empty|remove",
        default: "uninitialized",
        help: "what /etc/machine-id becomes (empty on systemd older than 247)",
    }],
    phase: Phase::Last,
    repeatable: false,
};

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Mode {
    #[default]
    Uninitialized,
    Empty,
    Remove,
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct MachineId {
    pub mode: Mode,
}

/// systemd releases before 247 read "uninitialized" as an invalid ID.
fn systemd_knows_uninitialized(distro: &str, family: Family, major: i32, minor: i32) -> bool {
    match (distro, family) {
        ("ubuntu", _) => (major, minor) >= (20, 10),
        ("debian", _) => major >= 11 || major == 0,
        (_, Family::Rhel) if distro != "fedora" => major >= 9 || major == 0,
        ("fedora", _) => major >= 34 || major == 0,
        _ => true,
    }
}

const SEEDS: &[&str] = &[
    "/var/lib/systemd/random-seed",
    "/var/lib/systemd/credential.secret",
    "/var/lib/urandom/random-seed",
    "/var/lib/random-seed",
    "/boot/efi/loader/random-seed",
    "/efi/loader/random-seed",
];

impl Step for MachineId {
    fn info(&self) -> &'static StepInfo {
        &INFO
    }

    fn apply(&self, ctx: &mut Ctx) -> Result<()> {
        let f = ctx.facts().clone();
        let mut mode = self.mode;
        if f.init != Init::Systemd && mode != Mode::Remove {
            // Without systemd nothing turns "uninitialized" into an ID; dbus-uuidgen and
            // friends create the file when it is missing.
            mode = Mode::Remove;
        } else if mode == Mode::Uninitialized && !systemd_knows_uninitialized(&f.distro, f.family, f.major, f.minor) {
            ctx.warn(format!("{} {} has systemd older than 247: leaving /etc/machine-id empty instead", f.distro, f.version()));
            mode = Mode::Empty;
        }

        let path = "/etc/machine-id";
        if let Some(m) = ctx.lstat(path)? {
            if m.kind != Kind::File || mode == Mode::Remove {
                // A symlink (or anything odd) is replaced by a regular file, never written through.
                ctx.remove(path)?;
            }
        }
        match mode {
            Mode::Uninitialized => {
                ctx.write(path, b"uninitialized\n")?;
                ctx.chmod(0o444, path)?;
            }
            Mode::Empty => {
                ctx.write(path, b"")?;
                ctx.chmod(0o444, path)?;
            }
            Mode::Remove => {}
        }

        let dbus = "/var/lib/dbus/machine-id";
        match ctx.lstat(dbus)? {
            Some(m) if m.kind == Kind::Symlink => {}
            Some(_) => {
                ctx.remove(dbus)?;
                if f.init == Init::Systemd {
                    ctx.symlink("/etc/machine-id", dbus)?;
                }
            }
            None => {}
        }
        for seed in SEEDS {
            ctx.remove(seed)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::guest::memory::MemoryGuest;
    use crate::guest::{Guest, OsFacts};

    fn run(g: &MemoryGuest, mode: Mode) -> crate::report::StepReport {
        let mut ctx = Ctx::new(g, false, "machine-id");
        MachineId { mode }.apply(&mut ctx).unwrap();
        ctx.report
    }

    #[test]
    fn uninitialized_and_dbus_copy_becomes_link() {
        let g = MemoryGuest::new(OsFacts::sample("debian"));
        g.file("/etc/machine-id", b"0123456789abcdef0123456789abcdef\n");
        g.file("/var/lib/dbus/machine-id", b"0123456789abcdef0123456789abcdef\n");
        g.file("/var/lib/systemd/random-seed", &[7; 512]);
        run(&g, Mode::Uninitialized);
        assert_eq!(g.content("/etc/machine-id").unwrap(), b"uninitialized\n");
        assert_eq!(g.lstat("/etc/machine-id").unwrap().unwrap().mode, 0o444);
        assert_eq!(g.readlink("/var/lib/dbus/machine-id").unwrap(), "/etc/machine-id");
        assert!(!g.exists("/var/lib/systemd/random-seed"));
    }

    #[test]
    fn symlinked_machine_id_is_replaced_not_followed() {
        let g = MemoryGuest::new(OsFacts::sample("debian"));
        g.file("/etc/shadow", b"root:x:::\n");
        g.link("/etc/machine-id", "/etc/shadow");
        run(&g, Mode::Empty);
        assert_eq!(g.content("/etc/shadow").unwrap(), b"root:x:::\n");
        assert_eq!(g.lstat("/etc/machine-id").unwrap().unwrap().kind, Kind::File);
        assert_eq!(g.content("/etc/machine-id").unwrap(), b"");
    }

    #[test]
    fn hard_linked_machine_id_is_replaced_not_written_through() {
        let g = MemoryGuest::new(OsFacts::sample("debian"));
        g.file("/etc/gshadow", b"root:*::\nshadow:*::\n")
            .own("/etc/gshadow", 0, 42, 0o640)
            .hardlink("/etc/gshadow", "/etc/machine-id");
        run(&g, Mode::Uninitialized);
        assert_eq!(g.content("/etc/gshadow").unwrap(), b"root:*::\nshadow:*::\n");
        let m = g.lstat("/etc/gshadow").unwrap().unwrap();
        assert_eq!((m.mode, m.gid, m.nlink), (0o640, 42, 1));
        assert_eq!(g.content("/etc/machine-id").unwrap(), b"uninitialized\n");
        assert_eq!(g.lstat("/etc/machine-id").unwrap().unwrap().mode, 0o444);
    }

    #[test]
    fn old_systemd_gets_empty_file() {
        let mut facts = OsFacts::sample("almalinux");
        facts.major = 8;
        let g = MemoryGuest::new(facts);
        g.file("/etc/machine-id", b"0123456789abcdef0123456789abcdef\n");
        let report = run(&g, Mode::Uninitialized);
        assert_eq!(g.content("/etc/machine-id").unwrap(), b"");
        assert_eq!(report.warnings.len(), 1);
    }

    #[test]
    fn remove_mode() {
        let g = MemoryGuest::new(OsFacts::sample("debian"));
        g.file("/etc/machine-id", b"0123456789abcdef0123456789abcdef\n");
        run(&g, Mode::Remove);
        assert!(!g.exists("/etc/machine-id"));
    }
}
