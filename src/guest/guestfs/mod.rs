//! The libguestfs implementation of [`Guest`]: one appliance, the guest's filesystems
//! mounted as its fstab says, every path checked component by component so that no guest
//! symlink is ever followed (the daemon would resolve an absolute link target inside the
//! appliance, not the guest).
//!
//! Here: the handle, opening and closing it, and the path-safety cache. The rest by job:
//! `roots` finds the guest's root and mounts its filesystems, `inspect` reads its OS facts,
//! `filesystems` lists them, `layout` describes the disk's partitions, `ops` and `links`
//! carry out the [`Guest`] operations.

mod crypt;
mod filesystems;
mod inspect;
mod layout;
mod links;
mod ops;
mod registry;
mod roots;
mod windows;

pub use super::api::{api_error, ApiError};
use super::api::{silence_default_error_handler, Api};
use super::facts::OsFacts;
use super::{components, Guest, Kind, Meta, Unsafe};
use anyhow::{anyhow, bail, Context, Result};
use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::path::Path;

/// libguestfs' protocol carries at most 4 MiB per message; larger transfers use files.
const MESSAGE_LIMIT: u64 = 2 << 20;
/// Names per `lstatnslist` call.
const STAT_BATCH: usize = 500;

/// A disk image the appliance opens: one of the guest's disks, in the guest's order
/// (the first is /dev/sda in the appliance, the second /dev/sdb…).
pub struct Drive<'a> {
    pub path: &'a Path,
    /// qemu's name of its format (`qcow2`, `raw`).
    pub format: &'a str,
}

pub struct OpenOptions<'a> {
    pub readonly: bool,
    /// Editing the user's own disk: keep qemu's safe write-back cache.
    pub in_place: bool,
    /// libguestfs' own debug output (`-vv`).
    pub verbose: bool,
    /// The disks as the user named them ([`shown`]), for messages (the appliance may be
    /// given temporary overlays of them).
    pub shown: &'a str,
    /// A hibernated Windows volume: discard the saved session (ntfs-3g's
    /// `remove_hiberfile`) instead of refusing it.
    pub remove_hiberfile: bool,
    /// Keys for the guest's encrypted (LUKS) devices (`--key`).
    pub keys: &'a [super::keys::Key],
}

/// Disks as the user named them, for a message: `a.qcow2` or `a.qcow2 and b.qcow2`.
pub fn shown<P: AsRef<Path>>(disks: &[P]) -> String {
    let names: Vec<String> = disks.iter().map(|d| d.as_ref().display().to_string()).collect();
    match names.as_slice() {
        [] => "the disk".into(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
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
    /// A Windows guest: paths are matched without regard to case (windows.rs).
    case_insensitive: bool,
    /// What the run should tell the user about how the guest was opened (a hibernated
    /// session discarded).
    notices: Vec<String>,
    /// The disks as the user named them, for messages.
    shown: String,
    scratch: crate::workdir::WorkDir,
    _qemu: Option<crate::interrupt::ChildGuard>,
}

impl GuestfsGuest {
    /// Launch the appliance on the guest's disks, find exactly one OS and mount its
    /// filesystems. A guest on several disks (an MD array or a volume group over them,
    /// /var on a second disk) is given all of them, as virt-sysprep's repeated `-a`.
    pub fn open(drives: &[Drive], opts: &OpenOptions) -> Result<GuestfsGuest> {
        use crate::error::{Exit, Tag};
        let g = guestfs::Handle::create().api().tag(Exit::Environment)?;
        silence_default_error_handler(&g);
        if opts.verbose {
            let _ = g.set_verbose(true);
        }
        super::launch::configure(&g).tag(Exit::Environment)?;
        let _ = g.set_identifier("goldify");
        for d in drives {
            let path = d
                .path
                .to_str()
                .ok_or_else(|| anyhow!("disk path {:?} is not UTF-8", d.path))?;
            g.add_drive(
                path,
                guestfs::AddDriveOptArgs {
                    readonly: Some(opts.readonly),
                    format: Some(d.format),
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
            .with_context(|| format!("adding disk {}", d.path.display()))
            .tag(Exit::Input)?;
        }
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
            case_insensitive: false,
            notices: Vec::new(),
            shown: opts.shown.to_string(),
            scratch: crate::workdir::create(&std::env::temp_dir())?,
            _qemu: qemu,
        };
        let t = std::time::Instant::now();
        let (root, mountpoints, by_libguestfs) = guest.find_root(opts.keys)?;
        let probe = t.elapsed().as_secs_f64();
        guest.mount_all(mountpoints).tag(Exit::Input)?;
        guest.facts = guest.inspect(&root, by_libguestfs);
        // bench/inspect.sh reads this line.
        tracing::info!(
            "inspection took {:.2} s (finding the root {probe:.2} s, mounting and reading the facts {:.2} s)",
            t.elapsed().as_secs_f64(),
            t.elapsed().as_secs_f64() - probe
        );
        guest.case_insensitive = guest.facts.family == super::Family::Windows;
        guest.notices = guest.ensure_ntfs_writable(opts.remove_hiberfile)?;
        Ok(guest)
    }

    /// What the run should tell the user about how the guest was opened.
    pub fn notices(&self) -> &[String] {
        &self.notices
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

fn libc_enoent() -> i32 {
    nix::errno::Errno::ENOENT as i32
}
