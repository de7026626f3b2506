//! Windows: empty C:\$Recycle.Bin (one folder per user SID, recreated by Explorer as
//! needed), keeping the directory.

use super::{Ctx, Phase, Step, StepInfo, NO_OPTIONS};
use crate::guest::Family;
use anyhow::Result;
use serde::{Deserialize, Serialize};

pub(crate) static INFO: StepInfo = StepInfo {
    name: "windows-recycle-bin",
    summary: "empty the Recycle Bin of every user",
    families: &[Family::Windows],
    options: NO_OPTIONS,
    phase: Phase::Main,
    repeatable: false,
};

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct WindowsRecycleBin {}

impl Step for WindowsRecycleBin {
    fn info(&self) -> &'static StepInfo {
        &INFO
    }

    fn apply(&self, ctx: &mut Ctx) -> Result<()> {
        ctx.empty_dir("/$Recycle.Bin")?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::guest::memory::MemoryGuest;
    use crate::guest::{Guest, OsFacts};
    use crate::steps::testing::apply;

    #[test]
    fn the_recycle_bin_is_emptied() {
        let g = MemoryGuest::new(OsFacts::sample("windows"));
        g.file("/$Recycle.Bin/S-1-5-21-1-2-3-1001/$RABC.docx", &[0; 50])
            .file("/$Recycle.Bin/S-1-5-21-1-2-3-1001/$IABC.docx", &[0; 5]);
        let r = apply(&g, "windows-recycle-bin", "~").unwrap();
        assert!(g.list("/$Recycle.Bin").unwrap().is_empty());
        assert_eq!(r.freed, 55);
    }
}
