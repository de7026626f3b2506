//! Booting one clone: a qcow2 overlay, QEMU with its serial console in a file, user-mode
//! networking only, and a time limit.

use crate::error::{Exit, Tag};
use crate::exec;
use crate::guest::launch::Accel;
use anyhow::{anyhow, Context, Result};
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

pub const QEMU: &str = "qemu-system-x86_64";

pub struct Clone {
    pub name: String,
    /// The clone's overlay.
    pub disk: PathBuf,
    pub serial: PathBuf,
    /// SMBIOS system serial: `ds=nocloud;i=…` hands cloud-init a new instance-id without
    /// a seed disk (cloud-init's NoCloud datasource reads it).
    pub smbios_serial: Option<String>,
}

pub struct Booted {
    /// Wall time from starting QEMU until it exited or was stopped.
    pub seconds: f64,
    /// Wall time from starting QEMU until the report began on the console: firmware,
    /// boot loader, kernel and the whole boot.
    pub report_after: Option<f64>,
    /// Why the clone did not power itself off, if it did not.
    pub problem: Option<String>,
}

/// A qcow2 overlay over `backing`: the clone writes there, the backing file is only read.
pub fn create_overlay(backing: &Path, backing_format: &str, overlay: &Path) -> Result<()> {
    crate::disk::create_overlay(backing, backing_format, overlay).tag(Exit::Output)
}

/// A path as a QEMU option value: commas are doubled (QEMU's escape).
fn opt_path(path: &Path) -> Result<String> {
    let s = path
        .to_str()
        .ok_or_else(|| anyhow!("path {path:?} is not UTF-8; QEMU options need text"))?;
    Ok(s.replace(',', ",,"))
}

pub fn args(clone: &Clone, accel: &Accel, memory_mib: u32) -> Result<Vec<OsString>> {
    let mut a: Vec<String> = vec!["-name".into(), format!("goldify-verify-{}", clone.name)];
    if accel.is_kvm() {
        a.extend(["-machine".into(), "accel=kvm".into(), "-cpu".into(), "host".into()]);
    } else {
        a.extend(["-machine".into(), "accel=tcg".into()]);
    }
    a.extend([
        // One vCPU per clone: the clones boot side by side, one per host core.
        "-smp".into(),
        "1".into(),
        "-m".into(),
        memory_mib.to_string(),
        "-nodefaults".into(),
        "-display".into(),
        "none".into(),
        "-monitor".into(),
        "none".into(),
        "-chardev".into(),
        format!("file,id=console,path={}", opt_path(&clone.serial)?),
        "-serial".into(),
        "chardev:console".into(),
        // A reboot request ends the boot like a power-off would: never loop.
        "-no-reboot".into(),
        "-drive".into(),
        format!("file={},if=virtio,format=qcow2", opt_path(&clone.disk)?),
        // User-mode networking, restricted: DHCP and nothing else; the clone cannot reach
        // the host or any network.
        "-netdev".into(),
        "user,id=net0,restrict=on".into(),
        "-device".into(),
        "virtio-net-pci,netdev=net0".into(),
        // Entropy for first-boot key generation.
        "-device".into(),
        "virtio-rng-pci".into(),
    ]);
    if let Some(serial) = &clone.smbios_serial {
        if serial.contains(',') {
            anyhow::bail!("internal error: SMBIOS serial {serial:?} contains a comma");
        }
        a.extend(["-smbios".into(), format!("type=1,serial={serial}")]);
    }
    Ok(a.into_iter().map(OsString::from).collect())
}

/// Boot a clone until it powers itself off or `limit` passes. A QEMU that fails to run
/// is a host problem (an error); a guest that does not finish is a verification result.
/// `marker` is the line that starts the clone's report: the console is watched for it, to
/// time the boot as a user would see it.
pub fn boot(clone: &Clone, accel: &Accel, memory_mib: u32, limit: Duration, marker: &str) -> Result<Booted> {
    let args = args(clone, accel, memory_mib)?;
    std::fs::write(&clone.serial, b"").with_context(|| format!("creating {}", clone.serial.display()))?;
    let t = Instant::now();
    let done = AtomicBool::new(false);
    let (result, report_after) = std::thread::scope(|s| {
        let watcher = s.spawn(|| watch(&clone.serial, marker.as_bytes(), &done, t));
        let r = exec::run_limited(QEMU, args, limit);
        done.store(true, Ordering::SeqCst);
        (r, watcher.join().unwrap_or(None))
    });
    let problem = match result {
        Ok(_) => None,
        Err(e) if e.downcast_ref::<exec::TimedOut>().is_some() => Some(format!(
            "still running after {} s, stopped (--timeout)",
            limit.as_secs()
        )),
        Err(e) => {
            return Err(e)
                .with_context(|| format!("booting {}", clone.name))
                .tag(Exit::Environment)
        }
    };
    Ok(Booted {
        seconds: t.elapsed().as_secs_f64(),
        report_after,
        problem,
    })
}

/// Seconds since `start` at which `marker` showed up in the growing file `path`.
fn watch(path: &Path, marker: &[u8], done: &AtomicBool, start: Instant) -> Option<f64> {
    use std::io::Read;
    let mut f = std::fs::File::open(path).ok()?;
    let mut seen: Vec<u8> = Vec::new();
    let mut buf = vec![0u8; 64 << 10];
    loop {
        let finished = done.load(Ordering::SeqCst);
        loop {
            match f.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => seen.extend_from_slice(&buf[..n]),
            }
        }
        if seen.windows(marker.len()).any(|w| w == marker) {
            return Some(start.elapsed().as_secs_f64());
        }
        if finished {
            return None;
        }
        // Keep only a tail long enough to hold a marker cut by the previous read.
        let keep = seen.len().saturating_sub(marker.len());
        seen.drain(..keep);
        std::thread::sleep(Duration::from_millis(250));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watch_finds_a_marker_written_late_and_split_across_reads() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("console.log");
        std::fs::write(&p, b"noise GOLDIFY-VER").unwrap();
        let done = AtomicBool::new(false);
        let t = Instant::now();
        let found = std::thread::scope(|s| {
            let h = s.spawn(|| watch(&p, b"GOLDIFY-VERIFY abc begin", &done, t));
            std::thread::sleep(Duration::from_millis(400));
            use std::io::Write;
            std::fs::OpenOptions::new()
                .append(true)
                .open(&p)
                .unwrap()
                .write_all(b"IFY abc begin\n")
                .unwrap();
            h.join().unwrap()
        });
        assert!(found.is_some_and(|s| s >= 0.3), "{found:?}");
        let done = AtomicBool::new(true);
        assert_eq!(watch(&p, b"never", &done, t), None);
    }

    #[test]
    fn args_escape_paths_and_pick_the_accelerator() {
        let c = Clone {
            name: "clone1".into(),
            disk: "/tmp/a,b/clone1.qcow2".into(),
            serial: "/tmp/a,b/clone1.log".into(),
            smbios_serial: Some("ds=nocloud;i=iid-1".into()),
        };
        let tcg = Accel {
            name: "tcg",
            reason: "test".into(),
            detail: String::new(),
        };
        let a: Vec<String> = args(&c, &tcg, 1024)
            .unwrap()
            .into_iter()
            .map(|s| s.into_string().unwrap())
            .collect();
        let line = a.join(" ");
        assert!(line.contains("-machine accel=tcg -smp 1 -m 1024"), "{line}");
        assert!(line.contains("file=/tmp/a,,b/clone1.qcow2,if=virtio"), "{line}");
        assert!(line.contains("path=/tmp/a,,b/clone1.log"), "{line}");
        assert!(line.contains("-smbios type=1,serial=ds=nocloud;i=iid-1"), "{line}");
        assert!(line.contains("user,id=net0,restrict=on"), "{line}");
        let kvm = Accel {
            name: "kvm",
            reason: "test".into(),
            detail: String::new(),
        };
        let a: Vec<String> = args(&c, &kvm, 512)
            .unwrap()
            .into_iter()
            .map(|s| s.into_string().unwrap())
            .collect();
        assert!(a.join(" ").contains("-machine accel=kvm -cpu host"));
    }
}
