//! One record per publish target, as steps have: its name, summary and settings (a serde
//! type with `deny_unknown_fields`, parsed from the recipe so that its errors carry
//! file:line:column), and what it does at each moment of a run. `goldify targets`, the
//! recipe parser, `--publish` and the [`Session`](super::Session) all read the same
//! registry (the `targets!` list in publish/mod.rs), so adding a target is one file and
//! one registry line.

use super::hash::Algo;
use super::{GuestInfo, Plan, Produce};
use crate::guest::Guest;
use crate::report::{Artifact, RunReport};
use anyhow::Result;
use serde::Serialize;
use std::path::{Path, PathBuf};

/// What `goldify targets` prints about a target.
#[derive(Debug, Serialize)]
pub struct TargetInfo {
    pub name: &'static str,
    pub summary: &'static str,
    pub options: &'static [crate::steps::OptionDoc],
}

/// A repository a target writes into, and the kind of templates it holds; two targets may
/// not share one (VMmanager keeps KVM and LXD templates apart).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepoClaim {
    pub dir: PathBuf,
    pub kind: super::repo::RepoType,
}

/// A file or directory a target writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Destination {
    pub path: PathBuf,
    /// What it holds, for messages and to tell a shared file from a conflict.
    pub what: String,
    /// Replaced as a whole (an OCI layout).
    pub dir: bool,
}

impl Destination {
    pub fn file(path: PathBuf, what: impl Into<String>) -> Destination {
        Destination {
            path,
            what: what.into(),
            dir: false,
        }
    }
}

/// A publish target: its settings, and what it does at each moment of the run. Every
/// moment but [`Target::produce`] is optional.
pub trait Target: std::fmt::Debug + Send {
    /// Checks beyond the settings' types (names, URLs, ranges), before anything runs.
    fn validate(&self) -> Result<()> {
        Ok(())
    }

    /// It can publish a guest on several disks (a root tree, a checksum list, the run
    /// manifest). A target that makes a template of one disk image says no, and a run of
    /// a guest on several disks refuses it before anything starts.
    fn several_disks(&self) -> bool {
        false
    }

    /// The directory it writes into: its own setting, else the run's publish directory.
    fn dir(&self, publish_dir: &Path) -> PathBuf;

    /// The repository it merges an entry into, if it does.
    fn repository(&self, _plan: &Plan) -> Option<RepoClaim> {
        None
    }

    /// Read-only checks of what is already where it writes (a manifest or a checksum list
    /// that is a link or a FIFO), before anything is created.
    fn check(&self, _plan: &Plan) -> Result<()> {
        Ok(())
    }

    /// Digests every artifact of the run must carry (the checksum lists ask for theirs).
    fn digests(&self) -> &[Algo] {
        &[]
    }

    /// Every file (or directory) it will write, each with what it holds (`qcow2
    /// (compressed)`, `the run manifest`). Without the guest's facts, only those whose
    /// names the settings and the command line decide; with them, all. Checked before the
    /// long work and again once the guest is open: two targets may share a file only to
    /// hold the same thing, and no output may be one of the run's inputs (outputs.rs).
    fn destinations(&self, _plan: &Plan, _info: Option<&GuestInfo>) -> Vec<Destination> {
        Vec::new()
    }

    /// The input disk is known and the appliance about to start (a head start may begin).
    fn input_known(&mut self, _plan: &Plan, _input: &super::Input) -> Result<()> {
        Ok(())
    }

    /// The guest is open: read what cannot be read from the golden disk alone.
    fn guest_open(&mut self, _plan: &Plan, _info: &GuestInfo, _guest: &dyn Guest) -> Result<()> {
        Ok(())
    }

    /// The guest is closed: produce artifacts from the golden disk, staged for the commit.
    fn produce(&mut self, out: &mut Produce) -> Result<()>;

    /// Every artifact is in place (checksum lists are written over them now).
    fn published(&mut self, _plan: &Plan, _artifacts: &[Artifact]) -> Result<Vec<Artifact>> {
        Ok(Vec::new())
    }

    /// The run's report is complete (the run manifest records it).
    fn reported(&mut self, _plan: &Plan, _report: &RunReport) -> Result<Vec<Artifact>> {
        Ok(Vec::new())
    }
}

/// A target as the recipe (or the command line) gives it.
#[derive(Debug)]
pub struct Item {
    pub name: String,
    pub target: Box<dyn Target>,
    /// The recipe file the settings came from (for messages); empty for `--publish`.
    pub origin: PathBuf,
    /// The settings as written (the recipe's YAML, with `--set` on top): what `--set`
    /// overrides, and what the target was built from.
    pub settings: serde_yaml::Value,
}

/// Settings from the recipe, read straight from its YAML (errors keep their line and
/// column); null settings are read as the empty mapping, so that a target with a
/// required field says which one is missing.
pub fn settings<'de, T, D>(d: D) -> Result<T, D::Error>
where
    T: serde::Deserialize<'de>,
    D: serde::Deserializer<'de>,
{
    use serde::Deserialize;
    match Option::<T>::deserialize(d)? {
        Some(t) => Ok(t),
        None => T::deserialize(serde::de::value::MapDeserializer::<_, D::Error>::new(
            std::iter::empty::<((), ())>(),
        )),
    }
}

/// A message about a target's settings, prefixed with the target once.
pub fn about(target: &str, msg: &str) -> String {
    if msg.starts_with("publish target `") {
        msg.to_string()
    } else {
        format!("publish target `{target}`: {msg}")
    }
}

/// serde's "missing field `x`" about a target's settings, said as what to do about it.
pub fn explain_missing(target: &str, msg: &str) -> String {
    static MISSING: std::sync::LazyLock<regex::Regex> =
        std::sync::LazyLock::new(|| regex::Regex::new(r"missing field `([^`]*)`").expect("static regex"));
    MISSING
        .replace(msg, |c: &regex::Captures| {
            let key = &c[1];
            format!(
                "missing setting `{key}`: add it under `publish: {target}:` in the recipe, or pass --set {target}.{key}=…"
            )
        })
        .into_owned()
}

pub fn unknown_target_message(name: &str) -> String {
    let names = super::names();
    match crate::suggest::nearest(name, &names) {
        Some(n) => format!("unknown publish target `{name}`, did you mean `{n}`?"),
        None => format!("unknown publish target `{name}` (known: {})", names.join(", ")),
    }
}
