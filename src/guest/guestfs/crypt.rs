//! Encrypted (LUKS) devices: opened with the user's keys before anything looks for the
//! guest's root, as the virt tools' `--key` does (libguestfs-common options/decrypt.c:
//! open each LUKS device, then activate the volume groups found inside), wherever the
//! LUKS header is: on a partition, or on a logical volume. Writes go through the
//! mapping, so the golden disk stays encrypted with the same key.

use super::GuestfsGuest;
use crate::error::Exit;
use crate::guest::api::Api;
use crate::guest::keys::Key;
use anyhow::{Context, Result};

impl GuestfsGuest {
    /// Open every LUKS device with its key, activating the LVM volumes inside, until no
    /// new one appears (LUKS inside LVM inside LUKS…). A device without a key, a wrong
    /// key and a key for no encrypted device are errors (exit 3) naming the device.
    pub(super) fn open_encrypted(&self, keys: &[Key]) -> Result<()> {
        let mut opened: Vec<String> = Vec::new();
        let mut used = vec![false; keys.len()];
        loop {
            let mut missing = Vec::new();
            let mut new = false;
            for dev in self.luks_devices(!opened.is_empty())? {
                if opened.contains(&dev) {
                    continue;
                }
                let Some(i) = self.key_for(&dev, keys) else {
                    missing.push(dev);
                    continue;
                };
                used[i] = true;
                let map = format!("luks-{}", dev.trim_start_matches("/dev/").replace('/', "-"));
                let r = if self.readonly {
                    self.g.luks_open_ro(&dev, &keys[i].passphrase, &map)
                } else {
                    self.g.luks_open(&dev, &keys[i].passphrase, &map)
                };
                if r.is_err() {
                    crate::bail_tag!(
                        Exit::Input,
                        "{dev} is encrypted (LUKS) and the key given for it (--key {}:…) does not open it",
                        keys[i].selector
                    );
                }
                tracing::info!("opened encrypted {dev} as /dev/mapper/{map}");
                opened.push(dev);
                new = true;
            }
            if !missing.is_empty() {
                crate::bail_tag!(
                    Exit::Input,
                    "{} {} encrypted (LUKS); give {} key with --key DEVICE:file:PATH or --key DEVICE:env:VAR",
                    missing.join(", "),
                    if missing.len() == 1 { "is" } else { "are" },
                    if missing.len() == 1 { "its" } else { "each one's" }
                );
            }
            if !new {
                break;
            }
            // What the opened devices hold: volume groups to activate, filesystems to
            // list again (with libguestfs' full scan: the plain one sees partitions only).
            self.g
                .vg_activate_all(true)
                .api()
                .context("activating the volume groups inside the encrypted devices")?;
            let mut t: Vec<(String, String)> = self
                .g
                .list_filesystems()
                .api()
                .context("listing filesystems")?
                .into_iter()
                .collect();
            t.sort();
            *self.fs_table.borrow_mut() = Some(t);
            self.fs_ids.borrow_mut().clear();
        }
        if let Some((k, _)) = keys.iter().zip(&used).find(|(_, u)| !**u) {
            crate::bail_tag!(
                Exit::Input,
                "--key {}: no encrypted (LUKS) device of that name or UUID on this disk",
                k.selector
            );
        }
        Ok(())
    }

    /// Every LUKS device: partitions, whole disks, logical volumes, RAID arrays and the
    /// mappings already opened. libguestfs' `list_filesystems` leaves them out
    /// (daemon/listfs.ml check_with_vfs_type: "Ignore encrypted partitions").
    /// The LVM and md tools run only where a member of theirs is (each costs a second or
    /// more under TCG), device-mapper only once something is opened.
    fn luks_devices(&self, opened_any: bool) -> Result<Vec<String>> {
        let g = &self.g;
        let mut devices = g.list_partitions().api().context("listing partitions")?;
        devices.extend(g.list_devices().api().context("listing devices")?);
        let typed = |devices: Vec<String>| -> Vec<(String, String)> {
            devices
                .into_iter()
                .map(|d| {
                    let t = g.vfs_type(&d).unwrap_or_default();
                    (d, t)
                })
                .collect()
        };
        let mut all = typed(devices);
        let mut more = Vec::new();
        if all.iter().any(|(_, t)| t == "LVM2_member") || opened_any {
            more.extend(g.lvs().unwrap_or_default());
        }
        if all.iter().any(|(_, t)| t == "linux_raid_member") {
            more.extend(g.list_md_devices().unwrap_or_default());
        }
        if opened_any {
            more.extend(g.list_dm_devices().unwrap_or_default());
        }
        all.extend(typed(more));
        let mut luks: Vec<String> = all
            .into_iter()
            .filter(|(_, t)| t == "crypto_LUKS")
            .map(|(d, _)| d)
            .collect();
        luks.sort();
        luks.dedup();
        Ok(luks)
    }

    /// The key whose selector names `dev` (as the appliance names it, or through
    /// another name of the same device) or its LUKS UUID.
    fn key_for(&self, dev: &str, keys: &[Key]) -> Option<usize> {
        let canon = |d: &str| self.g.canonical_device_name(d).unwrap_or_else(|_| d.to_string());
        let dev_canon = canon(dev);
        let uuid = self.g.vfs_uuid(dev).ok().filter(|u| !u.is_empty());
        keys.iter().position(|k| {
            k.selector == dev
                || canon(&k.selector) == dev_canon
                || uuid.as_deref().is_some_and(|u| u.eq_ignore_ascii_case(&k.selector))
        })
    }
}
