//! Windows: empty C:\Windows\Temp and every user profile's AppData\Local\Temp, keeping
//! the directories. Profiles are the real directories under C:\Users; junctions (`All
//! Users`, `Default User`) are links and never followed.

use super::{Ctx, Phase, Step, StepInfo, NO_OPTIONS};
use crate::guest::Family;
use anyhow::Result;
use serde::{Deserialize, Serialize};

pub(crate) static INFO: StepInfo = StepInfo {
    name: "windows-temp-files",
    summary: "empty Windows\\Temp and every profile's AppData\\Local\\Temp",
    families: &[Family::Windows],
    options: NO_OPTIONS,
    phase: Phase::Main,
    repeatable: false,
};

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct WindowsTempFiles {}

impl Step for WindowsTempFiles {
    fn info(&self) -> &'static StepInfo {
        &INFO
    }

    fn apply(&self, ctx: &mut Ctx) -> Result<()> {
        let root = super::windows::systemroot(ctx);
        ctx.empty_dir(&format!("{root}/Temp"))?;
        for p in super::windows::profiles(ctx)? {
            ctx.empty_dir(&format!("{p}/AppData/Local/Temp"))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::guest::memory::MemoryGuest;
    use crate::guest::{Guest, OsFacts};
    use crate::steps::testing::apply;

    #[test]
    fn temp_contents_go_directories_and_other_files_stay() {
        let g = MemoryGuest::new(OsFacts::sample("windows"));
        g.file("/Windows/Temp/setup.tmp", &[0; 10])
            .file("/Windows/Temp/MpCmdRun.log", &[0; 5])
            .file("/Users/alice/AppData/Local/Temp/x/y.tmp", &[0; 7])
            .file("/Users/alice/AppData/Local/keep.dat", b"k")
            .file("/Users/Default/AppData/Local/Temp/d.tmp", &[0; 3])
            .file("/Windows/System32/cmd.exe", b"MZ")
            .link("/Users/All Users", "/ProgramData");
        let r = apply(&g, "windows-temp-files", "~").unwrap();
        for d in ["/Windows/Temp", "/Users/alice/AppData/Local/Temp", "/Users/Default/AppData/Local/Temp"] {
            assert!(g.list(d).unwrap().is_empty(), "{d}");
        }
        assert!(g.exists("/Users/alice/AppData/Local/keep.dat") && g.exists("/Windows/System32/cmd.exe"));
        assert_eq!(g.readlink("/Users/All Users").unwrap(), "/ProgramData");
        assert_eq!(r.freed, 10 + 5 + 7 + 3);
    }
}
