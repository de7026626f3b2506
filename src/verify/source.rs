//! What made the source disk (the used VM) itself, read offline: the clones must not
//! carry any of it.

use super::serial::{fingerprint_of_pub, HostKey};
use crate::guest::Guest;
use anyhow::{Context, Result};
use serde::Serialize;

#[derive(Debug, Clone, Default, Serialize)]
pub struct SourceFacts {
    pub disk: String,
    pub machine_id: Option<String>,
    pub host_keys: Vec<HostKey>,
    pub cloud_init_instance_id: Option<String>,
}

const LIMIT: u64 = 64 << 10;

fn read_line(guest: &dyn Guest, path: &str) -> Result<Option<String>> {
    match guest.lstat(path)? {
        Some(m) if m.kind == crate::guest::Kind::File => {
            let bytes = guest.read(path, LIMIT).with_context(|| format!("reading {path}"))?;
            let text = String::from_utf8_lossy(&bytes);
            Ok(text
                .lines()
                .next()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .map(str::to_string))
        }
        _ => Ok(None),
    }
}

pub fn read(guest: &dyn Guest, disk: &str) -> Result<SourceFacts> {
    let mut host_keys = Vec::new();
    for path in crate::guest::glob(guest, "/etc/ssh/ssh_host_*_key.pub").context("listing /etc/ssh")? {
        if let Some(key) = read_line(guest, &path)?.as_deref().and_then(fingerprint_of_pub) {
            host_keys.push(key);
        }
    }
    Ok(SourceFacts {
        disk: disk.to_string(),
        machine_id: read_line(guest, "/etc/machine-id")?,
        host_keys,
        cloud_init_instance_id: read_line(guest, "/var/lib/cloud/data/instance-id")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::guest::memory::MemoryGuest;
    use crate::guest::OsFacts;

    #[test]
    fn reads_identity_of_a_used_guest() {
        let g = MemoryGuest::new(OsFacts::sample("debian"));
        g.file("/etc/machine-id", b"8b6971173e924847abfee27c84b16345\n");
        g.file(
            "/etc/ssh/ssh_host_ed25519_key.pub",
            b"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFZE9+1zWpEf5NsaccoZCz9Ley3RojcJv0cqoxUfLgUt root@x\n",
        );
        g.file("/etc/ssh/ssh_host_ed25519_key", b"private");
        g.file("/var/lib/cloud/data/instance-id", b"iid-1\n");
        let s = read(&g, "used.qcow2").unwrap();
        assert_eq!(s.machine_id.as_deref(), Some("8b6971173e924847abfee27c84b16345"));
        assert_eq!(s.host_keys.len(), 1);
        assert_eq!(
            s.host_keys[0].fingerprint,
            "SHA256:VS3Ax7V4J4AufF2qn+jLWpv6OrWPdEHYKLM29ilaODc"
        );
        assert_eq!(s.cloud_init_instance_id.as_deref(), Some("iid-1"));
    }

    #[test]
    fn a_golden_guest_has_no_identity() {
        let g = MemoryGuest::new(OsFacts::sample("debian"));
        g.file("/etc/machine-id", b"");
        let s = read(&g, "golden.qcow2").unwrap();
        assert_eq!(s.machine_id, None);
        assert!(s.host_keys.is_empty());
        assert_eq!(s.cloud_init_instance_id, None);
    }
}
