//! The run's JSON manifest, shaped like Packer's manifest post-processor output
//! (<https://developer.hashicorp.com/packer/docs/post-processors/manifest>): a `builds`
//! list that each run appends to, with `name`, `builder_type`, `build_time`, `files`,
//! `artifact_id`, `custom_data`, and `last_run_uuid`; goldify adds what the run did (input,
//! recipe, OS, every step and what it changed, artifacts with checksums, timings).
//!
//! Runs append to one manifest, so the read-modify-write happens under an exclusive lock
//! on `.<file>.lock` beside it: two runs finishing at once both keep their build. The
//! manifest may sit in a repository, so it is read the way the repository's own files are
//! (atomic/safe_files.rs): a regular file only, never through a link, at most [`MAX_MANIFEST`] bytes.

use super::atomic;
use super::hash::{Algo, Hashes};
use super::settings::{plain_name, publishable};
use super::target::{Destination, Target, TargetInfo};
use super::{GuestInfo, Plan, Produce};
use crate::error::{Exit, Tag};
use crate::report::{Artifact, RunReport};
use crate::steps::OptionDoc;
use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

/// The run manifest's default name (one of the repository's bookkeeping names).
pub use super::repo::MANIFEST_FILE as DEFAULT_FILE;
/// The largest manifest goldify appends to: a build's record is a few KiB to a few hundred
/// (every path each step changed), so this holds thousands of runs and bounds what a
/// hostile file can make goldify read.
pub const MAX_MANIFEST: u64 = 64 << 20;

/// `.<file>.lock` beside the manifest.
fn lock_path(path: &Path) -> PathBuf {
    let name = path.file_name().map(|n| n.to_string_lossy()).unwrap_or_default();
    path.with_file_name(format!(".{name}.lock"))
}

/// Before the long work: the manifest and its lock, where they exist, are regular files,
/// and the manifest does not take the name of an archive a repository entry in its
/// directory references.
pub fn check(path: &Path) -> Result<()> {
    atomic::check_regular(path).tag(Exit::Output)?;
    atomic::check_regular(&lock_path(path)).tag(Exit::Output)?;
    let (Some(dir), Some(file)) = (path.parent(), path.file_name().and_then(|f| f.to_str())) else {
        return Ok(());
    };
    if let Some(entry) = super::repo::entry_using(dir, file).tag(Exit::Output)? {
        crate::bail_tag!(
            Exit::Usage,
            "publish target `manifest`: {} is the archive of entry `{}` in {}; choose another `file`",
            super::repo::shown(file),
            super::repo::shown(&entry),
            dir.join(super::repo::METADATA).display()
        );
    }
    Ok(())
}

pub static INFO: TargetInfo = TargetInfo {
    name: "manifest",
    summary: "the run's JSON manifest, Packer-style (written whenever anything is published)",
    options: &[
        OptionDoc {
            name: "dir",
            kind: "path",
            default: "--publish-dir",
            help: "where it goes",
        },
        OptionDoc {
            name: "file",
            kind: "string",
            default: DEFAULT_FILE,
            help: "its file name",
        },
    ],
};

/// `manifest`'s settings.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub dir: Option<PathBuf>,
    /// Default: goldify-manifest.json.
    pub file: Option<String>,
}

impl Manifest {
    fn path(&self, plan: &Plan) -> PathBuf {
        self.dir(&plan.dir).join(self.file.as_deref().unwrap_or(DEFAULT_FILE))
    }
}

impl Target for Manifest {
    fn several_disks(&self) -> bool {
        true
    }

    fn validate(&self) -> Result<()> {
        if let Some(f) = self.file.as_deref().filter(|f| *f != DEFAULT_FILE) {
            plain_name(f)?;
            publishable("file", f)?;
        }
        Ok(())
    }

    fn dir(&self, publish_dir: &Path) -> PathBuf {
        self.dir.clone().unwrap_or_else(|| publish_dir.to_path_buf())
    }

    fn check(&self, plan: &Plan) -> Result<()> {
        check(&self.path(plan))
    }

    fn destinations(&self, plan: &Plan, _info: Option<&GuestInfo>) -> Vec<Destination> {
        vec![Destination::file(self.path(plan), "the run manifest")]
    }

    fn produce(&mut self, _out: &mut Produce) -> Result<()> {
        Ok(())
    }

    /// Last, so that it lists every artifact.
    fn reported(&mut self, plan: &Plan, report: &RunReport) -> Result<Vec<Artifact>> {
        Ok(vec![write(&self.path(plan), report, &plan.recipe_name)?])
    }
}

pub fn build(report: &RunReport, recipe_name: &str, run_uuid: &str) -> Value {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let files: Vec<Value> = report
        .artifacts
        .iter()
        .map(|a| json!({"name": a.path, "size": a.size}))
        .collect();
    json!({
        "name": recipe_name,
        "builder_type": "goldify",
        "build_time": now,
        "files": files,
        "artifact_id": report.artifacts.first().map(|a| a.path.clone()).unwrap_or_default(),
        "packer_run_uuid": run_uuid,
        "custom_data": {},
        "goldify": {
            "version": report.goldify_version,
            "input": report.input,
            "recipe": report.recipe,
            "accel": report.accel,
            "os": report.os,
            "steps": report.steps,
            "artifacts": report.artifacts,
            "timings": report.timings,
        },
    })
}

/// Append this run to the manifest at `path` (a manifest that is not ours or not JSON is
/// replaced, with a warning, as Packer does with an unreadable one).
pub fn write(path: &Path, report: &RunReport, recipe_name: &str) -> Result<Artifact> {
    let uuid = atomic::uuid_v4();
    let _lock = atomic::lock_file(&lock_path(path))?;
    let mut doc = match atomic::read_bounded(path, MAX_MANIFEST)? {
        Some(bytes) => match serde_json::from_slice::<Value>(&bytes) {
            Ok(v) if v.get("builds").is_some_and(Value::is_array) => v,
            _ => {
                tracing::warn!("{} is not a manifest; starting a new one", path.display());
                json!({"builds": []})
            }
        },
        None => json!({"builds": []}),
    };
    doc["builds"]
        .as_array_mut()
        .expect("checked above")
        .push(build(report, recipe_name, &uuid));
    doc["last_run_uuid"] = json!(uuid);
    let mut text = serde_json::to_vec_pretty(&doc).context("serializing the manifest")?;
    text.push(b'\n');
    atomic::write_file(path, &text)?;
    let mut h = Hashes::new([Algo::Sha256]);
    h.update(&text);
    Ok(Artifact {
        kind: "manifest".into(),
        path: path.display().to_string(),
        size: text.len() as u64,
        checksums: h.finish(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report() -> RunReport {
        RunReport {
            goldify_version: "0",
            input: "in.qcow2".into(),
            inputs: vec!["in.qcow2".into()],
            recipe: "r.yaml".into(),
            dry_run: false,
            in_place: false,
            accel: "tcg".into(),
            os: None,
            notices: vec![],
            steps: vec![],
            artifacts: vec![Artifact {
                kind: "vmmanager".into(),
                path: "/r/x.xz".into(),
                size: 5,
                checksums: Default::default(),
            }],
            updated: vec![],
            timings: Default::default(),
        }
    }

    #[test]
    fn runs_append() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join(DEFAULT_FILE);
        let report = report();
        write(&p, &report, "debian").unwrap();
        write(&p, &report, "debian").unwrap();
        let v: Value = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
        assert_eq!(v["builds"].as_array().unwrap().len(), 2);
        assert_eq!(v["builds"][1]["packer_run_uuid"], v["last_run_uuid"]);
        assert_eq!(v["builds"][0]["files"][0]["name"], "/r/x.xz");
        assert_eq!(v["last_run_uuid"].as_str().unwrap().len(), 36);
    }

    /// Not a test on its own: the body of each process in `processes_appending_at_once`.
    #[test]
    fn manifest_helper_process() {
        let Ok(path) = std::env::var("GOLDIFY_MANIFEST_HELPER") else {
            return;
        };
        for _ in 0..20 {
            write(Path::new(&path), &report(), "debian").unwrap();
        }
    }

    /// Runs finishing at once each keep their build (the read-modify-write is locked).
    #[test]
    fn processes_appending_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join(DEFAULT_FILE);
        let exe = std::env::current_exe().unwrap();
        let children: Vec<_> = (0..4)
            .map(|_| {
                std::process::Command::new(&exe)
                    .args([
                        "--exact",
                        "publish::manifest::tests::manifest_helper_process",
                        "--quiet",
                    ])
                    .env("GOLDIFY_MANIFEST_HELPER", &p)
                    .stdout(std::process::Stdio::null())
                    .spawn()
                    .unwrap()
            })
            .collect();
        for mut c in children {
            assert!(c.wait().unwrap().success());
        }
        let v: Value = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
        assert_eq!(v["builds"].as_array().unwrap().len(), 80, "builds were lost");
        let mut left: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        left.sort();
        assert_eq!(left, [".goldify-manifest.json.lock", DEFAULT_FILE]);
    }

    #[test]
    fn hostile_manifests_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join(DEFAULT_FILE);
        let outside = dir.path().join("outside");
        std::fs::write(&outside, b"host file").unwrap();
        std::os::unix::fs::symlink(&outside, &p).unwrap();
        for e in [check(&p).unwrap_err(), write(&p, &report(), "x").unwrap_err()] {
            assert!(format!("{e:#}").contains("symbolic link"), "{e:#}");
        }
        assert_eq!(std::fs::read(&outside).unwrap(), b"host file");
        std::fs::remove_file(&p).unwrap();
        std::fs::write(
            dir.path().join("metadata.json"),
            r#"{"type": "os", "os": [{"name": "a", "file_name": "a.xz"}]}"#,
        )
        .unwrap();
        let e = check(&dir.path().join("a.xz")).unwrap_err();
        assert_eq!(crate::error::exit_of(&e), crate::error::Exit::Usage);
        assert!(format!("{e:#}").contains("archive of entry `a`"), "{e:#}");
        assert!(check(&p).is_ok());
    }
}
