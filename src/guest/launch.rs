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
    /// Why this accelerator was chosen, plainly, for the one line goldify prints.
    pub reason: String,
    /// What the probe saw (qemu's own last line of error output), for `goldify doctor`;
    /// empty when there is nothing more to say.
    pub detail: String,
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

/// Say once per process, at warn level, that the appliance runs without KVM: plainly (the
/// probe's raw qemu output is `goldify doctor`'s), above any progress display, not at all
/// with --quiet.
pub fn announce() {
    let a = accel();
    if a.is_kvm() || crate::progress::quiet() || SAID.swap(true, std::sync::atomic::Ordering::SeqCst) {
        return;
    }
    crate::progress::above(|| tracing::warn!("{}", notice(a)));
}

/// The one line said when the appliance runs under TCG.
pub fn notice(a: &Accel) -> String {
    format!(
        "no KVM ({}): the appliance runs under TCG software emulation, several times slower; `goldify doctor` says more",
        a.reason
    )
}

fn probe() -> Accel {
    if std::env::var("GOLDIFY_ACCEL").as_deref() == Ok("tcg") {
        return Accel {
            name: "tcg",
            reason: "GOLDIFY_ACCEL=tcg".into(),
            detail: String::new(),
        };
    }
    let kvm = std::path::Path::new("/dev/kvm");
    if !kvm.exists() {
        return Accel {
            name: "tcg",
            reason: "/dev/kvm does not exist".into(),
            detail: String::new(),
        };
    }
    if nix::unistd::access(kvm, nix::unistd::AccessFlags::R_OK | nix::unistd::AccessFlags::W_OK).is_err() {
        return Accel {
            name: "tcg",
            reason: "/dev/kvm is not accessible to this user".into(),
            detail: String::new(),
        };
    }
    let Some(qemu) = crate::exec::which("qemu-system-x86_64") else {
        return Accel {
            name: "tcg",
            reason: "qemu-system-x86_64 not found".into(),
            detail: String::new(),
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
                detail: String::new(),
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
                    reason: "/dev/kvm is there, but a test vCPU under KVM failed".into(),
                    detail: format!("qemu-system-x86_64 -machine accel=kvm -cpu host: {why}"),
                };
            }
            Ok(None) if std::time::Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return Accel {
                    name: "kvm",
                    reason: "KVM started a test vCPU".into(),
                    detail: String::new(),
                };
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(50)),
            Err(e) => {
                return Accel {
                    name: "tcg",
                    reason: format!("waiting for the KVM probe: {e}"),
                    detail: String::new(),
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

#[cfg(test)]
mod tests {
    #[test]
    fn the_notice_is_plain() {
        let a = super::Accel {
            name: "tcg",
            reason: "/dev/kvm is there, but a test vCPU under KVM failed".into(),
            detail: "qemu-system-x86_64: ../accel/kvm/kvm-all.c:1234: kvm_cpu_exec: Assertion `false' failed.".into(),
        };
        let n = super::notice(&a);
        assert!(!n.contains("Assertion") && !n.contains('\n'), "{n}");
        assert!(n.contains("TCG") && n.contains("goldify doctor"), "{n}");
    }
}
