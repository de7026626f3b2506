//! One pass over the golden disk: read it once, chunk by chunk, compress every chunk on
//! several threads for every output at once, and hash each output while it is written.
//!
//! Holes of a sparse file are never read (SEEK_DATA/SEEK_HOLE), and a chunk that is all
//! zero (a hole, or zeros that were written) costs one cache lookup per output: its
//! compressed form is computed once per length and reused. A 40 GiB disk holding 1 GiB
//! of data therefore costs about what its 1 GiB costs.

use super::codec::{BlockCodec, Encoded, Record};
use super::hash::{Algo, HashWriter};
use anyhow::{anyhow, Context, Result};
use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::Write;
use std::os::unix::fs::FileExt;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};

pub use super::source::{Chunk, ChunkSource, ReadSource, SparseFile};

/// One compressed output of the pass.
pub struct Output<'a> {
    pub codec: Box<dyn BlockCodec>,
    pub sink: &'a mut (dyn Write + Send),
    pub algos: Vec<Algo>,
    /// Blocks compressed ahead of time, used where the chunk's bytes are unchanged.
    pub reuse: Option<&'a Precompressed>,
}

/// Blocks one codec compressed ahead of time from another copy of the disk (the input,
/// while the appliance was busy), by chunk index; `file` is that copy, to check that a
/// chunk is still byte for byte what was compressed.
pub struct Precompressed {
    pub file: File,
    pub chunk_size: usize,
    pub blocks: HashMap<u64, Arc<Encoded>>,
}

impl Precompressed {
    /// The precompressed block for chunk `index`, if its bytes are still `data`.
    pub fn get(&self, index: u64, chunk_size: usize, data: &[u8]) -> Option<Arc<Encoded>> {
        if chunk_size != self.chunk_size {
            return None;
        }
        let e = self.blocks.get(&index)?;
        let mut before = vec![0u8; data.len()];
        self.file.read_exact_at(&mut before, index * chunk_size as u64).ok()?;
        (before == data).then(|| e.clone())
    }
}

/// What was written to one output.
#[derive(Debug, Clone)]
pub struct Written {
    pub size: u64,
    pub checksums: BTreeMap<String, String>,
}

/// What the pass saw.
#[derive(Debug, Clone, Default)]
pub struct Summary {
    /// Bytes of input (holes included).
    pub input: u64,
    /// Bytes of input that were all-zero chunks, compressed once and reused.
    pub zero: u64,
    /// Bytes of input whose blocks came precompressed.
    pub reused: u64,
    pub outputs: Vec<Written>,
}

type Job = (u64, Chunk);
/// Index, length, read (not a hole), all zero, reused, the encoded blocks (one per output).
type Done = (u64, usize, bool, bool, bool, Result<Vec<Arc<Encoded>>>);
/// A chunk ready to be written: length, read, all zero, reused, blocks.
type Ready = (usize, bool, bool, bool, Vec<Arc<Encoded>>);

/// Compress `source` into every output in one pass on `threads` threads.
pub fn compress(
    source: &mut dyn ChunkSource,
    outputs: Vec<Output<'_>>,
    threads: usize,
    progress: &indicatif::ProgressBar,
) -> Result<Summary> {
    let threads = threads.max(1);
    // One chunk feeds every codec; each cuts it into its own blocks.
    let chunk_size = outputs.iter().map(|o| o.codec.block_size()).max().unwrap_or(1 << 20);
    if let Some(total) = source.data_len(chunk_size) {
        progress.set_length(total);
    }
    let mut sinks: Vec<(HashWriter<&mut (dyn Write + Send)>, Vec<Record>)> = Vec::new();
    let mut codec_boxes = Vec::new();
    let mut reuses = Vec::new();
    for o in outputs {
        sinks.push((HashWriter::new(o.sink, o.algos), Vec::new()));
        codec_boxes.push(o.codec);
        reuses.push(o.reuse);
    }
    let codecs: Vec<&dyn BlockCodec> = codec_boxes.iter().map(|c| c.as_ref()).collect();
    for (i, (w, _)) in sinks.iter_mut().enumerate() {
        w.write_all(&codecs[i].header())
            .context("writing the compressed output")?;
    }

    let abort = AtomicBool::new(false);
    let zero_cache: Mutex<HashMap<(usize, usize), Arc<Encoded>>> = Mutex::new(HashMap::new());
    // At most this many chunks exist at once (read, compressing, or waiting to be written).
    let in_flight = 2 * threads + 2;
    let (slot_tx, slot_rx) = mpsc::sync_channel::<()>(in_flight);
    for _ in 0..in_flight {
        slot_tx.send(()).expect("fresh channel");
    }
    let (job_tx, job_rx) = mpsc::sync_channel::<Job>(threads);
    let job_rx = Mutex::new(job_rx);
    let (done_tx, done_rx) = mpsc::channel::<Done>();
    let mut summary = Summary::default();
    let (sinks_ref, summary_ref) = (&mut sinks, &mut summary);

    let result: Result<()> = std::thread::scope(|s| {
        // The reader owns the only job sender: when it stops, the workers run dry and stop.
        let reader = {
            let abort = &abort;
            s.spawn(move || -> Result<()> {
                let mut index = 0u64;
                loop {
                    if abort.load(Ordering::SeqCst) {
                        return Ok(());
                    }
                    crate::interrupt::check()?;
                    // No free slot and no writer left to free one: stop.
                    if slot_rx.recv().is_err() {
                        return Ok(());
                    }
                    let Some(chunk) = source.next_chunk(chunk_size)? else {
                        return Ok(());
                    };
                    if job_tx.send((index, chunk)).is_err() {
                        return Ok(());
                    }
                    index += 1;
                }
            })
        };
        for _ in 0..threads {
            let done_tx = done_tx.clone();
            let (job_rx, codecs, zero_cache, abort, reuses) = (&job_rx, &codecs, &zero_cache, &abort, &reuses);
            s.spawn(move || loop {
                let job = job_rx.lock().unwrap_or_else(|e| e.into_inner()).recv();
                let Ok((index, chunk)) = job else { return };
                // After a failure, keep draining so that the reader is never stuck on a full queue.
                if abort.load(Ordering::SeqCst) {
                    continue;
                }
                let len = chunk.len();
                let read = matches!(chunk, Chunk::Data(_));
                let (zero, reused, result) = encode_chunk(index, chunk_size, chunk, codecs, reuses, zero_cache);
                if done_tx.send((index, len, read, zero, reused, result)).is_err() {
                    abort.store(true, Ordering::SeqCst);
                }
            });
        }
        drop(done_tx);

        // The writer: results in order into every sink. It owns the slot sender and the
        // result receiver, so returning early (full disk) releases the reader and workers.
        let written = (move || -> Result<()> {
            let mut pending: BTreeMap<u64, Ready> = BTreeMap::new();
            let mut next = 0u64;
            for (index, len, read, zero, reused, result) in done_rx.iter() {
                pending.insert(index, (len, read, zero, reused, result?));
                while let Some((len, read, zero, reused, encoded)) = pending.remove(&next) {
                    for ((w, records), e) in sinks_ref.iter_mut().zip(&encoded) {
                        w.write_all(&e.bytes).context("writing the compressed output")?;
                        records.extend_from_slice(&e.records);
                    }
                    summary_ref.input += len as u64;
                    if reused {
                        summary_ref.reused += len as u64;
                    }
                    if zero {
                        summary_ref.zero += len as u64;
                    }
                    if read {
                        progress.inc(len as u64);
                    }
                    next += 1;
                    let _ = slot_tx.send(());
                }
            }
            Ok(())
        })();
        if written.is_err() {
            abort.store(true, Ordering::SeqCst);
        }
        let read = reader.join().map_err(|_| anyhow!("the reading thread panicked"))?;
        written?;
        read
    });
    result?;
    crate::interrupt::check()?;

    for (i, (mut w, records)) in sinks.into_iter().enumerate() {
        w.write_all(&codecs[i].trailer(&records))
            .context("writing the compressed output")?;
        w.flush().context("writing the compressed output")?;
        let (_, size, checksums) = w.finish();
        summary.outputs.push(Written { size, checksums });
    }
    Ok(summary)
}

/// Compress one chunk for every codec: all-zero chunks come from the cache, unchanged
/// chunks from the precompressed blocks. Returns (all zero, reused, blocks).
fn encode_chunk(
    index: u64,
    chunk_size: usize,
    chunk: Chunk,
    codecs: &[&dyn BlockCodec],
    reuses: &[Option<&Precompressed>],
    cache: &Mutex<HashMap<(usize, usize), Arc<Encoded>>>,
) -> (bool, bool, Result<Vec<Arc<Encoded>>>) {
    let len = chunk.len();
    let zero = match &chunk {
        Chunk::Zero(_) => true,
        Chunk::Data(d) => is_zero(d),
    };
    let mut reused = false;
    let r = codecs
        .iter()
        .enumerate()
        .map(|(i, codec)| {
            if zero {
                if let Some(e) = cache.lock().unwrap_or_else(|e| e.into_inner()).get(&(i, len)) {
                    return Ok(e.clone());
                }
                let e = Arc::new(codec.encode(&vec![0u8; len])?);
                return Ok(cache
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .entry((i, len))
                    .or_insert(e)
                    .clone());
            }
            let Chunk::Data(d) = &chunk else {
                unreachable!("zero chunks are handled above")
            };
            if let Some(e) = reuses[i].and_then(|p| p.get(index, chunk_size, d)) {
                reused = true;
                return Ok(e);
            }
            // Polls the interruption as it goes: a large block at a high preset takes
            // longer than the grace period a signal gives (interrupt.rs).
            match codec.encode_until(d, crate::interrupt::flag())? {
                Some(e) => Ok(Arc::new(e)),
                None => Err(crate::interrupt::check()
                    .err()
                    .unwrap_or_else(|| anyhow!("compression stopped"))),
            }
        })
        .collect();
    (zero, reused, r)
}

fn is_zero(data: &[u8]) -> bool {
    // Compare in u128 words: the compiler vectorizes this; a byte loop would not be.
    let (head, body, tail) = unsafe { data.align_to::<u128>() };
    head.iter().all(|b| *b == 0) && body.iter().all(|w| *w == 0) && tail.iter().all(|b| *b == 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::publish::codec::{Gzip, Xz, Zstd};
    use std::path::{Path, PathBuf};

    fn sparse_file(dir: &Path) -> (PathBuf, Vec<u8>) {
        let path = dir.join("disk.raw");
        let f = File::create(&path).unwrap();
        let len: u64 = 40 << 20;
        f.set_len(len).unwrap();
        let mut whole = vec![0u8; len as usize];
        for (off, byte) in [(0u64, 1u8), (5 << 20, 2), (30 << 20, 3)] {
            let data: Vec<u8> = (0..300_000u32).map(|i| byte.wrapping_add((i % 251) as u8)).collect();
            f.write_all_at(&data, off).unwrap();
            whole[off as usize..off as usize + data.len()].copy_from_slice(&data);
        }
        (path, whole)
    }

    #[test]
    fn sparse_file_reads_only_data_and_keeps_offsets() {
        let dir = tempfile::tempdir().unwrap();
        let (path, whole) = sparse_file(dir.path());
        let mut src = SparseFile::open(&path).unwrap();
        assert!(
            src.data_len(1 << 20).unwrap() <= 3 << 20,
            "holes are not data: {:?}",
            src.extents()
        );
        let mut back = Vec::new();
        let mut zero_chunks = 0;
        while let Some(c) = src.next_chunk(1 << 20).unwrap() {
            match c {
                Chunk::Zero(n) => {
                    zero_chunks += 1;
                    back.resize(back.len() + n, 0)
                }
                Chunk::Data(d) => back.extend(d),
            }
        }
        assert_eq!(back, whole);
        assert!(zero_chunks > 30, "{zero_chunks}");
    }

    #[test]
    fn one_pass_feeds_three_codecs_and_their_hashes() {
        let dir = tempfile::tempdir().unwrap();
        let (path, whole) = sparse_file(dir.path());
        let mut src = SparseFile::open(&path).unwrap();
        let (mut a, mut b, mut c) = (Vec::new(), Vec::new(), Vec::new());
        let outputs = vec![
            Output {
                codec: Box::new(Xz::new(1, false).unwrap()),
                sink: &mut a,
                algos: vec![Algo::Sha1, Algo::Sha256],
                reuse: None,
            },
            Output {
                codec: Box::new(Gzip::new(1).unwrap()),
                sink: &mut b,
                algos: vec![Algo::Sha256],
                reuse: None,
            },
            Output {
                codec: Box::new(Zstd::new(1).unwrap()),
                sink: &mut c,
                algos: vec![],
                reuse: None,
            },
        ];
        let bar = indicatif::ProgressBar::hidden();
        let summary = compress(&mut src, outputs, 3, &bar).unwrap();
        assert_eq!(summary.input, whole.len() as u64);
        assert!(summary.zero >= 20 << 20, "{}", summary.zero);
        assert_eq!(summary.outputs[0].size, a.len() as u64);
        let sha1 = {
            let mut h = crate::publish::hash::Hashes::new([Algo::Sha1]);
            h.update(&a);
            h.finish()
        };
        assert_eq!(summary.outputs[0].checksums["sha1"], sha1["sha1"]);
        for (tool, data) in [("xz", &a), ("gzip", &b), ("zstd", &c)] {
            let f = dir.path().join(format!("out.{tool}"));
            std::fs::write(&f, data).unwrap();
            let out = std::process::Command::new(tool).arg("-dc").arg(&f).output().unwrap();
            assert!(out.status.success(), "{tool}");
            assert!(out.stdout == whole, "{tool} output differs");
        }
    }

    #[test]
    fn reader_source_and_write_errors() {
        let data: Vec<u8> = (0..3_000_000u32).map(|i| (i % 7) as u8).collect();
        let mut src = ReadSource::new(std::io::Cursor::new(data.clone()));
        let mut full = std::fs::OpenOptions::new().write(true).open("/dev/full").unwrap();
        let outputs = vec![Output {
            codec: Box::new(Gzip::new(1).unwrap()),
            sink: &mut full,
            algos: vec![],
            reuse: None,
        }];
        let err = compress(&mut src, outputs, 2, &indicatif::ProgressBar::hidden()).unwrap_err();
        assert!(format!("{err:#}").contains("No space left"), "{err:#}");

        let mut src = ReadSource::new(std::io::Cursor::new(data.clone()));
        let mut out = Vec::new();
        let outputs = vec![Output {
            codec: Box::new(Zstd::new(3).unwrap()),
            sink: &mut out,
            algos: vec![],
            reuse: None,
        }];
        compress(&mut src, outputs, 2, &indicatif::ProgressBar::hidden()).unwrap();
        assert_eq!(zstd::stream::decode_all(out.as_slice()).unwrap(), data);
    }

    #[test]
    fn precompressed_blocks_are_used_only_for_unchanged_chunks() {
        let dir = tempfile::tempdir().unwrap();
        let (path, whole) = sparse_file(dir.path());
        let xz = Xz::new(0, false).unwrap();
        let size = xz.block_size();
        let mut before = SparseFile::open(&path).unwrap();
        assert_eq!(before.data_chunks(size), [0, 5, 30]);
        let mut blocks = HashMap::new();
        for i in before.data_chunks(size) {
            let Some(Chunk::Data(d)) = before.chunk_at(i, size).unwrap() else {
                panic!("data")
            };
            blocks.insert(i, Arc::new(xz.encode(&d).unwrap()));
        }
        let pre = Precompressed {
            file: File::open(&path).unwrap(),
            chunk_size: size,
            blocks,
        };
        // The "golden" disk: the same, except one byte in chunk 5.
        let golden = dir.path().join("golden.raw");
        std::fs::copy(&path, &golden).unwrap();
        let mut changed = whole.clone();
        changed[(5 << 20) + 7] ^= 1;
        File::options()
            .write(true)
            .open(&golden)
            .unwrap()
            .write_all_at(&changed[(5 << 20) + 7..(5 << 20) + 8], (5 << 20) + 7)
            .unwrap();
        let mut out = Vec::new();
        let outputs = vec![Output {
            codec: Box::new(Xz::new(0, false).unwrap()),
            sink: &mut out,
            algos: vec![],
            reuse: Some(&pre),
        }];
        let summary = compress(
            &mut SparseFile::open(&golden).unwrap(),
            outputs,
            2,
            &indicatif::ProgressBar::hidden(),
        )
        .unwrap();
        assert_eq!(summary.reused, 2 << 20, "chunks 0 and 30 reused, 5 recompressed");
        let mut back = Vec::new();
        std::io::Read::read_to_end(&mut liblzma::read::XzDecoder::new(out.as_slice()), &mut back).unwrap();
        assert!(back == changed);
    }

    #[test]
    fn zero_detection() {
        assert!(is_zero(&[0u8; 1000]));
        let mut v = vec![0u8; 1000];
        v[999] = 1;
        assert!(!is_zero(&v));
        v[999] = 0;
        v[3] = 1;
        assert!(!is_zero(&v[1..]));
    }
}
