//! What publish targets produce into once the guest is closed: the golden disk in the
//! forms they need, each made once (one raw export for the streaming pass; each disk image
//! converted once however many targets want it), and their artifacts staged, to be
//! renamed into place together by the session.

use super::{atomic, hash, images, repo, stream, GuestInfo, Plan};
use crate::disk::{Format, WorkDisk};
use crate::error::Exit;
use crate::report::Artifact;
use anyhow::{Context, Result};
use hash::Algo;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Something ready to be renamed into place.
pub(super) enum Commit {
    File(atomic::Staged),
    Dir(atomic::StagedDir),
    Repo {
        /// The target whose entry it is.
        target: String,
        dir: PathBuf,
        kind: repo::RepoType,
        entry: serde_json::Map<String, serde_json::Value>,
        files: Vec<atomic::Staged>,
    },
}

impl Commit {
    /// The repository index this commit changes, for the run's summary.
    pub(super) fn updates(&self) -> Option<crate::report::Updated> {
        match self {
            Commit::Repo { target, dir, entry, .. } => Some(crate::report::Updated {
                target: target.clone(),
                path: dir.join(repo::METADATA).display().to_string(),
                entry: entry
                    .get("name")
                    .and_then(|n| n.as_str())
                    .unwrap_or_default()
                    .to_string(),
            }),
            Commit::File(_) | Commit::Dir(_) => None,
        }
    }

    pub(super) fn commit(self) -> Result<()> {
        match self {
            Commit::Repo {
                target: _,
                dir,
                kind,
                entry,
                files,
            } => repo::publish(&dir, kind, entry, files),
            Commit::File(f) => f.commit(),
            Commit::Dir(d) => d.commit(),
        }
    }
}

/// A disk image some targets want, converted once.
struct Image {
    request: images::Request,
    wanted_by: Vec<&'static str>,
    staged: atomic::Staged,
    size: u64,
    /// Every digest a manifest may quote (md5, sha512 and the run's), computed when first
    /// asked for, or handed over by whoever read the image anyway (the containerDisk).
    sums: Option<BTreeMap<String, String>>,
    /// Its place in the artifact list.
    artifact: usize,
}

/// What targets produce into, after the guest is closed: the golden disk in the forms
/// they need (each made once), and their artifacts staged for the commit.
pub struct Produce<'a> {
    pub plan: &'a Plan,
    pub info: &'a GuestInfo,
    /// VMmanager's `updated_at` for every entry of this run.
    pub updated_at: String,
    work: &'a WorkDisk,
    scratch: &'a Path,
    /// Bytes of data in the golden disk (for progress bars).
    data: u64,
    raw: Option<PathBuf>,
    images: Vec<Image>,
    artifacts: Vec<Artifact>,
    commits: Vec<Commit>,
}

impl<'a> Produce<'a> {
    pub(super) fn new(plan: &'a Plan, info: &'a GuestInfo, work: &'a WorkDisk, scratch: &'a Path) -> Produce<'a> {
        Produce {
            plan,
            info,
            updated_at: super::vmmanager::utc_now(),
            work,
            scratch,
            data: crate::disk::data_size(&work.path, work.format).unwrap_or(0),
            raw: None,
            images: Vec::new(),
            artifacts: Vec::new(),
            commits: Vec::new(),
        }
    }

    /// Everything produced: the artifacts, and what to rename into place for them.
    pub(super) fn finish(mut self) -> Result<(Vec<Artifact>, Vec<Commit>)> {
        self.finish_images()?;
        Ok((self.artifacts, self.commits))
    }

    /// The golden disk as a sparse raw file in private scratch space, exported once (the
    /// one streaming pass reads it; disk images are then converted from it too).
    pub fn raw(&mut self) -> Result<PathBuf> {
        if let Some(r) = &self.raw {
            return Ok(r.clone());
        }
        let raw = self.scratch.join("golden.raw");
        let bar = crate::progress::bytes(self.data, "converting the golden disk to raw");
        crate::disk::export_raw(self.work, &raw, &bar).context("exporting the golden disk")?;
        bar.finish_and_clear();
        crate::interrupt::check()?;
        self.raw = Some(raw.clone());
        Ok(raw)
    }

    /// The golden disk's virtual size.
    pub fn virtual_size(&self) -> u64 {
        match &self.raw {
            Some(r) => std::fs::metadata(r).map(|m| m.len()).unwrap_or(0),
            None => crate::disk::virtual_size(&self.work.path, self.work.format).unwrap_or(0),
        }
    }

    /// The golden disk as `request` says, converted once however many targets want it;
    /// the same file with other settings is an error. Returns a handle for
    /// [`Produce::image_path`] and [`Produce::image_sums`].
    pub fn image(&mut self, who: &'static str, request: images::Request) -> Result<usize> {
        if let Some(i) = self.images.iter().position(|im| im.request.dest == request.dest) {
            let im = &mut self.images[i];
            if im.request != request {
                crate::bail_tag!(
                    Exit::Usage,
                    "{} is wanted as {} by {} and as {} by `{who}`",
                    request.dest.display(),
                    im.request.describe(),
                    im.wanted_by.join(", "),
                    request.describe()
                );
            }
            im.wanted_by.push(who);
            return Ok(i);
        }
        let (src, src_format) = match &self.raw {
            Some(r) => (r.clone(), Format::Raw),
            None => (self.work.path.clone(), self.work.format),
        };
        let staged = images::convert(&src, src_format, self.data, &request)
            .with_context(|| format!("writing {}", request.dest.display()))?;
        let size = std::fs::metadata(staged.temp_path())
            .map(|m| m.len())
            .context("reading the image size")?;
        self.artifacts.push(Artifact {
            kind: String::new(),
            path: request.dest.display().to_string(),
            size,
            checksums: Default::default(),
        });
        self.images.push(Image {
            request,
            wanted_by: vec![who],
            staged,
            size,
            sums: None,
            artifact: self.artifacts.len() - 1,
        });
        Ok(self.images.len() - 1)
    }

    /// The staged file of an image (to read it: it is renamed into place at the commit).
    pub fn image_path(&self, image: usize) -> &Path {
        self.images[image].staged.temp_path()
    }

    /// The digests every manifest may quote of an image: md5, sha512 and the run's.
    pub fn image_algos(&self) -> Vec<Algo> {
        let mut want = self.plan.algos.clone();
        want.extend([Algo::Md5, Algo::Sha512]);
        want.sort();
        want.dedup();
        want
    }

    /// An image's digests, read once.
    pub fn image_sums(&mut self, image: usize) -> Result<BTreeMap<String, String>> {
        let want = self.image_algos();
        let im = &mut self.images[image];
        if im.sums.is_none() {
            im.sums = Some(images::hash(&im.staged, &want)?.1);
        }
        Ok(im.sums.clone().expect("set above"))
    }

    /// Digests of an image that whoever read it anyway computed (the containerDisk packs it).
    pub fn set_image_sums(&mut self, image: usize, sums: BTreeMap<String, String>) {
        self.images[image].sums.get_or_insert(sums);
    }

    /// A finished artifact and what to rename into place for it.
    pub fn file(&mut self, kind: &str, staged: atomic::Staged, size: u64, checksums: BTreeMap<String, String>) {
        self.artifacts.push(artifact(kind, staged.dest(), size, checksums));
        self.commits.push(Commit::File(staged));
    }

    /// A small text file (a manifest), hashed in memory.
    pub fn text(&mut self, kind: &str, dest: &Path, text: &str) -> Result<()> {
        let mut staged = atomic::Staged::new(dest)?;
        std::io::Write::write_all(&mut staged, text.as_bytes())
            .with_context(|| format!("writing {}", dest.display()))?;
        staged.sync()?;
        let mut h = hash::Hashes::new(self.plan.algos.iter().copied());
        h.update(text.as_bytes());
        self.file(kind, staged, text.len() as u64, h.finish());
        Ok(())
    }

    /// A directory renamed into place as a whole (an OCI layout).
    pub fn dir(&mut self, kind: &str, staged: atomic::StagedDir, checksums: BTreeMap<String, String>) {
        self.artifacts.push(artifact(kind, staged.dest(), 0, checksums));
        self.commits.push(Commit::Dir(staged));
    }

    /// An entry merged into a repository's metadata.json with the files it names.
    pub fn repository_entry(
        &mut self,
        kind: &str,
        repo_kind: repo::RepoType,
        entry: serde_json::Map<String, serde_json::Value>,
        staged: atomic::Staged,
        written: &stream::Written,
    ) {
        self.repository_files(kind, repo_kind, entry, vec![(staged, written.clone())]);
    }

    /// An entry merged into a repository's metadata.json with every file it names (an
    /// archive and an install script), all renamed into place with the entry.
    pub fn repository_files(
        &mut self,
        kind: &str,
        repo_kind: repo::RepoType,
        entry: serde_json::Map<String, serde_json::Value>,
        files: Vec<(atomic::Staged, stream::Written)>,
    ) {
        let Some(dir) = files
            .first()
            .and_then(|(s, _)| s.dest().parent())
            .map(Path::to_path_buf)
        else {
            return;
        };
        let mut staged = Vec::new();
        for (s, w) in files {
            self.artifacts.push(artifact(kind, s.dest(), w.size, w.checksums));
            staged.push(s);
        }
        self.commits.push(Commit::Repo {
            target: kind.to_string(),
            dir,
            kind: repo_kind,
            entry,
            files: staged,
        });
    }

    /// Images become artifacts last: named by who wanted them, their digests complete.
    fn finish_images(&mut self) -> Result<()> {
        for i in 0..self.images.len() {
            let sums = self.image_sums(i)?;
            let im = &self.images[i];
            let kind = if im.wanted_by.contains(&super::disk::INFO.name) {
                format!("disk-{}", im.request.format.name())
            } else {
                format!("{}-qcow2", im.wanted_by[0])
            };
            let a = &mut self.artifacts[im.artifact];
            a.kind = kind;
            a.size = im.size;
            a.checksums = sums
                .into_iter()
                .filter(|(k, _)| self.plan.algos.iter().any(|a| a.name() == k.as_str()))
                .collect();
        }
        for im in self.images.drain(..) {
            self.commits.push(Commit::File(im.staged));
        }
        Ok(())
    }
}

fn artifact(kind: &str, path: &Path, size: u64, checksums: BTreeMap<String, String>) -> Artifact {
    Artifact {
        kind: kind.into(),
        path: path.display().to_string(),
        size,
        checksums,
    }
}
