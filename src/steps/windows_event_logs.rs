//! Windows: the old machine's event logs are cleared at the clone's first boot, by Windows.
//!
//! Why not offline: the .evtx files belong to the Event Log service, which keeps their
//! file and chunk headers (record numbers, checksums, the dirty flag) consistent while it
//! runs; Microsoft documents clearing a log through the service (`wevtutil cl`,
//! Clear-EventLog), not removing or truncating its file, and a half-valid log is reported
//! as corrupt and may be set aside. So this step adds a first-boot script (the
//! goldify-firstboot service, see windows.rs) that runs `wevtutil cl` on every log before
//! any other first-boot script, and the clone's own records start after it.

use super::{Ctx, Phase, Step, StepInfo, NO_OPTIONS};
use crate::guest::Family;
use anyhow::Result;
use serde::{Deserialize, Serialize};

pub(crate) static INFO: StepInfo = StepInfo {
    name: "windows-event-logs",
    summary: "clear every event log at the first boot (wevtutil cl), before other first-boot scripts",
    families: &[Family::Windows],
    options: NO_OPTIONS,
    phase: Phase::Main,
    repeatable: false,
};

const SCRIPT: &str = "@echo off
rem goldify windows-event-logs: the template's event logs, cleared by the Event Log service.
for /f \"tokens=*\" %%l in ('wevtutil el') do wevtutil cl \"%%l\" >nul 2>&1
exit /b 0
";

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct WindowsEventLogs {}

impl Step for WindowsEventLogs {
    fn info(&self) -> &'static StepInfo {
        &INFO
    }

    fn apply(&self, ctx: &mut Ctx) -> Result<()> {
        super::windows::add_firstboot_script(ctx, 10, "clear-event-logs", SCRIPT)
    }
}

#[cfg(test)]
mod tests {
    use crate::guest::memory::MemoryGuest;
    use crate::guest::registry::RegValue;
    use crate::guest::{Guest, OsFacts};
    use crate::steps::testing::apply;

    #[test]
    fn a_first_boot_service_clears_the_logs() {
        let mut facts = OsFacts::sample("windows");
        facts.current_control_set = "ControlSet002".into();
        let g = MemoryGuest::new(facts);
        g.file("/Windows/System32/config/SYSTEM", b"regf")
            .file("/Windows/System32/winevt/Logs/System.evtx", b"ElfFile");
        crate::steps::windows::fake_virt_tools();
        apply(&g, "windows-event-logs", "~").unwrap();
        let fb = "/Program Files/goldify/firstboot";
        let script = g.read(&format!("{fb}/scripts/0010-clear-event-logs.cmd"), 1 << 20).unwrap();
        assert!(String::from_utf8(script).unwrap().contains("wevtutil cl \"%%l\" >nul 2>&1\r\n"));
        assert_eq!(g.read(&format!("{fb}/rhsrvany.exe"), 100).unwrap(), b"MZ rhsrvany");
        assert!(g.exists(&format!("{fb}/firstboot.cmd")));
        assert_eq!(
            g.read("/Windows/System32/winevt/Logs/System.evtx", 100).unwrap(),
            b"ElfFile",
            "not touched offline"
        );
        let hive = "/Windows/System32/config/SYSTEM";
        let svc = ["ControlSet002", "Services", "goldify-firstboot"];
        let get = |k: &[&str], n| g.registry_get(hive, k, n).unwrap();
        assert_eq!(get(&svc, "Start"), Some(RegValue::dword(2)));
        assert_eq!(get(&svc, "Type"), Some(RegValue::dword(0x10)));
        assert_eq!(
            get(&svc, "ImagePath").unwrap().string().unwrap(),
            r#""C:\Program Files\goldify\firstboot\rhsrvany.exe" -s goldify-firstboot"#
        );
        let params = ["ControlSet002", "services", "GOLDIFY-FIRSTBOOT", "Parameters"];
        assert_eq!(
            get(&params, "commandline").unwrap().string().unwrap(),
            r#"cmd /c "C:\Program Files\goldify\firstboot\firstboot.cmd""#,
            "key and value names match case-insensitively"
        );
    }
}
