//! Finding the guest's one root filesystem and mounting what its fstab lists: a quick
//! probe of each candidate filesystem, libguestfs' full inspection as the fallback.

use super::GuestfsGuest;
use crate::guest::api::Api;
use crate::guest::keys::Key;
use crate::guest::{Filesystem, Guest, Kind};
use anyhow::{Context, Result};

fn several<T>(disk: &str, roots: &[String]) -> Result<T> {
    use crate::error::Exit;
    crate::bail_tag!(
        Exit::Input,
        "{disk} holds several operating systems ({}); goldify cleans one at a time",
        roots.join(", ")
    )
}

impl GuestfsGuest {
    /// The one root filesystem on the disks and its mountpoints (mountpoint → device): the
    /// quick probe first, libguestfs' full inspection when the probe finds none. The flag
    /// says whether libguestfs' inspection ran.
    pub(super) fn find_root(&self, keys: &[Key]) -> Result<(String, Vec<Planned>, bool)> {
        use crate::error::{Exit, Tag};
        let guest = self;
        let disk = self.shown.as_str();
        guest.open_encrypted(keys)?;
        let roots = guest
            .probe_roots()
            .context("looking for the guest's root filesystem")
            .tag(Exit::Input)?;
        let (root, mountpoints, by_libguestfs) = match roots.as_slice() {
            [c] if c.coreos => {
                // libguestfs' CoreOS rules (daemon/inspect.ml
                // collect_coreos_inspection_info): no fstab; "/" and the CoreOS /usr
                // partition, the one with the highest version when there are two (USR-A,
                // USR-B: the passive one is older or empty).
                let mut mps = vec![Planned::new("/", &c.device)];
                if let Some(usr) = guest.coreos_usr(&c.device)? {
                    mps.push(Planned::new("/usr", &usr));
                }
                (c.device.clone(), mps, false)
            }
            [c] => {
                let mps = guest.fstab_mountpoints(&c.device, &c.fstab).tag(Exit::Input)?;
                (c.device.clone(), mps, false)
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
                        let mps = mps.into_iter().map(|(mp, dev)| Planned::new(&mp, &dev)).collect();
                        (root.clone(), mps, true)
                    }
                    [] => match guest.members_hint() {
                        Some(hint) => crate::bail_tag!(Exit::Input, "no operating system found on {disk}: {hint}"),
                        None => crate::bail_tag!(Exit::Input, "no operating system found on {disk}"),
                    },
                    many => several(disk, many)?,
                }
            }
            many => several(disk, &many.iter().map(|c| c.device.clone()).collect::<Vec<_>>())?,
        };
        Ok((root, mountpoints, by_libguestfs))
    }

    /// Filesystems that look like a Linux root (an /etc with an os-release or a release
    /// file, or a CoreOS root), found by mounting each candidate read-only in turn. Much
    /// cheaper than libguestfs' inspection (no Augeas, no package database), which stays
    /// the fallback. Returns each root with its /etc/fstab, read while it is mounted.
    fn probe_roots(&self) -> Result<Vec<Candidate>> {
        const MARKERS: [&str; 9] = [
            "/etc/os-release",
            "/etc/lsb-release",
            "/etc/debian_version",
            "/etc/redhat-release",
            "/etc/fedora-release",
            "/etc/alpine-release",
            "/etc/SuSE-release",
            "/etc/arch-release",
            "/etc/gentoo-release",
        ];
        let mut roots = Vec::new();
        for (dev, fstype) in self.fs_table()? {
            if !ROOT_FS.contains(&fstype.as_str()) || self.g.mount_ro(&dev, "/").is_err() {
                continue;
            }
            let dir = |p: &str| matches!(self.lstat(p), Ok(Some(m)) if m.kind == Kind::Dir);
            let file = |p: &str| matches!(self.lstat(p), Ok(Some(m)) if m.kind == Kind::File);
            let found = dir("/etc") && MARKERS.iter().any(|m| matches!(self.lstat(m), Ok(Some(_))));
            // libguestfs' "CoreOS root" (daemon/inspect_fs.ml check_filesystem): its
            // /etc/os-release is a link into the /usr partition, and it has no fstab.
            let coreos = ["/etc", "/root", "/home", "/usr"].iter().all(|d| dir(d))
                && file("/etc/coreos/update.conf")
                && !file("/etc/fstab");
            let fstab = if found && file("/etc/fstab") {
                self.read("/etc/fstab", crate::steps::READ_LIMIT).unwrap_or_default()
            } else {
                Vec::new()
            };
            self.g.umount_all().api().context("unmounting after the probe")?;
            self.forget_all();
            if found || coreos {
                roots.push(Candidate {
                    device: dev,
                    fstab,
                    coreos,
                });
            }
        }
        Ok(roots)
    }

    /// The CoreOS /usr partition beside `root` (libguestfs' "CoreOS /usr": /bin, /share,
    /// /local and /share/coreos; check_coreos_usr reads its version from
    /// /lib/os-release); the highest version when there are several.
    fn coreos_usr(&self, root: &str) -> Result<Option<String>> {
        let mut best: Option<((i32, i32, i32), String)> = None;
        for (dev, fstype) in self.fs_table()? {
            if dev == root || !ROOT_FS.contains(&fstype.as_str()) || self.g.mount_ro(&dev, "/").is_err() {
                continue;
            }
            let dir = |p: &str| matches!(self.lstat(p), Ok(Some(m)) if m.kind == Kind::Dir);
            let usr = ["/bin", "/share", "/local", "/share/coreos"].iter().all(|d| dir(d));
            let version = usr.then(|| {
                let text = crate::guest::resolve(self, "/lib/os-release")
                    .ok()
                    .flatten()
                    .and_then(|p| self.read(&p, 64 << 10).ok())
                    .unwrap_or_default();
                let text = String::from_utf8_lossy(&text);
                let v = text
                    .lines()
                    .find_map(|l| l.strip_prefix("VERSION_ID="))
                    .unwrap_or("")
                    .trim_matches('"');
                let mut n = v.split('.').map(|x| x.parse::<i32>().unwrap_or(0));
                (n.next().unwrap_or(0), n.next().unwrap_or(0), n.next().unwrap_or(0))
            });
            self.g.umount_all().api().context("unmounting after the probe")?;
            self.forget_all();
            if let Some(v) = version {
                if best.as_ref().map_or(true, |(b, _)| v > *b) {
                    best = Some((v, dev));
                }
            }
        }
        Ok(best.map(|(_, d)| d))
    }

    /// What to mount from the root filesystem's /etc/fstab, each device name resolved to
    /// the appliance's (UUID=, LABEL=, PARTUUID=, PARTLABEL=, /dev/disk/by-*, /dev/sdXN
    /// and friends, LVM names) and each btrfs entry to the subvolume its options select.
    /// An entry that resolves to nothing on the disks is an error naming the line (a disk
    /// of the guest is missing), unless the line says `nofail`; a subvolume that does not
    /// exist is an error naming the line.
    fn fstab_mountpoints(&self, root: &str, fstab: &[u8]) -> Result<Vec<Planned>> {
        let mut filesystems: Option<Vec<Filesystem>> = None;
        let mut mps = vec![Planned::new("/", root)];
        for (n, line) in String::from_utf8_lossy(fstab).lines().enumerate() {
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
            let origin = format!("/etc/fstab line {} (`{}`)", n + 1, f.join(" "));
            let Some(dev) = self.resolve_spec(f[0], filesystems.as_deref().unwrap_or_default()) else {
                // libguestfs skips such an entry (daemon/inspect_fs_unix_fstab.ml
                // check_fstab_entry). But the guest itself mounts it at boot, and systemd
                // fails the boot without it unless the line says `nofail`
                // (systemd.mount(5)): what is missing here is a disk the user did not
                // give, and cleaning without it would leave that filesystem's logs,
                // histories and keys behind.
                if f.get(3).is_some_and(|o| o.split(',').any(|o| o == "nofail")) {
                    tracing::warn!(
                        "{origin}: no such filesystem on {}; not mounting {} (nofail)",
                        self.shown,
                        f[1]
                    );
                    continue;
                }
                anyhow::bail!(
                    "{origin}: no such filesystem on {}, and the guest mounts {} at boot; give every disk of the guest (goldify run RECIPE DISK1 DISK2 …), or mark the line nofail",
                    self.shown,
                    f[1]
                );
            };
            let dev = if f[2] == "btrfs" {
                self.btrfs_mountable(&dev, f.get(3).copied().unwrap_or(""))
                    .with_context(|| origin.clone())?
            } else {
                dev
            };
            mps.push(Planned {
                mountpoint: f[1].to_string(),
                device: dev,
                origin: Some(origin),
            });
        }
        Ok(mps)
    }

    /// The btrfs subvolume an fstab entry's options select, as libguestfs names it
    /// (`btrfsvol:/dev/sda2/home`; daemon/inspect_fs_unix_fstab.ml get_btrfs_mountable
    /// reads `subvol=`). `subvolid=` is honoured too (libguestfs 1.48 ignores it and
    /// mounts the whole filesystem): the id is looked up in the subvolume list.
    fn btrfs_mountable(&self, dev: &str, options: &str) -> Result<String> {
        for o in options.split(',') {
            if let Some(path) = o.strip_prefix("subvol=") {
                let path = path.trim_start_matches('/');
                return Ok(if path.is_empty() {
                    dev.to_string()
                } else {
                    format!("btrfsvol:{dev}/{path}")
                });
            }
        }
        for o in options.split(',') {
            if let Some(id) = o.strip_prefix("subvolid=") {
                let id: u64 = id
                    .parse()
                    .with_context(|| format!("subvolid={id} is not a subvolume id"))?;
                // 5 is the top level of every btrfs filesystem (btrfs(5)).
                if id == 5 {
                    return Ok(dev.to_string());
                }
                let vols = self
                    .g
                    .btrfs_subvolume_list(dev)
                    .api()
                    .with_context(|| format!("listing the btrfs subvolumes of {dev}"))?;
                return match vols.into_iter().find(|v| v.btrfssubvolume_id == id) {
                    Some(v) => Ok(format!(
                        "btrfsvol:{dev}/{}",
                        v.btrfssubvolume_path.trim_start_matches('/')
                    )),
                    None => anyhow::bail!("{dev} has no btrfs subvolume with id {id}"),
                };
            }
        }
        Ok(dev.to_string())
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

    /// Mount what the guest mounts, parents before children. A filesystem that cannot be
    /// mounted where the guest mounts it is an error naming its fstab line: cleaning
    /// around it would report success and leave its files (histories, keys) behind.
    pub(super) fn mount_all(&mut self, mut mps: Vec<Planned>) -> Result<()> {
        // Parents before children: "/" before "/boot" before "/boot/efi".
        mps.sort_by(|a, b| {
            a.mountpoint
                .len()
                .cmp(&b.mountpoint.len())
                .then(a.mountpoint.cmp(&b.mountpoint))
        });
        for p in mps {
            let (mp, dev) = (p.mountpoint, p.device);
            let origin = p.origin.unwrap_or_else(|| format!("the guest's {mp}"));
            if mp != "/" {
                // A mountpoint path that runs through a guest symlink would be resolved in the
                // appliance: refuse rather than mount over the appliance's own tree.
                match self.lstat(&mp) {
                    Ok(Some(m)) if m.kind == Kind::Dir => {}
                    Ok(Some(_)) => {
                        anyhow::bail!("{origin}: cannot mount {dev} on {mp}: it is not a directory in the guest")
                    }
                    Ok(None) => anyhow::bail!("{origin}: cannot mount {dev} on {mp}: no such directory in the guest"),
                    Err(e) => return Err(e).with_context(|| format!("{origin}: cannot mount {dev} on {mp}")),
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
                Err(e) => return Err(e).with_context(|| format!("{origin}: mounting {dev} on {mp}")),
            }
        }
        Ok(())
    }
}

/// Filesystem types a Linux root can be on.
const ROOT_FS: [&str; 8] = ["ext2", "ext3", "ext4", "xfs", "btrfs", "f2fs", "jfs", "reiserfs"];

/// A filesystem that looks like a root, with its /etc/fstab.
struct Candidate {
    device: String,
    fstab: Vec<u8>,
    /// libguestfs' "CoreOS root": no fstab, /usr on its own partition.
    coreos: bool,
}

/// A filesystem to mount: where, what (a device or a `btrfsvol:` subvolume), and the
/// fstab line that asks for it.
pub(super) struct Planned {
    pub(super) mountpoint: String,
    pub(super) device: String,
    origin: Option<String>,
}

impl Planned {
    fn new(mountpoint: &str, device: &str) -> Planned {
        Planned {
            mountpoint: mountpoint.to_string(),
            device: device.to_string(),
            origin: None,
        }
    }
}
