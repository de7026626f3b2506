//! [`Guest`] for [`GuestfsGuest`]: each operation through the appliance, every path checked
//! first, the caches told what changed.

use super::links::Fill;
use super::{api_error, libc_enoent, meta_of, nul_separated, GuestfsGuest, MESSAGE_LIMIT};
use crate::guest::api::{errno_of, Api};
use crate::guest::facts::OsFacts;
use crate::guest::{components, Entry, Filesystem, Guest, Kind, Layout, Meta, Unsafe};
use anyhow::{anyhow, bail, Context, Result};
use std::path::Path;

impl Guest for GuestfsGuest {
    fn registry_get(&self, hive: &str, key: &[&str], name: &str) -> Result<Option<crate::guest::registry::RegValue>> {
        self.hive_get(hive, key, name)
    }

    fn registry_set(&self, hive: &str, edits: &[crate::guest::registry::RegEdit]) -> Result<()> {
        self.hive_set(hive, edits)
    }

    fn facts(&self) -> &OsFacts {
        &self.facts
    }

    fn lstat(&self, path: &str) -> Result<Option<Meta>> {
        let path = &*self.native(path);
        match self.check(path) {
            Ok(()) => {}
            Err(e) if crate::guest::is_unsafe(&e) => return Err(e),
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
        let dir = &*self.native(dir);
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
        let dir = &*self.native(dir);
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
        let dir = &*self.native(dir);
        if self.must_exist(dir)?.kind != Kind::Dir {
            bail!("{dir} is not a directory");
        }
        // One `du -s` in the appliance instead of a stat per file.
        let kib = self.g.du(dir).api().with_context(|| format!("measuring {dir}"))?;
        Ok(kib.max(0) as u64 * 1024)
    }

    fn read(&self, path: &str, limit: u64) -> Result<Vec<u8>> {
        let path = &*self.native(path);
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
        let path = &*self.native(path);
        self.check(path)?;
        self.g
            .readlink(path)
            .api()
            .with_context(|| format!("reading link {path}"))
    }

    fn write(&self, path: &str, data: &[u8]) -> Result<()> {
        let path = &*self.native(path);
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
        let path = &*self.native(path);
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
        let path = &*self.native(path);
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
        let path = &*self.native(path);
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
        let path = &*self.native(path);
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
                return Err(crate::guest::shared_refusal("change the mode of", path, &m));
            }
            return self.replace_shared(path, &m, Fill::Copy, set);
        }
        self.changed(path);
        set(path)
    }

    fn chown(&self, uid: u32, gid: u32, path: &str) -> Result<()> {
        let path = &*self.native(path);
        let m = self.must_exist(path)?;
        let set = |p: &str| {
            self.g
                .lchown(uid as i32, gid as i32, p)
                .api()
                .with_context(|| format!("changing the owner of {path}"))
        };
        if m.is_shared() {
            if m.kind != Kind::File {
                return Err(crate::guest::shared_refusal("change the owner of", path, &m));
            }
            return self.replace_shared(path, &m, Fill::Copy, set);
        }
        self.changed(path);
        set(path)
    }

    fn symlink(&self, target: &str, link: &str) -> Result<()> {
        let link = &*self.native(link);
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
        if crate::guest::resolve(self, "/bin/sh")?.is_none() {
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
        self.list_filesystems()
    }

    fn resolve_device(&self, guest_device: &str) -> Result<Option<Filesystem>> {
        self.find_device(guest_device)
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
        self.disk_layout()
    }

    fn tar_out(&self, dir: &str, dest: &Path) -> Result<()> {
        let dir = &*self.native(dir);
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
