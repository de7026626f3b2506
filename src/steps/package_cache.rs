//! Package manager caches: downloaded packages and indexes the clone would refetch anyway.
//! The cache directories themselves stay (some package managers do not recreate them).

use super::{Ctx, OptionDoc, Phase, Step, StepInfo};
use anyhow::Result;
use serde::{Deserialize, Serialize};

pub static INFO: StepInfo = StepInfo {
    name: "package-cache",
    summary: "empty the apt, dnf, yum, zypper, apk and pacman caches",
    families: &[],
    options: &[OptionDoc {
        name: "apt-lists",
        kind: "bool",
        default: "true",
        help: "also remove /var/lib/apt/lists (the clone needs `apt update` before installing)",
    }],
    phase: Phase::Main,
    repeatable: false,
};

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default, rename_all = "kebab-case")]
pub struct PackageCache {
    pub apt_lists: bool,
}

impl Default for PackageCache {
    fn default() -> Self {
        PackageCache { apt_lists: true }
    }
}

const CACHES: &[&str] = &[
    "/var/cache/apt/archives/*.deb",
    "/var/cache/apt/archives/partial/*",
    "/var/cache/apt/*.bin",
    "/var/cache/dnf/*",
    "/var/cache/yum/*",
    "/var/cache/zypp/*",
    "/var/cache/apk/*",
    "/var/cache/pacman/pkg/*",
];

impl Step for PackageCache {
    fn info(&self) -> &'static StepInfo {
        &INFO
    }

    fn apply(&self, ctx: &mut Ctx) -> Result<()> {
        ctx.remove_globs(CACHES)?;
        if self.apt_lists {
            for p in ctx.glob("/var/lib/apt/lists/*")? {
                // Keep the lock file and the partial/ and auxfiles/ directories apt expects.
                if p.ends_with("/lock") || p.ends_with("/partial") || p.ends_with("/auxfiles") {
                    continue;
                }
                ctx.remove(&p)?;
            }
        }
        Ok(())
    }
}
