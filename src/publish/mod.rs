//! Publish targets: the golden disk in the form each repository takes, in one run.
//!
//! Each target is one record in one file (see target.rs), listed once in the `targets!`
//! registry below. run.rs drives one [`Session`] through the run's moments:
//! - [`Session::new`], before anything long starts: the settings are checked, and so is
//!   what is already there (repositories' metadata, writable directories, destinations
//!   that collide), reading only, so that a bad setting creates nothing;
//! - [`Session::input_known`]: the input is known (the vmmanager head start begins);
//! - [`Session::guest_open`]: what targets need from the guest is read once
//!   ([`GuestInfo`]), and targets that need the open guest use it (vmmanager-lxd's tree);
//! - [`Session::guest_closed`]: every target produces its artifacts from the golden disk
//!   through [`Produce`] (one raw export, one streaming pass, each disk image converted
//!   once), then everything is renamed into place at once; checksum lists follow;
//! - [`Session::reported`]: the run manifest records the finished report.

pub mod atomic;
pub mod codec;
pub mod hash;
pub mod headstart;
pub mod images;
pub mod oci;
pub mod repo;
pub mod settings;
pub mod stream;
pub mod target;

use crate::disk::{Format, WorkDisk};
use crate::error::{Exit, Tag};
use crate::guest::{Guest, Layout, OsFacts};
use crate::report::{Artifact, RunReport};
use anyhow::{Context, Result};
use hash::Algo;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use target::{Item, Section, Target};

macro_rules! targets {
    ($($module:ident :: $ty:ident),* $(,)?) => {
        $(pub mod $module;)*

        /// Every publish target, in the order a run produces them (and `goldify targets`
        /// lists them).
        pub static REGISTRY: &[&target::TargetInfo] = &[$(&$module::INFO),*];

        /// Build a target from its settings (any serde deserializer: the recipe's YAML
        /// keeps line and column in its errors). Null settings are the empty mapping.
        pub fn build<'de, D: serde::Deserializer<'de>>(name: &str, settings: D) -> Result<Box<dyn Target>, D::Error> {
            $(
                if name == $module::INFO.name {
                    let t: $module::$ty = target::settings(settings)?;
                    t.validate().map_err(|e| serde::de::Error::custom(format!("publish target `{name}`: {e:#}")))?;
                    return Ok(Box::new(t));
                }
            )*
            Err(serde::de::Error::custom(target::unknown_target_message(name)))
        }
    };
}

targets! {
    vmmanager::Vmmanager,
    lxd::Lxd,
    disk::Disk,
    deckhouse::Deckhouse,
    vcluster::Vcluster,
    checksums::Checksums,
    manifest::Manifest,
}

/// The targets' names, in registry order (for `--publish` and messages).
pub fn names() -> Vec<&'static str> {
    REGISTRY.iter().map(|t| t.name).collect()
}

fn rank(name: &str) -> usize {
    REGISTRY.iter().position(|t| t.name == name).unwrap_or(usize::MAX)
}

/// What the command line asks for.
#[derive(Debug, Clone, Default)]
pub struct Request {
    /// `--publish TARGET…`: exactly these targets (default: every target the recipe lists).
    pub targets: Vec<String>,
    /// `--publish-dir`: where targets without their own directory write (default: --outdir).
    pub dir: Option<PathBuf>,
    /// `--no-publish`.
    pub none: bool,
}

/// The run's facts every target may use; fixed once the session starts.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Where targets without a directory of their own write (--publish-dir, else --outdir).
    pub dir: PathBuf,
    /// `--name`, the default template name.
    pub run_name: Option<String>,
    /// Base name of the `disk` target's file (`<input>-golden` or --name).
    pub disk_name: String,
    /// `--format`, else the recipe's `output.format`: the `disk` target's default.
    pub format: Option<Format>,
    /// The recipe's `output.compress`.
    pub compress: Option<bool>,
    pub recipe_name: String,
    /// Every artifact carries these digests: sha256 (the manifest records it) and what
    /// any target asks for (the checksum lists).
    pub algos: Vec<Algo>,
}

impl Plan {
    /// The template's name: the setting, else --name, else `<distro>-<major>`.
    pub fn template_name(&self, setting: Option<&str>, info: &GuestInfo) -> String {
        setting
            .or(self.run_name.as_deref())
            .map(str::to_string)
            .unwrap_or_else(|| format!("{}-{}", info.os.distro, info.os.major))
    }

    /// A Kubernetes object (and file) name: the setting, else the template name made an
    /// RFC 1123 label.
    pub fn object_name(&self, setting: Option<&str>, info: &GuestInfo) -> String {
        setting
            .map(str::to_string)
            .unwrap_or_else(|| settings::dns_safe(&self.template_name(None, info)))
    }
}

/// The run's part that is not the recipe: what `run` knows before publishing starts.
#[derive(Debug, Clone)]
pub struct RunFacts {
    pub outdir: PathBuf,
    pub run_name: Option<String>,
    pub disk_name: String,
    pub format: Option<Format>,
    pub compress: Option<bool>,
    pub recipe_name: String,
    pub dry_run: bool,
}

/// Facts publish targets need, read while the guest is open.
#[derive(Debug, Clone, Serialize)]
pub struct GuestInfo {
    pub os: OsFacts,
    pub layout: Layout,
    pub network_device: Option<String>,
    /// `vd`, `sd`, `xvd` or `hd`: how the guest names its disks.
    pub disk_prefix: String,
}

/// The input disk, for targets that start work before the appliance is done with it.
#[derive(Debug, Clone, Copy)]
pub struct Input<'a> {
    /// The user's input, read-only and unchanged for the whole run (the run works on an
    /// overlay over it).
    pub path: &'a Path,
    pub format: Format,
    /// Where private work files go ($TMPDIR, or the user's choice).
    pub scratch_parent: &'a Path,
}

/// One run's publishing.
pub struct Session {
    plan: Plan,
    items: Vec<Item>,
    info: Option<GuestInfo>,
    dry_run: bool,
    /// The run manifest was added because every publishing run writes one, not because
    /// the recipe or the command line named it.
    implicit_manifest: bool,
}

impl Session {
    /// Select the targets (`--publish`, else the recipe's) and check everything that can
    /// be checked before the long work; `None` when nothing is to be published. A dry run
    /// checks the settings and creates nothing, not even directories.
    pub fn new(section: Section, req: &Request, run: RunFacts) -> Result<Option<Session>> {
        if req.none {
            return Ok(None);
        }
        let items = select(section, &req.targets).tag(Exit::Usage)?;
        if items.is_empty() {
            return Ok(None);
        }
        let mut algos = vec![Algo::Sha256];
        for i in &items {
            algos.extend(i.target.digests());
        }
        algos.sort();
        algos.dedup();
        let mut session = Session {
            plan: Plan {
                dir: req.dir.clone().unwrap_or(run.outdir),
                run_name: run.run_name,
                disk_name: run.disk_name,
                format: run.format,
                compress: run.compress,
                recipe_name: run.recipe_name,
                algos,
            },
            items,
            info: None,
            dry_run: run.dry_run,
            implicit_manifest: false,
        };
        session.check_destinations().tag(Exit::Usage)?;
        if !session.dry_run {
            session.check_repositories()?;
            // The run manifest is always written when anything is published.
            if !session.items.iter().any(|i| i.name == manifest::INFO.name) {
                session.items.push(Item {
                    name: manifest::INFO.name.into(),
                    target: build(manifest::INFO.name, serde_yaml::Value::Null).map_err(anyhow::Error::from)?,
                    origin: PathBuf::new(),
                });
                session.implicit_manifest = true;
            }
        }
        Ok(Some(session))
    }

    pub fn plan(&self) -> &Plan {
        &self.plan
    }

    /// The selected targets' names, for messages.
    pub fn describe(&self) -> String {
        let mut names: Vec<&str> = self.items.iter().map(|i| i.name.as_str()).collect();
        if self.implicit_manifest {
            names.pop();
        }
        names.join(", ")
    }

    /// Two targets may write the same file only when they want the same thing in it.
    fn check_destinations(&self) -> Result<()> {
        let mut seen: Vec<(PathBuf, String, &str)> = Vec::new();
        for i in &self.items {
            for (dest, what) in i.target.known_destinations(&self.plan) {
                match seen.iter().find(|(d, _, _)| *d == dest) {
                    Some((_, w, who)) if *w != what => anyhow::bail!(
                        "{} is wanted as {w} by {who} and as {what} by {}",
                        dest.display(),
                        i.name
                    ),
                    Some(_) => {}
                    None => seen.push((dest, what, &i.name)),
                }
            }
        }
        Ok(())
    }

    /// Repositories' metadata is sound (read-only checks first, so that a bad setting
    /// creates nothing); then every directory exists and is writable.
    fn check_repositories(&self) -> Result<()> {
        let mut claims: Vec<(&str, target::RepoClaim)> = Vec::new();
        for i in &self.items {
            let Some(c) = i.target.repository(&self.plan) else {
                continue;
            };
            if let Some((other, _)) = claims.iter().find(|(_, o)| o.dir == c.dir) {
                crate::bail_tag!(
                    Exit::Usage,
                    "{other} and {} would share the repository {}; VMmanager wants KVM and LXD templates in separate ones",
                    i.name,
                    c.dir.display()
                );
            }
            claims.push((&i.name, c));
        }
        for (_, c) in &claims {
            repo::check(&c.dir, c.kind)?;
        }
        let mut dirs = vec![self.plan.dir.clone()];
        dirs.extend(self.items.iter().map(|i| i.target.dir(&self.plan.dir)));
        dirs.dedup();
        for d in dirs {
            repo::ensure_writable_dir(&d)?;
        }
        Ok(())
    }

    /// The input is known and stays unchanged while the appliance works on an overlay.
    pub fn input_known(&mut self, input: &Input) -> Result<()> {
        if self.dry_run {
            return Ok(());
        }
        for i in &mut self.items {
            i.target.input_known(&self.plan, input)?;
        }
        Ok(())
    }

    /// While the guest is open: read what the targets need from it, once.
    pub fn guest_open(&mut self, guest: &dyn Guest, phase: &crate::progress::Phase) -> Result<()> {
        phase.set("reading the disk layout for publishing");
        let info = gather(guest)?;
        if !self.dry_run {
            for i in &mut self.items {
                phase
                    .suspend(|| i.target.guest_open(&self.plan, &info, guest))
                    .with_context(|| format!("publish target `{}`", i.name))
                    .tag(Exit::Output)?;
            }
        }
        self.info = Some(info);
        Ok(())
    }

    /// After the appliance is closed: produce every artifact, then commit them all. A
    /// failure or an interruption before the commit leaves every destination as it was,
    /// and says so. `scratch_parent` is where private work files go ($TMPDIR).
    pub fn guest_closed(&mut self, work: &WorkDisk, scratch_parent: &Path) -> Result<Vec<Artifact>> {
        if self.dry_run {
            tracing::warn!("dry run: would publish {}", self.describe());
            return Ok(Vec::new());
        }
        let info = self
            .info
            .take()
            .ok_or_else(|| anyhow::anyhow!("publishing needs the guest's facts; the guest was never opened"))?;
        let (mut artifacts, commits) = self
            .produce(&info, work, scratch_parent)
            .context("nothing was published, every destination is as it was")
            .tag(Exit::Output)?;
        // Everything is written and synced: rename into place. There is no interruption
        // point from here on, so a Ctrl-C now lets the renames finish and then exits.
        for c in commits {
            c.commit().context("publishing stopped part way").tag(Exit::Output)?;
        }
        let mut more = Vec::new();
        for i in &mut self.items {
            more.extend(i.target.published(&self.plan, &artifacts).tag(Exit::Output)?);
        }
        artifacts.extend(more);
        Ok(artifacts)
    }

    fn produce(
        &mut self,
        info: &GuestInfo,
        work: &WorkDisk,
        scratch_parent: &Path,
    ) -> Result<(Vec<Artifact>, Vec<Commit>)> {
        let scratch = private_dir(scratch_parent)?;
        let mut out = Produce {
            plan: &self.plan,
            info,
            updated_at: vmmanager::utc_now(),
            work,
            scratch: scratch.path(),
            data: crate::disk::data_size(&work.path, work.format).unwrap_or(0),
            raw: None,
            images: Vec::new(),
            artifacts: Vec::new(),
            commits: Vec::new(),
        };
        for i in &mut self.items {
            crate::interrupt::check()?;
            i.target
                .produce(&mut out)
                .with_context(|| format!("publish target `{}`", i.name))?;
        }
        crate::interrupt::check()?;
        out.finish_images()?;
        Ok((out.artifacts, out.commits))
    }

    /// Record the finished run (the run manifest, last, so it lists every artifact).
    pub fn reported(&mut self, report: &RunReport) -> Result<Vec<Artifact>> {
        if self.dry_run {
            return Ok(Vec::new());
        }
        let mut out = Vec::new();
        for i in &mut self.items {
            out.extend(i.target.reported(&self.plan, report).tag(Exit::Output)?);
        }
        Ok(out)
    }
}

/// The targets a run publishes: those named on the command line (`--publish`), each with
/// the recipe's settings when it lists the target, else every target the recipe lists;
/// in registry order.
fn select(section: Section, selected: &[String]) -> Result<Vec<Item>> {
    for s in selected {
        if !names().contains(&s.as_str()) {
            anyhow::bail!("--publish: {}", target::unknown_target_message(s));
        }
    }
    let mut items = section.0;
    if !selected.is_empty() {
        items.retain(|i| selected.contains(&i.name));
        for name in selected {
            if items.iter().any(|i| &i.name == name) {
                continue;
            }
            let target = build(name, serde_yaml::Value::Null).map_err(|e| {
                anyhow::anyhow!(
                    "--publish {name}: {e}; the recipe's `publish:` section gives a target its settings (`publish: {{{name}: {{…}}}}`)"
                )
            })?;
            items.push(Item {
                name: name.clone(),
                target,
                origin: PathBuf::new(),
            });
        }
    }
    items.sort_by_key(|i| rank(&i.name));
    Ok(items)
}

/// Read what the targets need from the open guest.
pub fn gather(guest: &dyn Guest) -> Result<GuestInfo> {
    let layout = guest.layout().context("reading the disk layout")?;
    Ok(GuestInfo {
        os: guest.facts().clone(),
        layout,
        network_device: crate::guest::naming::network_device(guest),
        disk_prefix: crate::guest::naming::disk_prefix(guest),
    })
}

/// Something ready to be renamed into place.
enum Commit {
    File(atomic::Staged),
    Dir(atomic::StagedDir),
    Repo {
        dir: PathBuf,
        kind: repo::RepoType,
        entry: serde_json::Map<String, serde_json::Value>,
        files: Vec<atomic::Staged>,
    },
}

impl Commit {
    fn commit(self) -> Result<()> {
        match self {
            Commit::Repo {
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

impl Produce<'_> {
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
                    "{} is wanted as {} by {} and as {} by {who}",
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
        let dest = staged.dest().to_path_buf();
        self.artifacts
            .push(artifact(kind, &dest, written.size, written.checksums.clone()));
        self.commits.push(Commit::Repo {
            dir: dest.parent().unwrap_or(Path::new(".")).to_path_buf(),
            kind: repo_kind,
            entry,
            files: vec![staged],
        });
    }

    /// Images become artifacts last: named by who wanted them, their digests complete.
    fn finish_images(&mut self) -> Result<()> {
        for i in 0..self.images.len() {
            let sums = self.image_sums(i)?;
            let im = &self.images[i];
            let kind = if im.wanted_by.contains(&disk::INFO.name) {
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

/// Scratch space nobody else may read: it holds the raw, uncleaned-looking golden disk.
fn private_dir(parent: &Path) -> Result<tempfile::TempDir> {
    use std::os::unix::fs::PermissionsExt;
    tempfile::Builder::new()
        .prefix(".goldify-publish-")
        .permissions(std::fs::Permissions::from_mode(0o700))
        .tempdir_in(parent)
        .with_context(|| format!("creating a work directory in {}", parent.display()))
}

fn artifact(kind: &str, path: &Path, size: u64, checksums: BTreeMap<String, String>) -> Artifact {
    Artifact {
        kind: kind.into(),
        path: path.display().to_string(),
        size,
        checksums,
    }
}

/// A human name for the OS: libguestfs' product name, prefixed with the distro when the
/// product name does not say it (Debian's is just "12.5").
pub fn display_name(os: &OsFacts) -> String {
    let mut distro = os.distro.clone();
    if let Some(first) = distro.get_mut(..1) {
        first.make_ascii_uppercase();
    }
    let product = if os.product_name == "unknown" || os.product_name.is_empty() {
        os.version()
    } else {
        os.product_name.clone()
    };
    if product.to_lowercase().contains(&os.distro.to_lowercase()) {
        product
    } else {
        format!("{distro} {product}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recipe(publish: &str) -> Result<crate::recipe::Recipe> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.yaml");
        std::fs::write(&path, format!("steps: []\npublish:\n{publish}")).unwrap();
        crate::recipe::Recipe::load(&path)
    }

    fn err(publish: &str) -> String {
        let e = format!("{:#}", recipe(publish).unwrap_err());
        assert!(!e.contains('\n'), "one line: {e}");
        e.split_once("r.yaml").map(|(_, rest)| rest.to_string()).unwrap_or(e)
    }

    fn names(items: &[Item]) -> Vec<&str> {
        items.iter().map(|i| i.name.as_str()).collect()
    }

    #[test]
    fn full_example_parses_in_registry_order() {
        let r = recipe(
            r#"  checksums: {algorithms: [sha256, sha1, sha512]}
  vmmanager: {repo: /srv/repo, name: debian-12, tags: [debian], cpu_mode: host-passthrough, expand: /dev/vda1,
              compression: {preset: 9, threads: 2}}
  vmmanager-lxd: {repo: /srv/lxd}
  disk: {format: qcow2, compress: true}
  deckhouse: {base_url: "https://img.example.com/golden", kind: VirtualImage, namespace: vms}
  vcluster: {base_url: "http://img.example.com", display_name: Debian 12, checksum_type: sha512}
"#,
        )
        .unwrap();
        assert_eq!(
            r.publish.names(),
            [
                "checksums",
                "vmmanager",
                "vmmanager-lxd",
                "disk",
                "deckhouse",
                "vcluster"
            ],
            "as written"
        );
        let items = select(r.publish, &[]).unwrap();
        assert_eq!(
            names(&items),
            [
                "vmmanager",
                "vmmanager-lxd",
                "disk",
                "deckhouse",
                "vcluster",
                "checksums"
            ],
            "run in registry order"
        );
        assert!(format!("{:?}", items[0].target).contains("preset: 9"));
    }

    #[test]
    fn command_line_selects_and_defaults() {
        let r = recipe("  vmmanager: {name: x}\n  disk: {}\n").unwrap();
        let sel = ["checksums".to_string(), "disk".to_string()];
        let items = select(r.publish, &sel).unwrap();
        assert_eq!(names(&items), ["disk", "checksums"]);
        assert_eq!(items[1].target.digests(), [Algo::Sha256]);
        let e = format!("{:#}", select(Section::default(), &["deckhouse".into()]).unwrap_err());
        assert!(
            e.starts_with("--publish deckhouse: missing field `base_url`") && e.contains("`publish:` section"),
            "{e}"
        );
        let e = format!("{:#}", select(Section::default(), &["vcluser".into()]).unwrap_err());
        assert!(
            e.starts_with("--publish: unknown publish target `vcluser`, did you mean `vcluster`?"),
            "{e}"
        );
    }

    #[test]
    fn bad_settings_are_one_line_errors_with_position() {
        assert_eq!(
            err("  vmmanger: {}\n"),
            ":3:3: publish: unknown publish target `vmmanger`, did you mean `vmmanager`?"
        );
        assert!(
            err("  deckhouse: {}\n").starts_with(":3:14: "),
            "{}",
            err("  deckhouse: {}\n")
        );
        assert!(err("  deckhouse: {}\n").contains("missing field `base_url`"));
        assert!(err("  deckhouse:\n").contains("missing field `base_url`"));
        assert!(err("  vmmanager: {compresion: {}}\n").contains("unknown field `compresion`"));
        assert!(err("  vmmanager: {compresion: {}}\n").contains("did you mean `compression`"));
        assert!(err("  vmmanager: {compression: {preset: 12}}\n").contains("out of range"));
        assert!(err("  vmmanager: {cpu_mode: fast}\n").contains("unknown variant `fast`"));
        assert!(err("  deckhouse: {base_url: ftp://x}\n").contains("http:// or https://"));
        assert!(err("  deckhouse: {base_url: 'http://x', kind: VirtualImage}\n").contains("needs `namespace`"));
        assert!(err("  vcluster: {base_url: 'http://x', checksum_type: sha1}\n").contains("md5, sha256 or sha512"));
        assert!(err("  disk: {format: raw, compress: true}\n").contains("qcow2 only"));
        assert!(err("  checksums: {algorithms: [crc]}\n").contains("unknown variant `crc`"));
        assert!(err("  disk: {name: ../x}\n").contains("plain file name"));
        for e in [
            err("  deckhouse: {}\n"),
            err("  vmmanger: {}\n"),
            err("  disk: {name: ../x}\n"),
        ] {
            assert!(e.starts_with(":3:"), "file:line:col: {e}");
        }
    }

    #[test]
    fn children_replace_their_parents_targets() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("base.yaml"),
            "publish:\n  disk: {format: raw}\n  checksums: {}\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("child.yaml"),
            "extends: base.yaml\npublish:\n  disk: {format: vmdk}\n",
        )
        .unwrap();
        let r = crate::recipe::Recipe::load(&dir.path().join("child.yaml")).unwrap();
        assert_eq!(r.publish.names(), ["disk", "checksums"]);
        assert!(format!("{:?}", r.publish.0[0].target).contains("Vmdk"));
        assert!(r.publish.0[0].origin.ends_with("child.yaml"));
    }

    fn facts(dir: &Path) -> RunFacts {
        RunFacts {
            outdir: dir.to_path_buf(),
            run_name: Some("vm".into()),
            disk_name: "vm".into(),
            format: None,
            compress: None,
            recipe_name: "r".into(),
            dry_run: true,
        }
    }

    #[test]
    fn colliding_destinations_are_found_before_the_run() {
        let d = tempfile::tempdir().unwrap();
        let r = recipe("  disk: {compress: true}\n  deckhouse: {base_url: 'http://x', name: vm}\n").unwrap();
        let e = Session::new(r.publish, &Request::default(), facts(d.path()))
            .err()
            .unwrap();
        assert_eq!(crate::error::exit_of(&e), Exit::Usage);
        let e = format!("{e:#}");
        assert!(
            e.contains("vm.qcow2 is wanted as qcow2 (compressed) by disk and as qcow2 by deckhouse"),
            "{e}"
        );
        let r = recipe("  disk: {}\n  vcluster: {base_url: 'http://x', name: vm}\n").unwrap();
        let s = Session::new(r.publish, &Request::default(), facts(d.path()))
            .unwrap()
            .unwrap();
        assert_eq!(s.describe(), "disk, vcluster", "the same qcow2 is shared");
        let r = recipe("  manifest: {file: SHA256SUMS}\n  checksums: {}\n").unwrap();
        let e = format!(
            "{:#}",
            Session::new(r.publish, &Request::default(), facts(d.path()))
                .err()
                .unwrap()
        );
        assert!(
            e.contains("SHA256SUMS is wanted as a checksum list by checksums and as the run manifest by manifest"),
            "{e}"
        );
    }

    #[test]
    fn every_target_is_listed_once_with_its_options() {
        let mut seen = std::collections::HashSet::new();
        for t in REGISTRY {
            assert!(seen.insert(t.name), "{} twice", t.name);
            assert!(!t.summary.is_empty());
            // Null settings build every target without required fields.
            let built = build(t.name, serde_yaml::Value::Null);
            match t.name {
                "deckhouse" | "vcluster" => assert!(built.is_err()),
                _ => assert_eq!(built.unwrap().info().name, t.name),
            }
        }
    }
}
