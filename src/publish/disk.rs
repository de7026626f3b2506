//! `disk`: the golden disk as qcow2 (optionally compressed), raw, vmdk or vdi, converted
//! by qemu-img from the one raw export. Deckhouse and vCluster serve their qcow2 through
//! the same code.
//!
//! qemu-img writes its formats with random access (tables after data), so these files
//! cannot be hashed in flight: each is hashed by one read right after qemu-img wrote it,
//! from the page cache; the containerDisk packs and hashes the qcow2 in that same read.

use super::atomic::Staged;
use super::hash::{Algo, HashWriter};
use crate::disk::Format;
use anyhow::{bail, Context, Result};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// A disk image one or more targets want at `dest`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub dest: PathBuf,
    pub format: Format,
    pub compress: bool,
}

/// Merge requests for the same file; the same file with different settings is an error.
pub fn dedup(requests: Vec<(String, Request)>) -> Result<Vec<(Vec<String>, Request)>> {
    let mut out: Vec<(Vec<String>, Request)> = Vec::new();
    for (who, r) in requests {
        match out.iter_mut().find(|(_, o)| o.dest == r.dest) {
            Some((whos, o)) if *o == r => whos.push(who),
            Some((whos, o)) => bail!(
                "{} is wanted as {}{} by {} and as {}{} by {who}",
                r.dest.display(),
                o.format.name(),
                if o.compress { " (compressed)" } else { "" },
                whos.join(", "),
                r.format.name(),
                if r.compress { " (compressed)" } else { "" },
            ),
            None => out.push((vec![who], r)),
        }
    }
    Ok(out)
}

/// Convert the golden disk (`src`, the raw export or the work disk itself) into a staged
/// file for `r.dest`; `data` is how many bytes of data it holds, for the progress bar.
pub fn convert(src: &Path, src_format: Format, data: u64, r: &Request) -> Result<Staged> {
    let mut staged = Staged::new(&r.dest)?;
    let name = r
        .dest
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let bar = crate::progress::bytes(data, &format!("writing {name}"));
    crate::disk::convert(src, src_format, staged.temp_path(), r.format, r.compress, &bar)?;
    bar.finish_and_clear();
    staged.sync()?;
    Ok(staged)
}

/// Size and checksums of a staged file, by reading it once.
pub fn hash(staged: &Staged, algos: &[Algo]) -> Result<(u64, BTreeMap<String, String>)> {
    let path = staged.temp_path();
    let mut f = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut w = HashWriter::new(std::io::sink(), algos.iter().copied());
    std::io::copy(&mut f, &mut w).with_context(|| format!("reading {}", staged.dest().display()))?;
    let (_, n, sums) = w.finish();
    Ok((n, sums))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_file_twice_is_made_once_and_conflicts_are_errors() {
        let r = |f: Format, c| Request {
            dest: "/p/x.qcow2".into(),
            format: f,
            compress: c,
        };
        let d = dedup(vec![
            ("deckhouse".into(), r(Format::Qcow2, false)),
            ("vcluster".into(), r(Format::Qcow2, false)),
        ])
        .unwrap();
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].0, ["deckhouse", "vcluster"]);
        let e = dedup(vec![
            ("deckhouse".into(), r(Format::Qcow2, true)),
            ("vcluster".into(), r(Format::Qcow2, false)),
        ])
        .unwrap_err();
        assert!(
            e.to_string()
                .contains("wanted as qcow2 (compressed) by deckhouse and as qcow2 by vcluster"),
            "{e}"
        );
    }
}
