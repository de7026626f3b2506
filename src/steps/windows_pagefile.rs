//! Windows: remove pagefile.sys, swapfile.sys and hiberfil.sys from the system volume.
//! Windows creates the paging files again at boot as its settings say; the hibernation
//! file only holds a session (a hibernated one is refused before any step runs, unless
//! `--remove-hiberfile` discarded it).

use super::{Ctx, Phase, Step, StepInfo, NO_OPTIONS};
use crate::guest::Family;
use anyhow::Result;
use serde::{Deserialize, Serialize};

pub(crate) static INFO: StepInfo = StepInfo {
    name: "windows-pagefile",
    summary: "remove pagefile.sys, swapfile.sys and hiberfil.sys",
    families: &[Family::Windows],
    options: NO_OPTIONS,
    phase: Phase::Main,
    repeatable: false,
};

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct WindowsPagefile {}

impl Step for WindowsPagefile {
    fn info(&self) -> &'static StepInfo {
        &INFO
    }

    fn apply(&self, ctx: &mut Ctx) -> Result<()> {
        for f in ["/pagefile.sys", "/swapfile.sys", "/hiberfil.sys"] {
            match ctx.lstat(f)? {
                Some(m) if m.kind == crate::guest::Kind::File => {
                    ctx.remove(f)?;
                }
                Some(_) => ctx.warn(format!("{f} is not a regular file; left alone")),
                None => {}
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::guest::memory::MemoryGuest;
    use crate::guest::OsFacts;
    use crate::steps::testing::apply;

    #[test]
    fn paging_files_go_a_directory_so_named_stays() {
        let g = MemoryGuest::new(OsFacts::sample("windows"));
        g.file("/pagefile.sys", &[1; 4096])
            .file("/swapfile.sys", &[2; 100])
            .file("/Windows/notepad.exe", b"MZ")
            .dir("/hiberfil.sys");
        let r = apply(&g, "windows-pagefile", "~").unwrap();
        assert!(!g.exists("/pagefile.sys") && !g.exists("/swapfile.sys"));
        assert!(g.exists("/hiberfil.sys") && g.exists("/Windows/notepad.exe"));
        assert_eq!(r.freed, 4096 + 100);
        assert_eq!(r.warnings.len(), 1, "{:?}", r.warnings);
    }
}
