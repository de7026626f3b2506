//! `goldify verify --boot`: a golden image is only golden if its clones boot as distinct,
//! healthy machines.
//!
//! One overlay over the template gets the report unit (one libguestfs launch); each clone
//! is a further overlay over that one, so the template is only ever read. The clones boot
//! side by side under QEMU; each prints its facts on its serial console and powers off;
//! goldify parses the console logs and checks the clones against each other and against
//! the source disk's identity (read offline, read-only).

pub mod checks;
pub mod probe;
pub mod qemu;
pub mod serial;
pub mod source;

use crate::disk;
use crate::error::{Exit, Tag};
use crate::guest::guestfs::{GuestfsGuest, OpenOptions};
use crate::guest::launch::{self, Accel};
use crate::guest::Guest;
use anyhow::{anyhow, Context, Result};
use checks::{Check, Status};
use serde::Serialize;
use serial::{Facts, Parsed};
use source::SourceFacts;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub struct VerifyOptions {
    pub template: PathBuf,
    pub source: Option<PathBuf>,
    pub clones: usize,
    /// Per boot.
    pub timeout: Duration,
    /// Keep every clone's console log here (failed clones' logs are always kept).
    pub keep_logs: Option<PathBuf>,
    pub memory_mib: u32,
    pub verbose: u8,
    /// Directories the disks' backing files, extents and data files may be read from.
    pub allow: disk::refs::Allowed,
}

#[derive(Debug, Serialize)]
pub struct CloneReport {
    pub name: String,
    pub ok: bool,
    pub checks: Vec<Check>,
    /// `complete`, `truncated` or `absent`, and the facts that arrived.
    pub report: Parsed,
    /// The cloud-init instance-id goldify offered this clone (NoCloud, SMBIOS serial).
    pub offered_instance_id: Option<String>,
    /// Guest uptime (since the kernel started) when the system was up and reporting.
    pub running_after: Option<f64>,
    /// Host wall time from starting QEMU until the report began: the time to a running
    /// system as a user sees it, firmware and boot loader included.
    pub report_after: Option<f64>,
    /// Host wall time from starting QEMU until the clone powered off (or was stopped).
    pub boot_seconds: f64,
    /// Where the serial console log was kept, if it was.
    pub serial_log: Option<String>,
}

#[derive(Debug, Default, Serialize)]
pub struct VerifyTimings {
    /// Source read, overlay, report unit injection (one appliance launch each).
    pub prepare: f64,
    pub boot: f64,
    pub total: f64,
}

#[derive(Debug, Serialize)]
pub struct VerifyReport {
    pub goldify_version: &'static str,
    pub template: String,
    pub os: String,
    pub accel: Accel,
    pub source: Option<SourceFacts>,
    pub clones: Vec<CloneReport>,
    pub ok: bool,
    pub timings: VerifyTimings,
}

/// Say once which accelerator the clones (and the appliance) use, and why.
fn announce(accel: &Accel) {
    if accel.is_kvm() {
        eprintln!("goldify: booting clones with KVM ({})", accel.reason);
    } else {
        // The same line libguestfs launches print, once per process.
        launch::announce();
    }
}

/// A short random tag for this run's console lines.
fn nonce() -> Result<String> {
    use std::io::Read;
    let mut b = [0u8; 6];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut b))
        .context("reading /dev/urandom")?;
    Ok(b.iter().map(|x| format!("{x:02x}")).collect())
}

fn read_source(path: &Path, prepared: &disk::WorkDisk, verbose: u8) -> Result<SourceFacts> {
    let guest = GuestfsGuest::open(
        &[prepared.drive()],
        &OpenOptions {
            readonly: true,
            in_place: false,
            verbose: verbose >= 2,
            shown: &path.display().to_string(),
            remove_hiberfile: false,
            keys: &[],
        },
    )?;
    let facts = source::read(&guest, &path.display().to_string())?;
    guest.close()?;
    Ok(facts)
}

/// The overlay every clone starts from (`base`, over the template) gets the report unit.
fn prepare_base(
    template: &Path,
    base: disk::WorkDisk,
    nonce: &str,
    settle: u64,
    verbose: u8,
) -> Result<(disk::WorkDisk, crate::guest::OsFacts)> {
    let guest = GuestfsGuest::open(
        &[base.drive()],
        &OpenOptions {
            readonly: false,
            in_place: false,
            verbose: verbose >= 2,
            shown: &template.display().to_string(),
            remove_hiberfile: false,
            keys: &[],
        },
    )?;
    let facts = guest.facts().clone();
    if facts.family == crate::guest::Family::Windows {
        // The clones report through a systemd unit and the serial console; a Windows boot
        // under TCG would only run into the timeout. Say so instead of trying.
        crate::bail_tag!(
            Exit::Input,
            "{} is Windows ({}); goldify verify boots Linux templates only (its report unit runs under systemd)              and cannot verify a Windows image",
            template.display(),
            facts.product_name
        );
    }
    probe::install(&guest, nonce, settle).tag(Exit::Input)?;
    guest.close().context("writing the report unit").tag(Exit::Output)?;
    Ok((base, facts))
}

pub fn verify(opts: &VerifyOptions) -> Result<VerifyReport> {
    let t0 = Instant::now();
    if opts.clones == 0 {
        crate::bail_tag!(Exit::Usage, "--clones must be at least 1");
    }
    if !opts.template.exists() {
        crate::bail_tag!(Exit::Input, "template {} does not exist", opts.template.display());
    }
    if let Some(s) = opts.source.as_ref().filter(|s| !s.exists()) {
        crate::bail_tag!(Exit::Input, "source {} does not exist", s.display());
    }
    if crate::exec::which(qemu::QEMU).is_none() {
        crate::bail_tag!(
            Exit::Environment,
            "{} not found: install qemu-system-x86 (scripts/setup-host.sh)",
            qemu::QEMU
        );
    }
    if let Some(dir) = &opts.keep_logs {
        crate::publish::atomic::create_public_dir_all(dir)
            .with_context(|| format!("creating {}", dir.display()))
            .tag(Exit::Output)?;
    }
    let work = crate::workdir::create(&std::env::temp_dir())?;
    // Both disks are checked before anything starts: a refused --source must not wait for
    // the template's appliance, and no qemu may follow what a header names (disk/refs/).
    let source_disk = opts
        .source
        .as_deref()
        .map(|p| {
            disk::prepare(p, work.path(), false, true, &opts.allow)
                .with_context(|| format!("reading source {}", p.display()))
        })
        .transpose()?;
    let base_disk = disk::prepare(&opts.template, work.path(), false, false, &opts.allow)
        .with_context(|| format!("preparing clones of {}", opts.template.display()))?;
    let accel = launch::accel().clone();
    announce(&accel);
    let nonce = nonce()?;

    let phase = crate::progress::phase(format!(
        "adding the report unit to an overlay of {}",
        opts.template.display()
    ));
    // Two appliance launches, side by side: the source's identity, the clones' base.
    let (source, base) = std::thread::scope(|s| {
        let src = opts.source.as_deref().zip(source_disk.as_ref()).map(|(p, prepared)| {
            s.spawn(move || {
                read_source(p, prepared, opts.verbose).with_context(|| format!("reading source {}", p.display()))
            })
        });
        // The clone reports by itself when its boot has not settled after two thirds of the
        // per-boot limit: pending jobs are a better answer than a timeout.
        let settle = (opts.timeout.as_secs() * 2 / 3).max(30);
        let base = prepare_base(&opts.template, base_disk, &nonce, settle, opts.verbose)
            .with_context(|| format!("preparing clones of {}", opts.template.display()));
        let src = src
            .map(|h| h.join().unwrap_or_else(|_| Err(anyhow!("reading the source panicked"))))
            .transpose();
        (src, base)
    });
    let (base, os) = base?;
    let source = source?;
    let prepare = t0.elapsed().as_secs_f64();

    let clones: Vec<qemu::Clone> = (1..=opts.clones)
        .map(|i| {
            let name = format!("clone{i}");
            let smbios_serial = os
                .cloud_init
                .then(|| format!("ds=nocloud;i=goldify-verify-{nonce}-{i};h=goldify-{name}"));
            qemu::Clone {
                disk: work.path().join(format!("{name}.qcow2")),
                serial: work.path().join(format!("{name}.serial.log")),
                name,
                smbios_serial,
            }
        })
        .collect();
    for c in &clones {
        qemu::create_overlay(&base.path, base.format.name(), &c.disk)?;
    }

    phase.set(format!(
        "booting {} clone{} under {}",
        clones.len(),
        if clones.len() == 1 { "" } else { "s" },
        accel.name.to_uppercase()
    ));
    let t = Instant::now();
    let marker = format!("{} {nonce} begin", serial::TAG);
    let booted = boot_all(&clones, &accel, opts, &marker)?;
    let boot = t.elapsed().as_secs_f64();
    drop(phase);

    let parsed: Vec<Parsed> = clones
        .iter()
        .map(|c| {
            let log = std::fs::read(&c.serial).with_context(|| format!("reading {}", c.serial.display()))?;
            Ok(serial::parse(&log, &nonce))
        })
        .collect::<Result<_>>()?;
    let inputs: Vec<checks::Input> = clones
        .iter()
        .zip(&parsed)
        .zip(&booted)
        .map(|((c, p), b)| checks::Input {
            name: &c.name,
            parsed: p,
            boot_problem: b.problem.as_deref(),
        })
        .collect();
    let results = checks::evaluate(&inputs, source.as_ref());

    let mut kept_dir: Option<PathBuf> = opts.keep_logs.clone();
    let mut reports = Vec::new();
    for ((c, p), (b, checks)) in clones.iter().zip(parsed).zip(booted.iter().zip(results)) {
        let ok = checks.iter().all(|c| c.status != Status::Fail);
        let serial_log = if opts.keep_logs.is_some() || !ok {
            let dir = match &kept_dir {
                Some(d) => d.clone(),
                None => {
                    let d = tempfile::Builder::new()
                        .prefix("goldify-verify-logs-")
                        .tempdir()
                        .context("creating a directory for the console logs")?
                        .keep();
                    kept_dir = Some(d.clone());
                    d
                }
            };
            let dest = dir.join(format!("{}.serial.log", c.name));
            std::fs::copy(&c.serial, &dest)
                .with_context(|| format!("keeping the console log as {}", dest.display()))?;
            if opts.keep_logs.is_some() {
                // Where the user asked, as readable as before goldify's umask 0077 (what
                // it keeps on its own, in TMPDIR, stays private).
                std::fs::set_permissions(&dest, std::os::unix::fs::PermissionsExt::from_mode(0o644))
                    .with_context(|| format!("setting the mode of {}", dest.display()))?;
            }
            Some(dest.display().to_string())
        } else {
            None
        };
        reports.push(CloneReport {
            name: c.name.clone(),
            ok,
            checks,
            running_after: p.facts().and_then(|f: &Facts| f.uptime),
            report: p,
            offered_instance_id: c
                .smbios_serial
                .as_ref()
                .and_then(|s| s.split(';').find_map(|kv| kv.strip_prefix("i=")).map(str::to_string)),
            report_after: b.report_after,
            boot_seconds: b.seconds,
            serial_log,
        });
    }
    let ok = reports.iter().all(|r| r.ok);
    Ok(VerifyReport {
        goldify_version: env!("CARGO_PKG_VERSION"),
        template: opts.template.display().to_string(),
        os: format!("{} {} {}", os.distro, os.version(), os.arch),
        accel,
        source,
        clones: reports,
        ok,
        timings: VerifyTimings {
            prepare,
            boot,
            total: t0.elapsed().as_secs_f64(),
        },
    })
}

/// Boot every clone, as many at once as the host has cores (one vCPU each).
fn boot_all(clones: &[qemu::Clone], accel: &Accel, opts: &VerifyOptions, marker: &str) -> Result<Vec<qemu::Booted>> {
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let workers = cores.min(clones.len()).max(1);
    let next = std::sync::atomic::AtomicUsize::new(0);
    let results: std::sync::Mutex<Vec<Option<Result<qemu::Booted>>>> =
        std::sync::Mutex::new((0..clones.len()).map(|_| None).collect());
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let Some(c) = clones.get(i) else { break };
                tracing::info!("booting {}", c.name);
                let r = qemu::boot(c, accel, opts.memory_mib, opts.timeout, marker);
                if let Ok(b) = &r {
                    tracing::info!("{} ended after {:.1} s", c.name, b.seconds);
                }
                results.lock().unwrap_or_else(|e| e.into_inner())[i] = Some(r);
            });
        }
    });
    results
        .into_inner()
        .unwrap_or_else(|e| e.into_inner())
        .into_iter()
        .map(|r| r.unwrap_or_else(|| Err(anyhow!("internal error: a clone was not booted"))))
        .collect()
}

fn cut(s: &str, width: usize) -> String {
    if s.chars().count() <= width {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(width.saturating_sub(1)).collect();
        t.push('…');
        t
    }
}

impl VerifyReport {
    pub fn print_human(&self, out: &mut dyn std::io::Write) -> std::io::Result<()> {
        let plural = if self.clones.len() == 1 { "" } else { "s" };
        let accel = self.accel.name.to_uppercase();
        writeln!(
            out,
            "{} ({}): {} clone{plural} booted under {accel}",
            self.template,
            self.os,
            self.clones.len()
        )?;
        if let Some(s) = &self.source {
            writeln!(
                out,
                "source {}: machine-id {}, {} host key{}{}",
                s.disk,
                s.machine_id.as_deref().unwrap_or("(none)"),
                s.host_keys.len(),
                if s.host_keys.len() == 1 { "" } else { "s" },
                s.cloud_init_instance_id
                    .as_deref()
                    .map(|i| format!(", cloud-init instance {i}"))
                    .unwrap_or_default()
            )?;
        }
        const COL: usize = 40;
        write!(out, "{:<14}", "")?;
        for c in &self.clones {
            write!(out, "{:<w$}", c.name, w = COL + 9)?;
        }
        writeln!(out)?;
        let mut long = Vec::new();
        for (k, name) in checks::NAMES.iter().enumerate() {
            write!(out, "{name:<14}")?;
            for c in &self.clones {
                let check = &c.checks[k];
                let mark = match check.status {
                    Status::Pass => "ok",
                    Status::Fail => "FAIL",
                    Status::Skip => "-",
                };
                if check.detail.chars().count() > COL && check.status == Status::Fail {
                    long.push(format!("{} {}: {}", c.name, name, check.detail));
                }
                write!(out, "{mark:<5}  {:<COL$}  ", cut(&check.detail, COL))?;
            }
            writeln!(out)?;
        }
        // The time to a running system: from power-on (firmware and boot loader included),
        // and the kernel's own uptime.
        write!(out, "{:<14}", "running after")?;
        for c in &self.clones {
            let secs = |s: Option<f64>| s.map(|s| format!("{s:.0} s")).unwrap_or_else(|| "?".into());
            write!(
                out,
                "       {:<COL$}  ",
                format!("{} (kernel up {})", secs(c.report_after), secs(c.running_after))
            )?;
        }
        writeln!(out)?;
        for l in long {
            writeln!(out, "  {l}")?;
        }
        for c in &self.clones {
            if let Some(log) = &c.serial_log {
                writeln!(out, "serial console of {}: {log}", c.name)?;
            }
        }
        if self.ok {
            writeln!(
                out,
                "verify: PASS: {} clones booted as distinct, healthy machines ({:.0} s)",
                self.clones.len(),
                self.timings.total
            )?;
        } else {
            let failed: Vec<String> = self
                .clones
                .iter()
                .filter(|c| !c.ok)
                .map(|c| {
                    let names: Vec<&str> = c
                        .checks
                        .iter()
                        .filter(|k| k.status == Status::Fail)
                        .map(|k| k.name)
                        .collect();
                    format!("{} ({})", c.name, names.join(", "))
                })
                .collect();
            writeln!(out, "verify: FAIL: {}", failed.join("; "))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(second_id: &str) -> VerifyReport {
        let facts = |id: &str| serial::Facts {
            machine_id: Some(id.into()),
            host_keys: vec![serial::HostKey {
                kind: "ssh-ed25519".into(),
                fingerprint: format!("SHA256:{id}"),
            }],
            sshd: Some("ssh.service active".into()),
            nic: Some("eth0".into()),
            ipv4: Some("10.0.2.15/24".into()),
            ipv4_dynamic: true,
            uptime: Some(61.0),
            ..Default::default()
        };
        let parsed = [
            Parsed::Complete {
                facts: facts("8b6971173e924847abfee27c84b16345"),
            },
            Parsed::Complete {
                facts: facts(second_id),
            },
        ];
        let inputs: Vec<checks::Input> = parsed
            .iter()
            .zip(["clone1", "clone2"])
            .map(|(p, name)| checks::Input {
                name,
                parsed: p,
                boot_problem: None,
            })
            .collect();
        let results = checks::evaluate(&inputs, None);
        let clones = parsed
            .into_iter()
            .zip(results)
            .enumerate()
            .map(|(i, (p, checks))| CloneReport {
                name: format!("clone{}", i + 1),
                ok: checks.iter().all(|c| c.status != Status::Fail),
                checks,
                report: p,
                offered_instance_id: None,
                running_after: Some(61.0),
                report_after: Some(75.0),
                boot_seconds: 80.0,
                serial_log: None,
            })
            .collect::<Vec<_>>();
        VerifyReport {
            goldify_version: "0",
            template: "golden.qcow2".into(),
            os: "debian 12.0 x86_64".into(),
            accel: Accel {
                name: "tcg",
                reason: "test".into(),
                detail: String::new(),
            },
            source: None,
            ok: clones.iter().all(|c| c.ok),
            clones,
            timings: VerifyTimings::default(),
        }
    }

    fn human(r: &VerifyReport) -> String {
        let mut out = Vec::new();
        r.print_human(&mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn table_shows_every_check_per_clone_and_the_verdict() {
        let text = human(&report("9ea687333948498fb57b4a3119e78a35"));
        for name in checks::NAMES {
            assert!(text.lines().any(|l| l.starts_with(name)), "{name} row missing:\n{text}");
        }
        assert!(
            text.contains("\nrunning after        75 s (kernel up 61 s)    "),
            "{text}"
        );
        let last = text.trim_end().lines().last().unwrap();
        assert_eq!(
            last,
            "verify: PASS: 2 clones booted as distinct, healthy machines (0 s)"
        );

        let text = human(&report("8b6971173e924847abfee27c84b16345"));
        assert!(
            text.contains("\nmachine-id    FAIL   8b6971173e924847abfee27c84b16345 also o…  FAIL"),
            "{text}"
        );
        // A detail cut in the table is printed in full below it.
        assert!(
            text.contains("\n  clone1 machine-id: 8b6971173e924847abfee27c84b16345 also on clone2\n"),
            "{text}"
        );
        let last = text.trim_end().lines().last().unwrap();
        assert_eq!(
            last,
            "verify: FAIL: clone1 (machine-id, host-keys); clone2 (machine-id, host-keys)"
        );
    }
}
