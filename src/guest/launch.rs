//! How to start virtual machines on this host: KVM where it really works, TCG otherwise.
//!
//! `/dev/kvm` can exist and still be unusable: on some CI runners and nested hosts qemu
//! aborts with "KVM internal error" or fails to set MSRs as soon as a vCPU starts. The only
//! honest test is to start one, so the probe boots qemu's firmware under KVM with
//! `-cpu host` (what libguestfs and `verify --boot` use) for a moment.

use std::sync::OnceLock;
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Accel {
    /// `kvm` or `tcg`.
    pub name: &'static str,
    /// Why this accelerator was chosen, for the one line goldify prints.
    pub reason: String,
}

impl Accel {
    pub fn is_kvm(&self) -> bool {
        self.name == "kvm"
    }
}

static ACCEL: OnceLock<Accel> = OnceLock::new();
static SAID: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// The accelerator to use, probed once per process.
pub fn accel() -> &'static Accel {
    ACCEL.get_or_init(probe)
}

/// Print once per process which accelerator is in use when it is not KVM.
pub fn announce() {
    let a = accel();
    if !a.is_kvm() && !SAID.swap(true, std::sync::atomic::Ordering::SeqCst) {
        eprintln!("goldify: using TCG software emulation (slower): {}", a.reason);
    }
}

fn probe() -> Accel {
    if std::env::var("GOLDIFY_ACCEL").as_deref() == Ok("tcg") {
        return Accel {
            name: "tcg",
            reason: "GOLDIFY_ACCEL=tcg".into(),
        };
    }
    let kvm = std::path::Path::new("/dev/kvm");
    if !kvm.exists() {
        return Accel {
            name: "tcg",
            reason: "/dev/kvm does not exist".into(),
        };
    }
    if nix::unistd::access(kvm, nix::unistd::AccessFlags::R_OK | nix::unistd::AccessFlags::W_OK).is_err() {
        return Accel {
            name: "tcg",
            reason: "/dev/kvm is not accessible to this user".into(),
        };
    }
    let Some(qemu) = crate::exec::which("qemu-system-x86_64") else {
        return Accel {
            name: "tcg",
            reason: "qemu-system-x86_64 not found".into(),
        };
    };
    let child = std::process::Command::new(qemu)
        .args(["-machine", "accel=kvm", "-cpu", "host", "-m", "64", "-nodefaults"])
        .args(["-display", "none", "-serial", "none", "-monitor", "none", "-no-reboot"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) => {
            return Accel {
                name: "tcg",
                reason: format!("cannot start qemu: {e}"),
            }
        }
    };
    // A broken KVM fails within milliseconds; a working one is still running after this.
    let deadline = std::time::Instant::now() + Duration::from_millis(1500);
    loop {
        match child.try_wait() {
            Ok(Some(status)) => {
                let mut err = String::new();
                if let Some(mut s) = child.stderr.take() {
                    use std::io::Read;
                    let _ = s.read_to_string(&mut err);
                }
                let why = crate::exec::tail(err.as_bytes(), 1).unwrap_or_else(|| status.to_string());
                return Accel {
                    name: "tcg",
                    reason: format!("KVM does not work here ({why})"),
                };
            }
            Ok(None) if std::time::Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return Accel {
                    name: "kvm",
                    reason: "KVM started a test vCPU".into(),
                };
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(50)),
            Err(e) => {
                return Accel {
                    name: "tcg",
                    reason: format!("waiting for the KVM probe: {e}"),
                }
            }
        }
    }
}

/// libguestfs settings for this host: the direct backend, and `force_tcg` without KVM.
/// Settings the user put in LIBGUESTFS_BACKEND / LIBGUESTFS_BACKEND_SETTINGS win.
pub fn configure(g: &guestfs::Handle) -> anyhow::Result<()> {
    use anyhow::Context;
    if std::env::var_os("LIBGUESTFS_BACKEND").is_none() {
        g.set_backend("direct")
            .map_err(super::api::api_error)
            .context("selecting the libguestfs direct backend")?;
    }
    if std::env::var_os("LIBGUESTFS_BACKEND_SETTINGS").is_none() && !accel().is_kvm() {
        announce();
        g.set_backend_settings(&["force_tcg"])
            .map_err(super::api::api_error)
            .context("selecting TCG for the libguestfs appliance")?;
    }
    Ok(())
}
