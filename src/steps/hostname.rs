//! Reset the hostname. "localhost" is what systemd treats as "no static hostname", so a
//! clone takes the name DHCP or cloud-init gives it. The `127.0.1.1 oldname` line that
//! Debian's installer (and cloud-init's manage_etc_hosts) writes goes with it.

use super::{Ctx, OptionDoc, Phase, Step, StepInfo};
use anyhow::{bail, Result};
use regex::Regex;
use serde::{Deserialize, Serialize};
use std::sync::LazyLock;

pub static INFO: StepInfo = StepInfo {
    name: "hostname",
    summary: "reset /etc/hostname (and HOSTNAME= in sysconfig) and the 127.0.1.1 line of /etc/hosts",
    families: &[],
    options: &[OptionDoc { name: "name", kind: "string", default: "localhost", help: "the hostname clones start with" }],
    phase: Phase::Main,
    repeatable: false,
};

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Hostname {
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

pub fn fix_hosts(text: &str, name: &str) -> String {
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
}
