//! Disk images targets publish (`disk`, `deckhouse`, `vcluster`): the golden disk as
//! qcow2 (optionally compressed), raw, vmdk or vdi, converted by qemu-img from the raw
//! export (or straight from the golden disk), each file once however many targets want it
//! (see `Produce::image`).
//!
//! qemu-img writes its formats with random access (tables after data), so these files
//! cannot be hashed in flight: each is hashed by one read right after qemu-img wrote it,
//! from the page cache; the containerDisk packs and hashes the qcow2 in that same read.

use super::atomic::Staged;
use super::hash::{Algo, HashWriter};
use crate::disk::Format;
use anyhow::{Context, Result};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// A disk image one or more targets want at `dest`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub dest: PathBuf,
    pub format: Format,
    pub compress: bool,
}

impl Request {
    /// `qcow2 (compressed)`, `raw`…: what a message says the file is wanted as.
    pub fn describe(&self) -> String {
        format!(
            "{}{}",
            self.format.name(),
            if self.compress { " (compressed)" } else { "" }
        )
    }
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
