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

pub(crate) mod atomic;
pub(crate) mod codec;
pub(crate) mod hash;
pub(crate) mod headstart;
pub(crate) mod images;
pub(crate) mod oci;
pub(crate) mod overrides;
mod produce;
pub(crate) mod repo;
pub(crate) mod section;
pub(crate) mod settings;
mod source;
pub(crate) mod stream;
pub(crate) mod target;

use crate::disk::{Format, WorkDisk};
use crate::error::{Exit, Tag};
use crate::guest::{Guest, Layout, OsFacts};
use crate::report::{Artifact, RunReport, Updated};
use anyhow::{Context, Result};
use hash::Algo;
use produce::Commit;
pub use produce::Produce;
use section::Section;
use serde::Serialize;
use std::path::{Path, PathBuf};
use target::{Item, Target};

macro_rules! targets {
    ($($module:ident :: $ty:ident),* $(,)?) => {
        $(pub(crate) mod $module;)*

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
    vmmanager_windows::VmmanagerWindows,
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
    /// `--set TARGET.KEY=VALUE`: settings on top of the recipe's.
    pub set: Vec<overrides::Override>,
    /// `--no-golden`: publish only, without the golden disk in OUTDIR.
    pub no_golden: bool,
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
        self.known_template_name(setting, Some(info))
            .expect("known with the guest's facts")
    }

    /// The template's name, when it is known without the guest (a setting or --name).
    pub fn known_template_name(&self, setting: Option<&str>, info: Option<&GuestInfo>) -> Option<String> {
        match (setting.or(self.run_name.as_deref()), info) {
            (Some(n), _) => Some(n.to_string()),
            (None, Some(info)) => Some(format!("{}-{}", info.os.distro, info.os.major)),
            (None, None) => None,
        }
    }

    /// A Kubernetes object (and file) name: the setting, else the template name made an
    /// RFC 1123 label.
    pub fn object_name(&self, setting: Option<&str>, info: &GuestInfo) -> String {
        self.known_object_name(setting, Some(info))
            .expect("known with the guest's facts")
    }

    pub fn known_object_name(&self, setting: Option<&str>, info: Option<&GuestInfo>) -> Option<String> {
        match setting {
            Some(n) => Some(n.to_string()),
            None => self.known_template_name(None, info).map(|n| settings::dns_safe(&n)),
        }
    }
}

/// The run's part that is not the recipe: what `run` knows before publishing starts.
#[derive(Debug, Clone)]
pub struct RunFacts {
    pub outdir: PathBuf,
    pub run_name: Option<String>,
    pub disk_name: String,
    /// The guest's disks (none for `check`): a target that makes a template of one disk
    /// refuses a guest on several.
    pub disks: Vec<PathBuf>,
    pub format: Option<Format>,
    pub compress: Option<bool>,
    pub recipe_name: String,
    pub dry_run: bool,
    /// What the run reads (the disk, the recipes): no output may be one of them.
    pub inputs: Vec<crate::outputs::Input>,
    /// Write the golden disk into OUTDIR besides publishing (not with --no-golden).
    pub golden: bool,
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
    /// Targets added because every publishing run writes them, not because the recipe or
    /// the command line named them: the golden disk (`disk` into OUTDIR, unless
    /// --no-golden or the `disk` target is published) and the run manifest.
    implicit: Vec<&'static str>,
    inputs: Vec<crate::outputs::Input>,
}

impl Session {
    /// Select the targets (`--publish`, else the recipe's) and check everything that can
    /// be checked before the long work; `None` when nothing is to be published. A dry run
    /// checks the settings and creates nothing, not even directories.
    pub fn new(section: Section, req: &Request, run: RunFacts) -> Result<Option<Session>> {
        if req.none {
            return Ok(None);
        }
        let items = select(section, &req.targets, &req.set).tag(Exit::Usage)?;
        if items.is_empty() {
            return Ok(None);
        }
        if let (Some(one), true) = (items.iter().find(|i| !i.target.several_disks()), run.disks.len() > 1) {
            crate::bail_tag!(
                Exit::Usage,
                "publish target `{}` makes a template of one disk, and this guest is on {} ({}); publish it without `{}` (the golden disks, one per input, are written to OUTDIR)",
                one.name,
                run.disks.len(),
                crate::guest::guestfs::shown(&run.disks),
                one.name
            );
        }
        let mut algos = vec![Algo::Sha256];
        for i in &items {
            algos.extend(i.target.digests());
        }
        algos.sort();
        algos.dedup();
        let golden_dir = run.outdir.clone();
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
            implicit: Vec::new(),
            inputs: run.inputs,
        };
        // Publishing adds to the golden disk: it is written into OUTDIR as without
        // publishing, unless the `disk` target says where and how, or --no-golden.
        if run.golden && !session.items.iter().any(|i| i.name == disk::INFO.name) {
            let golden = disk::Disk {
                dir: Some(golden_dir),
                name: Some(session.plan.disk_name.clone()),
                ..Default::default()
            };
            golden
                .validate()
                .map_err(|e| anyhow::anyhow!("the golden disk: {e:#}"))
                .tag(Exit::Usage)?;
            let settings = serde_yaml::to_value(&golden).unwrap_or_default();
            let target: Box<dyn Target> = Box::new(golden);
            let at = session.items.iter().position(|i| rank(&i.name) > rank(disk::INFO.name));
            session.items.insert(
                at.unwrap_or(session.items.len()),
                Item {
                    name: disk::INFO.name.into(),
                    target,
                    origin: PathBuf::new(),
                    settings,
                },
            );
            session.implicit.push(disk::INFO.name);
        }
        // The run manifest is always written when anything is published.
        if !session.items.iter().any(|i| i.name == manifest::INFO.name) {
            let name = manifest::INFO.name;
            let (target, settings) =
                match overrides::build(name, &serde_yaml::Value::Null, &req.set).tag(Exit::Usage)? {
                    Some(built) => built,
                    None => (
                        build(name, serde_yaml::Value::Null).map_err(anyhow::Error::from)?,
                        serde_yaml::Value::Null,
                    ),
                };
            session.items.push(Item {
                name: name.into(),
                target,
                origin: PathBuf::new(),
                settings,
            });
            session.implicit.push(name);
        }
        session.check_destinations(None)?;
        if !session.dry_run {
            session.check_repositories()?;
        }
        Ok(Some(session))
    }

    /// The selected targets' names (without what every publishing run adds).
    pub fn names(&self) -> Vec<String> {
        self.items
            .iter()
            .filter(|i| !self.implicit.contains(&i.name.as_str()))
            .map(|i| i.name.clone())
            .collect()
    }

    /// The selected targets' names, for messages.
    pub fn describe(&self) -> String {
        self.names().join(", ")
    }

    /// Who writes a destination, for messages.
    fn who(&self, name: &str) -> String {
        if name == disk::INFO.name && self.implicit.contains(&name) {
            "the golden disk (--no-golden leaves it out)".into()
        } else {
            format!("the `{name}` target")
        }
    }

    /// Every destination known so far (all of them once the guest's facts are): two
    /// targets may write the same file only when they want the same thing in it, and no
    /// output may be one of the run's inputs (outputs.rs). Reads only.
    fn check_destinations(&self, info: Option<&GuestInfo>) -> Result<()> {
        let mut seen: Vec<(target::Destination, &str)> = Vec::new();
        for i in &self.items {
            for d in i.target.destinations(&self.plan, info) {
                match seen.iter().find(|(s, _)| s.path == d.path) {
                    Some((s, who)) if s.what != d.what => crate::bail_tag!(
                        Exit::Usage,
                        "{} is wanted as {} by {} and as {} by {}",
                        d.path.display(),
                        s.what,
                        self.who(who),
                        d.what,
                        self.who(&i.name)
                    ),
                    Some(_) => {}
                    None => seen.push((d, &i.name)),
                }
            }
        }
        let outputs: Vec<crate::outputs::Output> = seen
            .into_iter()
            .map(|(d, who)| crate::outputs::Output {
                by: self.who(who),
                path: d.path,
                dir: d.dir,
            })
            .collect();
        crate::outputs::check(&outputs, &self.inputs)
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
        for i in &self.items {
            i.target.check(&self.plan)?;
        }
        let mut dirs = vec![self.plan.dir.clone()];
        dirs.extend(self.items.iter().map(|i| i.target.dir(&self.plan.dir)));
        dirs.dedup();
        for d in dirs {
            // Created 0755 here (goldify's umask is 0077); repo/metadata.rs then proves it writable.
            atomic::create_public_dir_all(&d)
                .with_context(|| format!("creating publish directory {}", d.display()))
                .tag(Exit::Output)?;
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
        // Names that come from the guest (`debian-12.xz`) are known now.
        self.check_destinations(Some(&info))?;
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
    pub fn guest_closed(&mut self, work: &WorkDisk, scratch_parent: &Path) -> Result<(Vec<Artifact>, Vec<Updated>)> {
        if self.dry_run {
            tracing::warn!("dry run: would publish {}", self.describe());
            return Ok(Default::default());
        }
        let info = self
            .info
            .take()
            .ok_or_else(|| anyhow::anyhow!("publishing needs the guest's facts; the guest was never opened"))?;
        let (mut artifacts, commits) = self
            .produce(&info, work, scratch_parent)
            .context("nothing was published, every destination is as it was")
            .tag(Exit::Output)?;
        let updated = commits.iter().filter_map(|c| c.updates()).collect();
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
        Ok((artifacts, updated))
    }

    fn produce(
        &mut self,
        info: &GuestInfo,
        work: &WorkDisk,
        scratch_parent: &Path,
    ) -> Result<(Vec<Artifact>, Vec<Commit>)> {
        // Private work (the raw golden disk), in the work parent: never in a repository.
        let scratch = crate::workdir::create(scratch_parent)?;
        let mut out = Produce::new(&self.plan, info, work, scratch.path());
        for i in &mut self.items {
            crate::interrupt::check()?;
            i.target
                .produce(&mut out)
                .with_context(|| format!("publish target `{}`", i.name))?;
        }
        crate::interrupt::check()?;
        out.finish()
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
/// with `--set` on top; in registry order.
pub(crate) fn select(section: Section, selected: &[String], sets: &[overrides::Override]) -> Result<Vec<Item>> {
    for s in selected {
        if !names().contains(&s.as_str()) {
            anyhow::bail!("--publish: {}", target::unknown_target_message(s));
        }
    }
    let mut items = section.0;
    let mut published: Vec<&str> = if selected.is_empty() {
        items.iter().map(|i| i.name.as_str()).collect()
    } else {
        selected.iter().map(String::as_str).collect()
    };
    // Every publishing run writes the run manifest (Session::new adds it).
    if !published.is_empty() {
        published.push(manifest::INFO.name);
    }
    overrides::check(sets, &published)?;
    if !selected.is_empty() {
        items.retain(|i| selected.contains(&i.name));
        for name in selected {
            if items.iter().any(|i| &i.name == name) {
                continue;
            }
            let null = serde_yaml::Value::Null;
            let (target, settings) = match overrides::build(name, &null, sets)? {
                Some(built) => built,
                None => {
                    let target = build(name, null.clone()).map_err(|e| {
                        anyhow::anyhow!(
                            "--publish {name}: {}",
                            target::explain_missing(name, &target::about(name, &e.to_string()))
                        )
                    })?;
                    (target, null)
                }
            };
            items.push(Item {
                name: name.clone(),
                target,
                origin: PathBuf::new(),
                settings,
            });
        }
    }
    for item in &mut items {
        if let Some((target, settings)) = overrides::build(&item.name, &item.settings, sets)? {
            item.target = target;
            item.settings = settings;
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
mod tests;
