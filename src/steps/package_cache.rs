//! Package manager caches: downloaded packages and indexes the clone would refetch anyway.
//! The cache directories themselves stay (some package managers do not recreate them).

use super::{Ctx, OptionDoc, Phase, Step, StepInfo};
use anyhow::Result;
use serde::{Deserialize, Serialize};

pub(crate) static INFO: StepInfo = StepInfo {
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
pub(crate) struct PackageCache {
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

#[cfg(test)]
mod tests {
    use crate::guest::memory::MemoryGuest;
    use crate::guest::{Guest, OsFacts};
    use crate::steps::testing::{apply, dry_run_matches};

    const LISTS: &str = "/var/lib/apt/lists/deb.debian.org_debian_dists_bookworm_main_binary-amd64_Packages";

    fn guest() -> MemoryGuest {
        let g = MemoryGuest::new(OsFacts::sample("debian"));
        g.file("/var/cache/apt/archives/vim_9.0_amd64.deb", &[1; 4096])
            .file("/var/cache/apt/archives/partial/curl_8.0_amd64.deb", b"half")
            .file("/var/cache/apt/archives/lock", b"")
            .file("/var/cache/apt/pkgcache.bin", b"bin")
            .file("/var/cache/dnf/baseos-1234/packages/bash.rpm", b"rpm")
            .file("/var/cache/apk/APKINDEX.tar.gz", b"idx")
            .file("/var/cache/pacman/pkg/linux.pkg.tar.zst", b"pkg")
            .file("/var/cache/man/index.db", b"keep")
            .file(LISTS, b"Package: vim\n")
            .file("/var/lib/apt/lists/lock", b"")
            .dir("/var/lib/apt/lists/partial")
            .dir("/var/lib/apt/lists/auxfiles");
        g
    }

    #[test]
    fn caches_go_their_directories_stay() {
        let g = guest();
        let report = apply(&g, "package-cache", "~").unwrap();
        assert_eq!(g.list("/var/cache/apt/archives").unwrap(), ["lock", "partial"]);
        assert!(g.list("/var/cache/apt/archives/partial").unwrap().is_empty());
        assert!(!g.exists("/var/cache/apt/pkgcache.bin"));
        for dir in ["/var/cache/dnf", "/var/cache/apk", "/var/cache/pacman/pkg"] {
            assert!(g.list(dir).unwrap().is_empty(), "{dir}");
        }
        assert_eq!(g.content("/var/cache/man/index.db").unwrap(), b"keep");
        // apt's lists go, but not the lock and directories apt expects.
        assert_eq!(g.list("/var/lib/apt/lists").unwrap(), ["auxfiles", "lock", "partial"]);
        assert!(report.freed >= 4096);
    }

    #[test]
    fn apt_lists_can_be_kept() {
        let g = guest();
        apply(&g, "package-cache", "{apt-lists: false}").unwrap();
        assert!(g.exists(LISTS));
        assert!(!g.exists("/var/cache/apt/archives/vim_9.0_amd64.deb"));
    }

    #[test]
    fn dry_run_reports_and_writes_nothing() {
        dry_run_matches(guest, "package-cache", "~");
    }
}
