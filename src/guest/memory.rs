//! An in-memory guest: the same contract as the libguestfs one (no symlink is followed,
//! reads are bounded), so step logic can be unit-tested in milliseconds. Integration tests
//! prove each step again inside real images.

use super::{components, join, parent, Entry, Filesystem, Guest, Kind, Layout, Meta, OsFacts, Unsafe};
use anyhow::{anyhow, bail, Result};
use std::cell::RefCell;
use std::collections::BTreeMap;

#[derive(Debug, Clone)]
pub struct Node {
    pub meta: Meta,
    pub data: Vec<u8>,
    pub target: String,
}

pub struct MemoryGuest {
    pub facts: OsFacts,
    pub nodes: RefCell<BTreeMap<String, Node>>,
    pub filesystems: Vec<Filesystem>,
    pub trimmed: RefCell<Vec<String>>,
    pub layout: Layout,
    /// Swap areas `recreate_swap` made, with the UUID and label it was asked for.
    pub swaps: RefCell<Vec<Filesystem>>,
}

fn meta(kind: Kind, size: u64, mode: u32) -> Meta {
    Meta {
        kind,
        size,
        allocated: size,
        mode,
        uid: 0,
        gid: 0,
    }
}

impl MemoryGuest {
    pub fn new(facts: OsFacts) -> MemoryGuest {
        let mut nodes = BTreeMap::new();
        nodes.insert(
            "/".into(),
            Node {
                meta: meta(Kind::Dir, 4096, 0o755),
                data: vec![],
                target: String::new(),
            },
        );
        MemoryGuest {
            facts,
            nodes: RefCell::new(nodes),
            filesystems: Vec::new(),
            trimmed: RefCell::new(Vec::new()),
            layout: Layout::default(),
            swaps: RefCell::new(Vec::new()),
        }
    }

    /// Add a file (parents created as directories).
    pub fn file(&self, path: &str, data: &[u8]) -> &Self {
        self.ensure_dirs(parent(path));
        self.nodes.borrow_mut().insert(
            path.into(),
            Node {
                meta: meta(Kind::File, data.len() as u64, 0o644),
                data: data.to_vec(),
                target: String::new(),
            },
        );
        self
    }

    pub fn link(&self, path: &str, target: &str) -> &Self {
        self.ensure_dirs(parent(path));
        self.nodes.borrow_mut().insert(
            path.into(),
            Node {
                meta: meta(Kind::Symlink, target.len() as u64, 0o777),
                data: vec![],
                target: target.into(),
            },
        );
        self
    }

    pub fn dir(&self, path: &str) -> &Self {
        self.ensure_dirs(path);
        self
    }

    pub fn content(&self, path: &str) -> Option<Vec<u8>> {
        self.nodes.borrow().get(path).map(|n| n.data.clone())
    }

    pub fn exists(&self, path: &str) -> bool {
        self.nodes.borrow().contains_key(path)
    }

    fn ensure_dirs(&self, path: &str) {
        let mut p = String::new();
        for c in path.split('/').filter(|c| !c.is_empty()) {
            p = format!("{p}/{c}");
            self.nodes.borrow_mut().entry(p.clone()).or_insert(Node {
                meta: meta(Kind::Dir, 4096, 0o755),
                data: vec![],
                target: String::new(),
            });
        }
    }

    /// The safety contract: every component before the last must be a real directory.
    fn check(&self, path: &str) -> Result<()> {
        let parts = components(path)?;
        let nodes = self.nodes.borrow();
        let mut p = String::new();
        for c in parts.iter().take(parts.len().saturating_sub(1)) {
            p = format!("{p}/{c}");
            match nodes.get(&p) {
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
        self.nodes
            .borrow()
            .keys()
            .filter(|k| k.starts_with(&prefix) && k.len() > prefix.len() && !k[prefix.len()..].contains('/'))
            .map(|k| k[prefix.len()..].to_string())
            .collect()
    }
}

impl Guest for MemoryGuest {
    fn facts(&self) -> &OsFacts {
        &self.facts
    }

    fn lstat(&self, path: &str) -> Result<Option<Meta>> {
        if path == "/" {
            return Ok(self.nodes.borrow().get("/").map(|n| n.meta.clone()));
        }
        match self.check(path) {
            Ok(()) => Ok(self.nodes.borrow().get(path).map(|n| n.meta.clone())),
            Err(e) if super::is_unsafe(&e) => Err(e),
            Err(_) => Ok(None),
        }
    }

    fn list(&self, dir: &str) -> Result<Vec<String>> {
        match self.lstat(dir)? {
            Some(m) if m.kind == Kind::Dir => Ok(self.children(dir)),
            Some(m) if m.kind == Kind::Symlink => Err(Unsafe { path: dir.into() }.into()),
            _ => bail!("{dir}: not a directory"),
        }
    }

    fn walk(&self, dir: &str) -> Result<Vec<Entry>> {
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
        self.check(path)?;
        let nodes = self.nodes.borrow();
        match nodes.get(path) {
            Some(n) if n.meta.kind == Kind::Symlink => Ok(n.target.clone()),
            _ => bail!("{path} is not a symlink"),
        }
    }

    fn write(&self, path: &str, data: &[u8]) -> Result<()> {
        self.check(path)?;
        let mut nodes = self.nodes.borrow_mut();
        match nodes.get_mut(path) {
            Some(n) if n.meta.kind == Kind::File => {
                n.data = data.to_vec();
                n.meta.size = data.len() as u64;
            }
            Some(_) => bail!("{path} exists and is not a regular file"),
            None => {
                nodes.insert(
                    path.into(),
                    Node {
                        meta: meta(Kind::File, data.len() as u64, 0o644),
                        data: data.to_vec(),
                        target: String::new(),
                    },
                );
            }
        }
        Ok(())
    }

    fn remove(&self, path: &str) -> Result<()> {
        self.check(path)?;
        let prefix = format!("{path}/");
        self.nodes
            .borrow_mut()
            .retain(|k, _| k != path && !k.starts_with(&prefix));
        Ok(())
    }

    fn truncate(&self, path: &str) -> Result<()> {
        self.check(path)?;
        let mut nodes = self.nodes.borrow_mut();
        match nodes.get_mut(path) {
            Some(n) if n.meta.kind == Kind::File => {
                n.data.clear();
                n.meta.size = 0;
                n.meta.allocated = 0;
                Ok(())
            }
            _ => bail!("{path} is not a regular file"),
        }
    }

    fn mkdir_p(&self, path: &str) -> Result<()> {
        let mut p = String::new();
        for c in components(path)? {
            p = format!("{p}/{c}");
            match self.nodes.borrow().get(&p) {
                Some(n) if n.meta.kind == Kind::Symlink => return Err(Unsafe { path: p }.into()),
                Some(n) if n.meta.kind != Kind::Dir => bail!("{p} exists and is not a directory"),
                _ => {}
            }
        }
        self.ensure_dirs(path);
        Ok(())
    }

    fn chmod(&self, mode: u32, path: &str) -> Result<()> {
        self.check(path)?;
        let mut nodes = self.nodes.borrow_mut();
        let n = nodes.get_mut(path).ok_or_else(|| anyhow!("{path}: no such file"))?;
        n.meta.mode = mode;
        Ok(())
    }

    fn chown(&self, uid: u32, gid: u32, path: &str) -> Result<()> {
        self.check(path)?;
        let mut nodes = self.nodes.borrow_mut();
        let n = nodes.get_mut(path).ok_or_else(|| anyhow!("{path}: no such file"))?;
        n.meta.uid = uid;
        n.meta.gid = gid;
        Ok(())
    }

    fn symlink(&self, target: &str, link: &str) -> Result<()> {
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
        let canon = super::guestfs::canonical_disk_name(guest_device);
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
            let node = self
                .nodes
                .borrow()
                .get(&e.path)
                .cloned()
                .ok_or_else(|| anyhow!("{} vanished", e.path))?;
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
