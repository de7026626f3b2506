//! The libguestfs implementation of [`Guest`]: one appliance, the guest's filesystems
//! mounted as its fstab says, every path checked component by component so that no guest
//! symlink is ever followed (the daemon would resolve an absolute link target inside the
//! appliance, not the guest).

pub use super::api::{api_error, ApiError};
use super::api::{errno_of, silence_default_error_handler, Api};
use super::facts::{Family, Init, OsFacts};
use super::{components, Entry, Filesystem, Guest, Kind, Layout, Meta, Partition, Unsafe};
use anyhow::{anyhow, bail, Context, Result};
use regex::Regex;
use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::LazyLock;

/// libguestfs' protocol carries at most 4 MiB per message; larger transfers use files.
const MESSAGE_LIMIT: u64 = 2 << 20;
/// Names per `lstatnslist` call.
const STAT_BATCH: usize = 500;

pub struct OpenOptions<'a> {
    pub format: &'a str,
    pub readonly: bool,
    /// Editing the user's own disk: keep qemu's safe write-back cache.
    pub in_place: bool,
    /// libguestfs' own debug output (`-vv`).
    pub verbose: bool,
}

/// A filesystem's UUID and label.
type FsIds = (Option<String>, Option<String>);

pub struct GuestfsGuest {
    g: guestfs::Handle,
    facts: OsFacts,
    readonly: bool,
    /// Guest directories known to be real directories (not symlinks).
    safe_dirs: RefCell<HashSet<String>>,
    /// lstat and directory listings already asked for; every mutation goes through this
    /// type and forgets what it may have changed. Each call costs a round trip to the
    /// appliance, which under TCG is milliseconds.
    stat_cache: RefCell<HashMap<String, Option<Meta>>>,
    list_cache: RefCell<HashMap<String, Vec<String>>>,
    /// (device, type) of every filesystem, and each one's UUID and label, asked for once:
    /// the steps do not change them (a swap area is recreated with its UUID and label), and
    /// a command run in the guest forgets them.
    fs_table: RefCell<Option<Vec<(String, String)>>>,
    fs_ids: RefCell<HashMap<String, FsIds>>,
    /// Mountpoint → device, in mount order.
    mounted: Vec<(String, String)>,
    scratch: crate::workdir::WorkDir,
    _qemu: Option<crate::interrupt::ChildGuard>,
}

static GUEST_DISK: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^/dev/(?:(?:s|h|v|xv)d([a-z]+)(\d*)|nvme0n(\d+)(?:p(\d+))?)$").expect("static regex")
});

/// The name the appliance gives to a device the guest calls `guest_device`: the guest's
/// first disk is the appliance's `/dev/sda` whatever bus the guest used (vd, xvd, hd, sd,
/// nvme). Returns `None` for names that do not denote a partition or disk this way.
pub fn canonical_disk_name(guest_device: &str) -> Option<String> {
    let c = GUEST_DISK.captures(guest_device)?;
    if let Some(letters) = c.get(1) {
        let part = c.get(2).map(|m| m.as_str()).unwrap_or("");
        return Some(format!("/dev/sd{}{}", letters.as_str(), part));
    }
    let ns: u32 = c.get(3)?.as_str().parse().ok()?;
    let letter = char::from(b'a' + (ns.checked_sub(1)? as u8).min(25));
    let part = c.get(4).map(|m| m.as_str()).unwrap_or("");
    Some(format!("/dev/sd{letter}{part}"))
}

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
    /// Launch the appliance on `disk`, find exactly one OS and mount its filesystems.
    pub fn open(disk: &Path, opts: &OpenOptions) -> Result<GuestfsGuest> {
        use crate::error::{Exit, Tag};
        let g = guestfs::Handle::create().api().tag(Exit::Environment)?;
        silence_default_error_handler(&g);
        if opts.verbose {
            let _ = g.set_verbose(true);
        }
        super::launch::configure(&g).tag(Exit::Environment)?;
        let _ = g.set_identifier("goldify");
        let disk_str = disk
            .to_str()
            .ok_or_else(|| anyhow!("disk path {disk:?} is not UTF-8"))?;
        g.add_drive(
            disk_str,
            guestfs::AddDriveOptArgs {
                readonly: Some(opts.readonly),
                format: Some(opts.format),
                iface: None,
                name: None,
                label: None,
                protocol: None,
                server: None,
                username: None,
                secret: None,
                // A temporary overlay can skip qemu's flushes; the user's own disk cannot.
                cachemode: if opts.in_place { None } else { Some("unsafe") },
                discard: Some("besteffort"),
                copyonread: None,
            },
        )
        .api()
        .with_context(|| format!("adding disk {}", disk.display()))
        .tag(Exit::Input)?;
        g.launch()
            .api()
            .context("launching the libguestfs appliance")
            .tag(Exit::Environment)?;
        crate::interrupt::check()?;
        let qemu = g.get_pid().ok().map(crate::interrupt::register_child);

        let mut guest = GuestfsGuest {
            g,
            facts: OsFacts::sample("unknown"),
            readonly: opts.readonly,
            safe_dirs: RefCell::new(HashSet::new()),
            stat_cache: RefCell::new(HashMap::new()),
            list_cache: RefCell::new(HashMap::new()),
            fs_table: RefCell::new(None),
            fs_ids: RefCell::new(HashMap::new()),
            mounted: Vec::new(),
            scratch: crate::workdir::create(&std::env::temp_dir())?,
            _qemu: qemu,
        };
        let t = std::time::Instant::now();
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
        tracing::info!("inspection took {:.1} s", t.elapsed().as_secs_f64());
        guest.mount_all(mountpoints).tag(Exit::Input)?;
        guest.facts = guest.inspect(&root, by_libguestfs);
        Ok(guest)
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

    fn mount_all(&mut self, mut mps: Vec<(String, String)>) -> Result<()> {
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

    /// OS facts from the mounted guest itself: os-release (ID, ID_LIKE, VERSION_ID,
    /// PRETTY_NAME), the ELF header of its shell for the architecture, its init and
    /// hostname. Where libguestfs' own inspection ran (the fallback), its answers fill in
    /// what the files do not say.
    fn inspect(&self, root: &str, by_libguestfs: bool) -> OsFacts {
        let g = &self.g;
        let lg = |r: std::result::Result<String, guestfs::Error>| r.ok().filter(|v| by_libguestfs && v != "unknown");
        // Lookups follow the guest's own links (usrmerge: /lib -> usr/lib).
        let exists = |p: &str| matches!(super::resolve(self, p), Ok(Some(_)));
        let text = |p: &str, limit: u64| -> String {
            super::resolve(self, p)
                .ok()
                .flatten()
                .and_then(|p| self.read(&p, limit).ok())
                .map(|b| String::from_utf8_lossy(&b).into_owned())
                .unwrap_or_default()
        };
        let init = if exists("/lib/systemd/systemd") || exists("/usr/lib/systemd/systemd") {
            Init::Systemd
        } else if exists("/sbin/openrc") || exists("/sbin/openrc-run") {
            Init::Openrc
        } else if exists("/etc/inittab") {
            Init::Sysv
        } else {
            Init::Unknown
        };
        let cloud_init = exists("/usr/bin/cloud-init") || exists("/etc/cloud/cloud.cfg");
        let selinux = text("/etc/selinux/config", 64 << 10).lines().any(|l| {
            let l = l.trim();
            l.starts_with("SELINUX=") && !l.ends_with("disabled")
        });
        let mut os_release = text("/etc/os-release", 64 << 10);
        if os_release.is_empty() {
            os_release = text("/usr/lib/os-release", 64 << 10);
        }
        let field = |k: &str| {
            os_release
                .lines()
                .find_map(|l| {
                    l.strip_prefix(&format!("{k}="))
                        .map(|v| v.trim().trim_matches('"').to_string())
                })
                .filter(|v| !v.is_empty())
        };
        // libguestfs 1.48 says "redhat-based" for AlmaLinux and Rocky; os-release knows.
        let release_file = |p: &str, d: &str| exists(p).then(|| d.to_string());
        let distro = field("ID")
            .or_else(|| lg(g.inspect_get_distro(root)))
            .or_else(|| release_file("/etc/debian_version", "debian"))
            .or_else(|| release_file("/etc/alpine-release", "alpinelinux"))
            .or_else(|| release_file("/etc/redhat-release", "redhat-based"))
            .unwrap_or_else(|| "unknown".into());
        // os-release says "alpine"; libguestfs and goldify's families say "alpinelinux".
        let distro = if distro == "alpine" {
            "alpinelinux".to_string()
        } else {
            distro
        };
        let mut family = Family::of_distro(&distro);
        if family == Family::Other {
            let like = field("ID_LIKE").unwrap_or_default();
            family = like
                .split_whitespace()
                .map(Family::of_distro)
                .find(|f| *f != Family::Other)
                .unwrap_or(family);
        }
        // Debian's VERSION_ID is the major only; /etc/debian_version has the point release.
        let mut version = field("VERSION_ID").unwrap_or_default();
        if distro == "debian" {
            let dv = text("/etc/debian_version", 4096);
            if dv.trim().starts_with(|c: char| c.is_ascii_digit()) {
                version = dv.trim().to_string();
            }
        }
        let mut nums = version.split('.').map(|n| n.parse::<i32>().ok());
        let major = nums
            .next()
            .flatten()
            .or_else(|| g.inspect_get_major_version(root).ok().filter(|_| by_libguestfs));
        let minor = nums
            .next()
            .flatten()
            .or_else(|| g.inspect_get_minor_version(root).ok().filter(|_| by_libguestfs));
        let (package_format, package_management) = match family {
            Family::Debian => ("deb", "apt"),
            Family::Rhel if major.unwrap_or(9) < 8 && distro != "fedora" => ("rpm", "yum"),
            Family::Rhel => ("rpm", "dnf"),
            Family::Suse => ("rpm", "zypper"),
            Family::Alpine => ("apk", "apk"),
            Family::Arch => ("pacman", "pacman"),
            Family::Other => ("unknown", "unknown"),
        };
        let hostname = match self.lstat("/etc/hostname") {
            Ok(Some(m)) if m.kind == Kind::File && m.size <= 4096 => text("/etc/hostname", 4096)
                .lines()
                .next()
                .unwrap_or("")
                .trim()
                .to_string(),
            _ => String::new(),
        };
        OsFacts {
            root: root.to_string(),
            os_type: "linux".into(),
            family,
            major: major.unwrap_or(0),
            minor: minor.unwrap_or(0),
            product_name: field("PRETTY_NAME")
                .or_else(|| lg(g.inspect_get_product_name(root)))
                .unwrap_or_else(|| distro.clone()),
            distro,
            arch: self
                .elf_arch()
                .or_else(|| lg(g.inspect_get_arch(root)))
                .unwrap_or_else(|| "unknown".into()),
            package_format: package_format.into(),
            package_management: package_management.into(),
            hostname: if hostname.is_empty() {
                "unknown".into()
            } else {
                hostname
            },
            init,
            mountpoints: self.mounted.clone(),
            cloud_init,
            selinux,
        }
    }

    /// The architecture from the ELF header (e_machine) of the guest's shell or ls.
    fn elf_arch(&self) -> Option<String> {
        for bin in ["/bin/sh", "/usr/bin/ls", "/bin/ls", "/bin/busybox", "/usr/bin/bash"] {
            let Ok(Some(path)) = super::resolve(self, bin) else {
                continue;
            };
            let Ok(head) = self.g.pread(&path, 20, 0) else { continue };
            if head.len() < 20 || &head[..4] != b"\x7fELF" {
                continue;
            }
            let little = head[5] == 1;
            let machine = if little {
                u16::from_le_bytes([head[18], head[19]])
            } else {
                u16::from_be_bytes([head[18], head[19]])
            };
            let arch = match (machine, head[4]) {
                (0x3e, _) => "x86_64",
                (0x03, _) => "i386",
                (0xb7, _) => "aarch64",
                (0x28, _) => "arm",
                (0xf3, 2) => "riscv64",
                (0x15, _) if little => "ppc64le",
                (0x15, _) => "ppc64",
                (0x16, _) => "s390x",
                _ => continue,
            };
            return Some(arch.into());
        }
        None
    }

    /// Flush everything to the disk image and stop the appliance, reporting write errors
    /// (a full output disk shows up here).
    pub fn close(self) -> Result<()> {
        if !self.readonly {
            self.g.sync().api().context("syncing the guest filesystems")?;
            self.g.umount_all().api().context("unmounting the guest filesystems")?;
        }
        self.g
            .shutdown()
            .api()
            .context("shutting down the libguestfs appliance")?;
        Ok(())
    }

    /// Every component of `path` before the last is a real directory.
    fn check(&self, path: &str) -> Result<()> {
        let parts = components(path)?;
        let mut p = String::new();
        for c in parts.iter().take(parts.len().saturating_sub(1)) {
            p.push('/');
            p.push_str(c);
            if self.safe_dirs.borrow().contains(&p) {
                continue;
            }
            let st = self.g.lstatns(&p).api().with_context(|| format!("looking at {p}"))?;
            match kind_of(st.st_mode) {
                Kind::Dir => {
                    self.safe_dirs.borrow_mut().insert(p.clone());
                }
                Kind::Symlink => return Err(Unsafe { path: p }.into()),
                _ => bail!("{p} is not a directory"),
            }
        }
        Ok(())
    }

    /// Forget what is cached about `path`, everything below it and its parent's listing.
    fn changed(&self, path: &str) {
        let prefix = format!("{path}/");
        let below = |d: &String| d == path || d.starts_with(&prefix);
        self.safe_dirs.borrow_mut().retain(|d| !below(d));
        self.stat_cache.borrow_mut().retain(|d, _| !below(d));
        let parent = super::parent(path).to_string();
        self.list_cache.borrow_mut().retain(|d, _| !below(d) && *d != parent);
    }

    /// Forget everything cached (after mounts change or a command ran in the guest).
    fn forget_all(&self) {
        self.safe_dirs.borrow_mut().clear();
        self.stat_cache.borrow_mut().clear();
        self.list_cache.borrow_mut().clear();
    }

    /// (device, type) of every filesystem on the disk, sorted by device, as libguestfs'
    /// `list_filesystems` gives them; asked for once.
    fn fs_table(&self) -> Result<Vec<(String, String)>> {
        if let Some(t) = self.fs_table.borrow().as_ref() {
            return Ok(t.clone());
        }
        let mut t = match self.plain_filesystems()? {
            Some(t) => t,
            None => self.g.list_filesystems().api()?.into_iter().collect(),
        };
        t.sort();
        *self.fs_table.borrow_mut() = Some(t.clone());
        Ok(t)
    }

    /// The filesystems of a disk made of plain partitions (or one unpartitioned
    /// filesystem), typed with one blkid each. `None` when anything on the disk needs
    /// libguestfs' full scan: LVM, md or other RAID members, btrfs (subvolumes), or a type
    /// this does not know. `list_filesystems` does that scan on every call, running the LVM,
    /// md and LDM tools, which under TCG costs a second or more even on a plain disk.
    fn plain_filesystems(&self) -> Result<Option<Vec<(String, String)>>> {
        const PLAIN: [&str; 9] = ["ext2", "ext3", "ext4", "xfs", "vfat", "swap", "f2fs", "crypto_LUKS", ""];
        let parts = self.g.list_partitions().api().context("listing partitions")?;
        let mut candidates = Vec::new();
        for dev in self.g.list_devices().api().context("listing devices")? {
            let own: Vec<&String> = parts.iter().filter(|p| is_partition_of(p, &dev)).collect();
            if own.is_empty() {
                candidates.push(dev);
            } else {
                candidates.extend(own.into_iter().cloned());
            }
        }
        let mut out = Vec::new();
        for dev in candidates {
            // blkid finding nothing (a BIOS boot or extended partition) is an empty type.
            let fstype = self.g.vfs_type(&dev).unwrap_or_default();
            if !PLAIN.contains(&fstype.as_str()) {
                return Ok(None);
            }
            out.push((
                dev,
                if fstype.is_empty() {
                    "unknown".to_string()
                } else {
                    fstype
                },
            ));
        }
        Ok(Some(out))
    }

    /// Write `data` as `path`'s content through the open file (same inode).
    fn put(&self, path: &str, data: &[u8]) -> Result<()> {
        if data.len() as u64 <= MESSAGE_LIMIT {
            return self
                .g
                .write(path, data)
                .api()
                .with_context(|| format!("writing {path}"));
        }
        let tmp = self.scratch_file("upload");
        std::fs::write(&tmp, data).with_context(|| format!("staging {path} in {}", tmp.display()))?;
        let r = self.g.upload(tmp.to_str().expect("scratch path is UTF-8"), path).api();
        let _ = std::fs::remove_file(&tmp);
        r.with_context(|| format!("writing {path}"))
    }

    /// Give `path`, a regular file whose inode other names share (hard links), an inode of
    /// its own: a new file beside it with `fill` as content, the old inode's owner, mode and
    /// extended attributes (SELinux label, ACLs, capabilities), then `finish` applied to it,
    /// then rename(2) over `path`. The other names keep the old inode untouched; writing
    /// in place would change them all (the contract in guest/mod.rs).
    fn replace_shared(
        &self,
        path: &str,
        meta: &Meta,
        fill: Fill,
        finish: impl FnOnce(&str) -> Result<()>,
    ) -> Result<()> {
        let dir = super::parent(path);
        // mkstemp(3) in the guest's directory: a fresh name, mode 0600 until the
        // attributes are copied, on the same filesystem so that rename(2) is atomic.
        let tmp = self
            .g
            .mktemp(
                &super::join(dir, ".goldify-XXXXXX"),
                guestfs::MktempOptArgs { suffix: None },
            )
            .api()
            .with_context(|| format!("creating a file beside {path} to replace it"))?;
        self.changed(&tmp);
        let r = (|| {
            match fill {
                Fill::Data(data) => self.put(&tmp, data)?,
                // Inside the appliance: the content never travels to the host.
                Fill::Copy => self
                    .g
                    .cp_a(path, &tmp)
                    .api()
                    .with_context(|| format!("copying {path}"))?,
            }
            self.g
                .copy_attributes(
                    path,
                    &tmp,
                    guestfs::CopyAttributesOptArgs {
                        all: Some(true),
                        mode: None,
                        xattributes: None,
                        ownership: None,
                    },
                )
                .api()
                .with_context(|| format!("copying the owner, mode and attributes of {path}"))?;
            // copy_attributes sets the mode before the owner, and chown(2) clears the
            // set-user-ID and set-group-ID bits of a regular file: set the mode again.
            self.g
                .chmod(meta.mode as i32, &tmp)
                .api()
                .with_context(|| format!("copying the mode of {path}"))?;
            finish(&tmp)?;
            self.g
                .rename(&tmp, path)
                .api()
                .with_context(|| format!("replacing {path} (it had {} hard links)", meta.nlink))
        })();
        if r.is_err() {
            let _ = self.g.rm(&tmp);
        }
        self.changed(&tmp);
        self.changed(path);
        r
    }

    fn must_exist(&self, path: &str) -> Result<Meta> {
        self.lstat(path)?
            .ok_or_else(|| anyhow!("{path}: no such file or directory"))
    }

    fn scratch_file(&self, name: &str) -> std::path::PathBuf {
        self.scratch.path().join(name)
    }

    fn stat_many(&self, dir: &str, names: &[String]) -> Result<Vec<Meta>> {
        let mut out = Vec::with_capacity(names.len());
        for chunk in names.chunks(STAT_BATCH) {
            let refs: Vec<&str> = chunk.iter().map(String::as_str).collect();
            let stats = self
                .g
                .lstatnslist(dir, &refs)
                .api()
                .with_context(|| format!("listing {dir}"))?;
            out.extend(stats.iter().map(meta_of));
        }
        Ok(out)
    }
}

/// What a replaced hard link's new inode holds.
enum Fill<'a> {
    Data(&'a [u8]),
    /// The old content, copied inside the appliance (for mode and owner changes).
    Copy,
}

/// `part` is a partition of the appliance device `dev` (/dev/sda1 of /dev/sda; the
/// appliance names every disk sdX).
fn is_partition_of(part: &str, dev: &str) -> bool {
    part.strip_prefix(dev)
        .is_some_and(|rest| !rest.is_empty() && rest.trim_start_matches('p').bytes().all(|b| b.is_ascii_digit()))
}

fn kind_of(mode: i64) -> Kind {
    match (mode as u32) & 0o170000 {
        0o100000 => Kind::File,
        0o040000 => Kind::Dir,
        0o120000 => Kind::Symlink,
        _ => Kind::Other,
    }
}

fn meta_of(st: &guestfs::StatNS) -> Meta {
    Meta {
        kind: kind_of(st.st_mode),
        size: st.st_size.max(0) as u64,
        allocated: (st.st_blocks.max(0) as u64) * 512,
        mode: (st.st_mode as u32) & 0o7777,
        uid: st.st_uid as u32,
        gid: st.st_gid as u32,
        nlink: st.st_nlink.max(0) as u64,
    }
}

/// NUL-separated names from a file libguestfs wrote; names that are not UTF-8 cannot be
/// passed back through the bindings and are skipped with a warning.
fn nul_separated(file: &Path) -> Result<Vec<String>> {
    let bytes = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
    let mut names = Vec::new();
    for raw in bytes.split(|b| *b == 0).filter(|n| !n.is_empty()) {
        match std::str::from_utf8(raw) {
            Ok(s) => names.push(s.to_string()),
            Err(_) => tracing::warn!(
                "skipping a guest file name that is not UTF-8: {}",
                String::from_utf8_lossy(raw)
            ),
        }
    }
    Ok(names)
}

impl Guest for GuestfsGuest {
    fn facts(&self) -> &OsFacts {
        &self.facts
    }

    fn lstat(&self, path: &str) -> Result<Option<Meta>> {
        match self.check(path) {
            Ok(()) => {}
            Err(e) if super::is_unsafe(&e) => return Err(e),
            // A missing parent, or a parent that is a file, means a missing path.
            Err(e) if errno_of(&e) == Some(libc_enoent()) || e.to_string().ends_with("is not a directory") => {
                return Ok(None)
            }
            Err(e) => return Err(e),
        }
        if let Some(m) = self.stat_cache.borrow().get(path) {
            return Ok(m.clone());
        }
        let found = match self.g.lstatns(path).api() {
            Ok(st) => Some(meta_of(&st)),
            Err(e) if errno_of(&e) == Some(libc_enoent()) || errno_of(&e) == Some(20) => None,
            Err(e) => return Err(e).with_context(|| format!("looking at {path}")),
        };
        self.stat_cache.borrow_mut().insert(path.to_string(), found.clone());
        Ok(found)
    }

    fn list(&self, dir: &str) -> Result<Vec<String>> {
        match self.must_exist(dir)?.kind {
            Kind::Dir => {}
            Kind::Symlink => return Err(Unsafe { path: dir.into() }.into()),
            _ => bail!("{dir} is not a directory"),
        }
        if let Some(names) = self.list_cache.borrow().get(dir) {
            return Ok(names.clone());
        }
        let mut names = match self.g.readdir(dir) {
            Ok(entries) => entries
                .into_iter()
                .map(|d| d.name)
                .filter(|n| n != "." && n != "..")
                .collect(),
            Err(guestfs::Error::Utf8Error(_)) => {
                let out = self.scratch_file("ls0");
                self.g
                    .ls0(dir, out.to_str().expect("scratch path is UTF-8"))
                    .api()
                    .with_context(|| format!("listing {dir}"))?;
                nul_separated(&out)?
            }
            Err(e) => return Err(api_error(e)).with_context(|| format!("listing {dir}")),
        };
        names.sort();
        self.list_cache.borrow_mut().insert(dir.to_string(), names.clone());
        Ok(names)
    }

    fn walk(&self, dir: &str) -> Result<Vec<Entry>> {
        match self.must_exist(dir)?.kind {
            Kind::Dir => {}
            Kind::Symlink => return Err(Unsafe { path: dir.into() }.into()),
            _ => bail!("{dir} is not a directory"),
        }
        let out = self.scratch_file("find0");
        self.g
            .find0(dir, out.to_str().expect("scratch path is UTF-8"))
            .api()
            .with_context(|| format!("walking {dir}"))?;
        let mut names = nul_separated(&out)?;
        names
            .iter_mut()
            .for_each(|n| *n = n.trim_start_matches("./").trim_start_matches('/').to_string());
        names.retain(|n| !n.is_empty());
        // find lists a directory before its contents; keep that order, deterministically.
        names.sort();
        // lstatnslist takes plain names: one call per directory (and per batch).
        let base = dir.trim_end_matches('/');
        let mut by_dir: std::collections::BTreeMap<String, Vec<(usize, String)>> = Default::default();
        for (i, n) in names.iter().enumerate() {
            let full = format!("{base}/{n}");
            let (parent, leaf) = full.rsplit_once('/').expect("absolute path");
            let parent = if parent.is_empty() {
                "/".to_string()
            } else {
                parent.to_string()
            };
            by_dir.entry(parent).or_default().push((i, leaf.to_string()));
        }
        let mut metas: Vec<Option<Meta>> = vec![None; names.len()];
        for (parent, leaves) in by_dir {
            let leaf_names: Vec<String> = leaves.iter().map(|(_, l)| l.clone()).collect();
            for ((i, _), m) in leaves.iter().zip(self.stat_many(&parent, &leaf_names)?) {
                metas[*i] = Some(m);
            }
        }
        Ok(names
            .into_iter()
            .zip(metas)
            .filter_map(|(n, meta)| {
                Some(Entry {
                    path: format!("{base}/{n}"),
                    meta: meta?,
                })
            })
            .collect())
    }

    fn usage(&self, dir: &str) -> Result<u64> {
        if self.must_exist(dir)?.kind != Kind::Dir {
            bail!("{dir} is not a directory");
        }
        // One `du -s` in the appliance instead of a stat per file.
        let kib = self.g.du(dir).api().with_context(|| format!("measuring {dir}"))?;
        Ok(kib.max(0) as u64 * 1024)
    }

    fn read(&self, path: &str, limit: u64) -> Result<Vec<u8>> {
        let m = self.must_exist(path)?;
        if m.kind != Kind::File {
            bail!("{path} is not a regular file");
        }
        if m.size > limit {
            bail!("{path} is {} bytes, more than the {limit} bytes goldify reads", m.size);
        }
        if m.size <= MESSAGE_LIMIT {
            return self.g.read_file(path).api().with_context(|| format!("reading {path}"));
        }
        let tmp = self.scratch_file("download");
        self.g
            .download(path, tmp.to_str().expect("scratch path is UTF-8"))
            .api()
            .with_context(|| format!("reading {path}"))?;
        let data = std::fs::read(&tmp)?;
        let _ = std::fs::remove_file(&tmp);
        Ok(data)
    }

    fn readlink(&self, path: &str) -> Result<String> {
        self.check(path)?;
        self.g
            .readlink(path)
            .api()
            .with_context(|| format!("reading link {path}"))
    }

    fn write(&self, path: &str, data: &[u8]) -> Result<()> {
        if let Some(m) = self.lstat(path)? {
            if m.kind != Kind::File {
                bail!("{path} exists and is not a regular file");
            }
            if m.is_shared() {
                return self.replace_shared(path, &m, Fill::Data(data), |_| Ok(()));
            }
        }
        self.changed(path);
        self.put(path, data)
    }

    fn remove(&self, path: &str) -> Result<()> {
        if path == "/" {
            bail!("refusing to remove the guest's root directory");
        }
        let m = self.must_exist(path)?;
        self.changed(path);
        if m.kind == Kind::Dir {
            self.g.rm_rf(path).api()
        } else {
            self.g.rm(path).api()
        }
        .with_context(|| format!("removing {path}"))
    }

    fn truncate(&self, path: &str) -> Result<()> {
        let m = self.must_exist(path)?;
        if m.kind != Kind::File {
            bail!("{path} is not a regular file");
        }
        if m.is_shared() {
            return self.replace_shared(path, &m, Fill::Data(&[]), |_| Ok(()));
        }
        self.changed(path);
        self.g
            .truncate(path)
            .api()
            .with_context(|| format!("truncating {path}"))
    }

    fn mkdir_p(&self, path: &str) -> Result<()> {
        // Every existing component must be a real directory, the last one included.
        let parts = components(path)?;
        let mut p = String::new();
        for c in parts {
            p.push('/');
            p.push_str(c);
            match self.lstat(&p)? {
                Some(m) if m.kind == Kind::Dir => {}
                Some(m) if m.kind == Kind::Symlink => return Err(Unsafe { path: p }.into()),
                Some(_) => bail!("{p} exists and is not a directory"),
                None => {
                    self.changed(&p);
                    self.g
                        .mkdir(&p)
                        .api()
                        .with_context(|| format!("creating directory {p}"))?
                }
            }
        }
        Ok(())
    }

    fn chmod(&self, mode: u32, path: &str) -> Result<()> {
        // chmod(2) follows symlinks; a link's own mode means nothing on Linux.
        let m = self.must_exist(path)?;
        if m.kind == Kind::Symlink {
            bail!("{path} is a symlink; not changing the mode of its target");
        }
        let set = |p: &str| {
            self.g
                .chmod(mode as i32, p)
                .api()
                .with_context(|| format!("changing the mode of {path}"))
        };
        if m.is_shared() {
            if m.kind != Kind::File {
                return Err(super::shared_refusal("change the mode of", path, &m));
            }
            return self.replace_shared(path, &m, Fill::Copy, set);
        }
        self.changed(path);
        set(path)
    }

    fn chown(&self, uid: u32, gid: u32, path: &str) -> Result<()> {
        let m = self.must_exist(path)?;
        let set = |p: &str| {
            self.g
                .lchown(uid as i32, gid as i32, p)
                .api()
                .with_context(|| format!("changing the owner of {path}"))
        };
        if m.is_shared() {
            if m.kind != Kind::File {
                return Err(super::shared_refusal("change the owner of", path, &m));
            }
            return self.replace_shared(path, &m, Fill::Copy, set);
        }
        self.changed(path);
        set(path)
    }

    fn symlink(&self, target: &str, link: &str) -> Result<()> {
        if self.lstat(link)?.is_some() {
            bail!("{link} already exists");
        }
        self.changed(link);
        self.g
            .ln_s(target, link)
            .api()
            .with_context(|| format!("creating symlink {link}"))
    }

    fn run(&self, command: &str) -> Result<String> {
        if super::resolve(self, "/bin/sh")?.is_none() {
            bail!("the guest has no /bin/sh to run {command:?}");
        }
        // A command may change anything.
        self.forget_all();
        self.fs_table.borrow_mut().take();
        self.fs_ids.borrow_mut().clear();
        self.g
            .sh(command)
            .api()
            .with_context(|| format!("running {command:?} in the guest"))
    }

    fn filesystems(&self) -> Result<Vec<Filesystem>> {
        let mut out = Vec::new();
        for (device, fstype) in self.fs_table().context("listing filesystems")? {
            if fstype == "unknown" || fstype.is_empty() {
                continue;
            }
            let (uuid, label) = self
                .fs_ids
                .borrow_mut()
                .entry(device.clone())
                .or_insert_with(|| {
                    let nonempty = |r: std::result::Result<String, guestfs::Error>| r.ok().filter(|s| !s.is_empty());
                    (nonempty(self.g.vfs_uuid(&device)), nonempty(self.g.vfs_label(&device)))
                })
                .clone();
            out.push(Filesystem {
                uuid,
                label,
                mountpoint: self.mounted.iter().find(|(_, d)| *d == device).map(|(m, _)| m.clone()),
                device,
                fstype,
            });
        }
        Ok(out)
    }

    fn resolve_device(&self, guest_device: &str) -> Result<Option<Filesystem>> {
        let wanted = if let Some(c) = canonical_disk_name(guest_device) {
            c
        } else if guest_device.starts_with("/dev/mapper/") || guest_device.matches('/').count() == 3 {
            match self.g.lvm_canonical_lv_name(guest_device) {
                Ok(n) => n,
                Err(_) => return Ok(None),
            }
        } else {
            return Ok(None);
        };
        let canon = |d: &str| self.g.canonical_device_name(d).unwrap_or_else(|_| d.to_string());
        let wanted = canon(&wanted);
        Ok(self.filesystems()?.into_iter().find(|f| canon(&f.device) == wanted))
    }

    fn trim(&self) -> Result<Vec<String>> {
        self.g.sync().api().context("syncing before trim")?;
        let mut done = Vec::new();
        for (mp, dev) in &self.mounted {
            match self
                .g
                .fstrim(
                    mp,
                    guestfs::FstrimOptArgs {
                        offset: None,
                        length: None,
                        minimumfreeextent: None,
                    },
                )
                .api()
            {
                Ok(()) => done.push(mp.clone()),
                Err(e) => tracing::warn!("could not trim {dev} on {mp}: {e:#}"),
            }
        }
        Ok(done)
    }

    fn recreate_swap(&self, device: &str, uuid: Option<&str>, label: Option<&str>) -> Result<()> {
        if let Err(e) = self.g.blkdiscard(device).api() {
            tracing::warn!("could not discard swap {device}: {e:#}");
        }
        self.g
            .mkswap(device, guestfs::MkswapOptArgs { label, uuid })
            .api()
            .with_context(|| format!("recreating swap on {device}"))
    }

    fn layout(&self) -> Result<Layout> {
        let g = &self.g;
        let devices = g.list_devices().api().context("listing disks")?;
        let disk = devices.first().ok_or_else(|| anyhow!("the appliance sees no disk"))?;
        let table = g.part_get_parttype(disk).ok();
        let mut partitions = Vec::new();
        for device in g.list_partitions().api().context("listing partitions")? {
            if g.part_to_dev(&device).ok().as_deref() != Some(disk.as_str()) {
                continue;
            }
            let number = g
                .part_to_partnum(&device)
                .api()
                .with_context(|| format!("reading {device}"))?;
            let size = g.blockdev_getsize64(&device).map(|s| s.max(0) as u64).unwrap_or(0);
            // The EFI system partition type: UEFI spec §5.3.3 (GPT) and the MBR type 0xef.
            let esp = match table.as_deref() {
                Some("gpt") => g
                    .part_get_gpt_type(disk, number)
                    .map(|t| t.eq_ignore_ascii_case("C12A7328-F81F-11D2-BA4B-00A0C93EC93B"))
                    .unwrap_or(false),
                Some("msdos") => g.part_get_mbr_id(disk, number).map(|id| id == 0xef).unwrap_or(false),
                _ => false,
            };
            let fstype = g.vfs_type(&device).ok().filter(|t| !t.is_empty());
            partitions.push(Partition {
                device,
                number: number.max(0) as u32,
                size,
                fstype,
                esp,
            });
        }
        let root = self.facts.root.strip_prefix("btrfsvol:").unwrap_or(&self.facts.root);
        let root_partition = if let Some(p) = partitions
            .iter()
            .find(|p| root == p.device || root.starts_with(&format!("{}/", p.device)))
        {
            Some(p.device.clone())
        } else if g.is_lv(root).unwrap_or(false) {
            // The physical volume under root's volume group (the first, if it spans several).
            let lv = g
                .lvm_canonical_lv_name(root)
                .api()
                .with_context(|| format!("naming {root}"))?;
            let vg = lv
                .trim_start_matches("/dev/")
                .split('/')
                .next()
                .unwrap_or_default()
                .to_string();
            let wanted: Vec<String> = g
                .vgpvuuids(&vg)
                .api()
                .unwrap_or_default()
                .iter()
                .map(|u| u.replace('-', ""))
                .collect();
            g.pvs()
                .api()
                .unwrap_or_default()
                .into_iter()
                .filter(|pv| {
                    g.pvuuid(pv)
                        .map(|u| wanted.contains(&u.replace('-', "")))
                        .unwrap_or(false)
                })
                .map(|pv| g.canonical_device_name(&pv).unwrap_or(pv))
                .find(|pv| partitions.iter().any(|p| &p.device == pv))
        } else {
            None
        };
        Ok(Layout {
            table,
            partitions,
            root_partition,
        })
    }

    fn tar_out(&self, dir: &str, dest: &Path) -> Result<()> {
        match self.must_exist(dir)?.kind {
            Kind::Dir => self.check(dir)?,
            Kind::Symlink => return Err(Unsafe { path: dir.into() }.into()),
            _ => bail!("{dir} is not a directory"),
        }
        let dest_str = dest
            .to_str()
            .ok_or_else(|| anyhow!("{} is not UTF-8", dest.display()))?;
        self.g
            .tar_out(
                dir,
                dest_str,
                guestfs::TarOutOptArgs {
                    compress: None,
                    numericowner: Some(true),
                    excludes: None,
                    xattrs: Some(true),
                    selinux: Some(true),
                    acls: Some(true),
                },
            )
            .api()
            .with_context(|| format!("exporting {dir} as tar"))
    }
}

fn libc_enoent() -> i32 {
    nix::errno::Errno::ENOENT as i32
}

#[cfg(test)]
mod tests {
    use super::canonical_disk_name as c;

    #[test]
    fn guest_device_names_map_to_appliance_names() {
        assert_eq!(c("/dev/vda1").as_deref(), Some("/dev/sda1"));
        assert_eq!(c("/dev/xvdb").as_deref(), Some("/dev/sdb"));
        assert_eq!(c("/dev/hda2").as_deref(), Some("/dev/sda2"));
        assert_eq!(c("/dev/sdc10").as_deref(), Some("/dev/sdc10"));
        assert_eq!(c("/dev/nvme0n1p2").as_deref(), Some("/dev/sda2"));
        assert_eq!(c("/dev/mapper/vg-root"), None);
        assert_eq!(c("UUID=x"), None);
    }
}
