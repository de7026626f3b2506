//! What the Windows steps share: where Windows is in the guest (%SystemRoot%), its hives,
//! the user profiles, Windows text (CR LF), and the first-boot service that runs scripts
//! once at the first boot of each clone.
//!
//! The first-boot service is installed the way virt-customize installs its own
//! (libguestfs-common mlcustomize/firstboot.ml): rhsrvany.exe, a service wrapper from the
//! `rhsrvany` package, is copied into the guest and registered as an auto-start service in
//! the SYSTEM hive of the current control set; its command line runs a batch runner that
//! runs each script once and then uninstalls the service. Unlike virt-customize, the image
//! path is quoted (it contains a space: an unquoted one lets `C:\Program.exe` run instead)
//! and no reboot follows each script.

use super::Ctx;
use crate::guest::registry::{RegEdit, RegValue};
pub(crate) use crate::guest::windows::crlf;
use crate::guest::Kind;
use anyhow::{Context, Result};

/// C:\Program Files\goldify\firstboot, as a guest path and as Windows names it.
pub(crate) const FIRSTBOOT_DIR: &str = "/Program Files/goldify/firstboot";
const FIRSTBOOT_DIR_WIN: &str = r"C:\Program Files\goldify\firstboot";
pub(crate) const FIRSTBOOT_SERVICE: &str = "goldify-firstboot";
const RUNNER: &str = include_str!("data/windows-firstboot.cmd");

/// %SystemRoot% as a guest path (`/Windows`).
pub(crate) fn systemroot(ctx: &Ctx) -> String {
    let s = &ctx.facts().systemroot;
    if s.is_empty() {
        "/Windows".to_string()
    } else {
        s.clone()
    }
}

/// The control set `CurrentControlSet` stands for (inspection reads `Select\Current`);
/// the first one where inspection could not tell.
pub(crate) fn control_set(ctx: &Ctx) -> String {
    match ctx.facts().current_control_set.as_str() {
        "" => "ControlSet001".to_string(),
        cs => cs.to_string(),
    }
}

/// A hive of the machine (`SYSTEM`, `SOFTWARE`) as a guest path.
pub(crate) fn hive(ctx: &Ctx, name: &str) -> String {
    format!("{}/System32/config/{name}", systemroot(ctx))
}

/// Every user profile directory under /Users (real directories only: `All Users` and
/// `Default User` are junctions, which are never followed).
pub(crate) fn profiles(ctx: &mut Ctx) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for p in ctx.glob("/Users/*")? {
        if matches!(ctx.lstat(&p)?, Some(m) if m.kind == Kind::Dir) {
            out.push(p);
        }
    }
    Ok(out)
}

/// Where rhsrvany.exe comes from: `$VIRT_TOOLS_DATA_DIR` (as virt-customize reads it),
/// else Debian's rhsrvany package.
fn rhsrvany() -> std::path::PathBuf {
    let dir = std::env::var_os("VIRT_TOOLS_DATA_DIR").unwrap_or_else(|| "/usr/share/virt-tools".into());
    std::path::Path::new(&dir).join("rhsrvany.exe")
}

/// Add `script` to the first-boot scripts as `NNNN-name.cmd` (CR LF), installing the
/// service first if it is not there yet.
pub(crate) fn add_firstboot_script(ctx: &mut Ctx, prio: u16, name: &str, script: &str) -> Result<()> {
    install_service(ctx)?;
    let path = format!("{FIRSTBOOT_DIR}/scripts/{prio:04}-{name}.cmd");
    ctx.write(&path, crlf(script).as_bytes())
}

fn install_service(ctx: &mut Ctx) -> Result<()> {
    let exe = rhsrvany();
    let bytes = crate::hostfile::read_bounded(&exe, 16 << 20).with_context(|| {
        format!(
            "a Windows first-boot service needs {} (Debian package rhsrvany; or set VIRT_TOOLS_DATA_DIR)",
            exe.display()
        )
    })?;
    ctx.mkdir_p(&format!("{FIRSTBOOT_DIR}/scripts"))?;
    // A sentinel of an earlier run would say the new scripts are done.
    ctx.remove(&format!("{FIRSTBOOT_DIR}/complete"))?;
    ctx.write(&format!("{FIRSTBOOT_DIR}/rhsrvany.exe"), &bytes)?;
    ctx.write(&format!("{FIRSTBOOT_DIR}/firstboot.cmd"), crlf(RUNNER).as_bytes())?;
    let cs = control_set(ctx);
    let service = [cs.as_str(), "Services", FIRSTBOOT_SERVICE];
    let parameters = [cs.as_str(), "Services", FIRSTBOOT_SERVICE, "Parameters"];
    let edits = [
        RegEdit::new(
            &service,
            vec![
                // SERVICE_WIN32_OWN_PROCESS, SERVICE_AUTO_START, SERVICE_ERROR_NORMAL.
                ("Type", RegValue::dword(0x10)),
                ("Start", RegValue::dword(2)),
                ("ErrorControl", RegValue::dword(1)),
                (
                    "ImagePath",
                    RegValue::sz(&format!("\"{FIRSTBOOT_DIR_WIN}\\rhsrvany.exe\" -s {FIRSTBOOT_SERVICE}")),
                ),
                ("DisplayName", RegValue::sz("goldify first-boot service")),
                ("ObjectName", RegValue::sz("LocalSystem")),
            ],
        ),
        RegEdit::new(
            &parameters,
            vec![
                (
                    "CommandLine",
                    RegValue::sz(&format!("cmd /c \"{FIRSTBOOT_DIR_WIN}\\firstboot.cmd\"")),
                ),
                ("PWD", RegValue::sz(FIRSTBOOT_DIR_WIN)),
            ],
        ),
    ];
    ctx.registry_set(&hive(ctx, "SYSTEM"), &edits)
}

/// For tests: `VIRT_TOOLS_DATA_DIR` set once, for the whole test process, to a directory
/// holding a stand-in rhsrvany.exe (`MZ rhsrvany`).
#[cfg(test)]
pub(crate) fn fake_virt_tools() {
    static DIR: std::sync::OnceLock<tempfile::TempDir> = std::sync::OnceLock::new();
    DIR.get_or_init(|| {
        let d = tempfile::tempdir().expect("temp dir");
        std::fs::write(d.path().join("rhsrvany.exe"), b"MZ rhsrvany").expect("writing");
        std::env::set_var("VIRT_TOOLS_DATA_DIR", d.path());
        d
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_runner_is_windows_text() {
        let r = crlf(RUNNER);
        assert_eq!(r.matches('\n').count(), r.matches("\r\n").count(), "no bare LF");
    }
}
