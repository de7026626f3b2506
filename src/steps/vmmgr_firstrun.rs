//! Windows: VMmanager's first-run setup, offline (VMmanager's guide "Preparing the OS
//! Windows template", image configuration):
//! - `C:\vmmgr\` with firstrun.cmd, firstrun.ps1 and ddwrap.cmd (CR LF), and dd.exe from
//!   the path the recipe names (goldify cannot ship it);
//! - PowerShell's execution policy RemoteSigned, in the SOFTWARE hive
//!   (`Microsoft\PowerShell\1\ShellIds\Microsoft.PowerShell`, `ExecutionPolicy`, REG_SZ);
//! - the scheduled task `vmmgr_firstrun`, at system startup, as SYSTEM (so it runs whether
//!   a user is logged on or not).
//!
//! Task Scheduler does not run a task from its XML file alone: it also keeps binary
//! records (the TaskCache keys of the SOFTWARE hive) that are not documented, so goldify
//! does not forge them. The task is registered at the first boot instead: the
//! goldify-firstboot service (windows.rs) runs `schtasks /Create /XML` with the task
//! written here, then runs firstrun.cmd itself, so the first boot needs no extra reboot.
//! Boot sequence of a clone: goldify-firstboot starts → event logs cleared (if that step
//! ran) → task registered → firstrun.cmd reads VMmanager's setup disk and runs windows.cmd
//! → the service uninstalls itself; at later boots the task runs firstrun.cmd, which finds
//! no setup disk and does nothing.

use super::{Ctx, OptionDoc, Phase, Step, StepInfo};
use crate::guest::registry::{RegEdit, RegValue};
use crate::guest::Family;
use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

pub(crate) static INFO: StepInfo = StepInfo {
    name: "vmmgr-firstrun",
    summary: "install VMmanager's first-run setup: C:\\vmmgr scripts and dd.exe, ExecutionPolicy, the vmmgr_firstrun task (registered at first boot)",
    families: &[Family::Windows],
    options: &[OptionDoc {
        name: "dd_exe",
        kind: "path",
        default: "(required)",
        help: "dd.exe for Windows on this machine (goldify cannot ship it)",
    }],
    phase: Phase::Main,
    repeatable: false,
};

const FIRSTRUN_CMD: &str = include_str!("data/vmmgr/firstrun.cmd");
const FIRSTRUN_PS1: &str = include_str!("data/vmmgr/firstrun.ps1");
const DDWRAP_CMD: &str = include_str!("data/vmmgr/ddwrap.cmd");
const TASK_XML: &str = include_str!("data/vmmgr/vmmgr_firstrun.xml");
const DD_LIMIT: u64 = 64 << 20;

const REGISTER: &str = r#"@echo off
rem goldify vmmgr-firstrun: register the vmmgr_firstrun task, then run the setup once now.
schtasks /Create /TN vmmgr_firstrun /XML "C:\vmmgr\vmmgr_firstrun.xml" /F
if errorlevel 1 exit /b 249
call C:\vmmgr\firstrun.cmd
exit /b 0
"#;

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct VmmgrFirstrun {
    #[serde(deserialize_with = "super::validate::not_blank")]
    pub dd_exe: String,
}

impl VmmgrFirstrun {
    fn dd_exe(&self) -> Result<Vec<u8>> {
        crate::hostfile::read_bounded(std::path::Path::new(&self.dd_exe), DD_LIMIT).with_context(|| {
            format!(
                "dd_exe {}: goldify cannot ship dd.exe; name a dd for Windows on this machine",
                self.dd_exe
            )
        })
    }
}

/// UTF-16LE with a byte-order mark, as Task Scheduler's own exports are.
fn utf16_bom(text: &str) -> Vec<u8> {
    [0xff, 0xfe]
        .into_iter()
        .chain(text.encode_utf16().flat_map(u16::to_le_bytes))
        .collect()
}

impl Step for VmmgrFirstrun {
    fn info(&self) -> &'static StepInfo {
        &INFO
    }

    /// dd.exe must be a regular file here before the long work (`${var}` and `extends:`
    /// applied): a missing one is a recipe error.
    fn preflight(&self) -> Result<()> {
        self.dd_exe().map(drop)
    }

    fn apply(&self, ctx: &mut Ctx) -> Result<()> {
        use super::windows::{add_firstboot_script, crlf, hive};
        let dd = self.dd_exe()?;
        ctx.mkdir_p("/vmmgr")?;
        for (name, text) in [
            ("firstrun.cmd", FIRSTRUN_CMD),
            ("firstrun.ps1", FIRSTRUN_PS1),
            ("ddwrap.cmd", DDWRAP_CMD),
        ] {
            ctx.write(&format!("/vmmgr/{name}"), crlf(text).as_bytes())?;
        }
        ctx.write("/vmmgr/dd.exe", &dd)?;
        ctx.write("/vmmgr/vmmgr_firstrun.xml", &utf16_bom(&crlf(TASK_XML)))?;
        let policy = RegEdit::new(
            &["Microsoft", "PowerShell", "1", "ShellIds", "Microsoft.PowerShell"],
            vec![("ExecutionPolicy", RegValue::sz("RemoteSigned"))],
        );
        ctx.registry_set(&hive(ctx, "SOFTWARE"), &[policy])?;
        add_firstboot_script(ctx, 50, "vmmgr-firstrun", REGISTER)
    }
}

#[cfg(test)]
mod tests {
    use crate::guest::memory::MemoryGuest;
    use crate::guest::{Guest, OsFacts};
    use crate::steps::testing::apply;

    fn guest() -> MemoryGuest {
        let g = MemoryGuest::new(OsFacts::sample("windows"));
        g.file("/Windows/System32/config/SYSTEM", b"regf")
            .file("/Windows/System32/config/SOFTWARE", b"regf");
        g
    }

    #[test]
    fn the_vmmgr_files_policy_task_and_first_boot_script() {
        crate::steps::windows::fake_virt_tools();
        let dir = tempfile::tempdir().unwrap();
        let dd = dir.path().join("dd.exe");
        std::fs::write(&dd, b"MZ dd").unwrap();
        let g = guest();
        apply(&g, "vmmgr-firstrun", &format!("{{dd_exe: {:?}}}", dd.display().to_string())).unwrap();
        let read = |p: &str| g.read(p, 1 << 20).unwrap();
        assert_eq!(read("/vmmgr/firstrun.cmd"), b"@echo off\r\npowershell.exe C:\\vmmgr\\firstrun.ps1 >NUL\r\n");
        assert_eq!(read("/vmmgr/ddwrap.cmd"), b"@echo off\r\nC:\\vmmgr\\dd.exe --list 2>&1\r\n");
        let ps1 = String::from_utf8(read("/vmmgr/firstrun.ps1")).unwrap();
        assert!(ps1.contains("\"size is 1048576 bytes\"") && !ps1.replace("\r\n", "").contains('\n'));
        assert_eq!(read("/vmmgr/dd.exe"), b"MZ dd");
        let xml = read("/vmmgr/vmmgr_firstrun.xml");
        assert_eq!(&xml[..2], [0xff, 0xfe], "UTF-16LE with BOM");
        let units: Vec<u16> = xml[2..].chunks(2).map(|c| u16::from_le_bytes([c[0], c[1]])).collect();
        let text = String::from_utf16(&units).unwrap();
        let doc = roxmltree::Document::parse(&text).unwrap();
        let find = |n: &str| doc.descendants().find(|d| d.has_tag_name(n)).and_then(|d| d.text()).unwrap();
        assert_eq!(find("Command"), r"C:\vmmgr\firstrun.cmd");
        assert_eq!(find("UserId"), "S-1-5-18", "SYSTEM: runs whether a user is logged on or not");
        assert!(doc.descendants().any(|d| d.has_tag_name("BootTrigger")));
        let policy = g
            .registry_get(
                "/Windows/System32/config/SOFTWARE",
                &["Microsoft", "PowerShell", "1", "ShellIds", "Microsoft.PowerShell"],
                "ExecutionPolicy",
            )
            .unwrap()
            .unwrap();
        assert_eq!((policy.kind, policy.string().unwrap().as_str()), (1, "RemoteSigned"));
        let reg = String::from_utf8(read("/Program Files/goldify/firstboot/scripts/0050-vmmgr-firstrun.cmd")).unwrap();
        assert!(reg.contains(r#"schtasks /Create /TN vmmgr_firstrun /XML "C:\vmmgr\vmmgr_firstrun.xml" /F"#));
    }

    #[test]
    fn a_missing_dd_exe_is_a_clear_error_and_nothing_is_written() {
        let g = guest();
        let e = apply(&g, "vmmgr-firstrun", "{dd_exe: /nonexistent/dd.exe}").unwrap_err();
        let msg = format!("{e:#}");
        assert!(msg.contains("dd_exe /nonexistent/dd.exe") && msg.contains("cannot ship"), "{msg}");
        let e = apply(&g, "vmmgr-firstrun", "{dd_exe: /dev/null}").unwrap_err();
        assert!(format!("{e:#}").contains("not a regular file"), "{e:#}");
        assert!(!g.exists("/vmmgr"));
        let e = crate::steps::testing::apply(&g, "vmmgr-firstrun", "~").unwrap_err();
        assert!(format!("{e:#}").contains("dd_exe"), "{e:#}");
    }
}
