//! Booting one clone: a qcow2 overlay, QEMU with its serial console in a file, user-mode
//! networking only, and a time limit.

use crate::error::{Exit, Tag};
use crate::exec;
use crate::guest::launch::Accel;
use anyhow::{anyhow, Context, Result};
use std::ffi::OsString;
use std::path::{Path, PathBuf};
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
    /// Why the clone did not power itself off, if it did not.
    pub problem: Option<String>,
}

/// A qcow2 overlay over `backing`: the clone writes there, the backing file is only read.
pub fn create_overlay(backing: &Path, backing_format: &str, overlay: &Path) -> Result<()> {
    exec::run(
        "qemu-img",
        [
            "create".as_ref(),
            "-q".as_ref(),
            "-f".as_ref(),
            "qcow2".as_ref(),
            "-F".as_ref(),
            backing_format.as_ref(),
            "-b".as_ref(),
            backing.as_os_str(),
            overlay.as_os_str(),
        ],
    )
    .with_context(|| format!("creating overlay {}", overlay.display()))
    .tag(Exit::Output)
    .map(|_| ())
}

/// A path as a QEMU option value: commas are doubled (QEMU's escape).
fn opt_path(path: &Path) -> Result<String> {
    let s = path.to_str().ok_or_else(|| anyhow!("path {path:?} is not UTF-8; QEMU options need text"))?;
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
pub fn boot(clone: &Clone, accel: &Accel, memory_mib: u32, limit: Duration) -> Result<Booted> {
    let args = args(clone, accel, memory_mib)?;
    let t = Instant::now();
    let problem = match exec::run_limited(QEMU, args, limit) {
        Ok(_) => None,
        Err(e) if e.downcast_ref::<exec::TimedOut>().is_some() => {
            Some(format!("still running after {} s, stopped (--timeout)", limit.as_secs()))
        }
        Err(e) => return Err(e).with_context(|| format!("booting {}", clone.name)).tag(Exit::Environment),
    };
    Ok(Booted { seconds: t.elapsed().as_secs_f64(), problem })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn args_escape_paths_and_pick_the_accelerator() {
        let c = Clone {
            name: "clone1".into(),
            disk: "/tmp/a,b/clone1.qcow2".into(),
            serial: "/tmp/a,b/clone1.log".into(),
            smbios_serial: Some("ds=nocloud;i=iid-1".into()),
        };
        let tcg = Accel { name: "tcg", reason: "test".into() };
        let a: Vec<String> = args(&c, &tcg, 1024).unwrap().into_iter().map(|s| s.into_string().unwrap()).collect();
        let line = a.join(" ");
        assert!(line.contains("-machine accel=tcg -smp 1 -m 1024"), "{line}");
        assert!(line.contains("file=/tmp/a,,b/clone1.qcow2,if=virtio"), "{line}");
        assert!(line.contains("path=/tmp/a,,b/clone1.log"), "{line}");
        assert!(line.contains("-smbios type=1,serial=ds=nocloud;i=iid-1"), "{line}");
        assert!(line.contains("user,id=net0,restrict=on"), "{line}");
        let kvm = Accel { name: "kvm", reason: "test".into() };
        let a: Vec<String> = args(&c, &kvm, 512).unwrap().into_iter().map(|s| s.into_string().unwrap()).collect();
        assert!(a.join(" ").contains("-machine accel=kvm -cpu host"));
    }
}
