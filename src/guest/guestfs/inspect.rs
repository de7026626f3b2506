//! The guest's OS facts once its filesystems are mounted: read from its own files by
//! [`facts::detect`], with libguestfs' own inspection's answers where that ran and the ELF
//! header read without fetching the whole binary.

use super::GuestfsGuest;
use crate::guest::facts::{self, Inspected, OsFacts};
use crate::guest::windows;

impl GuestfsGuest {
    /// OS facts from the mounted guest itself; where libguestfs' own inspection ran (the
    /// fallback), its answers fill in what the files do not say.
    pub(super) fn inspect(&self, root: &str, by_libguestfs: bool) -> OsFacts {
        let g = &self.g;
        let known = |r: std::result::Result<String, guestfs::Error>| r.ok().filter(|v| v != "unknown");
        // Windows is only ever found by libguestfs' inspection, and only it can read the
        // registry: its answers are the facts.
        if by_libguestfs && g.inspect_get_type(root).ok().as_deref() == Some("windows") {
            let inspected = windows::Inspected {
                product_name: known(g.inspect_get_product_name(root)),
                major: g.inspect_get_major_version(root).ok(),
                minor: g.inspect_get_minor_version(root).ok(),
                arch: known(g.inspect_get_arch(root)),
                hostname: known(g.inspect_get_hostname(root)),
                systemroot: known(g.inspect_get_windows_systemroot(root)),
                current_control_set: known(g.inspect_get_windows_current_control_set(root)),
            };
            return windows::facts(root, self.mounted.clone(), inspected);
        }
        let inspected = by_libguestfs.then(|| Inspected {
            distro: known(g.inspect_get_distro(root)),
            product_name: known(g.inspect_get_product_name(root)),
            arch: known(g.inspect_get_arch(root)),
            major: g.inspect_get_major_version(root).ok(),
            minor: g.inspect_get_minor_version(root).ok(),
        });
        let elf_head = |path: &str| g.pread(path, 20, 0).ok();
        facts::detect(self, root, self.mounted.clone(), inspected.as_ref(), &elf_head)
    }
}
