//! The seam between steps and the disk.
//!
//! Steps see a [`Guest`]: paths inside the guest's filesystem tree, never libguestfs and
//! never the host. Guest content is hostile input, so every implementation guarantees:
//! - no path component before the last is ever a symlink: an operation on `/var/log/x`
//!   where `/var/log` is a symlink fails with [`Unsafe`] instead of following it;
//! - the last component is never followed either: `remove` removes a link, `truncate` and
//!   `read` refuse anything but a regular file;
//! - reads are bounded by the caller's limit;
//! - no write goes through a hard link. A guest can give one inode several names
//!   (`/var/log/x.log` and `/etc/shadow`), and a mode, an owner and the content belong to
//!   the inode, not the name. So an operation on a name with `nlink > 1` never changes
//!   what the other names show:
//!   - `write` and `truncate` put a new inode at that name (same owner, mode and, with
//!     libguestfs, extended attributes such as the SELinux label; content as asked) and
//!     leave the old inode to the other names;
//!   - `chmod` and `chown` of a regular file do the same with a copy of its content, then
//!     change the copy;
//!   - `chmod` and `chown` of a hard-linked symlink, device node, FIFO or socket are
//!     refused (there is nothing to copy them from that would be the same object);
//!   - `remove` only unlinks the name, which is already safe.
//!
//!   Directories cannot be hard-linked; their `nlink` counts subdirectories and is ignored.

pub(crate) mod api;
pub(crate) mod devices;
pub(crate) mod facts;
#[cfg(test)]
pub(crate) mod fixture;
pub mod guestfs;
pub mod keys;
pub mod launch;
pub mod memory;
pub(crate) mod naming;
pub(crate) mod registry;
mod release;
pub mod windows;

use anyhow::{bail, Result};
pub use facts::{Family, OsFacts};

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    File,
    Dir,
    Symlink,
    Other,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Meta {
    pub kind: Kind,
    /// Apparent size in bytes.
    pub size: u64,
    /// Allocated bytes (sparse files allocate less than their size).
    pub allocated: u64,
    /// Permission bits (07777).
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    /// Names this inode has (hard links); 1 for an ordinary file.
    pub nlink: u64,
}

impl Meta {
    /// A file, symlink or node that other names share (see the module's contract).
    pub fn is_shared(&self) -> bool {
        self.kind != Kind::Dir && self.nlink > 1
    }
}

/// One entry found by [`Guest::walk`]: its absolute guest path and metadata.
#[derive(Debug, Clone)]
pub struct Entry {
    pub path: String,
    pub meta: Meta,
}

/// A filesystem as the guest names it (from its fstab) and as goldify reaches it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Filesystem {
    /// Device as libguestfs sees it, e.g. `/dev/sda1` or `/dev/vg0/root`.
    pub device: String,
    pub fstype: String,
    pub uuid: Option<String>,
    pub label: Option<String>,
    /// Where it is mounted for this run, if it is.
    pub mountpoint: Option<String>,
}

/// One partition of the guest's disk, as publish targets need to describe it.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Partition {
    /// As the appliance names it, e.g. `/dev/sda2`.
    pub device: String,
    pub number: u32,
    pub size: u64,
    pub fstype: Option<String>,
    /// An EFI system partition (GPT type C12A7328-… or MBR type 0xef).
    pub esp: bool,
}

/// The guest disk's partitioning, gathered while the guest is open so that publishing
/// never reopens it.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Layout {
    /// `gpt`, `msdos`, or `None` for a filesystem on the whole disk.
    pub table: Option<String>,
    pub partitions: Vec<Partition>,
    /// The partition that holds the root filesystem (the LVM physical volume under it
    /// when root is a logical volume); `None` when root is not on a partition.
    pub root_partition: Option<String>,
}

/// Raised (inside anyhow) when a path would follow a guest symlink or leave the guest tree.
#[derive(Debug, thiserror::Error)]
#[error("refusing to follow guest symlink {path}")]
pub struct Unsafe {
    pub path: String,
}

pub trait Guest {
    /// What inspection found about the operating system.
    fn facts(&self) -> &OsFacts;

    /// Metadata of `path` itself (links are not followed); `None` when it does not exist.
    fn lstat(&self, path: &str) -> Result<Option<Meta>>;
    /// Names in a directory, sorted, without `.` and `..`.
    fn list(&self, dir: &str) -> Result<Vec<String>>;
    /// Every entry below `dir` (not `dir` itself), depth first, parents before children,
    /// never descending through symlinks.
    fn walk(&self, dir: &str) -> Result<Vec<Entry>>;
    /// Bytes allocated by a directory tree (like `du -s`, links not followed).
    fn usage(&self, dir: &str) -> Result<u64> {
        Ok(self
            .walk(dir)?
            .iter()
            .filter(|e| e.meta.kind != Kind::Dir)
            .map(|e| e.meta.allocated)
            .sum())
    }
    /// The contents of a regular file of at most `limit` bytes.
    fn read(&self, path: &str, limit: u64) -> Result<Vec<u8>>;
    /// The target of a symlink.
    fn readlink(&self, path: &str) -> Result<String>;

    /// Create or replace a regular file's contents (an existing file keeps owner and mode;
    /// a hard-linked one gets a new inode at this name, the other names keep theirs).
    fn write(&self, path: &str, data: &[u8]) -> Result<()>;
    /// Remove a file, symlink or whole directory tree (a hard link: only this name); `/`
    /// itself is refused.
    fn remove(&self, path: &str) -> Result<()>;
    /// Cut a regular file to zero bytes, keeping owner and mode (and the inode, unless
    /// other names share it: then this name gets a new, empty one).
    fn truncate(&self, path: &str) -> Result<()>;
    fn mkdir_p(&self, path: &str) -> Result<()>;
    /// Change the mode of a file or directory; refused for a symlink (chmod(2) would
    /// follow it). A hard-linked regular file is copied first; other hard-linked kinds are
    /// refused.
    fn chmod(&self, mode: u32, path: &str) -> Result<()>;
    /// Change the owner of `path` itself (never a link's target). A hard-linked regular
    /// file is copied first; other hard-linked kinds are refused.
    fn chown(&self, uid: u32, gid: u32, path: &str) -> Result<()>;
    fn symlink(&self, target: &str, link: &str) -> Result<()>;
    /// Run a shell command inside the guest (in the appliance, chrooted into the guest;
    /// never on the host). Returns its stdout.
    fn run(&self, command: &str) -> Result<String>;

    /// Filesystems on the disk (swap included).
    fn filesystems(&self) -> Result<Vec<Filesystem>>;
    /// Map a device name as the guest's fstab spells it (`/dev/vda1`, `/dev/xvdb`…) to the
    /// filesystem behind it, if there is one.
    fn resolve_device(&self, guest_device: &str) -> Result<Option<Filesystem>>;
    /// Discard free space of every mounted filesystem; returns the mountpoints trimmed.
    fn trim(&self) -> Result<Vec<String>>;
    /// Discard a swap device and recreate it with the same UUID and label.
    fn recreate_swap(&self, device: &str, uuid: Option<&str>, label: Option<&str>) -> Result<()>;

    /// The disk's partitions and which one holds root (for publish targets).
    /// The value `name` of the registry key `key` (its path below the root) in the hive
    /// file `hive` (a guest path); `None` when the key or the value is missing.
    fn registry_get(&self, hive: &str, key: &[&str], name: &str) -> Result<Option<registry::RegValue>>;
    /// Set values in the hive file `hive`, creating keys as needed, committed at once.
    fn registry_set(&self, hive: &str, edits: &[registry::RegEdit]) -> Result<()>;
    fn layout(&self) -> Result<Layout> {
        bail!("this guest cannot describe its disk layout")
    }
    /// Write the tree below `dir` as an uncompressed tar to `dest` (a file or a FIFO on the
    /// host), keeping numeric owners, modes, xattrs, SELinux labels, ACLs and device nodes.
    fn tar_out(&self, dir: &str, dest: &std::path::Path) -> Result<()> {
        let _ = (dir, dest);
        bail!("this guest cannot export its tree as tar")
    }
}

/// Resolve `path` the way the guest itself would (symlinks followed, absolute targets taken
/// from the guest's root, `..` clamped at the root), for read-only lookups such as "is
/// there an sshd binary" on usrmerge systems where /bin and /lib are links. Never used to
/// decide where to write: steps act on literal paths. `None` when it does not resolve.
pub fn resolve(guest: &dyn Guest, path: &str) -> Result<Option<String>> {
    const MAX_LINKS: usize = 40;
    let mut pending: Vec<String> = components(path)?.into_iter().rev().map(String::from).collect();
    let mut current: Vec<String> = Vec::new();
    let mut links = 0;
    while let Some(c) = pending.pop() {
        match c.as_str() {
            "" | "." => continue,
            ".." => {
                current.pop();
                continue;
            }
            _ => {}
        }
        let candidate = format!(
            "/{}",
            current
                .iter()
                .chain(std::iter::once(&c))
                .cloned()
                .collect::<Vec<_>>()
                .join("/")
        );
        match guest.lstat(&candidate)? {
            None => return Ok(None),
            Some(m) if m.kind == Kind::Symlink => {
                links += 1;
                if links > MAX_LINKS {
                    return Ok(None);
                }
                let target = guest.readlink(&candidate)?;
                if target.starts_with('/') {
                    current.clear();
                }
                pending.extend(target.split('/').rev().map(String::from));
            }
            Some(_) => current.push(c),
        }
    }
    Ok(Some(format!("/{}", current.join("/"))))
}

/// Check that a guest path is absolute, normalized and printable as a path; returns its
/// components. `..`, `.`, empty components and NUL bytes are refused.
pub fn components(path: &str) -> Result<Vec<&str>> {
    if !path.starts_with('/') {
        bail!("guest path {path:?} is not absolute");
    }
    if path.contains('\0') {
        bail!("guest path {path:?} contains a NUL byte");
    }
    let parts: Vec<&str> = path.split('/').skip(1).collect();
    if path == "/" {
        return Ok(Vec::new());
    }
    for p in &parts {
        if p.is_empty() || *p == "." || *p == ".." {
            bail!("guest path {path:?} is not normalized");
        }
    }
    Ok(parts)
}

/// `dir` joined with `name` (one component).
pub fn join(dir: &str, name: &str) -> String {
    if dir.ends_with('/') {
        format!("{dir}{name}")
    } else {
        format!("{dir}/{name}")
    }
}

/// The parent of an absolute guest path (`/` for top-level entries).
pub fn parent(path: &str) -> &str {
    match path.rfind('/') {
        Some(0) | None => "/",
        Some(i) => &path[..i],
    }
}

/// Why `chmod` or `chown` of a hard-linked symlink, device node or FIFO is refused: the
/// change would show under every other name of the inode, and such a thing cannot be
/// copied to a name of its own the way a regular file can.
pub fn shared_refusal(operation: &str, path: &str, meta: &Meta) -> anyhow::Error {
    let kind = match meta.kind {
        Kind::Symlink => "symlink",
        _ => "special file",
    };
    anyhow::anyhow!(
        "refusing to {operation} {path}: it is a {kind} with {} hard links, and the change would show under every name",
        meta.nlink
    )
}

/// Whether an error says a guest symlink was refused.
pub fn is_unsafe(err: &anyhow::Error) -> bool {
    err.chain().any(|e| e.downcast_ref::<Unsafe>().is_some())
}

/// Expand a glob (`*`, `?`, `[..]` per component, `**` for any depth) against the guest
/// tree, safely: only real directories are descended into. Returns sorted paths.
pub fn glob(guest: &dyn Guest, pattern: &str) -> Result<Vec<String>> {
    let parts = components(pattern)?;
    let mut found = Vec::new();
    expand(guest, "/", &parts, &mut found)?;
    found.sort();
    found.dedup();
    Ok(found)
}

fn expand(guest: &dyn Guest, dir: &str, rest: &[&str], out: &mut Vec<String>) -> Result<()> {
    let Some((first, tail)) = rest.split_first() else {
        return Ok(());
    };
    let is_dir = |p: &str| -> Result<bool> { Ok(matches!(guest.lstat(p), Ok(Some(Meta { kind: Kind::Dir, .. })))) };
    if *first == "**" {
        // zero directories…
        expand(guest, dir, tail, out)?;
        // …or any number of real directories.
        if tail.is_empty() {
            for e in guest.walk(dir)? {
                out.push(e.path);
            }
            return Ok(());
        }
        for name in guest.list(dir)? {
            let p = join(dir, &name);
            if is_dir(&p)? {
                expand(guest, &p, rest, out)?;
            }
        }
        return Ok(());
    }
    let wild = first.contains(['*', '?', '[']);
    let names = if wild {
        let pat = glob::Pattern::new(first).map_err(|e| anyhow::anyhow!("bad glob component {first:?}: {e}"))?;
        let opts = glob::MatchOptions {
            require_literal_leading_dot: true,
            // Windows names match without regard to case, as Windows matches them.
            case_sensitive: guest.facts().family != Family::Windows,
            ..Default::default()
        };
        guest
            .list(dir)?
            .into_iter()
            .filter(|n| pat.matches_with(n, opts))
            .collect()
    } else {
        vec![first.to_string()]
    };
    for name in names {
        let p = join(dir, &name);
        if tail.is_empty() {
            if guest.lstat(&p)?.is_some() {
                out.push(p);
            }
        } else if is_dir(&p)? {
            expand(guest, &p, tail, out)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn components_refuse_escapes() {
        assert!(components("/etc/../root").is_err());
        assert!(components("etc/passwd").is_err());
        assert!(components("/etc//passwd").is_err());
        assert!(components("/etc/./passwd").is_err());
        assert_eq!(components("/etc/passwd").unwrap(), vec!["etc", "passwd"]);
        assert!(components("/").unwrap().is_empty());
    }

    #[test]
    fn resolves_inside_the_guest() {
        let g = memory::MemoryGuest::new(OsFacts::sample("debian"));
        g.file("/usr/bin/sh", b"elf")
            .link("/bin", "usr/bin")
            .link("/usr/sbin/sh", "../bin/sh");
        g.link("/etc/loop", "/etc/loop")
            .link("/escape", "../../../../usr/bin/sh");
        assert_eq!(resolve(&g, "/bin/sh").unwrap().as_deref(), Some("/usr/bin/sh"));
        assert_eq!(resolve(&g, "/usr/sbin/sh").unwrap().as_deref(), Some("/usr/bin/sh"));
        assert_eq!(resolve(&g, "/escape").unwrap().as_deref(), Some("/usr/bin/sh"));
        assert_eq!(resolve(&g, "/etc/loop").unwrap(), None);
        assert_eq!(resolve(&g, "/bin/missing").unwrap(), None);
    }

    #[test]
    fn parents() {
        assert_eq!(parent("/etc/passwd"), "/etc");
        assert_eq!(parent("/etc"), "/");
    }
}
