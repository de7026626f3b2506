//! What a Windows guest needs of the libguestfs guest: its paths resolved without regard
//! to case, and an NTFS volume that is really writable before any step runs.
//!
//! NTFS names are case-insensitive for Windows, but ntfs-3g compares them exactly, so a
//! step's `/Windows/Temp` must be matched to the guest's `/WINDOWS/TEMP`: libguestfs'
//! `case_sensitive_path` does that, one directory listing per component (it `chdir`s
//! through the components inside the appliance's chroot of the guest, and every path it
//! returns is then checked component by component like any other, so a junction still
//! cannot lead a step out).
//!
//! Hibernation: ntfs-3g will not mount read-write a volume whose hiberfil.sys starts
//! with a hibernation signature (Windows hibernated, or shut down with Fast Startup,
//! which is a hibernation of the kernel session): it falls back to a read-only mount
//! without failing (libntfs-3g volume.c, `ntfs_volume_check_hiberfile`, and the
//! `NTFS_MNT_MAY_RDONLY` fallback in `ntfs_mount`). Writing there would corrupt what
//! Windows restores on its next boot anyway. Its `remove_hiberfile` mount option deletes
//! hiberfil.sys instead, losing the saved session: goldify does that only when asked
//! (`--remove-hiberfile`) and says so in the report.

use super::GuestfsGuest;
use crate::error::Exit;
use crate::guest::api::Api;
use anyhow::{Context, Result};
use std::borrow::Cow;

/// `statvfs` `f_flag` bit of a read-only mount.
const ST_RDONLY: i64 = 1;

impl GuestfsGuest {
    /// `path` as the guest spells it: on a Windows guest the existing components matched
    /// without regard to case (a missing last component is kept as given); as it is
    /// otherwise, or when a directory on the way does not exist.
    pub(super) fn native<'a>(&self, path: &'a str) -> Cow<'a, str> {
        if !self.case_insensitive || path == "/" || !path.starts_with('/') {
            return Cow::Borrowed(path);
        }
        match self.g.case_sensitive_path(path) {
            Ok(p) => Cow::Owned(p),
            Err(_) => Cow::Borrowed(path),
        }
    }

    /// The NTFS filesystems mounted for this run, as (mountpoint, device).
    fn ntfs_mounts(&self) -> Result<Vec<(String, String)>> {
        let table = self.fs_table()?;
        Ok(self
            .mounted
            .iter()
            .filter(|(_, dev)| table.iter().any(|(d, t)| d == dev && t == "ntfs"))
            .cloned()
            .collect())
    }

    /// hiberfil.sys at the root of the volume mounted on `mp` starts with a signature of a
    /// saved session (what ntfs-3g checks: "hibr", or "HIBR" and "wake" of later Windows).
    fn hibernated(&self, mp: &str) -> bool {
        use crate::guest::{Guest, Kind};
        let path = format!("{}/hiberfil.sys", mp.trim_end_matches('/'));
        let path = self.native(&path).into_owned();
        if !matches!(self.lstat(&path), Ok(Some(m)) if m.kind == Kind::File) {
            return false;
        }
        self.g
            .pread(&path, 4, 0)
            .is_ok_and(|b| matches!(&b[..], b"hibr" | b"HIBR" | b"wake" | b"WAKE"))
    }

    fn mounted_read_only(&self, mountpoint: &str) -> Result<bool> {
        let st = self
            .g
            .statvfs(mountpoint)
            .api()
            .with_context(|| format!("asking whether {mountpoint} is writable"))?;
        Ok(st.flag & ST_RDONLY != 0)
    }

    /// Before any step runs: every NTFS filesystem mounted for writing really is writable.
    /// One that ntfs-3g mounted read-only because Windows is hibernated is refused, or,
    /// with `remove_hiberfile`, mounted again with ntfs-3g's `remove_hiberfile` (the saved
    /// session is lost; the returned notices say so). The caller names the disk.
    pub(super) fn ensure_ntfs_writable(&mut self, remove_hiberfile: bool) -> Result<Vec<String>> {
        let mut notices = Vec::new();
        if self.readonly {
            // Every mount is read-only here: tell from hiberfil.sys what a real run would do.
            for (mp, dev) in self.ntfs_mounts()? {
                if self.hibernated(&mp) {
                    notices.push(if remove_hiberfile {
                        format!(
                            "{dev}: Windows is hibernated; a real run discards the saved session (--remove-hiberfile)"
                        )
                    } else {
                        format!("{dev}: Windows is hibernated; a real run refuses this disk unless --remove-hiberfile")
                    });
                }
            }
            return Ok(notices);
        }
        for (mp, dev) in self.ntfs_mounts()? {
            if !self.mounted_read_only(&mp)? {
                continue;
            }
            if !remove_hiberfile {
                crate::bail_tag!(
                    Exit::Input,
                    "the Windows volume {dev} is hibernated (hiberfil.sys holds a saved session: Windows was \
                     hibernated or shut down with Fast Startup), so ntfs-3g mounts it read-only; shut Windows down \
                     fully (shutdown /s /t 0), or pass --remove-hiberfile to discard the saved session"
                );
            }
            self.remount_removing_hiberfile(&mp, &dev)?;
            if self.mounted_read_only(&mp)? {
                crate::bail_tag!(
                    Exit::Input,
                    "the Windows volume {dev} stays read-only even with --remove-hiberfile"
                );
            }
            notices.push(format!(
                "{dev}: Windows was hibernated; the saved session (hiberfil.sys) was discarded (--remove-hiberfile)"
            ));
        }
        Ok(notices)
    }

    /// Unmount `mp` (and what is mounted below it) and mount it and them again, `mp` with
    /// ntfs-3g's `remove_hiberfile`.
    fn remount_removing_hiberfile(&mut self, mp: &str, dev: &str) -> Result<()> {
        let below = |m: &str| m == mp || mp == "/" || m.starts_with(&format!("{mp}/"));
        let again: Vec<(String, String)> = self.mounted.iter().filter(|(m, _)| below(m)).cloned().collect();
        // Children first.
        for (m, _) in again.iter().rev() {
            self.g
                .umount(
                    m,
                    guestfs::UmountOptArgs {
                        force: None,
                        lazyunmount: None,
                    },
                )
                .api()
                .with_context(|| format!("unmounting {m}"))?;
        }
        self.mounted.retain(|(m, _)| !below(m));
        self.forget_all();
        for (m, d) in again {
            let r = if d == dev {
                self.g.mount_options("remove_hiberfile", &d, &m)
            } else {
                self.g.mount(&d, &m)
            };
            r.api().with_context(|| format!("mounting {d} on {m}"))?;
            self.mounted.push((m, d));
        }
        self.forget_all();
        Ok(())
    }
}
