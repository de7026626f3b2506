//! Publish targets: the golden disk in the form each repository takes, in one run.
//!
//! The flow: [`plan`] validates the recipe's `publish:` settings (and the command line's
//! `--publish`) before the long work starts; [`gather`] reads what targets need from the
//! guest while it is open (partitions, root, EFI, network device), and `vmmanager-lxd`
//! exports the root tree then; after the appliance is closed, [`execute`] exports the
//! golden disk once as a sparse raw file, streams it once through the compressors and
//! hashers (stream.rs), converts the disk images, and commits every artifact atomically.
//! [`manifest`] records the run last.

pub mod atomic;
pub mod checksums;
pub mod codec;
pub mod deckhouse;
mod destinations;
pub mod disk;
pub mod hash;
pub mod headstart;
pub mod lxd;
pub mod manifest;
pub mod oci;
pub mod repo;
pub mod settings;
pub mod stream;
pub mod vcluster;
pub mod vmmanager;

use crate::disk::WorkDisk;
use crate::error::{Exit, Tag};
use crate::guest::{Guest, Layout, OsFacts};
use crate::recipe::Recipe;
use crate::report::{Artifact, RunReport};
use anyhow::{Context, Result};
use hash::Algo;
use serde::Serialize;
use settings::Targets;
use std::path::{Path, PathBuf};

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

/// Validated publish settings for one run.
#[derive(Debug, Clone)]
pub struct Plan {
    pub targets: Targets,
    pub dir: PathBuf,
    /// `--name`, the default template name.
    pub run_name: Option<String>,
    /// Base name of the `disk` target's file (`<input>-golden` or --name).
    pub disk_name: String,
    pub recipe_name: String,
    pub output: crate::recipe::Output,
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

/// Parse the publish settings; `None` when nothing is to be published. Nothing is read
/// or created yet: unless it is a dry run, the caller checks the repositories
/// ([`Plan::check`]) and the destinations ([`Plan::destinations`]), then creates the
/// directories ([`Plan::create_dirs`]).
pub fn plan(recipe: &Recipe, req: &Request, outdir: &Path, disk_name: &str) -> Result<Option<Plan>> {
    if req.none {
        return Ok(None);
    }
    let targets = settings::parse(&recipe.path, recipe.publish.as_ref(), &req.targets).tag(Exit::Usage)?;
    if targets.is_empty() {
        return Ok(None);
    }
    Ok(Some(Plan {
        targets,
        dir: req.dir.clone().unwrap_or_else(|| outdir.to_path_buf()),
        run_name: None,
        disk_name: disk_name.to_string(),
        recipe_name: recipe.name.clone(),
        output: recipe.output.clone(),
    }))
}

impl Plan {
    /// The run's `--name` (default template name) and `--format` (default `disk` format).
    pub fn with_run(mut self, name: Option<String>, format: Option<crate::disk::Format>) -> Plan {
        self.run_name = name;
        self.output.format = format.or(self.output.format);
        self
    }

    fn dir_of(&self, d: &Option<PathBuf>) -> PathBuf {
        d.clone().unwrap_or_else(|| self.dir.clone())
    }

    /// Repositories are distinct and their metadata is sound. Read-only: a bad setting
    /// creates nothing.
    pub fn check(&self) -> Result<()> {
        let t = &self.targets;
        let vm = t.vmmanager.as_ref().map(|v| self.dir_of(&v.repo));
        let lxd = t.lxd.as_ref().map(|l| self.dir_of(&l.repo));
        if let (Some(a), Some(b)) = (&vm, &lxd) {
            if a == b {
                crate::bail_tag!(
                    Exit::Usage,
                    "vmmanager and vmmanager-lxd would share the repository {}; VMmanager wants KVM and LXD templates in separate ones",
                    a.display()
                );
            }
        }
        if let Some(d) = &vm {
            repo::check(d, repo::RepoType::Os)?;
        }
        if let Some(d) = &lxd {
            repo::check(d, repo::RepoType::Lxd)?;
        }
        Ok(())
    }

    /// Every directory exists and is writable (after [`Plan::check`] and the check of
    /// the destinations).
    pub fn create_dirs(&self) -> Result<()> {
        let t = &self.targets;
        let vm = t.vmmanager.as_ref().map(|v| self.dir_of(&v.repo));
        let lxd = t.lxd.as_ref().map(|l| self.dir_of(&l.repo));
        let mut dirs: Vec<PathBuf> = vm.iter().chain(&lxd).cloned().collect();
        dirs.push(self.dir.clone());
        dirs.extend(t.disk.as_ref().map(|d| self.dir_of(&d.dir)));
        dirs.extend(t.deckhouse.as_ref().map(|d| self.dir_of(&d.dir)));
        dirs.extend(t.vcluster.as_ref().map(|d| self.dir_of(&d.dir)));
        dirs.extend(t.checksums.as_ref().map(|d| self.dir_of(&d.dir)));
        dirs.extend(t.manifest.as_ref().map(|d| self.dir_of(&d.dir)));
        for d in dirs {
            // Created 0755 here (goldify's umask is 0077); repo.rs then proves it writable.
            atomic::create_public_dir_all(&d)
                .with_context(|| format!("creating publish directory {}", d.display()))
                .tag(Exit::Output)?;
            repo::ensure_writable_dir(&d)?;
        }
        Ok(())
    }

    /// Every artifact gets sha256 (the manifest records it) and what `checksums` asks for.
    fn algos(&self) -> Vec<Algo> {
        let mut v = vec![Algo::Sha256];
        if let Some(c) = &self.targets.checksums {
            v.extend(&c.algorithms);
        }
        v.sort();
        v.dedup();
        v
    }

    /// The one streaming pass (vmmanager) reads a sparse raw export; disk images are then
    /// converted from it too. Without vmmanager, images convert straight from the golden disk.
    fn needs_raw(&self) -> bool {
        self.targets.vmmanager.is_some()
    }

    fn template_name(&self, setting: Option<&str>, info: &GuestInfo) -> String {
        vmmanager::template_name(setting, self.run_name.as_deref(), info)
    }

    pub fn manifest_path(&self) -> PathBuf {
        let m = self.targets.manifest.clone().unwrap_or_default();
        self.dir_of(&m.dir)
            .join(m.file.as_deref().unwrap_or(manifest::DEFAULT_FILE))
    }

    /// Names of the targets, for messages.
    pub fn describe(&self) -> String {
        self.targets.names().join(", ")
    }
}

/// Read what the targets need from the open guest.
pub fn gather(guest: &dyn Guest) -> Result<GuestInfo> {
    let layout = guest.layout().context("reading the disk layout")?;
    Ok(GuestInfo {
        os: guest.facts().clone(),
        layout,
        network_device: vmmanager::network_device(guest),
        disk_prefix: vmmanager::disk_prefix(guest),
    })
}

/// While the guest is open: export the root tree for `vmmanager-lxd` (compressed and
/// hashed on the fly, staged in its repository).
pub fn export_tree(plan: &Plan, info: &GuestInfo, guest: &dyn Guest) -> Result<Option<lxd::Exported>> {
    let Some(s) = &plan.targets.lxd else { return Ok(None) };
    let repo = plan.dir_of(&s.repo);
    lxd::export(s, &repo, plan.run_name.as_deref(), info, guest, &plan.algos())
        .map(Some)
        .tag(Exit::Output)
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

/// After the appliance is closed: produce every artifact, then commit them all. A failure
/// or an interruption before the commit leaves every destination as it was, and says so.
pub fn execute(
    plan: &Plan,
    info: &GuestInfo,
    work: &WorkDisk,
    scratch_parent: &Path,
    tree: Option<lxd::Exported>,
    pre: Option<&stream::Precompressed>,
) -> Result<Vec<Artifact>> {
    let (mut artifacts, commits) = produce(plan, info, work, scratch_parent, tree, pre)
        .context("nothing was published, every destination is as it was")
        .tag(Exit::Output)?;
    // Everything is written and synced: rename into place. There is no interruption point
    // from here on, so a Ctrl-C now lets the renames finish and then exits.
    for c in commits {
        match c {
            Commit::Repo {
                dir,
                kind,
                entry,
                files,
            } => repo::publish(&dir, kind, entry, files),
            Commit::File(f) => f.commit(),
            Commit::Dir(d) => d.commit(),
        }
        .context("publishing stopped part way")
        .tag(Exit::Output)?;
    }
    if let Some(c) = &plan.targets.checksums {
        let dir = plan.dir_of(&c.dir);
        let sums = checksums::write(&dir, &c.algorithms, &artifacts).tag(Exit::Output)?;
        artifacts.extend(sums);
    }
    Ok(artifacts)
}

fn produce(
    plan: &Plan,
    info: &GuestInfo,
    work: &WorkDisk,
    scratch_parent: &Path,
    tree: Option<lxd::Exported>,
    pre: Option<&stream::Precompressed>,
) -> Result<(Vec<Artifact>, Vec<Commit>)> {
    let t = &plan.targets;
    let algos = plan.algos();
    let updated_at = vmmanager::utc_now();
    let mut artifacts: Vec<Artifact> = Vec::new();
    let mut commits: Vec<Commit> = Vec::new();
    let artifact =
        |kind: &str, path: &Path, size: u64, checksums: std::collections::BTreeMap<String, String>| Artifact {
            kind: kind.into(),
            path: path.display().to_string(),
            size,
            checksums,
        };

    // The raw export is private work, in the work parent: never in a repository.
    let scratch = crate::workdir::create(scratch_parent)?;
    let raw = scratch.path().join("golden.raw");
    let data = crate::disk::data_size(&work.path, work.format).unwrap_or(0);
    if plan.needs_raw() {
        let total = data;
        let bar = crate::progress::bytes(total, "converting the golden disk to raw");
        crate::disk::export_raw(work, &raw, &bar).context("exporting the golden disk")?;
        bar.finish_and_clear();
    }
    crate::interrupt::check()?;
    let virtual_size = if plan.needs_raw() {
        std::fs::metadata(&raw).map(|m| m.len()).unwrap_or(0)
    } else {
        crate::disk::virtual_size(&work.path, work.format).unwrap_or(0)
    };

    // vmmanager: the one pass over the raw disk.
    if let Some(s) = &t.vmmanager {
        let name = plan.template_name(s.name.as_deref(), info);
        let image_name = vmmanager::image_name(s, &name);
        let file_name = format!("{image_name}.xz");
        let repo_dir = plan.dir_of(&s.repo);
        let mut staged = atomic::Staged::new(&repo_dir.join(&file_name))?;
        let mut src = stream::SparseFile::open(&raw)?;
        let bar = crate::progress::bytes(0, &format!("compressing {file_name}"));
        let mut out_algos = algos.clone();
        out_algos.push(Algo::Sha1);
        let codec = Box::new(codec::Xz::new(s.compression.preset, s.compression.extreme)?);
        let outputs = vec![stream::Output {
            codec,
            sink: &mut staged,
            algos: out_algos,
            reuse: pre,
        }];
        let summary = stream::compress(&mut src, outputs, lxd::threads(s.compression.threads), &bar)
            .with_context(|| format!("writing {}", repo_dir.join(&file_name).display()))?;
        bar.finish_and_clear();
        staged.sync()?;
        let w = &summary.outputs[0];
        tracing::info!(
            "{file_name}: {} of {} were zero, compressed once; {} compressed ahead, during the appliance run",
            crate::report::human_bytes(summary.zero),
            crate::report::human_bytes(summary.input),
            crate::report::human_bytes(summary.reused)
        );
        let entry = vmmanager::entry(
            s,
            &name,
            &file_name,
            &image_name,
            info,
            virtual_size,
            w.size,
            &w.checksums["sha1"],
            &updated_at,
        );
        artifacts.push(artifact(
            "vmmanager",
            &repo_dir.join(&file_name),
            w.size,
            w.checksums.clone(),
        ));
        commits.push(Commit::Repo {
            dir: repo_dir,
            kind: repo::RepoType::Os,
            entry,
            files: vec![staged],
        });
    }

    if let (Some(s), Some(e)) = (&t.lxd, tree) {
        let repo_dir = plan.dir_of(&s.repo);
        let entry = lxd::entry(s, &e, info, &updated_at);
        artifacts.push(artifact(
            "vmmanager-lxd",
            &repo_dir.join(&e.file_name),
            e.written.size,
            e.written.checksums.clone(),
        ));
        commits.push(Commit::Repo {
            dir: repo_dir,
            kind: repo::RepoType::Lxd,
            entry,
            files: vec![e.staged],
        });
    }

    // Disk images (disk, deckhouse, vcluster), each converted once.
    let mut requests: Vec<(String, disk::Request)> = Vec::new();
    if let Some(r) = plan.disk_request() {
        requests.push(("disk".into(), r));
    }
    let deckhouse_name = t
        .deckhouse
        .as_ref()
        .and_then(|s| plan.k8s_name(s.name.as_deref(), Some(info)));
    if let (Some(s), Some(name)) = (&t.deckhouse, &deckhouse_name) {
        let dest = plan.dir_of(&s.dir).join(format!("{name}.qcow2"));
        requests.push((
            "deckhouse".into(),
            disk::Request {
                dest,
                format: crate::disk::Format::Qcow2,
                compress: s.compress,
            },
        ));
    }
    let vcluster_name = t
        .vcluster
        .as_ref()
        .and_then(|s| plan.k8s_name(s.name.as_deref(), Some(info)));
    if let (Some(s), Some(name)) = (&t.vcluster, &vcluster_name) {
        let dest = plan.dir_of(&s.dir).join(format!("{name}.qcow2"));
        requests.push((
            "vcluster".into(),
            disk::Request {
                dest,
                format: crate::disk::Format::Qcow2,
                compress: false,
            },
        ));
    }
    let mut image_sums: std::collections::HashMap<PathBuf, std::collections::BTreeMap<String, String>> =
        Default::default();
    for (who, r) in disk::dedup(requests).tag(Exit::Usage)? {
        crate::interrupt::check()?;
        let (src, src_format) = if plan.needs_raw() {
            (raw.as_path(), crate::disk::Format::Raw)
        } else {
            (work.path.as_path(), work.format)
        };
        let staged =
            disk::convert(src, src_format, data, &r).with_context(|| format!("writing {}", r.dest.display()))?;
        let mut want = algos.clone();
        want.extend([Algo::Md5, Algo::Sha512]);
        let (size, sums) = match (&t.deckhouse, &deckhouse_name) {
            (Some(s), Some(name)) if s.container_disk && who.iter().any(|w| w == "deckhouse") => {
                let dir = plan.dir_of(&s.dir);
                let tag = s.tag.as_deref().unwrap_or("latest");
                let bar = crate::progress::phase(format!("packing the containerDisk {name}.oci"));
                let built = oci::build(
                    staged.temp_path(),
                    name,
                    tag,
                    &dir.join(format!("{name}.oci")),
                    &dir.join(format!("{name}.oci.tar")),
                    &want,
                    &algos,
                )?;
                drop(bar);
                let size = std::fs::metadata(staged.temp_path())
                    .map(|m| m.len())
                    .context("reading the image size")?;
                artifacts.push(artifact(
                    "deckhouse-oci-archive",
                    built.archive.dest(),
                    built.archive_size,
                    built.archive_checksums.clone(),
                ));
                artifacts.push(Artifact {
                    kind: "deckhouse-oci-layout".into(),
                    path: built.layout.dest().display().to_string(),
                    size: 0,
                    checksums: [("manifest-sha256".to_string(), built.manifest_digest.clone())]
                        .into_iter()
                        .collect(),
                });
                commits.push(Commit::Dir(built.layout));
                commits.push(Commit::File(built.archive));
                (size, built.disk_checksums)
            }
            _ => disk::hash(&staged, &want)?,
        };
        let kind = if who.iter().any(|w| w == "disk") {
            format!("disk-{}", r.format.name())
        } else {
            format!("{}-qcow2", who[0])
        };
        let keep: std::collections::BTreeMap<String, String> = sums
            .iter()
            .filter(|(k, _)| algos.iter().any(|a| a.name() == k.as_str()))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        artifacts.push(artifact(&kind, &r.dest, size, keep));
        image_sums.insert(r.dest.clone(), sums);
        commits.push(Commit::File(staged));
    }

    // Manifests that point at those images.
    let mut yaml = |kind: &str, dest: PathBuf, text: String, commits: &mut Vec<Commit>| -> Result<()> {
        let mut staged = atomic::Staged::new(&dest)?;
        std::io::Write::write_all(&mut staged, text.as_bytes())
            .with_context(|| format!("writing {}", dest.display()))?;
        staged.sync()?;
        let mut h = hash::Hashes::new(algos.iter().copied());
        h.update(text.as_bytes());
        artifacts.push(artifact(kind, &dest, text.len() as u64, h.finish()));
        commits.push(Commit::File(staged));
        Ok(())
    };
    if let (Some(s), Some(name)) = (&t.deckhouse, &deckhouse_name) {
        let dir = plan.dir_of(&s.dir);
        let file = format!("{name}.qcow2");
        let sums = &image_sums[&dir.join(&file)];
        yaml(
            "deckhouse",
            dir.join(deckhouse::manifest_file(s, name)),
            deckhouse::manifest(s, name, &file, sums)?,
            &mut commits,
        )?;
    }
    if let (Some(s), Some(name)) = (&t.vcluster, &vcluster_name) {
        let dir = plan.dir_of(&s.dir);
        let file = format!("{name}.qcow2");
        let sum = image_sums[&dir.join(&file)]
            .get(s.checksum_type.name())
            .cloned()
            .unwrap_or_default();
        let display = display_name(&info.os);
        let text = vcluster::manifest(s, name, &display, &deckhouse::url(&s.base_url, &file), &sum)?;
        yaml("vcluster", dir.join(format!("{name}.osimage.yaml")), text, &mut commits)?;
    }
    crate::interrupt::check()?;
    Ok((artifacts, commits))
}

/// A human name for the OS: libguestfs' product name, prefixed with the distro when the
/// product name does not say it (Debian's is just "12.5").
fn display_name(os: &OsFacts) -> String {
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

/// Record the run in the JSON manifest (last, so it lists every artifact).
pub fn write_manifest(plan: &Plan, report: &RunReport) -> Result<Artifact> {
    manifest::write(&plan.manifest_path(), report, &plan.recipe_name).tag(Exit::Output)
}
