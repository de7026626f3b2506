//! The checks, per clone, from what every clone reported (and the source's identity):
//! a clone passes only as a distinct, healthy machine.

use super::serial::{Facts, Parsed};
use super::source::SourceFacts;
use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Pass,
    Fail,
    /// Does not apply (cloud-init not installed).
    Skip,
}

#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub name: &'static str,
    pub status: Status,
    /// A short value for the table (an ID, an address) or why it failed.
    pub detail: String,
}

/// The checks in report order.
pub const NAMES: [&str; 7] = [
    "report",
    "machine-id",
    "host-keys",
    "sshd",
    "ipv4-dhcp",
    "failed-units",
    "cloud-init",
];

/// What one clone gave us: its name, the parsed console, and why there is no report when
/// the boot itself went wrong (timed out…).
pub struct Input<'a> {
    pub name: &'a str,
    pub parsed: &'a Parsed,
    pub boot_problem: Option<&'a str>,
}

fn pass(name: &'static str, detail: impl Into<String>) -> Check {
    Check {
        name,
        status: Status::Pass,
        detail: detail.into(),
    }
}

fn fail(name: &'static str, detail: impl Into<String>) -> Check {
    Check {
        name,
        status: Status::Fail,
        detail: detail.into(),
    }
}

/// A complete report from a boot that finished (the report unit stops waiting for it
/// before goldify's time limit, and then says what was still pending).
fn settled(f: &Facts) -> Check {
    match f.system_state.as_deref() {
        Some("initializing" | "starting") => {
            let jobs = if f.pending_jobs.is_empty() {
                "none listed".to_string()
            } else {
                f.pending_jobs.join(", ")
            };
            fail("report", format!("the boot never finished; pending jobs: {jobs}"))
        }
        Some(state) => pass("report", format!("complete, system {state}")),
        None => pass("report", "complete"),
    }
}

/// A machine ID: 32 lowercase hex digits (machine-id(5)), not all zeros.
fn is_machine_id(s: &str) -> bool {
    s.len() == 32 && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) && s.bytes().any(|b| b != b'0')
}

pub fn evaluate(clones: &[Input], source: Option<&SourceFacts>) -> Vec<Vec<Check>> {
    let facts: Vec<Option<&Facts>> = clones.iter().map(|c| c.parsed.facts()).collect();
    clones
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let report = match (c.parsed, c.boot_problem) {
                (Parsed::Complete { facts }, _) => settled(facts),
                (Parsed::Truncated { why, .. }, Some(p)) => fail("report", format!("{p}; {why}")),
                (Parsed::Truncated { why, .. }, None) => fail("report", why.clone()),
                (Parsed::Absent, Some(p)) => fail("report", p.to_string()),
                (Parsed::Absent, None) => fail("report", "no report on the serial console"),
            };
            let Some(f) = facts[i] else {
                let mut checks = vec![report];
                checks.extend(NAMES[1..].iter().map(|n| fail(n, "not reported")));
                return checks;
            };
            let others: Vec<(&str, &Facts)> = clones
                .iter()
                .zip(&facts)
                .enumerate()
                .filter(|(j, _)| *j != i)
                .filter_map(|(_, (c, f))| Some((c.name, (*f)?)))
                .collect();
            vec![
                report,
                machine_id(f, &others, source),
                host_keys(f, &others, source),
                sshd(f),
                ipv4(f),
                failed_units(f),
                cloud_init(f, source),
            ]
        })
        .collect()
}

fn machine_id(f: &Facts, others: &[(&str, &Facts)], source: Option<&SourceFacts>) -> Check {
    const N: &str = "machine-id";
    let Some(id) = f.machine_id.as_deref() else {
        return fail(N, "/etc/machine-id is empty");
    };
    if !is_machine_id(id) {
        return fail(N, format!("not a machine ID: {id:?}"));
    }
    let same: Vec<&str> = others
        .iter()
        .filter(|(_, o)| o.machine_id.as_deref() == Some(id))
        .map(|(n, _)| *n)
        .collect();
    let from_source = source.is_some_and(|s| s.machine_id.as_deref() == Some(id));
    match (same.is_empty(), from_source) {
        (true, false) => pass(N, id),
        (false, false) => fail(N, format!("{id} also on {}", same.join(", "))),
        (true, true) => fail(N, format!("{id} is the source's")),
        (false, true) => fail(N, format!("{id} is the source's, also on {}", same.join(", "))),
    }
}

fn host_keys(f: &Facts, others: &[(&str, &Facts)], source: Option<&SourceFacts>) -> Check {
    const N: &str = "host-keys";
    if f.host_keys.is_empty() {
        return fail(N, "no /etc/ssh/ssh_host_*_key.pub");
    }
    let mut problems = Vec::new();
    for k in &f.host_keys {
        let short = format!("{} {}", k.kind, k.fingerprint);
        let same: Vec<&str> = others
            .iter()
            .filter(|(_, o)| o.host_keys.iter().any(|ok| ok.fingerprint == k.fingerprint))
            .map(|(n, _)| *n)
            .collect();
        if !same.is_empty() {
            problems.push(format!("{short} also on {}", same.join(", ")));
        }
        if source.is_some_and(|s| s.host_keys.iter().any(|sk| sk.fingerprint == k.fingerprint)) {
            problems.push(format!("{short} is the source's"));
        }
    }
    if problems.is_empty() {
        let kinds: Vec<&str> = f.host_keys.iter().map(|k| short_kind(&k.kind)).collect();
        pass(N, format!("{} new ({})", f.host_keys.len(), kinds.join(", ")))
    } else {
        fail(N, problems.join("; "))
    }
}

/// `ssh-ed25519` → `ed25519`, `ecdsa-sha2-nistp256` → `ecdsa`.
fn short_kind(kind: &str) -> &str {
    let k = kind.trim_start_matches("ssh-");
    k.split('-').next().unwrap_or(k)
}

fn sshd(f: &Facts) -> Check {
    const N: &str = "sshd";
    match f.sshd.as_deref() {
        Some(s) if s.ends_with(" active") => pass(N, s),
        Some(s) => fail(N, s),
        None => fail(N, "no SSH server unit"),
    }
}

fn ipv4(f: &Facts) -> Check {
    const N: &str = "ipv4-dhcp";
    let Some(nic) = f.nic.as_deref() else {
        return fail(N, "no network interface besides lo");
    };
    let Some(addr) = f.ipv4.as_deref() else {
        return fail(N, format!("no IPv4 address on {nic}"));
    };
    if f.ipv4_dynamic || f.dhcp_lease.is_some() {
        pass(N, format!("{nic} {addr}"))
    } else {
        fail(N, format!("{nic} {addr} is not from DHCP (no lifetime, no lease file)"))
    }
}

fn failed_units(f: &Facts) -> Check {
    const N: &str = "failed-units";
    if f.failed_units.is_empty() {
        pass(N, "none")
    } else {
        fail(N, f.failed_units.join(", "))
    }
}

fn cloud_init(f: &Facts, source: Option<&SourceFacts>) -> Check {
    const N: &str = "cloud-init";
    let Some(ci) = &f.cloud_init else {
        return Check {
            name: N,
            status: Status::Skip,
            detail: "not installed".into(),
        };
    };
    let id = ci.instance_id.as_deref().unwrap_or("?");
    let mut problems = Vec::new();
    match ci.status.as_deref() {
        Some("done") => {}
        Some(s) => problems.push(format!("status {s}")),
        None => problems.push("no status".to_string()),
    }
    // Semaphores of the current instance written before this boot: cloud-init found the
    // instance already set up and skipped its per-instance work.
    match (ci.semaphores_new, ci.semaphores_old) {
        (Some(n), Some(0)) if n > 0 => {}
        (_, Some(old)) if old > 0 => problems.push(format!("instance {id} had already run ({old} old semaphores)")),
        _ => problems.push(format!("no per-instance work ran for {id}")),
    }
    if source.is_some_and(|s| s.cloud_init_instance_id.is_some() && s.cloud_init_instance_id == ci.instance_id) {
        problems.push(format!("instance {id} is the source's"));
    }
    if problems.is_empty() {
        pass(N, format!("done, new instance {id}"))
    } else {
        fail(N, problems.join("; "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verify::serial::{CloudInit, HostKey};

    fn facts(id: &str, fp: &str) -> Facts {
        Facts {
            machine_id: Some(id.into()),
            host_keys: vec![HostKey {
                kind: "ssh-ed25519".into(),
                fingerprint: fp.into(),
            }],
            sshd: Some("ssh.service active".into()),
            nic: Some("eth0".into()),
            ipv4: Some("10.0.2.15/24".into()),
            ipv4_dynamic: true,
            cloud_init: Some(CloudInit {
                status: Some("done".into()),
                instance_id: Some(format!("iid-{id}")),
                semaphores_new: Some(20),
                semaphores_old: Some(0),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    const A: &str = "8b6971173e924847abfee27c84b16345";
    const B: &str = "9ea687333948498fb57b4a3119e78a35";

    fn run(parsed: &[Parsed], source: Option<&SourceFacts>) -> Vec<Vec<Check>> {
        let names = ["clone1", "clone2", "clone3"];
        let inputs: Vec<Input> = parsed
            .iter()
            .enumerate()
            .map(|(i, p)| Input {
                name: names[i],
                parsed: p,
                boot_problem: None,
            })
            .collect();
        evaluate(&inputs, source)
    }

    fn status(checks: &[Check], name: &str) -> (Status, String) {
        let c = checks.iter().find(|c| c.name == name).unwrap();
        (c.status, c.detail.clone())
    }

    #[test]
    fn distinct_healthy_clones_pass() {
        let p = [
            Parsed::Complete {
                facts: facts(A, "SHA256:a"),
            },
            Parsed::Complete {
                facts: facts(B, "SHA256:b"),
            },
        ];
        let source = SourceFacts {
            machine_id: Some("0123456789abcdef0123456789abcdef".into()),
            ..Default::default()
        };
        for checks in run(&p, Some(&source)) {
            assert_eq!(checks.len(), NAMES.len());
            assert!(checks.iter().all(|c| c.status == Status::Pass), "{checks:?}");
        }
    }

    #[test]
    fn clones_of_a_used_disk_fail() {
        let p = [
            Parsed::Complete {
                facts: facts(A, "SHA256:a"),
            },
            Parsed::Complete {
                facts: facts(A, "SHA256:a"),
            },
        ];
        let source = SourceFacts {
            machine_id: Some(A.into()),
            host_keys: vec![HostKey {
                kind: "ssh-ed25519".into(),
                fingerprint: "SHA256:a".into(),
            }],
            ..Default::default()
        };
        let r = run(&p, Some(&source));
        let (s, d) = status(&r[0], "machine-id");
        assert_eq!(s, Status::Fail);
        assert_eq!(d, format!("{A} is the source's, also on clone2"));
        let (s, d) = status(&r[1], "host-keys");
        assert_eq!(s, Status::Fail);
        assert!(d.contains("also on clone1") && d.contains("is the source's"), "{d}");
    }

    #[test]
    fn unhealthy_clone_fails_each_check_by_name() {
        let mut f = facts(A, "SHA256:a");
        f.machine_id = Some("uninitialized".into());
        f.sshd = Some("ssh.service failed".into());
        f.ipv4_dynamic = false;
        f.failed_units = vec!["ssh.service".into(), "cloud-config.service".into()];
        f.cloud_init.as_mut().unwrap().status = Some("error".into());
        f.cloud_init.as_mut().unwrap().semaphores_old = Some(20);
        let r = run(&[Parsed::Complete { facts: f }], None);
        for name in ["machine-id", "sshd", "ipv4-dhcp", "failed-units", "cloud-init"] {
            assert_eq!(status(&r[0], name).0, Status::Fail, "{name}");
        }
        assert_eq!(status(&r[0], "failed-units").1, "ssh.service, cloud-config.service");
        assert!(status(&r[0], "cloud-init").1.contains("status error"));
    }

    #[test]
    fn a_boot_that_never_settles_fails_with_its_pending_jobs() {
        let mut f = facts(A, "SHA256:a");
        f.system_state = Some("starting".into());
        f.pending_jobs = vec!["network-online.target".into(), "ifup@eth0.service".into()];
        let r = run(&[Parsed::Complete { facts: f }], None);
        assert_eq!(
            status(&r[0], "report"),
            (
                Status::Fail,
                "the boot never finished; pending jobs: network-online.target, ifup@eth0.service".into()
            )
        );
    }

    #[test]
    fn no_cloud_init_is_skipped_and_no_report_fails_everything() {
        let mut f = facts(A, "SHA256:a");
        f.cloud_init = None;
        let p = [Parsed::Complete { facts: f }, Parsed::Absent];
        let inputs = [
            Input {
                name: "clone1",
                parsed: &p[0],
                boot_problem: None,
            },
            Input {
                name: "clone2",
                parsed: &p[1],
                boot_problem: Some("still running after 600 s"),
            },
        ];
        let r = evaluate(&inputs, None);
        assert_eq!(status(&r[0], "cloud-init").0, Status::Skip);
        assert_eq!(
            status(&r[1], "report"),
            (Status::Fail, "still running after 600 s".into())
        );
        assert!(r[1].iter().all(|c| c.status == Status::Fail));
    }
}
