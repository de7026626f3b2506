//! `checksums`: SHA256SUMS (and SHA1SUMS, SHA512SUMS, MD5SUMS on request) in the format
//! `sha256sum -c` reads — `<hex>  <path>` — covering every artifact of the run, with paths
//! relative to the directory the file is in. The digests were computed while each
//! artifact was written; nothing is read back here.

use super::atomic;
use super::hash::{Algo, Hashes};
use super::target::{Destination, Target, TargetInfo};
use super::{GuestInfo, Plan, Produce};
use crate::error::{Exit, Tag};
use crate::report::Artifact;
use crate::steps::OptionDoc;
use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::path::{Component, Path, PathBuf};

pub static INFO: TargetInfo = TargetInfo {
    name: "checksums",
    summary:
        "SHA256SUMS (and SHA1SUMS, SHA512SUMS, MD5SUMS) over every artifact of the run, as sha256sum -c reads them",
    options: &[
        OptionDoc {
            name: "dir",
            kind: "path",
            default: "--publish-dir",
            help: "where the lists go",
        },
        OptionDoc {
            name: "algorithms",
            kind: "list of md5|sha1|sha256|sha512",
            default: "[sha256]",
            help: "one list per algorithm",
        },
    ],
};

/// `checksums`' settings.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Checksums {
    pub dir: Option<PathBuf>,
    #[serde(default = "default_algorithms")]
    pub algorithms: Vec<Algo>,
}

fn default_algorithms() -> Vec<Algo> {
    vec![Algo::Sha256]
}

impl Target for Checksums {
    fn several_disks(&self) -> bool {
        true
    }

    fn validate(&self) -> Result<()> {
        if self.algorithms.is_empty() {
            bail!("algorithms is empty");
        }
        Ok(())
    }

    fn dir(&self, publish_dir: &Path) -> PathBuf {
        self.dir.clone().unwrap_or_else(|| publish_dir.to_path_buf())
    }

    fn check(&self, plan: &Plan) -> Result<()> {
        check(&self.dir(&plan.dir), &self.algorithms)
    }

    /// Every artifact is hashed with these while it is written.
    fn digests(&self) -> &[Algo] {
        &self.algorithms
    }

    fn destinations(&self, plan: &Plan, _info: Option<&GuestInfo>) -> Vec<Destination> {
        let dir = self.dir(&plan.dir);
        self.algorithms
            .iter()
            .map(|a| Destination::file(dir.join(a.sums_file()), "a checksum list"))
            .collect()
    }

    fn produce(&mut self, _out: &mut Produce) -> Result<()> {
        Ok(())
    }

    fn published(&mut self, plan: &Plan, artifacts: &[Artifact]) -> Result<Vec<Artifact>> {
        write(&self.dir(&plan.dir), &self.algorithms, artifacts)
    }
}

/// `to` relative to the directory `from` (both made absolute first).
pub fn relative(from: &Path, to: &Path) -> Result<PathBuf> {
    let from = std::fs::canonicalize(from).with_context(|| format!("resolving {}", from.display()))?;
    let parent = to.parent().unwrap_or(Path::new("."));
    let to = std::fs::canonicalize(parent)
        .with_context(|| format!("resolving {}", parent.display()))?
        .join(to.file_name().unwrap_or_default());
    let a: Vec<Component> = from.components().collect();
    let b: Vec<Component> = to.components().collect();
    let common = a.iter().zip(&b).take_while(|(x, y)| x == y).count();
    let mut out = PathBuf::new();
    for _ in common..a.len() {
        out.push("..");
    }
    for c in &b[common..] {
        out.push(c);
    }
    Ok(out)
}

/// The text of one sums file, or `None` when no artifact has this digest.
pub fn render(dir: &Path, algo: Algo, artifacts: &[Artifact]) -> Result<Option<String>> {
    let mut text = String::new();
    for a in artifacts {
        let Some(sum) = a.checksums.get(algo.name()) else {
            continue;
        };
        let rel = relative(dir, Path::new(&a.path))?;
        let rel = rel.to_string_lossy();
        if rel.contains(['\n', '\\']) {
            tracing::warn!(
                "{}: not listing {rel:?} (a name sha256sum cannot read back)",
                algo.sums_file()
            );
            continue;
        }
        text.push_str(&format!("{sum}  {rel}\n"));
    }
    Ok((!text.is_empty()).then_some(text))
}

/// Before the long work: the lists this target will replace in `dir` are regular files
/// where they exist (a link, a FIFO or a directory in their place is refused now rather
/// than after the compression).
pub fn check(dir: &Path, algos: &[Algo]) -> Result<()> {
    for algo in algos {
        atomic::check_regular(&dir.join(algo.sums_file())).tag(Exit::Output)?;
    }
    Ok(())
}

/// Write one file per algorithm into `dir`; returns them as artifacts (hashed in memory).
pub fn write(dir: &Path, algos: &[Algo], artifacts: &[Artifact]) -> Result<Vec<Artifact>> {
    let mut out = Vec::new();
    for &algo in algos {
        let Some(text) = render(dir, algo, artifacts)? else {
            continue;
        };
        let path = dir.join(algo.sums_file());
        atomic::write_file(&path, text.as_bytes())?;
        let mut h = Hashes::new([Algo::Sha256]);
        h.update(text.as_bytes());
        out.push(Artifact {
            kind: "checksums".into(),
            path: path.display().to_string(),
            size: text.len() as u64,
            checksums: h.finish(),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256sum_accepts_what_we_write() {
        let root = tempfile::tempdir().unwrap();
        let (pubdir, repo) = (root.path().join("pub"), root.path().join("repo"));
        std::fs::create_dir_all(&pubdir).unwrap();
        std::fs::create_dir_all(&repo).unwrap();
        let mut artifacts = Vec::new();
        for (p, data) in [
            (pubdir.join("a b.qcow2"), b"one".as_slice()),
            (repo.join("x.xz"), b"two".as_slice()),
        ] {
            std::fs::write(&p, data).unwrap();
            let mut h = Hashes::new([Algo::Sha256, Algo::Sha512]);
            h.update(data);
            artifacts.push(Artifact {
                kind: "t".into(),
                path: p.display().to_string(),
                size: 3,
                checksums: h.finish(),
            });
        }
        let written = write(&pubdir, &[Algo::Sha256, Algo::Sha512, Algo::Sha1], &artifacts).unwrap();
        assert_eq!(written.len(), 2, "no SHA1SUMS when nothing has a sha1");
        let text = std::fs::read_to_string(pubdir.join("SHA256SUMS")).unwrap();
        assert!(
            text.contains("  ../repo/x.xz\n") && text.contains("  a b.qcow2\n"),
            "{text}"
        );
        for tool in ["sha256sum", "sha512sum"] {
            let file = if tool == "sha256sum" {
                "SHA256SUMS"
            } else {
                "SHA512SUMS"
            };
            let st = std::process::Command::new(tool)
                .args(["--quiet", "-c", file])
                .current_dir(&pubdir)
                .status()
                .unwrap();
            assert!(st.success(), "{tool} -c");
        }
    }
}
