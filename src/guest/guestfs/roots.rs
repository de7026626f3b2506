//! Finding the guest's one root filesystem and mounting what its fstab lists: a quick
//! probe of each candidate filesystem, libguestfs' full inspection as the fallback.

use super::GuestfsGuest;
use crate::guest::api::Api;
use crate::guest::{Filesystem, Guest, Kind};
use anyhow::{Context, Result};
use std::path::Path;

/// Mountpoint → device.
type Mountpoints = Vec<(String, String)>;

fn several<T>(disk: &Path, roots: &[String]) -> Result<T> {
    use crate::error::Exit;
    crate::bail_tag!(
        Exit::Input,
        "{} holds several operating systems ({}); goldify cleans one at a time",
        disk.display(),
        roots.join(", ")
    )
}

impl GuestfsGuest {
    /// The one root filesystem on `disk` and its mountpoints (mountpoint → device): the
    /// quick probe first, libguestfs' full inspection when the probe finds none. The flag
    /// says whether libguestfs' inspection ran.
    pub(super) fn find_root(&self, disk: &Path) -> Result<(String, Mountpoints, bool)> {
        use crate::error::{Exit, Tag};
        let guest = self;
        let roots = guest
            .probe_roots()
            .context("looking for the guest's root filesystem")
            .tag(Exit::Input)?;
        let (root, mountpoints, by_libguestfs) = match roots.as_slice() {
            [(root, fstab)] => {
                let mps = guest.fstab_mountpoints(root, fstab).tag(Exit::Input)?;
                (root.clone(), mps, false)
            }
            [] => {
                // Layouts the quick probe does not know (a root in a btrfs subvolume, /etc on
                // its own filesystem…): libguestfs' full inspection.
                let roots = guest
                    .g
                    .inspect_os()
                    .api()
                    .context("inspecting the disk")
                    .tag(Exit::Input)?;
                match roots.as_slice() {
                    [root] => {
                        let mps = guest
                            .g
                            .inspect_get_mountpoints(root)
                            .api()
                            .context("reading the guest's mountpoints")
                            .tag(Exit::Input)?;
                        (root.clone(), mps.into_iter().collect(), true)
                    }
                    [] => {
                        let fs = guest.fs_table().unwrap_or_default();
                        if fs.iter().any(|(_, t)| t == "crypto_LUKS") {
                            crate::bail_tag!(
                                Exit::Input,
                                "{} is encrypted (LUKS); goldify needs an unencrypted disk",
                                disk.display()
                            );
                        }
                        crate::bail_tag!(Exit::Input, "no operating system found on {}", disk.display());
                    }
                    many => several(disk, many)?,
                }
            }
            many => several(disk, &many.iter().map(|(d, _)| d.clone()).collect::<Vec<_>>())?,
        };
        Ok((root, mountpoints, by_libguestfs))
    }

    /// Filesystems that look like a Linux root (an /etc with an os-release or a release
    /// file), found by mounting each candidate read-only in turn. Much cheaper than
    /// libguestfs' inspection (no Augeas, no package database), which stays the fallback.
    /// Returns each root with its /etc/fstab, read while it is mounted.
    fn probe_roots(&self) -> Result<Vec<(String, Vec<u8>)>> {
        const ROOT_FS: [&str; 8] = ["ext2", "ext3", "ext4", "xfs", "btrfs", "f2fs", "jfs", "reiserfs"];
        const MARKERS: [&str; 6] = [
            "/etc/os-release",
            "/etc/debian_version",
            "/etc/redhat-release",
            "/etc/alpine-release",
            "/etc/SuSE-release",
            "/etc/arch-release",
        ];
        let mut roots = Vec::new();
        for (dev, fstype) in self.fs_table()? {
            if !ROOT_FS.contains(&fstype.as_str()) || self.g.mount_ro(&dev, "/").is_err() {
                continue;
            }
            let found = matches!(self.lstat("/etc"), Ok(Some(m)) if m.kind == Kind::Dir)
                && MARKERS.iter().any(|m| matches!(self.lstat(m), Ok(Some(_))));
            let fstab = match self.lstat("/etc/fstab") {
                Ok(Some(m)) if found && m.kind == Kind::File => {
                    self.read("/etc/fstab", crate::steps::READ_LIMIT).unwrap_or_default()
                }
                _ => Vec::new(),
            };
            self.g.umount_all().api().context("unmounting after the probe")?;
            self.forget_all();
            if found {
                roots.push((dev, fstab));
            }
        }
        Ok(roots)
    }

    /// Mountpoint → device from the root filesystem's /etc/fstab, each device name resolved
    /// to the appliance's (UUID=, LABEL=, PARTUUID=, PARTLABEL=, /dev/disk/by-*, /dev/sdXN
    /// and friends, LVM names). Entries that resolve to nothing are skipped with a warning.
    fn fstab_mountpoints(&self, root: &str, fstab: &[u8]) -> Result<Vec<(String, String)>> {
        let mut filesystems: Option<Vec<Filesystem>> = None;
        let mut mps = vec![("/".to_string(), root.to_string())];
        for line in String::from_utf8_lossy(fstab).lines() {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() < 3 || f[0].starts_with('#') || !f[1].starts_with('/') || f[1] == "/" {
                continue;
            }
            if [
                "swap", "proc", "sysfs", "tmpfs", "devpts", "devtmpfs", "nfs", "nfs4", "cifs", "none", "auto",
            ]
            .contains(&f[2])
                || f.get(3)
                    .is_some_and(|o| o.split(',').any(|o| o == "bind" || o == "noauto"))
            {
                continue;
            }
            if filesystems.is_none() {
                filesystems = Some(self.filesystems()?);
            }
            match self.resolve_spec(f[0], filesystems.as_deref().unwrap_or_default()) {
                Some(dev) => mps.push((f[1].to_string(), dev)),
                None => tracing::warn!("fstab entry {} for {}: no such filesystem on this disk", f[0], f[1]),
            }
        }
        Ok(mps)
    }

    fn resolve_spec(&self, spec: &str, filesystems: &[Filesystem]) -> Option<String> {
        let unquote = |v: &str| v.trim_matches('"').to_string();
        let by = |prefixes: [&str; 2]| prefixes.iter().find_map(|p| spec.strip_prefix(p)).map(unquote);
        if let Some(uuid) = by(["UUID=", "/dev/disk/by-uuid/"]) {
            return filesystems
                .iter()
                .find(|f| f.uuid.as_deref().is_some_and(|u| u.eq_ignore_ascii_case(&uuid)))
                .map(|f| f.device.clone());
        }
        if let Some(label) = by(["LABEL=", "/dev/disk/by-label/"]) {
            return filesystems
                .iter()
                .find(|f| f.label.as_deref() == Some(label.as_str()))
                .map(|f| f.device.clone());
        }
        for (prefixes, key) in [
            (["PARTUUID=", "/dev/disk/by-partuuid/"], "PART_ENTRY_UUID"),
            (["PARTLABEL=", "/dev/disk/by-partlabel/"], "PART_ENTRY_NAME"),
        ] {
            if let Some(want) = by(prefixes) {
                return filesystems
                    .iter()
                    .find(|f| {
                        self.g
                            .blkid(&f.device)
                            .ok()
                            .and_then(|b| b.get(key).cloned())
                            .is_some_and(|v| v.eq_ignore_ascii_case(&want))
                    })
                    .map(|f| f.device.clone());
            }
        }
        self.resolve_device(spec).ok().flatten().map(|f| f.device)
    }

    pub(super) fn mount_all(&mut self, mut mps: Vec<(String, String)>) -> Result<()> {
        // Parents before children: "/" before "/boot" before "/boot/efi".
        mps.sort_by(|a, b| a.0.len().cmp(&b.0.len()).then(a.0.cmp(&b.0)));
        for (mp, dev) in mps {
            if mp != "/" {
                // A mountpoint path that runs through a guest symlink would be resolved in the
                // appliance: skip it rather than mount over the appliance's own tree.
                match self.lstat(&mp) {
                    Ok(Some(m)) if m.kind == Kind::Dir => {}
                    Ok(_) => {
                        tracing::warn!("not mounting {dev} on {mp}: {mp} is not a directory in the guest");
                        continue;
                    }
                    Err(e) => {
                        tracing::warn!("not mounting {dev} on {mp}: {e:#}");
                        continue;
                    }
                }
            }
            let r = if self.readonly {
                self.g.mount_ro(&dev, &mp)
            } else {
                self.g.mount(&dev, &mp)
            };
            self.forget_all();
            match r.api() {
                Ok(()) => self.mounted.push((mp, dev)),
                Err(e) if mp == "/" => return Err(e).with_context(|| format!("mounting {dev} on /")),
                Err(e) => tracing::warn!("not mounting {dev} on {mp}: {e:#}"),
            }
        }
        Ok(())
    }
}
