//! The rest of virt-sysprep's default Linux operations, each a group of paths that tie an
//! image to one machine or one user's session: crash dumps, mail and cron spools, rpm db
//! locks and yum/smolt/RHN/subscription-manager identities, LVM's devices file, blkid
//! caches, process accounting, Kerberos/IPA/SSSD/Samba/Puppet/Dovecot state, and users'
//! ~/.ssh directories (ssh-userdir). Each group can be switched off.

use super::{Ctx, OptionDoc, Phase, Step, StepInfo};
use anyhow::Result;
use serde::{Deserialize, Serialize};

pub(crate) static INFO: StepInfo = StepInfo {
    name: "machine-state",
    summary: "virt-sysprep's other defaults: crash data, mail/cron spools, rpm/yum/RHN ids, LVM devices, blkid, accounting, kerberos/sssd/samba…, ~/.ssh",
    families: &[],
    options: &[
        OptionDoc { name: "crash-data", kind: "bool", default: "true", help: "/var/crash, abrt, coredumps" },
        OptionDoc { name: "spools", kind: "bool", default: "true", help: "mail, cron and at spools" },
        OptionDoc { name: "package-ids", kind: "bool", default: "true", help: "rpm db locks, yum uuid, smolt, RHN, subscription-manager" },
        OptionDoc { name: "device-caches", kind: "bool", default: "true", help: "LVM system.devices, blkid.tab" },
        OptionDoc { name: "accounting", kind: "bool", default: "true", help: "process accounting files" },
        OptionDoc { name: "services", kind: "bool", default: "true", help: "kerberos, IPA, SSSD, Samba, Puppet, Dovecot state" },
        OptionDoc { name: "ssh-userdir", kind: "bool", default: "true", help: "~/.ssh of root and every /home user" },
    ],
    phase: Phase::Main,
    repeatable: false,
};

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default, rename_all = "kebab-case")]
pub(crate) struct MachineState {
    pub crash_data: bool,
    pub spools: bool,
    pub package_ids: bool,
    pub device_caches: bool,
    pub accounting: bool,
    pub services: bool,
    pub ssh_userdir: bool,
}

impl Default for MachineState {
    fn default() -> Self {
        MachineState {
            crash_data: true,
            spools: true,
            package_ids: true,
            device_caches: true,
            accounting: true,
            services: true,
            ssh_userdir: true,
        }
    }
}

const CRASH: &[&str] =
    &["/var/crash/*", "/var/spool/abrt/*", "/var/tmp/abrt/*", "/var/log/dump/*", "/var/lib/systemd/coredump/*", "/var/spool/kdump/*"];
const SPOOLS: &[&str] = &["/var/spool/mail/*", "/var/mail/*", "/var/spool/cron/*", "/var/spool/cron/crontabs/*", "/var/spool/at/*", "/var/spool/atjobs/*", "/var/spool/atspool/*"];
const PACKAGE_IDS: &[&str] = &[
    "/var/lib/rpm/__db.*",
    "/var/lib/yum/uuid",
    "/etc/sysconfig/hw-uuid",
    "/etc/smolt/uuid",
    "/etc/smolt/hw-uuid",
    "/etc/sysconfig/rhn/systemid",
    "/etc/sysconfig/rhn/osad-auth.conf",
    "/etc/pki/consumer/*",
    "/etc/pki/entitlement/*",
    "/var/lib/rhsm/*",
];
const DEVICE_CACHES: &[&str] = &["/etc/lvm/devices/system.devices", "/etc/blkid/blkid.tab", "/etc/blkid/blkid.tab.old", "/etc/blkid.tab", "/etc/blkid.tab.old"];
const SERVICES: &[&str] = &[
    "/etc/krb5.keytab",
    "/var/kerberos/krb5kdc/*.keytab",
    "/var/kerberos/krb5kdc/principal*",
    "/etc/ipa/*",
    "/var/lib/ipa-client/sysrestore/*",
    "/var/lib/sss/db/*",
    "/var/lib/sss/mc/*",
    "/var/lib/samba/*.tdb",
    "/var/lib/samba/private/*.tdb",
    "/var/lib/puppet/*",
    "/var/lib/dovecot/*",
];

impl Step for MachineState {
    fn info(&self) -> &'static StepInfo {
        &INFO
    }

    fn apply(&self, ctx: &mut Ctx) -> Result<()> {
        if self.crash_data {
            ctx.remove_globs(CRASH)?;
        }
        if self.spools {
            for p in SPOOLS {
                for path in ctx.glob(p)? {
                    // /var/spool/cron/crontabs is a directory the cron package owns: keep it.
                    if path == "/var/spool/cron/crontabs" {
                        continue;
                    }
                    ctx.remove(&path)?;
                }
            }
        }
        if self.package_ids {
            ctx.remove_globs(PACKAGE_IDS)?;
        }
        if self.device_caches {
            ctx.remove_globs(DEVICE_CACHES)?;
        }
        if self.accounting {
            // utmp lives in /run, a tmpfs that is empty offline; wtmp/btmp are logs.
            for p in ["/var/account/pacct", "/var/log/account/pacct"] {
                ctx.truncate(p)?;
            }
            ctx.remove_globs(&["/var/account/pacct.*", "/var/log/account/pacct.*"])?;
        }
        if self.services {
            ctx.remove_globs(SERVICES)?;
        }
        if self.ssh_userdir {
            for home in ctx.home_dirs()? {
                ctx.remove(&format!("{home}/.ssh"))?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::guest::memory::MemoryGuest;
    use crate::guest::{Guest, OsFacts};
    use crate::steps::testing::{apply, dry_run_matches};

    /// Per option group, a path it removes; `(None, …)` rows are truncated, not removed.
    const GONE: &[(&str, &str)] = &[
        ("crash-data", "/var/crash/202401011200/dump.202401011200"),
        ("crash-data", "/var/lib/systemd/coredump/core.sshd.0.xz"),
        ("spools", "/var/spool/mail/alice"),
        ("spools", "/var/spool/cron/crontabs/root"),
        ("spools", "/var/spool/at/a0001"),
        ("package-ids", "/var/lib/rpm/__db.001"),
        ("package-ids", "/var/lib/yum/uuid"),
        ("package-ids", "/etc/pki/consumer/cert.pem"),
        ("device-caches", "/etc/lvm/devices/system.devices"),
        ("device-caches", "/etc/blkid/blkid.tab"),
        ("accounting", "/var/log/account/pacct.1"),
        ("services", "/etc/krb5.keytab"),
        ("services", "/var/lib/sss/db/cache_example.ldb"),
        ("services", "/var/lib/samba/private/secrets.tdb"),
        ("ssh-userdir", "/root/.ssh/authorized_keys"),
        ("ssh-userdir", "/home/alice/.ssh/id_ed25519"),
    ];

    /// Neighbours no group may touch.
    const KEPT: &[&str] = &[
        "/var/lib/rpm/rpmdb.sqlite",
        "/etc/lvm/lvm.conf",
        "/etc/krb5.conf",
        "/var/lib/samba/private/smb.conf.bak",
        "/home/alice/.bashrc",
        "/etc/passwd",
    ];

    fn guest() -> MemoryGuest {
        let g = MemoryGuest::new(OsFacts::sample("debian"));
        for (_, path) in GONE {
            g.file(path, b"state");
        }
        for path in KEPT {
            g.file(path, b"keep");
        }
        g.file("/var/log/account/pacct", b"records");
        g.chmod(0o600, "/var/log/account/pacct").unwrap();
        // Hostile: a mail spool and a "home" that point at /etc are not followed.
        g.link("/var/mail", "/etc").link("/home/mallory", "/etc");
        g
    }

    #[test]
    fn every_group_removes_its_paths_and_nothing_else() {
        let g = guest();
        apply(&g, "machine-state", "~").unwrap();
        for (group, path) in GONE {
            assert!(!g.exists(path), "{group}: {path} left");
        }
        for path in KEPT {
            assert_eq!(g.content(path).unwrap(), b"keep", "{path}");
        }
        // Directories the packages own stay.
        for dir in [
            "/var/crash",
            "/var/spool/cron/crontabs",
            "/var/lib/sss/db",
            "/etc/pki/consumer",
        ] {
            assert!(g.exists(dir), "{dir}");
        }
        assert!(!g.exists("/root/.ssh") && !g.exists("/home/alice/.ssh"));
        let pacct = g.lstat("/var/log/account/pacct").unwrap().unwrap();
        assert_eq!((pacct.size, pacct.mode), (0, 0o600), "accounting is truncated in place");
        assert_eq!(g.readlink("/var/mail").unwrap(), "/etc");
        assert_eq!(g.readlink("/home/mallory").unwrap(), "/etc");
    }

    #[test]
    fn each_group_can_be_switched_off() {
        let groups = [
            "crash-data",
            "spools",
            "package-ids",
            "device-caches",
            "accounting",
            "services",
            "ssh-userdir",
        ];
        for off in groups {
            let g = guest();
            apply(&g, "machine-state", &format!("{{{off}: false}}")).unwrap();
            for (group, path) in GONE {
                assert_eq!(g.exists(path), *group == off, "{off}: false, {path}");
            }
            let pacct = g.lstat("/var/log/account/pacct").unwrap().unwrap().size;
            assert_eq!(pacct == 0, off != "accounting", "{off}: false");
        }
    }

    #[test]
    fn dry_run_reports_and_writes_nothing() {
        let report = dry_run_matches(guest, "machine-state", "~");
        assert!(report.changes.iter().any(|c| c.path == "/var/log/account/pacct"));
    }
}
