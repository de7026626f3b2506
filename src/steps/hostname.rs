//! Reset the hostname. "localhost" is what systemd treats as "no static hostname", so a
//! clone takes the name DHCP or cloud-init gives it. The `127.0.1.1 oldname` line that
//! Debian's installer (and cloud-init's manage_etc_hosts) writes goes with it.

use super::{Ctx, OptionDoc, Phase, Step, StepInfo};
use anyhow::{bail, Result};
use regex::Regex;
use serde::{Deserialize, Serialize};
use std::sync::LazyLock;

pub(crate) static INFO: StepInfo = StepInfo {
    name: "hostname",
    summary: "reset /etc/hostname (and HOSTNAME= in sysconfig) and the 127.0.1.1 line of /etc/hosts",
    families: &[],
    options: &[OptionDoc { name: "name", kind: "string", default: "localhost", help: "the hostname clones start with" }],
    phase: Phase::Main,
    repeatable: false,
};

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct Hostname {
    #[serde(deserialize_with = "host_name")]
    pub name: String,
}

/// RFC 1123 labels (letters, digits, inner hyphens, at most 63 each), dot-separated, at
/// most 253 characters in all.
fn is_host_name(name: &str) -> bool {
    static VALID: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"^[A-Za-z0-9]([A-Za-z0-9-]{0,62})(\.[A-Za-z0-9]([A-Za-z0-9-]{0,62}))*$").expect("static regex")
    });
    VALID.is_match(name) && name.len() <= 253
}

/// Checked when the recipe is read, so `goldify check` refuses a bad name.
fn host_name<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    super::validate::string(d, |name| {
        if name.contains("${") || is_host_name(name) {
            return Ok(());
        }
        Err(format!("hostname {name:?} is not a valid host name"))
    })
}

impl Default for Hostname {
    fn default() -> Self {
        Hostname { name: "localhost".into() }
    }
}

pub(crate) fn fix_hosts(text: &str, name: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for line in text.split_inclusive('\n') {
        if line.trim_start().starts_with("127.0.1.1") {
            if name != "localhost" {
                let short = name.split('.').next().unwrap_or(name);
                if short != name {
                    out.push_str(&format!("127.0.1.1\t{name} {short}\n"));
                } else {
                    out.push_str(&format!("127.0.1.1\t{name}\n"));
                }
            }
            continue;
        }
        out.push_str(line);
    }
    out
}

impl Step for Hostname {
    fn info(&self) -> &'static StepInfo {
        &INFO
    }

    fn apply(&self, ctx: &mut Ctx) -> Result<()> {
        if !is_host_name(&self.name) {
            bail!("hostname {:?} is not a valid host name", self.name);
        }
        match ctx.lstat("/etc/hostname")? {
            Some(m) if m.kind == crate::guest::Kind::File && m.size <= 4096 => {
                let current = ctx.read_text("/etc/hostname")?.unwrap_or_default();
                if current.trim() != self.name {
                    ctx.write("/etc/hostname", format!("{}\n", self.name).as_bytes())?;
                }
            }
            // A symlink, a directory, a 10 MB "hostname": replace it with a plain file.
            Some(_) => {
                ctx.remove("/etc/hostname")?;
                ctx.write("/etc/hostname", format!("{}\n", self.name).as_bytes())?;
            }
            None => {
                if ctx.lstat("/etc")?.is_some() {
                    ctx.write("/etc/hostname", format!("{}\n", self.name).as_bytes())?;
                }
            }
        }
        for (path, key) in [("/etc/sysconfig/network", "HOSTNAME="), ("/etc/HOSTNAME", "")] {
            let Some(text) = ctx.read_text(path)? else { continue };
            let new = if key.is_empty() {
                format!("{}\n", self.name)
            } else {
                text.split_inclusive('\n').filter(|l| !l.trim_start().starts_with(key)).collect()
            };
            if new != text {
                ctx.edit(path, new.as_bytes())?;
            }
        }
        if let Some(hosts) = ctx.read_text("/etc/hosts")? {
            let new = fix_hosts(&hosts, &self.name);
            if new != hosts {
                ctx.edit("/etc/hosts", new.as_bytes())?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_line() {
        let t = "127.0.0.1\tlocalhost\n127.0.1.1\tused-debian\n::1 localhost ip6-localhost\n";
        assert_eq!(fix_hosts(t, "localhost"), "127.0.0.1\tlocalhost\n::1 localhost ip6-localhost\n");
        assert_eq!(fix_hosts(t, "tmpl.example.org"), "127.0.0.1\tlocalhost\n127.0.1.1\ttmpl.example.org tmpl\n::1 localhost ip6-localhost\n");
    }

    mod in_guest {
        use crate::guest::memory::MemoryGuest;
        use crate::guest::{Guest, Kind, OsFacts};
        use crate::report::Action;
        use crate::steps::testing::{apply, changes, dry_run_matches, text, tree};

        const HOSTS: &str = "127.0.0.1\tlocalhost\n127.0.1.1\tused-debian.example.org used-debian\n::1 localhost\n";

        fn guest() -> MemoryGuest {
            let g = MemoryGuest::new(OsFacts::sample("debian"));
            g.file("/etc/hostname", b"used-debian\n")
                .file("/etc/hosts", HOSTS.as_bytes())
                .file("/etc/sysconfig/network", b"NETWORKING=yes\nHOSTNAME=used-rhel\n")
                .file("/etc/HOSTNAME", b"used-suse\n")
                .file("/etc/shadow", b"root:*:::\n");
            g.chmod(0o600, "/etc/hostname").unwrap();
            g
        }

        #[test]
        fn every_place_the_old_name_lives_is_reset() {
            let g = guest();
            let report = apply(&g, "hostname", "~").unwrap();
            assert_eq!(
                changes(&report),
                [
                    (Action::Written, "/etc/hostname"),
                    (Action::Edited, "/etc/sysconfig/network"),
                    (Action::Edited, "/etc/HOSTNAME"),
                    (Action::Edited, "/etc/hosts"),
                ]
            );
            assert_eq!(text(&g, "/etc/hostname"), "localhost\n");
            assert_eq!(g.lstat("/etc/hostname").unwrap().unwrap().mode, 0o600, "the mode stays");
            assert_eq!(text(&g, "/etc/sysconfig/network"), "NETWORKING=yes\n");
            assert_eq!(text(&g, "/etc/HOSTNAME"), "localhost\n");
            assert_eq!(text(&g, "/etc/hosts"), "127.0.0.1\tlocalhost\n::1 localhost\n");
            // Done once, nothing is left to do.
            assert!(apply(&g, "hostname", "~").unwrap().changes.is_empty());

            let g = guest();
            apply(&g, "hostname", "{name: tmpl.example.org}").unwrap();
            assert_eq!(text(&g, "/etc/hostname"), "tmpl.example.org\n");
            assert!(text(&g, "/etc/hosts").contains("127.0.1.1\ttmpl.example.org tmpl\n"));
        }

        #[test]
        fn a_hostile_hostname_file_is_replaced_not_written_through() {
            let g = guest();
            g.remove("/etc/hostname").unwrap();
            g.link("/etc/hostname", "/etc/shadow");
            apply(&g, "hostname", "~").unwrap();
            assert_eq!(g.lstat("/etc/hostname").unwrap().unwrap().kind, Kind::File);
            assert_eq!(text(&g, "/etc/hostname"), "localhost\n");
            assert_eq!(text(&g, "/etc/shadow"), "root:*:::\n");

            // The hostile fixture's 10 MB hostname: not read, replaced.
            g.file("/etc/hostname", &vec![b'a'; 10 << 20]);
            apply(&g, "hostname", "~").unwrap();
            assert_eq!(text(&g, "/etc/hostname"), "localhost\n");
        }

        #[test]
        fn invalid_names_are_refused_before_writing() {
            let g = guest();
            let before = tree(&g);
            for name in ["''", "-lead", "under_score", "a..b", "'two words'", "'x\n'"] {
                let options = format!("{{name: {name}}}");
                assert!(apply(&g, "hostname", &options).is_err(), "{name}");
            }
            assert!(apply(&g, "hostname", &format!("{{name: {}}}", "a".repeat(64))).is_err());
            assert_eq!(tree(&g), before);
        }

        #[test]
        fn dry_run_reports_and_writes_nothing() {
            dry_run_matches(guest, "hostname", "~");
            // Removed, then created: the dry run must not call the new file "written".
            let hostile = || {
                let g = guest();
                g.remove("/etc/hostname").unwrap();
                g.link("/etc/hostname", "/etc/shadow");
                g
            };
            let report = dry_run_matches(hostile, "hostname", "~");
            assert_eq!(
                changes(&report)[..2],
                [(Action::Removed, "/etc/hostname"), (Action::Created, "/etc/hostname")]
            );
        }
    }
}
