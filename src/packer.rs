//! Finding the disk a Packer build made, from Packer's manifest.
//!
//! Packer plugins must be written in Go, so goldify joins a build the documented way: the
//! `manifest` post-processor records the build's files, `shell-local` runs goldify with
//! `--packer-manifest`, `artifice` registers goldify's output as the build's artifact, and
//! `checksum` (optionally) hashes it. See examples/packer/.
//!
//! The manifest (https://developer.hashicorp.com/packer/docs/post-processors/manifest):
//! `{"builds": [{"name", "builder_type", "files": [{"name", "size"}], "packer_run_uuid", …}],
//! "last_run_uuid"}`. Each run appends its builds, so a manifest can hold many runs.

use crate::error::{Exit, Tag};
use anyhow::{Context, Result};
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// Packer appends every run's builds to the manifest; thousands of runs stay far below this.
const MAX_MANIFEST_BYTES: u64 = 16 << 20;

#[derive(Debug, Deserialize)]
pub struct Manifest {
    #[serde(default)]
    pub builds: Vec<Build>,
    #[serde(default)]
    pub last_run_uuid: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct Build {
    pub name: String,
    #[serde(default)]
    pub builder_type: String,
    /// `null` for builders that make no files.
    #[serde(default)]
    pub files: Option<Vec<File>>,
    #[serde(default)]
    pub packer_run_uuid: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct File {
    pub name: String,
}

impl Build {
    fn matches(&self, name: &str) -> bool {
        self.name == name || format!("{}.{}", self.builder_type, self.name) == name
    }
}

impl Manifest {
    pub fn load(path: &Path) -> Result<Manifest> {
        // A FIFO or a device named here must neither hang the run nor fill the memory.
        let text = crate::hostfile::read_bounded(path, MAX_MANIFEST_BYTES)
            .with_context(|| format!("reading Packer manifest {}", path.display()))
            .tag(Exit::Usage)?;
        serde_json::from_slice(&text)
            .with_context(|| format!("parsing Packer manifest {}", path.display()))
            .tag(Exit::Usage)
    }

    /// The build to take the disk from: the one named `wanted` (the latest such entry), or
    /// the only build of the last run.
    pub fn build(&self, wanted: Option<&str>) -> Result<&Build> {
        let last_run: Vec<&Build> = match &self.last_run_uuid {
            Some(uuid) => self
                .builds
                .iter()
                .filter(|b| b.packer_run_uuid.as_ref() == Some(uuid))
                .collect(),
            None => self.builds.iter().collect(),
        };
        if let Some(name) = wanted {
            // Prefer the last run; a build of an earlier run is still what was asked for.
            let found = last_run
                .iter()
                .rev()
                .copied()
                .find(|b| b.matches(name))
                .or_else(|| self.builds.iter().rev().find(|b| b.matches(name)));
            return found.ok_or_else(|| {
                let names: Vec<&str> = self.builds.iter().map(|b| b.name.as_str()).collect();
                crate::error::tagged(
                    anyhow::anyhow!("no build named {name:?} in the manifest (it has: {})", list(&names)),
                    Exit::Usage,
                )
            });
        }
        match last_run.as_slice() {
            [only] => Ok(only),
            [] => crate::bail_tag!(Exit::Usage, "the manifest records no build of its last run"),
            several => {
                let names: Vec<&str> = several.iter().map(|b| b.name.as_str()).collect();
                crate::bail_tag!(
                    Exit::Usage,
                    "the last Packer run made several builds ({}); choose one with --packer-build",
                    list(&names)
                )
            }
        }
    }
}

fn list(names: &[&str]) -> String {
    if names.is_empty() {
        "none".into()
    } else {
        names.join(", ")
    }
}

/// A file name from the manifest as a path here. Packer writes names relative to the
/// directory it ran in, which is also where `shell-local` runs goldify; run from elsewhere,
/// a name relative to the manifest's own directory is tried next.
fn resolve(name: &str, manifest: &Path) -> Option<PathBuf> {
    let p = Path::new(name);
    if p.is_absolute() {
        return p.exists().then(|| p.to_path_buf());
    }
    if p.exists() {
        return Some(p.to_path_buf());
    }
    let beside = manifest.parent().unwrap_or(Path::new(".")).join(p);
    beside.exists().then_some(beside)
}

/// A disk image by its content: a header qemu knows, or a compressed one; a raw image (no
/// header at all) only as a whole number of sectors and at least 1 MiB, so that a log or
/// an OVF beside the disks is not taken for one.
fn is_disk_image(p: &Path) -> bool {
    use crate::disk::detect::{detect, Detected};
    match detect(p) {
        Ok(Detected::Disk(crate::disk::Format::Raw)) => {
            std::fs::metadata(p).is_ok_and(|m| m.len() >= 1 << 20 && m.len() % 512 == 0)
        }
        Ok(_) => true,
        Err(_) => false,
    }
}

/// The disks a Packer build recorded in `manifest`, in its order: one usually; a build
/// that made several (the qemu builder's `disk_additional_size`: `NAME`, `NAME-1`, …) gives
/// a guest on several disks. Files that are not disk images (a log, an OVF) are left out.
pub fn disks_from_manifest(manifest: &Path, build: Option<&str>) -> Result<Vec<PathBuf>> {
    let m = Manifest::load(manifest)?;
    let b = m
        .build(build)
        .with_context(|| format!("in Packer manifest {}", manifest.display()))?;
    let files = b.files.as_deref().unwrap_or_default();
    if files.is_empty() {
        crate::bail_tag!(
            Exit::Input,
            "Packer build {:?} in {} recorded no files",
            b.name,
            manifest.display()
        );
    }
    let mut found = Vec::new();
    for f in files {
        match resolve(&f.name, manifest) {
            Some(p) => found.push(p),
            None => crate::bail_tag!(
                Exit::Input,
                "{} (build {:?} in {}) not found, neither here nor beside the manifest",
                f.name,
                b.name,
                manifest.display()
            ),
        }
    }
    if found.len() == 1 {
        return Ok(found);
    }
    let disks: Vec<PathBuf> = found.into_iter().filter(|p| is_disk_image(p)).collect();
    if disks.is_empty() {
        let names: Vec<&str> = files.iter().map(|f| f.name.as_str()).collect();
        crate::bail_tag!(
            Exit::Input,
            "Packer build {:?} has no disk image among its files ({})",
            b.name,
            names.join(", ")
        )
    }
    Ok(disks)
}

/// The disks of `goldify run`: DISK…, or those a Packer build recorded. `PACKER_BUILD_NAME`
/// (which `shell-local` sets) names the build when `--packer-build` does not.
pub fn input_disks(disks: Vec<PathBuf>, manifest: Option<&Path>, build: Option<&str>) -> Result<Vec<PathBuf>> {
    match (disks.is_empty(), manifest) {
        (false, Some(_)) => crate::bail_tag!(Exit::Usage, "give either DISK or --packer-manifest, not both"),
        (true, None) => crate::bail_tag!(Exit::Usage, "no disk: give DISK or --packer-manifest FILE"),
        (false, None) => Ok(disks),
        (true, Some(m)) => {
            let env = std::env::var("PACKER_BUILD_NAME").ok().filter(|n| !n.is_empty());
            let disks = disks_from_manifest(m, build.or(env.as_deref()))?;
            tracing::info!(
                "Packer manifest {} names {}",
                m.display(),
                crate::guest::guestfs::shown(&disks)
            );
            Ok(disks)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::exit_of;

    const RUN1: &str = "c346dc84-248e-61fb-0feb-7cf628ebb146";

    fn manifest(builds: &str, last: &str) -> String {
        format!(r#"{{"builds": [{builds}], "last_run_uuid": "{last}"}}"#)
    }

    fn build(name: &str, file: &str, run: &str) -> String {
        format!(
            r#"{{"name": "{name}", "builder_type": "file", "build_time": 1, "files": [{{"name": "{file}", "size": 3}}],
               "artifact_id": "File", "packer_run_uuid": "{run}", "custom_data": null}}"#
        )
    }

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn malformed_json_is_a_usage_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let m = write(dir.path(), "manifest.json", "{\"builds\": [");
        let err = disks_from_manifest(&m, None).unwrap_err();
        assert_eq!(exit_of(&err), Exit::Usage);
        assert!(format!("{err:#}").contains("parsing Packer manifest"), "{err:#}");
        let err = disks_from_manifest(&dir.path().join("missing.json"), None).unwrap_err();
        assert!(format!("{err:#}").contains("reading Packer manifest"), "{err:#}");
    }

    #[test]
    fn missing_build_lists_what_there_is() {
        let m: Manifest = serde_json::from_str(&manifest(&build("disk", "d.qcow2", RUN1), RUN1)).unwrap();
        let err = m.build(Some("other")).unwrap_err();
        assert_eq!(
            format!("{err:#}"),
            "no build named \"other\" in the manifest (it has: disk)"
        );
        assert_eq!(m.build(Some("file.disk")).unwrap().name, "disk");
        let empty: Manifest = serde_json::from_str(r#"{"builds": []}"#).unwrap();
        assert!(format!("{:#}", empty.build(None).unwrap_err()).contains("no build"));
    }

    #[test]
    fn default_is_the_last_runs_only_build() {
        let builds = [build("disk", "old.qcow2", "run0"), build("disk", "new.qcow2", RUN1)].join(",");
        let m: Manifest = serde_json::from_str(&manifest(&builds, RUN1)).unwrap();
        let b = m.build(None).unwrap();
        assert_eq!(b.files.as_ref().unwrap()[0].name, "new.qcow2");
        assert_eq!(
            m.build(Some("disk")).unwrap().files.as_ref().unwrap()[0].name,
            "new.qcow2"
        );

        let two = [build("a", "a.qcow2", RUN1), build("b", "b.qcow2", RUN1)].join(",");
        let m: Manifest = serde_json::from_str(&manifest(&two, RUN1)).unwrap();
        let err = m.build(None).unwrap_err();
        assert!(
            format!("{err:#}").contains("several builds (a, b); choose one with --packer-build"),
            "{err:#}"
        );
        assert_eq!(m.build(Some("b")).unwrap().name, "b");
    }

    #[test]
    fn relative_paths_resolve_here_then_beside_the_manifest() {
        let dir = tempfile::tempdir().unwrap();
        // Packer ran in dir/: the manifest lives in dir/meta/, the disk in dir/output/.
        let disk = write(dir.path(), "output/disk.qcow2", "QFI\u{fb}");
        let m = write(
            dir.path(),
            "meta/manifest.json",
            &manifest(&build("disk", "../output/disk.qcow2", RUN1), RUN1),
        );
        assert_eq!(
            disks_from_manifest(&m, None).unwrap(),
            [dir.path().join("meta/../output/disk.qcow2")]
        );
        let m2 = write(
            dir.path(),
            "manifest2.json",
            &manifest(&build("disk", "output/disk.qcow2", RUN1), RUN1),
        );
        assert_eq!(
            disks_from_manifest(&m2, None).unwrap(),
            [dir.path().join("output/disk.qcow2")]
        );
        let abs = write(
            dir.path(),
            "abs.json",
            &manifest(&build("disk", disk.to_str().unwrap(), RUN1), RUN1),
        );
        assert_eq!(disks_from_manifest(&abs, None).unwrap(), [disk]);
        let gone = write(
            dir.path(),
            "gone.json",
            &manifest(&build("disk", "output/nope.qcow2", RUN1), RUN1),
        );
        let err = disks_from_manifest(&gone, None).unwrap_err();
        assert_eq!(exit_of(&err), Exit::Input);
        assert!(
            format!("{err:#}").contains("output/nope.qcow2 (build \"disk\""),
            "{err:#}"
        );
    }

    #[test]
    fn null_files_and_either_or() {
        let dir = tempfile::tempdir().unwrap();
        let text = manifest(
            r#"{"name": "n", "builder_type": "null", "files": null, "packer_run_uuid": "r"}"#,
            "r",
        );
        let m = write(dir.path(), "m.json", &text);
        assert!(format!("{:#}", disks_from_manifest(&m, None).unwrap_err()).contains("recorded no files"));
        let d = vec![PathBuf::from("x.qcow2")];
        assert_eq!(
            exit_of(&input_disks(d.clone(), Some(&m), None).unwrap_err()),
            Exit::Usage
        );
        assert_eq!(exit_of(&input_disks(Vec::new(), None, None).unwrap_err()), Exit::Usage);
        assert_eq!(input_disks(d.clone(), None, None).unwrap(), d);
    }

    /// A build that made several disks (qemu's `disk_additional_size`) gives them all, in
    /// the manifest's order, leaving out what is not a disk image; none is an error.
    #[test]
    fn several_disk_images_are_one_guest() {
        let dir = tempfile::tempdir().unwrap();
        // A raw disk (1 MiB of sectors) and a qcow2 header; a log is neither.
        let a = write(dir.path(), "out/vm", &"\0".repeat(1 << 20));
        let b = write(dir.path(), "out/vm-1", "");
        std::fs::write(&b, b"QFI\xfb\0\0\0\x03").unwrap();
        write(dir.path(), "out/build.log", "log");
        let files = r#"[{"name": "out/vm"}, {"name": "out/build.log"}, {"name": "out/vm-1"}]"#;
        let text = manifest(
            &format!(r#"{{"name": "q", "builder_type": "qemu", "files": {files}, "packer_run_uuid": "r"}}"#),
            "r",
        );
        let m = write(dir.path(), "m.json", &text);
        let got = disks_from_manifest(&m, None).unwrap();
        assert_eq!(got, [a, b]);
        let logs = r#"[{"name": "out/build.log"}, {"name": "m.json"}]"#;
        let text = manifest(
            &format!(r#"{{"name": "q", "builder_type": "qemu", "files": {logs}, "packer_run_uuid": "r"}}"#),
            "r",
        );
        let m = write(dir.path(), "m2.json", &text);
        let err = disks_from_manifest(&m, None).unwrap_err();
        assert_eq!(exit_of(&err), Exit::Input);
        assert!(format!("{err:#}").contains("no disk image among its files"), "{err:#}");
    }
}
