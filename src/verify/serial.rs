//! The facts a clone printed on its serial console, parsed back.
//!
//! The report script (report.sh) writes one `GOLDIFY-VERIFY <nonce> key=value` line per
//! fact between a `begin` and an `end count=N` line. Everything else on the console (the
//! kernel, systemd, a getty, cloud-init) is noise to skip, and can cut into our lines: a
//! line counts only when the tag is followed by this run's nonce, and the block counts as
//! complete only when the number of fact lines matches the count the script printed.

use serde::Serialize;

pub const TAG: &str = "GOLDIFY-VERIFY";

/// An SSH host key, as `ssh-keygen -l` names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HostKey {
    /// The key type as the .pub file spells it (`ssh-ed25519`, `ssh-rsa`…).
    pub kind: String,
    /// `SHA256:` and the unpadded base64 of the SHA-256 of the key blob.
    pub fingerprint: String,
}

/// What cloud-init did on this boot, where it is installed.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct CloudInit {
    /// `cloud-init status`: done, error, running, disabled…
    pub status: Option<String>,
    pub instance_id: Option<String>,
    /// The instance-id cloud-init found from before this boot (`NO_PREVIOUS_INSTANCE_ID`
    /// when the template carried no instance).
    pub previous_instance_id: Option<String>,
    /// Per-instance semaphores written during this boot / found from before it.
    pub semaphores_new: Option<u32>,
    pub semaphores_old: Option<u32>,
}

/// Everything one clone reported. Missing facts stay `None` / empty.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Facts {
    pub machine_id: Option<String>,
    pub host_keys: Vec<HostKey>,
    /// The SSH server unit and its `systemctl is-active` state, e.g. `ssh.service active`.
    pub sshd: Option<String>,
    pub nic: Option<String>,
    /// Address/prefix on the first NIC.
    pub ipv4: Option<String>,
    /// The address carries a lifetime (`dynamic` in `ip addr`), as DHCP clients set it.
    pub ipv4_dynamic: bool,
    /// A DHCP lease file that names the address.
    pub dhcp_lease: Option<String>,
    pub failed_units: Vec<String>,
    /// `None` when cloud-init is not installed.
    pub cloud_init: Option<CloudInit>,
    /// `systemctl is-system-running` once the boot settled (or the wait for it ended).
    pub system_state: Option<String>,
    /// Jobs still queued when the boot had not settled in time.
    pub pending_jobs: Vec<String>,
    /// Seconds since the kernel started, when the system was up and the report began.
    pub uptime: Option<f64>,
    /// The first line of `systemd-analyze time`.
    pub systemd_analyze: Option<String>,
    pub hostname: Option<String>,
    pub os: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "state", rename_all = "kebab-case")]
pub enum Parsed {
    /// A whole block: every fact line the script counted arrived.
    Complete { facts: Facts },
    /// A block began but did not end, or lines were lost; what arrived is kept.
    Truncated { facts: Facts, why: String },
    /// No block with this run's nonce.
    Absent,
}

impl Parsed {
    pub fn facts(&self) -> Option<&Facts> {
        match self {
            Parsed::Complete { facts } | Parsed::Truncated { facts, .. } => Some(facts),
            Parsed::Absent => None,
        }
    }
}

/// Parse a serial console log (bytes: consoles carry escape sequences and stray non-UTF-8).
pub fn parse(log: &[u8], nonce: &str) -> Parsed {
    let text = String::from_utf8_lossy(log);
    let marker = format!("{TAG} {nonce} ");
    let mut facts = Facts::default();
    let mut began = false;
    let mut lines = 0usize;
    let mut expected: Option<usize> = None;
    for raw in text.split(['\n', '\r']) {
        // The tag may follow noise on the same line (a getty prompt, a cut kernel message).
        let Some(at) = raw.find(&marker) else { continue };
        let body = raw[at + marker.len()..].trim_end();
        if body == "begin" {
            // A second block (the script ran twice) replaces the first.
            facts = Facts::default();
            began = true;
            lines = 0;
            expected = None;
            continue;
        }
        if !began || expected.is_some() {
            continue;
        }
        if let Some(n) = body.strip_prefix("end count=") {
            expected = Some(n.trim().parse().unwrap_or(usize::MAX));
            continue;
        }
        let Some((key, value)) = body.split_once('=') else {
            continue;
        };
        lines += 1;
        apply(&mut facts, key, value.trim());
    }
    if !began {
        return Parsed::Absent;
    }
    match expected {
        None => Parsed::Truncated {
            facts,
            why: "the report began but never ended (the clone stopped or hung)".into(),
        },
        Some(n) if n != lines => Parsed::Truncated {
            facts,
            why: format!("{lines} of the {n} fact lines arrived intact"),
        },
        Some(_) => Parsed::Complete { facts },
    }
}

fn non_empty(v: &str) -> Option<String> {
    (!v.is_empty()).then(|| v.to_string())
}

fn apply(f: &mut Facts, key: &str, v: &str) {
    let ci = || CloudInit::default();
    match key {
        "machine-id" => f.machine_id = non_empty(v),
        "host-key" => {
            if let Some(k) = host_key(v) {
                f.host_keys.push(k);
            }
        }
        "sshd" => f.sshd = non_empty(v),
        "nic" => f.nic = non_empty(v),
        "ipv4" => f.ipv4 = non_empty(v),
        "ipv4-dynamic" => f.ipv4_dynamic = v == "yes",
        "dhcp-lease" => f.dhcp_lease = non_empty(v),
        "failed-unit" => f.failed_units.extend(non_empty(v)),
        "cloud-init" => f.cloud_init = (v == "yes").then(ci),
        "cloud-init-status" => f.cloud_init.get_or_insert_with(ci).status = non_empty(v),
        "cloud-init-instance-id" => f.cloud_init.get_or_insert_with(ci).instance_id = non_empty(v),
        "cloud-init-previous-instance-id" => f.cloud_init.get_or_insert_with(ci).previous_instance_id = non_empty(v),
        "cloud-init-semaphores" => {
            let c = f.cloud_init.get_or_insert_with(ci);
            for part in v.split_whitespace() {
                match part.split_once('=') {
                    Some(("new", n)) => c.semaphores_new = n.parse().ok(),
                    Some(("old", n)) => c.semaphores_old = n.parse().ok(),
                    _ => {}
                }
            }
        }
        "system-state" => f.system_state = non_empty(v),
        "pending-job" => f.pending_jobs.extend(non_empty(v)),
        "uptime" => f.uptime = v.parse().ok(),
        "systemd-analyze" => f.systemd_analyze = non_empty(v),
        "hostname" => f.hostname = non_empty(v),
        "os" => f.os = non_empty(v),
        // Facts a newer script prints are not an error.
        _ => {}
    }
}

/// `ssh-ed25519 <hex sha256 of the key blob>` → a [`HostKey`].
fn host_key(v: &str) -> Option<HostKey> {
    let (kind, hex) = v.split_once(' ')?;
    let digest = decode_hex(hex.trim())?;
    if digest.len() != 32 {
        return None;
    }
    Some(HostKey {
        kind: kind.to_string(),
        fingerprint: fingerprint_of_digest(&digest),
    })
}

fn decode_hex(s: &str) -> Option<Vec<u8>> {
    if s.len() % 2 != 0 {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// How OpenSSH prints a SHA-256 fingerprint: `SHA256:` and unpadded base64.
pub fn fingerprint_of_digest(digest: &[u8]) -> String {
    use base64::Engine;
    format!(
        "SHA256:{}",
        base64::engine::general_purpose::STANDARD_NO_PAD.encode(digest)
    )
}

/// The fingerprint of a public key line (`type base64-blob [comment]`, a .pub file).
pub fn fingerprint_of_pub(line: &str) -> Option<HostKey> {
    use base64::Engine;
    use sha2::Digest;
    let mut fields = line.split_whitespace();
    let kind = fields.next()?;
    let blob = base64::engine::general_purpose::STANDARD.decode(fields.next()?).ok()?;
    Some(HostKey {
        kind: kind.to_string(),
        fingerprint: fingerprint_of_digest(&sha2::Sha256::digest(&blob)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const NONCE: &str = "n0nce";

    fn block(machine_id: &str, key_hex: &str) -> String {
        format!(
            "[  OK  ] Started ssh.service.\r\n\
             GOLDIFY-VERIFY n0nce begin\r\n\
             GOLDIFY-VERIFY n0nce machine-id={machine_id}\r\n\
             GOLDIFY-VERIFY n0nce host-key=ssh-ed25519 {key_hex}\r\n\
             GOLDIFY-VERIFY n0nce sshd=ssh.service active\r\n\
             GOLDIFY-VERIFY n0nce nic=eth0\r\n\
             GOLDIFY-VERIFY n0nce ipv4=10.0.2.15/24\r\n\
             GOLDIFY-VERIFY n0nce ipv4-dynamic=yes\r\n\
             GOLDIFY-VERIFY n0nce failed-unit=foo.service\r\n\
             GOLDIFY-VERIFY n0nce cloud-init=yes\r\n\
             GOLDIFY-VERIFY n0nce cloud-init-status=done\r\n\
             GOLDIFY-VERIFY n0nce cloud-init-instance-id=iid-1\r\n\
             GOLDIFY-VERIFY n0nce cloud-init-semaphores=new=20 old=0\r\n\
             GOLDIFY-VERIFY n0nce uptime=61.25\r\n\
             GOLDIFY-VERIFY n0nce end count=12\r\n\
             [  OK  ] Stopped target graphical.target.\r\n"
        )
    }

    const KEY: &str = "0851517a69ed776e17a0ae391978dab3f6f6f4a57874c429a4810b47b1fef6d7";

    #[test]
    fn complete_block_amid_console_noise() {
        let log = format!(
            "\x1b[0;32mGRUB\x1b[0m\r\n{}debian login: ",
            block("8b6971173e924847abfee27c84b16345", KEY)
        );
        let Parsed::Complete { facts } = parse(log.as_bytes(), NONCE) else {
            panic!("{:?}", parse(log.as_bytes(), NONCE))
        };
        assert_eq!(facts.machine_id.as_deref(), Some("8b6971173e924847abfee27c84b16345"));
        assert_eq!(facts.host_keys.len(), 1);
        // The same key as ssh-keygen -l printed it on that clone's console.
        assert_eq!(
            facts.host_keys[0].fingerprint,
            "SHA256:CFFRemntd24XoK45GXjas/b29KV4dMQppIELR7H+9tc"
        );
        assert_eq!(facts.sshd.as_deref(), Some("ssh.service active"));
        assert_eq!(facts.ipv4.as_deref(), Some("10.0.2.15/24"));
        assert!(facts.ipv4_dynamic);
        assert_eq!(facts.failed_units, vec!["foo.service"]);
        let ci = facts.cloud_init.unwrap();
        assert_eq!(ci.status.as_deref(), Some("done"));
        assert_eq!(ci.semaphores_new, Some(20));
        assert_eq!(facts.uptime, Some(61.25));
    }

    #[test]
    fn garbage_has_no_report() {
        assert_eq!(parse(b"", NONCE), Parsed::Absent);
        let noise: Vec<u8> = (0..4096u32).map(|i| (i * 7919 % 251) as u8).collect();
        assert_eq!(parse(&noise, NONCE), Parsed::Absent);
        // Fact lines without a begin, and another run's block, do not count.
        let other = block("aaaa", KEY).replace("n0nce", "other");
        let stray = "GOLDIFY-VERIFY n0nce machine-id=bbbb\n";
        assert_eq!(parse(format!("{other}{stray}").as_bytes(), NONCE), Parsed::Absent);
    }

    #[test]
    fn truncated_block_keeps_what_arrived() {
        let full = block("8b6971173e924847abfee27c84b16345", KEY);
        let cut = &full[..full.find("uptime").unwrap()];
        match parse(cut.as_bytes(), NONCE) {
            Parsed::Truncated { facts, why } => {
                assert!(why.contains("never ended"), "{why}");
                assert_eq!(facts.nic.as_deref(), Some("eth0"));
            }
            other => panic!("{other:?}"),
        }
        // A kernel message cut into a fact line: the count no longer matches.
        let mangled = full.replace(
            "GOLDIFY-VERIFY n0nce nic=eth0",
            "GOLDIFY-VER[   80.1] random: crng init done",
        );
        match parse(mangled.as_bytes(), NONCE) {
            Parsed::Truncated { why, .. } => assert_eq!(why, "11 of the 12 fact lines arrived intact"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn tag_after_noise_on_the_same_line() {
        let log = block("1234", KEY).replace(
            "GOLDIFY-VERIFY n0nce machine-id",
            "debian login: GOLDIFY-VERIFY n0nce machine-id",
        );
        assert_eq!(
            parse(log.as_bytes(), NONCE).facts().unwrap().machine_id.as_deref(),
            Some("1234")
        );
    }

    #[test]
    fn two_clones_parse_independently() {
        let a = parse(block("aaaa", KEY).as_bytes(), NONCE);
        let other_key = "023f953e22050c3930318229dd51815974e2a0017c00ee8cc3396c014011e2cb";
        let b = parse(block("bbbb", other_key).as_bytes(), NONCE);
        let (a, b) = (a.facts().unwrap(), b.facts().unwrap());
        assert_ne!(a.machine_id, b.machine_id);
        assert_ne!(a.host_keys, b.host_keys);
        // A log holding two blocks (the script ran twice): the last one wins.
        let both = format!("{}{}", block("aaaa", KEY), block("bbbb", KEY));
        assert_eq!(
            parse(both.as_bytes(), NONCE).facts().unwrap().machine_id.as_deref(),
            Some("bbbb")
        );
    }

    #[test]
    fn bad_host_key_lines_are_dropped() {
        // Not hex, or not a SHA-256: the line counts (the block is complete), the key does not.
        for bad in ["zz", "abcd"] {
            let f = parse(block("1", bad).as_bytes(), NONCE);
            assert!(matches!(f, Parsed::Complete { .. }), "{f:?}");
            assert!(f.facts().unwrap().host_keys.is_empty());
        }
    }

    #[test]
    fn fingerprint_of_a_pub_line_matches_ssh_keygen() {
        // ssh-keygen -lf of this key prints SHA256:VS3Ax7V4J4AufF2qn+jLWpv6OrWPdEHYKLM29ilaODc.
        let line = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFZE9+1zWpEf5NsaccoZCz9Ley3RojcJv0cqoxUfLgUt alice@laptop";
        let k = fingerprint_of_pub(line).unwrap();
        assert_eq!(k.kind, "ssh-ed25519");
        assert_eq!(k.fingerprint, "SHA256:VS3Ax7V4J4AufF2qn+jLWpv6OrWPdEHYKLM29ilaODc");
        assert!(fingerprint_of_pub("ssh-ed25519 !!notbase64").is_none());
        assert!(fingerprint_of_pub("").is_none());
    }
}
