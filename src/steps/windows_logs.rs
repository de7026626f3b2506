//! Windows: the logs setup and servicing leave (C:\Windows\Panther, Logs\CBS, Logs\DISM,
//! the setupapi logs in INF) and crash dumps (MEMORY.DMP, Minidump, Windows Error
//! Reporting's queued and archived reports), directories kept. Event logs are another
//! step's (windows-event-logs).

use super::{Ctx, Phase, Step, StepInfo, NO_OPTIONS};
use crate::guest::Family;
use anyhow::Result;
use serde::{Deserialize, Serialize};

pub(crate) static INFO: StepInfo = StepInfo {
    name: "windows-logs",
    summary: "empty setup logs (Panther, CBS, DISM, setupapi) and crash dumps",
    families: &[Family::Windows],
    options: NO_OPTIONS,
    phase: Phase::Main,
    repeatable: false,
};

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct WindowsLogs {}

impl Step for WindowsLogs {
    fn info(&self) -> &'static StepInfo {
        &INFO
    }

    fn apply(&self, ctx: &mut Ctx) -> Result<()> {
        let root = super::windows::systemroot(ctx);
        for d in ["Panther", "Logs/CBS", "Logs/DISM", "Minidump"] {
            ctx.empty_dir(&format!("{root}/{d}"))?;
        }
        for d in ["ReportArchive", "ReportQueue"] {
            ctx.empty_dir(&format!("/ProgramData/Microsoft/Windows/WER/{d}"))?;
        }
        ctx.remove_globs(&[&format!("{root}/INF/setupapi*.log"), &format!("{root}/MEMORY.DMP")])?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::guest::memory::MemoryGuest;
    use crate::guest::{Guest, OsFacts};
    use crate::steps::testing::apply;

    #[test]
    fn setup_logs_and_dumps_go() {
        let g = MemoryGuest::new(OsFacts::sample("windows"));
        g.file("/Windows/Panther/setupact.log", &[0; 10])
            .file("/Windows/Logs/CBS/CBS.log", &[0; 10])
            .file("/Windows/Logs/DISM/dism.log", &[0; 10])
            .file("/Windows/INF/setupapi.dev.log", &[0; 10])
            .file("/Windows/INF/machine.inf", b"keep")
            .file("/Windows/MEMORY.DMP", &[0; 1000])
            .file("/Windows/Minidump/113024-1.dmp", &[0; 100])
            .file("/ProgramData/Microsoft/Windows/WER/ReportQueue/r1/Report.wer", &[0; 10]);
        let r = apply(&g, "windows-logs", "~").unwrap();
        assert!(!g.exists("/Windows/MEMORY.DMP") && !g.exists("/Windows/INF/setupapi.dev.log"));
        assert!(g.exists("/Windows/INF/machine.inf") && g.exists("/Windows/Panther"));
        assert!(g.list("/Windows/Minidump").unwrap().is_empty());
        assert_eq!(r.freed, 10 * 5 + 1000 + 100);
    }
}
