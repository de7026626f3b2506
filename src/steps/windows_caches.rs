//! Windows: empty C:\Windows\SoftwareDistribution\Download (updates already installed or
//! to be fetched again) and C:\Windows\Prefetch (the old machine's launch traces, which
//! Windows rebuilds), keeping the directories.

use super::{Ctx, Phase, Step, StepInfo, NO_OPTIONS};
use crate::guest::Family;
use anyhow::Result;
use serde::{Deserialize, Serialize};

pub(crate) static INFO: StepInfo = StepInfo {
    name: "windows-caches",
    summary: "empty Windows Update's download cache and Prefetch",
    families: &[Family::Windows],
    options: NO_OPTIONS,
    phase: Phase::Main,
    repeatable: false,
};

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct WindowsCaches {}

impl Step for WindowsCaches {
    fn info(&self) -> &'static StepInfo {
        &INFO
    }

    fn apply(&self, ctx: &mut Ctx) -> Result<()> {
        let root = super::windows::systemroot(ctx);
        ctx.empty_dir(&format!("{root}/SoftwareDistribution/Download"))?;
        ctx.empty_dir(&format!("{root}/Prefetch"))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::guest::memory::MemoryGuest;
    use crate::guest::{Guest, OsFacts};
    use crate::steps::testing::apply;

    #[test]
    fn download_cache_and_prefetch_are_emptied() {
        let g = MemoryGuest::new(OsFacts::sample("windows"));
        g.file("/Windows/SoftwareDistribution/Download/abc/update.cab", &[0; 100])
            .file("/Windows/SoftwareDistribution/DataStore/DataStore.edb", b"keep")
            .file("/Windows/Prefetch/CMD.EXE-1234.pf", &[0; 20]);
        let r = apply(&g, "windows-caches", "~").unwrap();
        assert!(g.list("/Windows/SoftwareDistribution/Download").unwrap().is_empty());
        assert!(g.list("/Windows/Prefetch").unwrap().is_empty());
        assert!(g.exists("/Windows/SoftwareDistribution/DataStore/DataStore.edb"));
        assert_eq!(r.freed, 120);
    }
}
