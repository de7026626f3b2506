//! Where the one pass reads its bytes: a sparse file through its data extents only
//! (SEEK_DATA/SEEK_HOLE: holes are never read), or any reader (a FIFO carrying a tar
//! stream), in fixed-size chunks.

use anyhow::{Context, Result};
use std::fs::File;
use std::io::Read;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

pub enum Chunk {
    /// `len` zero bytes (a hole, or data that turned out to be all zero).
    Zero(usize),
    Data(Vec<u8>),
}

impl Chunk {
    pub fn len(&self) -> usize {
        match self {
            Chunk::Zero(n) => *n,
            Chunk::Data(d) => d.len(),
        }
    }
}

/// Where the bytes come from, in order.
pub trait ChunkSource: Send {
    /// The next chunk of at most `size` bytes (exactly `size` except at the end).
    fn next_chunk(&mut self, size: usize) -> Result<Option<Chunk>>;
    /// How many bytes of `size`-byte chunks hold data (chunks that are only holes are
    /// not read): the progress bar's total. `None` when unknown (a stream).
    fn data_len(&self, size: usize) -> Option<u64>;
}

/// A sparse file read through its data extents only.
pub struct SparseFile {
    file: File,
    path: PathBuf,
    len: u64,
    /// Data extents, sorted, as (start, end).
    extents: Vec<(u64, u64)>,
    pos: u64,
}

impl SparseFile {
    pub fn open(path: &Path) -> Result<SparseFile> {
        let file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
        let len = file
            .metadata()
            .with_context(|| format!("reading the size of {}", path.display()))?
            .len();
        let extents = data_extents(&file, len).with_context(|| format!("mapping the data in {}", path.display()))?;
        Ok(SparseFile {
            file,
            path: path.to_path_buf(),
            len,
            extents,
            pos: 0,
        })
    }

    #[cfg(test)]
    pub fn extents(&self) -> &[(u64, u64)] {
        &self.extents
    }

    /// Indexes of the `size`-byte chunks that hold any data extent.
    pub fn data_chunks(&self, size: usize) -> Vec<u64> {
        let size = size as u64;
        let mut v: Vec<u64> = self
            .extents
            .iter()
            .flat_map(|(s, e)| s / size..=(e - 1) / size)
            .collect();
        v.dedup();
        v
    }

    /// Chunk `index` of `size` bytes, read out of order.
    pub fn chunk_at(&mut self, index: u64, size: usize) -> Result<Option<Chunk>> {
        self.pos = index * size as u64;
        self.next_chunk(size)
    }
}

/// The file's data extents via lseek(SEEK_DATA/SEEK_HOLE); the whole file where the
/// filesystem cannot tell.
fn data_extents(file: &File, len: u64) -> Result<Vec<(u64, u64)>> {
    use nix::unistd::{lseek, Whence};
    let mut out = Vec::new();
    let mut pos: i64 = 0;
    while (pos as u64) < len {
        let start = match lseek(file, pos, Whence::SeekData) {
            Ok(s) => s,
            Err(nix::errno::Errno::ENXIO) => break,
            Err(nix::errno::Errno::EINVAL) if pos == 0 => return Ok(vec![(0, len)]),
            Err(e) => return Err(e).context("seeking to data"),
        };
        let end = match lseek(file, start, Whence::SeekHole) {
            Ok(e) => e,
            Err(e) => return Err(e).context("seeking to a hole"),
        };
        out.push((start as u64, (end as u64).min(len)));
        pos = end;
    }
    Ok(out)
}

impl ChunkSource for SparseFile {
    fn next_chunk(&mut self, size: usize) -> Result<Option<Chunk>> {
        if self.pos >= self.len {
            return Ok(None);
        }
        let start = self.pos;
        let end = (start + size as u64).min(self.len);
        self.pos = end;
        let n = (end - start) as usize;
        // Extents are sorted: skip those that end before this chunk.
        let first = self.extents.partition_point(|e| e.1 <= start);
        let overlapping: Vec<(u64, u64)> = self.extents[first..]
            .iter()
            .take_while(|e| e.0 < end)
            .map(|e| (e.0.max(start), e.1.min(end)))
            .collect();
        if overlapping.is_empty() {
            return Ok(Some(Chunk::Zero(n)));
        }
        let mut buf = vec![0u8; n];
        for (s, e) in overlapping {
            let dst = &mut buf[(s - start) as usize..(e - start) as usize];
            self.file
                .read_exact_at(dst, s)
                .with_context(|| format!("reading {} at {s}", self.path.display()))?;
        }
        Ok(Some(Chunk::Data(buf)))
    }

    fn data_len(&self, size: usize) -> Option<u64> {
        let chunks = self.data_chunks(size);
        Some(
            chunks
                .iter()
                .map(|i| (self.len - i * size as u64).min(size as u64))
                .sum(),
        )
    }
}

/// Any reader (a FIFO carrying a tar stream), read in full chunks.
pub struct ReadSource<R> {
    reader: R,
    done: bool,
}

impl<R: Read + Send> ReadSource<R> {
    pub fn new(reader: R) -> Self {
        ReadSource { reader, done: false }
    }
}

impl<R: Read + Send> ChunkSource for ReadSource<R> {
    fn next_chunk(&mut self, size: usize) -> Result<Option<Chunk>> {
        if self.done {
            return Ok(None);
        }
        let mut buf = vec![0u8; size];
        let mut n = 0;
        while n < size {
            match self.reader.read(&mut buf[n..]) {
                Ok(0) => {
                    self.done = true;
                    break;
                }
                Ok(k) => n += k,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e).context("reading the input stream"),
            }
        }
        if n == 0 {
            return Ok(None);
        }
        buf.truncate(n);
        Ok(Some(Chunk::Data(buf)))
    }

    fn data_len(&self, _: usize) -> Option<u64> {
        None
    }
}
