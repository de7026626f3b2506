//! An in-memory guest: the same contract as the libguestfs one (no symlink is followed,
//! reads are bounded), so step logic can be unit-tested in milliseconds. Integration tests
//! prove each step again inside real images.

use super::{components, join, parent, Entry, Filesystem, Guest, Kind, Layout, Meta, OsFacts, Unsafe};
use anyhow::{anyhow, bail, Result};
use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;

/// An inode: what every name of it shows.
#[derive(Debug, Clone)]
pub struct Node {
    pub meta: Meta,
    pub data: Vec<u8>,
    pub target: String,
}

pub struct MemoryGuest {
    pub facts: OsFacts,
    /// Path → inode number. Hard links are several paths with one number, so that steps'
    /// tests can prove a write through one name never shows under another.
    names: RefCell<BTreeMap<String, u64>>,
    inodes: RefCell<BTreeMap<u64, Node>>,
    next_ino: Cell<u64>,
    pub filesystems: Vec<Filesystem>,
    pub trimmed: RefCell<Vec<String>>,
    pub layout: Layout,
    /// Swap areas `recreate_swap` made, with the UUID and label it was asked for.
    pub swaps: RefCell<Vec<Filesystem>>,
    /// Registry values by (hive path, key path lowercased and joined by `\`, value name
    /// lowercased): registry names match case-insensitively, as hivex's do.
    pub registry: RefCell<BTreeMap<(String, String, String), crate::guest::registry::RegValue>>,
}

fn meta(kind: Kind, size: u64, mode: u32) -> Meta {
    Meta {
        kind,
        size,
        allocated: size,
        mode,
        uid: 0,
        gid: 0,
        nlink: 1,
    }
}

fn dir_node() -> Node {
    Node {
        meta: meta(Kind::Dir, 4096, 0o755),
        data: vec![],
        target: String::new(),
    }
}

fn file_node(data: &[u8]) -> Node {
    Node {
        meta: meta(Kind::File, data.len() as u64, 0o644),
        data: data.to_vec(),
        target: String::new(),
    }
}

impl MemoryGuest {
    pub fn new(facts: OsFacts) -> MemoryGuest {
        let g = MemoryGuest {
            facts,
            names: RefCell::new(BTreeMap::new()),
            inodes: RefCell::new(BTreeMap::new()),
            next_ino: Cell::new(1),
            filesystems: Vec::new(),
            trimmed: RefCell::new(Vec::new()),
            layout: Layout::default(),
            swaps: RefCell::new(Vec::new()),
            registry: RefCell::new(BTreeMap::new()),
        };
        g.put_node("/", dir_node());
        g
    }

    /// A registry hive is a regular file of the guest.
    fn hive(&self, hive: &str) -> Result<()> {
        match self.stat(hive) {
            Some(m) if m.kind == Kind::File => Ok(()),
            Some(_) => anyhow::bail!("{hive} is not a regular file (a registry hive is)"),
            None => anyhow::bail!("{hive}: no such registry hive"),
        }
    }

    /// Add a file (parents created as directories).
    pub fn file(&self, path: &str, data: &[u8]) -> &Self {
        self.ensure_dirs(parent(path));
        self.put_node(path, file_node(data));
        self
    }

    pub fn link(&self, path: &str, target: &str) -> &Self {
        self.ensure_dirs(parent(path));
        self.put_node(
            path,
            Node {
                meta: meta(Kind::Symlink, target.len() as u64, 0o777),
                data: vec![],
                target: target.into(),
            },
        );
        self
    }

    /// Add `path` as another name of `existing`'s inode (a hard link, as ln(1) makes).
    pub fn hardlink(&self, existing: &str, path: &str) -> &Self {
        let ino = self
            .ino(existing)
            .unwrap_or_else(|| panic!("{existing} does not exist"));
        self.ensure_dirs(parent(path));
        self.names.borrow_mut().insert(path.into(), ino);
        self
    }

    pub fn dir(&self, path: &str) -> &Self {
        self.ensure_dirs(path);
        self
    }

    /// Set a node's owner directly (fixtures; steps go through [`Guest::chown`]).
    pub fn own(&self, path: &str, uid: u32, gid: u32, mode: u32) -> &Self {
        let ino = self.ino(path).unwrap_or_else(|| panic!("{path} does not exist"));
        if let Some(n) = self.inodes.borrow_mut().get_mut(&ino) {
            n.meta.uid = uid;
            n.meta.gid = gid;
            n.meta.mode = mode;
        }
        self
    }

    pub fn content(&self, path: &str) -> Option<Vec<u8>> {
        self.node(path).map(|n| n.data)
    }

    pub fn exists(&self, path: &str) -> bool {
        self.names.borrow().contains_key(path)
    }

    /// Whether two paths are names of one inode.
    pub fn same_inode(&self, a: &str, b: &str) -> bool {
        matches!((self.ino(a), self.ino(b)), (Some(x), Some(y)) if x == y)
    }

    fn ino(&self, path: &str) -> Option<u64> {
        self.names.borrow().get(path).copied()
    }

    fn node(&self, path: &str) -> Option<Node> {
        let ino = self.ino(path)?;
        self.inodes.borrow().get(&ino).cloned()
    }

    /// A new inode named `path` (replacing whatever name was there).
    fn put_node(&self, path: &str, node: Node) {
        let ino = self.next_ino.get();
        self.next_ino.set(ino + 1);
        self.inodes.borrow_mut().insert(ino, node);
        let replaced = self.names.borrow_mut().insert(path.into(), ino);
        if replaced.is_some() {
            self.forget_unnamed();
        }
    }

    /// Change the inode behind `path` (which must exist).
    fn update(&self, path: &str, f: impl FnOnce(&mut Node)) {
        let ino = self.ino(path).expect("checked by the caller");
        if let Some(n) = self.inodes.borrow_mut().get_mut(&ino) {
            f(n);
        }
    }

    /// Give `path` an inode of its own, a copy of the shared one, when other names share
    /// it: the contract's "never write through a hard link".
    fn unshare(&self, path: &str) {
        if self.nlink(path) > 1 {
            let node = self.node(path).expect("checked by the caller");
            self.put_node(path, node);
        }
    }

    fn nlink(&self, path: &str) -> u64 {
        match self.ino(path) {
            Some(ino) => self.names.borrow().values().filter(|i| **i == ino).count() as u64,
            None => 0,
        }
    }

    /// Inodes no name refers to any more are gone, as on a real filesystem.
    fn forget_unnamed(&self) {
        let live: std::collections::BTreeSet<u64> = self.names.borrow().values().copied().collect();
        self.inodes.borrow_mut().retain(|ino, _| live.contains(ino));
    }

    fn ensure_dirs(&self, path: &str) {
        let mut p = String::new();
        for c in path.split('/').filter(|c| !c.is_empty()) {
            p = format!("{p}/{c}");
            if !self.exists(&p) {
                self.put_node(&p, dir_node());
            }
        }
    }

    /// The safety contract: every component before the last must be a real directory.
    fn check(&self, path: &str) -> Result<()> {
        let parts = components(path)?;
        let mut p = String::new();
        for c in parts.iter().take(parts.len().saturating_sub(1)) {
            p = format!("{p}/{c}");
            match self.node(&p) {
                Some(n) if n.meta.kind == Kind::Symlink => return Err(Unsafe { path: p }.into()),
                Some(n) if n.meta.kind == Kind::Dir => {}
                Some(_) => bail!("{p} is not a directory"),
                None => bail!("{p}: no such directory"),
            }
        }
        Ok(())
    }

    fn children(&self, dir: &str) -> Vec<String> {
        let prefix = if dir == "/" { "/".to_string() } else { format!("{dir}/") };
        self.names
            .borrow()
            .keys()
            .filter(|k| k.starts_with(&prefix) && k.len() > prefix.len() && !k[prefix.len()..].contains('/'))
            .map(|k| k[prefix.len()..].to_string())
            .collect()
    }

    /// On a Windows guest, `path` as the guest spells it (case-insensitive names).
    fn native(&self, path: &str) -> String {
        if self.facts.family != super::Family::Windows {
            return path.to_string();
        }
        super::windows::case_fold_path(path, &|dir| self.children(dir))
    }

    fn must_exist(&self, path: &str) -> Result<Meta> {
        self.lstat(path)?.ok_or_else(|| anyhow!("{path}: no such file"))
    }

    /// Before a mode or owner change: a hard-linked regular file gets an inode of its
    /// own; other hard-linked kinds are refused (the contract in guest/mod.rs).
    fn own_inode(&self, path: &str, m: &Meta, operation: &str) -> Result<()> {
        if !m.is_shared() {
            return Ok(());
        }
        if m.kind != Kind::File {
            return Err(super::shared_refusal(operation, path, m));
        }
        self.unshare(path);
        Ok(())
    }

    /// Metadata as lstat(2) gives it: a directory's link count is 2 plus its subdirectories.
    fn stat(&self, path: &str) -> Option<Meta> {
        let mut m = self.node(path)?.meta;
        m.nlink = if m.kind == Kind::Dir {
            let subdirs = self
                .children(path)
                .iter()
                .filter(|c| self.node(&join(path, c)).is_some_and(|n| n.meta.kind == Kind::Dir))
                .count();
            2 + subdirs as u64
        } else {
            self.nlink(path)
        };
        Some(m)
    }
}

impl Guest for MemoryGuest {
    fn facts(&self) -> &OsFacts {
        &self.facts
    }

    fn registry_get(&self, hive: &str, key: &[&str], name: &str) -> Result<Option<crate::guest::registry::RegValue>> {
        self.hive(hive)?;
        let k = (hive.to_string(), key.join("\\").to_lowercase(), name.to_lowercase());
        Ok(self.registry.borrow().get(&k).cloned())
    }

    fn registry_set(&self, hive: &str, edits: &[crate::guest::registry::RegEdit]) -> Result<()> {
        self.hive(hive)?;
        for e in edits {
            for (name, v) in &e.values {
                let k = (hive.to_string(), e.key.join("\\").to_lowercase(), name.to_lowercase());
                self.registry.borrow_mut().insert(k, v.clone());
            }
        }
        Ok(())
    }

    fn lstat(&self, path: &str) -> Result<Option<Meta>> {
        let path = &self.native(path);
        if path == "/" {
            return Ok(self.stat("/"));
        }
        match self.check(path) {
            Ok(()) => Ok(self.stat(path)),
            Err(e) if super::is_unsafe(&e) => Err(e),
            Err(_) => Ok(None),
        }
    }

    fn list(&self, dir: &str) -> Result<Vec<String>> {
        let dir = &self.native(dir);
        match self.lstat(dir)? {
            Some(m) if m.kind == Kind::Dir => Ok(self.children(dir)),
            Some(m) if m.kind == Kind::Symlink => Err(Unsafe { path: dir.into() }.into()),
            _ => bail!("{dir}: not a directory"),
        }
    }

    fn walk(&self, dir: &str) -> Result<Vec<Entry>> {
        let dir = &self.native(dir);
        let mut out = Vec::new();
        for name in self.list(dir)? {
            let p = join(dir, &name);
            let m = self.lstat(&p)?.ok_or_else(|| anyhow!("{p} vanished"))?;
            let is_dir = m.kind == Kind::Dir;
            out.push(Entry {
                path: p.clone(),
                meta: m,
            });
            if is_dir {
                out.extend(self.walk(&p)?);
            }
        }
        Ok(out)
    }

    fn read(&self, path: &str, limit: u64) -> Result<Vec<u8>> {
        let path = &self.native(path);
        let m = self.lstat(path)?.ok_or_else(|| anyhow!("{path}: no such file"))?;
        if m.kind != Kind::File {
            bail!("{path} is not a regular file");
        }
        if m.size > limit {
            bail!("{path} is {} bytes, more than the {limit} bytes goldify reads", m.size);
        }
        Ok(self.content(path).unwrap_or_default())
    }

    fn readlink(&self, path: &str) -> Result<String> {
        let path = &self.native(path);
        self.check(path)?;
        match self.node(path) {
            Some(n) if n.meta.kind == Kind::Symlink => Ok(n.target),
            _ => bail!("{path} is not a symlink"),
        }
    }

    fn write(&self, path: &str, data: &[u8]) -> Result<()> {
        let path = &self.native(path);
        self.check(path)?;
        match self.node(path) {
            Some(n) if n.meta.kind == Kind::File => {
                self.unshare(path);
                self.update(path, |n| {
                    n.data = data.to_vec();
                    n.meta.size = data.len() as u64;
                    n.meta.allocated = data.len() as u64;
                });
            }
            Some(_) => bail!("{path} exists and is not a regular file"),
            None => self.put_node(path, file_node(data)),
        }
        Ok(())
    }

    fn remove(&self, path: &str) -> Result<()> {
        let path = &self.native(path);
        if path == "/" {
            bail!("refusing to remove the guest's root directory");
        }
        self.check(path)?;
        let prefix = format!("{path}/");
        self.names
            .borrow_mut()
            .retain(|k, _| k != path && !k.starts_with(&prefix));
        self.forget_unnamed();
        Ok(())
    }

    fn truncate(&self, path: &str) -> Result<()> {
        let path = &self.native(path);
        self.check(path)?;
        match self.node(path) {
            Some(n) if n.meta.kind == Kind::File => {
                self.unshare(path);
                self.update(path, |n| {
                    n.data.clear();
                    n.meta.size = 0;
                    n.meta.allocated = 0;
                });
                Ok(())
            }
            _ => bail!("{path} is not a regular file"),
        }
    }

    fn mkdir_p(&self, path: &str) -> Result<()> {
        let path = &self.native(path);
        let mut p = String::new();
        for c in components(path)? {
            p = format!("{p}/{c}");
            match self.node(&p) {
                Some(n) if n.meta.kind == Kind::Symlink => return Err(Unsafe { path: p }.into()),
                Some(n) if n.meta.kind != Kind::Dir => bail!("{p} exists and is not a directory"),
                _ => {}
            }
        }
        self.ensure_dirs(path);
        Ok(())
    }

    fn chmod(&self, mode: u32, path: &str) -> Result<()> {
        let path = &self.native(path);
        let m = self.must_exist(path)?;
        // As the libguestfs guest: chmod(2) follows symlinks, and a link's own mode means
        // nothing on Linux.
        if m.kind == Kind::Symlink {
            bail!("{path} is a symlink; not changing the mode of its target");
        }
        self.own_inode(path, &m, "change the mode of")?;
        self.update(path, |n| n.meta.mode = mode);
        Ok(())
    }

    fn chown(&self, uid: u32, gid: u32, path: &str) -> Result<()> {
        let path = &self.native(path);
        let m = self.must_exist(path)?;
        self.own_inode(path, &m, "change the owner of")?;
        self.update(path, |n| {
            n.meta.uid = uid;
            n.meta.gid = gid;
        });
        Ok(())
    }

    fn symlink(&self, target: &str, link: &str) -> Result<()> {
        let link = &self.native(link);
        self.check(link)?;
        if self.exists(link) {
            bail!("{link} exists");
        }
        self.link(link, target);
        Ok(())
    }

    fn run(&self, command: &str) -> Result<String> {
        bail!("the in-memory guest cannot run commands ({command})")
    }

    fn filesystems(&self) -> Result<Vec<Filesystem>> {
        Ok(self.filesystems.clone())
    }

    fn resolve_device(&self, guest_device: &str) -> Result<Option<Filesystem>> {
        let canon = super::devices::canonical_disk_name(guest_device);
        Ok(self
            .filesystems
            .iter()
            .find(|f| Some(&f.device) == canon.as_ref())
            .cloned())
    }

    fn trim(&self) -> Result<Vec<String>> {
        let mps: Vec<String> = self.filesystems.iter().filter_map(|f| f.mountpoint.clone()).collect();
        self.trimmed.borrow_mut().extend(mps.clone());
        Ok(mps)
    }

    fn recreate_swap(&self, device: &str, uuid: Option<&str>, label: Option<&str>) -> Result<()> {
        self.trimmed.borrow_mut().push(device.into());
        self.swaps.borrow_mut().push(Filesystem {
            device: device.into(),
            fstype: "swap".into(),
            uuid: uuid.map(String::from),
            label: label.map(String::from),
            mountpoint: None,
        });
        Ok(())
    }

    fn layout(&self) -> Result<Layout> {
        Ok(self.layout.clone())
    }

    /// A tar of the tree (files, directories, symlinks with their owners and modes).
    fn tar_out(&self, dir: &str, dest: &std::path::Path) -> Result<()> {
        let file = std::fs::File::create(dest)?;
        let mut tar = tar::Builder::new(file);
        for e in self.walk(dir)? {
            let node = self.node(&e.path).ok_or_else(|| anyhow!("{} vanished", e.path))?;
            let mut h = tar::Header::new_gnu();
            h.set_mode(node.meta.mode);
            h.set_uid(node.meta.uid as u64);
            h.set_gid(node.meta.gid as u64);
            h.set_mtime(0);
            let name = format!(".{}", e.path.strip_prefix(dir.trim_end_matches('/')).unwrap_or(&e.path));
            match node.meta.kind {
                Kind::Dir => {
                    h.set_entry_type(tar::EntryType::Directory);
                    h.set_size(0);
                    tar.append_data(&mut h, &name, std::io::empty())?;
                }
                Kind::Symlink => {
                    h.set_entry_type(tar::EntryType::Symlink);
                    h.set_size(0);
                    tar.append_link(&mut h, &name, &node.target)?;
                }
                _ => {
                    h.set_entry_type(tar::EntryType::Regular);
                    h.set_size(node.data.len() as u64);
                    tar.append_data(&mut h, &name, node.data.as_slice())?;
                }
            }
        }
        std::io::Write::flush(&mut tar.into_inner()?)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests;
