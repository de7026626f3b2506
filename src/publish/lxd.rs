//! `vmmanager-lxd`: the guest's root filesystem as `<image_name>.tar.gz` for VMmanager's
//! LXD clusters, and its entry in a repository whose `metadata.json` says `"type": "lxd"`.
//!
//! The tree is exported while the guest is still open (libguestfs `tar-out` with numeric
//! owners, xattrs, SELinux labels and ACLs; device nodes are kept by tar itself) into a
//! FIFO, and compressed and hashed on the fly: nothing is staged uncompressed.

use super::atomic::Staged;
use super::codec::Gzip;
use super::hash::Algo;
use super::repo::RepoType;
use super::settings::{check_archive_names, file_safe, repository_destinations, threads, GzipSettings};
use super::stream::{self, Output, ReadSource, Written};
use super::target::{Destination, RepoClaim, Target, TargetInfo};
use super::vmmanager::{default_tags, mib_ceil};
use super::{GuestInfo, Plan, Produce};
use crate::guest::Guest;
use crate::steps::OptionDoc;
use anyhow::{anyhow, Context, Result};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use std::path::{Path, PathBuf};

pub static INFO: TargetInfo = TargetInfo {
    name: "vmmanager-lxd",
    summary: "VMmanager LXD template: the root filesystem as <image_name>.tar.gz and its entry in an LXD repository's metadata.json",
    options: &[
        OptionDoc { name: "repo", kind: "path", default: "--publish-dir", help: "the repository directory (not the KVM one)" },
        OptionDoc { name: "name", kind: "string", default: "--name, else <distro>-<major>", help: "template name" },
        OptionDoc { name: "image_name", kind: "string", default: "the name, file-name safe", help: "base name of the archive" },
        OptionDoc { name: "tags", kind: "list", default: "os type, distro, distro+major", help: "the entry's tags" },
        OptionDoc { name: "min_size_mib", kind: "integer", default: "none", help: "the entry's minimum disk size" },
        OptionDoc { name: "compression", kind: "{level, threads}", default: "{level: 6}", help: "gzip level 1-9 and threads (0: one per core)" },
    ],
};

/// `vmmanager-lxd`'s settings (and, once the guest was open, the exported tree).
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Lxd {
    pub repo: Option<PathBuf>,
    pub name: Option<String>,
    pub image_name: Option<String>,
    pub tags: Option<Vec<String>>,
    pub min_size_mib: Option<u64>,
    #[serde(default)]
    pub compression: GzipSettings,
    #[serde(skip)]
    exported: Option<Exported>,
}

impl Target for Lxd {
    fn several_disks(&self) -> bool {
        true
    }

    fn validate(&self) -> Result<()> {
        Gzip::new(self.compression.level).context("compression")?;
        check_archive_names(self.name.as_deref(), self.image_name.as_deref(), "tar.gz")?;
        Ok(())
    }

    fn dir(&self, publish_dir: &Path) -> PathBuf {
        self.repo.clone().unwrap_or_else(|| publish_dir.to_path_buf())
    }

    fn destinations(&self, plan: &Plan, info: Option<&GuestInfo>) -> Vec<Destination> {
        let names = (self.name.as_deref(), self.image_name.as_deref());
        repository_destinations(plan, &self.dir(&plan.dir), names, "tar.gz", info)
    }

    fn repository(&self, plan: &Plan) -> Option<RepoClaim> {
        Some(RepoClaim {
            dir: self.dir(&plan.dir),
            kind: RepoType::Lxd,
        })
    }

    /// The tree is read from the open guest, compressed and hashed on the fly, and staged
    /// in the repository.
    fn guest_open(&mut self, plan: &Plan, info: &GuestInfo, guest: &dyn Guest) -> Result<()> {
        let name = plan.template_name(self.name.as_deref(), info);
        let e = export(self, &self.dir(&plan.dir), &name, guest, &plan.algos)?;
        self.exported = Some(e);
        Ok(())
    }

    fn produce(&mut self, out: &mut Produce) -> Result<()> {
        let e = self
            .exported
            .take()
            .ok_or_else(|| anyhow!("the root tree was not exported while the guest was open"))?;
        let m = entry(self, &e, out.info, &out.updated_at);
        out.repository_entry(INFO.name, RepoType::Lxd, m, e.staged, &e.written);
        Ok(())
    }
}

/// The compressed tree, staged in the repository, not yet renamed into place.
#[derive(Debug)]
pub struct Exported {
    pub staged: Staged,
    pub written: Written,
    pub name: String,
    pub file_name: String,
}

pub fn export(s: &Lxd, repo: &Path, name: &str, guest: &dyn Guest, algos: &[Algo]) -> Result<Exported> {
    let name = name.to_string();
    let image_name = s.image_name.clone().unwrap_or_else(|| file_safe(&name));
    let file_name = format!("{image_name}.tar.gz");
    let mut staged = Staged::new(&repo.join(&file_name))?;
    let scratch = crate::workdir::create(&std::env::temp_dir())?;
    let fifo = scratch.path().join("rootfs.tar");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRUSR | nix::sys::stat::Mode::S_IWUSR)
        .with_context(|| format!("creating FIFO {}", fifo.display()))?;
    let threads = threads(s.compression.threads);
    let bar = crate::progress::bytes_unknown(&format!("exporting and compressing {file_name}"));
    let mut algos = algos.to_vec();
    algos.push(Algo::Sha1);
    let (tar_result, written) = std::thread::scope(|scope| {
        let reader = scope.spawn(|| -> Result<Written> {
            let f = std::fs::File::open(&fifo).with_context(|| format!("opening FIFO {}", fifo.display()))?;
            let mut src = ReadSource::new(f);
            let codec = Box::new(Gzip::new(s.compression.level)?);
            let out = Output {
                codec,
                sink: &mut staged,
                algos,
                reuse: None,
            };
            let summary = stream::compress(&mut src, vec![out], threads, &bar)?;
            Ok(summary.outputs.into_iter().next().expect("one output"))
        });
        let tar_result = guest.tar_out("/", &fifo);
        if tar_result.is_err() {
            // If libguestfs failed before opening the FIFO, the reader still waits in
            // open(2): meet it there and close, so it sees end of file.
            let _ = std::fs::OpenOptions::new().write(true).open(&fifo);
        }
        (
            tar_result,
            reader.join().map_err(|_| anyhow!("the compressing thread panicked")),
        )
    });
    bar.finish_and_clear();
    tar_result.context("exporting the root filesystem")?;
    let written = written??;
    staged.sync()?;
    Ok(Exported {
        staged,
        written,
        name,
        file_name,
    })
}

/// The repository entry: what VMmanager documents for LXD templates (no KVM-only fields).
pub fn entry(s: &Lxd, e: &Exported, info: &GuestInfo, updated_at: &str) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("name".into(), json!(e.name));
    m.insert(
        "tags".into(),
        json!(s.tags.clone().unwrap_or_else(|| default_tags(info))),
    );
    m.insert("file_name".into(), json!(e.file_name));
    m.insert("archive_size_mib".into(), json!(mib_ceil(e.written.size)));
    if let Some(min) = s.min_size_mib {
        m.insert("min_size_mib".into(), json!(min));
    }
    m.insert("updated_at".into(), json!(updated_at));
    m.insert(
        "checksum".into(),
        json!(e.written.checksums.get("sha1").cloned().unwrap_or_default()),
    );
    m
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::guest::memory::MemoryGuest;
    use crate::guest::{Layout, OsFacts};

    #[test]
    fn tree_is_streamed_through_a_fifo_into_gzip() {
        let g = MemoryGuest::new(OsFacts::sample("debian"));
        g.file("/etc/hostname", b"localhost\n")
            .file("/usr/bin/tool", &vec![9u8; 5 << 20])
            .link("/bin", "usr/bin");
        g.chown(0, 42, "/etc/hostname").unwrap();
        let info = GuestInfo {
            os: OsFacts::sample("debian"),
            layout: Layout::default(),
            network_device: None,
            disk_prefix: "vd".into(),
        };
        let repo = tempfile::tempdir().unwrap();
        let s = Lxd::default();
        let e = export(&s, repo.path(), "deb", &g, &[Algo::Sha256]).unwrap();
        assert_eq!(e.file_name, "deb.tar.gz");
        assert!(!repo.path().join("deb.tar.gz").exists(), "staged, not yet published");
        let data = std::fs::read(e.staged.temp_path()).unwrap();
        assert_eq!(e.written.size, data.len() as u64);
        let mut tar = tar::Archive::new(flate2::read::MultiGzDecoder::new(data.as_slice()));
        let mut seen = Vec::new();
        for entry in tar.entries().unwrap() {
            let entry = entry.unwrap();
            let h = entry.header();
            seen.push((entry.path().unwrap().display().to_string(), h.gid().unwrap()));
        }
        assert!(seen.contains(&("etc/hostname".into(), 42)), "{seen:?}");
        assert!(seen.iter().any(|(p, _)| p == "bin"));
        let m = entry(&s, &e, &info, "2024-01-01 00:00:00");
        assert_eq!(m["checksum"].as_str().unwrap().len(), 40);
        e.staged.commit().unwrap();
        assert!(repo.path().join("deb.tar.gz").exists());
    }
}
