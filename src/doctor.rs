//! `goldify doctor`: can this host run goldify, and how.

use crate::exec;
use serde::Serialize;
use std::time::Instant;

#[derive(Debug, Serialize)]
pub struct Check {
    pub name: &'static str,
    pub ok: bool,
    pub detail: String,
}

#[derive(Debug, Serialize)]
pub struct DoctorReport {
    pub ok: bool,
    pub accel: crate::guest::launch::Accel,
    pub checks: Vec<Check>,
}

fn version_of(program: &str, args: &[&str]) -> Check {
    match exec::run(program, args.iter().copied()) {
        Ok(out) => Check {
            name: "",
            ok: true,
            detail: String::from_utf8_lossy(&out.stdout)
                .lines()
                .next()
                .unwrap_or("")
                .trim()
                .to_string(),
        },
        Err(e) => Check {
            name: "",
            ok: false,
            detail: format!("{e:#}"),
        },
    }
}

pub fn doctor(launch: bool) -> DoctorReport {
    let mut checks = Vec::new();
    let lib = match guestfs::Handle::create() {
        Ok(g) => match g.version() {
            Ok(v) => Check {
                name: "libguestfs",
                ok: true,
                detail: format!("{}.{}.{}{}", v.major, v.minor, v.release, v.extra),
            },
            Err(e) => Check {
                name: "libguestfs",
                ok: false,
                detail: format!("{:#}", crate::guest::guestfs::api_error(e)),
            },
        },
        Err(_) => Check {
            name: "libguestfs",
            ok: false,
            detail: "cannot create a handle".into(),
        },
    };
    checks.push(lib);
    checks.push(Check {
        name: "qemu-img",
        ..version_of("qemu-img", &["--version"])
    });
    checks.push(Check {
        name: "qemu-system-x86_64",
        ..version_of("qemu-system-x86_64", &["--version"])
    });
    let accel = crate::guest::launch::accel().clone();
    checks.push(Check {
        name: "kvm",
        ok: true,
        detail: if accel.detail.is_empty() {
            format!("{}: {}", accel.name, accel.reason)
        } else {
            format!("{}: {} ({})", accel.name, accel.reason, accel.detail)
        },
    });
    if launch {
        checks.push(launch_check());
    }
    let ok = checks.iter().all(|c| c.ok);
    DoctorReport { ok, accel, checks }
}

/// Start the appliance on a small scratch disk, as a run would.
fn launch_check() -> Check {
    let t = Instant::now();
    let result = (|| -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let disk = dir.path().join("scratch.img");
        std::fs::File::create(&disk)?.set_len(16 << 20)?;
        let g = guestfs::Handle::create().map_err(crate::guest::guestfs::api_error)?;
        crate::guest::launch::configure(&g)?;
        let d = disk.to_str().unwrap_or_default();
        g.add_drive_ro(d).map_err(crate::guest::guestfs::api_error)?;
        g.launch().map_err(crate::guest::guestfs::api_error)?;
        g.shutdown().map_err(crate::guest::guestfs::api_error)?;
        Ok(())
    })();
    match result {
        Ok(()) => Check {
            name: "appliance",
            ok: true,
            detail: format!("launched in {:.1} s", t.elapsed().as_secs_f64()),
        },
        Err(e) => Check {
            name: "appliance",
            ok: false,
            detail: format!("{e:#}"),
        },
    }
}

impl DoctorReport {
    pub fn print_human(&self, out: &mut dyn std::io::Write) -> std::io::Result<()> {
        for c in &self.checks {
            writeln!(
                out,
                "{:<20} {:<4} {}",
                c.name,
                if c.ok { "ok" } else { "FAIL" },
                c.detail
            )?;
        }
        writeln!(out, "goldify will use: {} ({})", self.accel.name, self.accel.reason)?;
        Ok(())
    }
}
