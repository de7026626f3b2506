//! A head start for the vmmanager archive: while the appliance boots and the steps run
//! (under TCG that is a busy vCPU thread and a mostly idle second core), compress the
//! *input* disk's chunks at low priority. After the appliance closes, every chunk whose
//! bytes the steps left unchanged (most of them: cleaning touches little) takes its block
//! from here instead of being compressed again; stream.rs checks byte for byte.
//!
//! Only for runs on an overlay (the input is the overlay's unchanged backing file); the
//! work is abandoned mid-block when the appliance is done.

use super::codec::{BlockCodec, Xz};
use super::settings::XzSettings;
use super::stream::{Chunk, Precompressed, SparseFile};
use super::Input;
use crate::disk::Format;
use anyhow::{Context, Result};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

/// Compressed bytes the head start keeps in memory at most.
const KEEP_AT_MOST: usize = 256 << 20;

pub struct HeadStart {
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<Result<Precompressed>>>,
    _scratch: crate::workdir::WorkDir,
}

impl std::fmt::Debug for HeadStart {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HeadStart")
    }
}

/// The head start is a luxury: its raw copy of the input shares the work parent with the
/// overlay the appliance writes (which the space watch guards: filling it would stop the
/// run) and with the publish pass's raw export later. It runs only when both raw copies
/// fit with a good margin.
fn room_for(data: u64, free: u64) -> bool {
    const MARGIN: u64 = 512 << 20;
    data.checked_mul(2)
        .and_then(|d| d.checked_add(MARGIN))
        .is_some_and(|need| need <= free)
}

impl HeadStart {
    /// Start compressing the run's read-only input with the archive's xz settings. The raw
    /// copy of the (uncleaned) input lives in a private directory under the run's scratch
    /// parent ($TMPDIR), never in the repository.
    pub fn begin(settings: &XzSettings, input: &Input) -> Result<Option<HeadStart>> {
        let codec = Xz::new(settings.preset, settings.extreme)?;
        let threads = super::settings::threads(settings.threads);
        let format = input.format;
        let data = crate::disk::data_size(input.path, format).unwrap_or(u64::MAX);
        let free = crate::disk::free_bytes(input.scratch_parent).unwrap_or(0);
        if !room_for(data, free) {
            tracing::info!(
                "no head start: {} free in {} for {} of input data",
                crate::report::human_bytes(free),
                input.scratch_parent.display(),
                crate::report::human_bytes(data)
            );
            return Ok(None);
        }
        let scratch = crate::workdir::create(input.scratch_parent)?;
        let raw = scratch.path().join("input.raw");
        let input = input.path.to_path_buf();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let handle = std::thread::Builder::new()
            .name("head-start".into())
            .spawn(move || -> Result<Precompressed> {
                // Lowest priority: the appliance must not wait for us. On Linux the nice value
                // is per thread (setpriority(2), NOTES); qemu-img inherits it.
                // SAFETY: plain syscall on the calling thread.
                unsafe { nix::libc::setpriority(nix::libc::PRIO_PROCESS, 0, 19) };
                let bar = indicatif::ProgressBar::hidden();
                crate::disk::convert(&input, format, &raw, Format::Raw, false, &bar)
                    .context("reading the input as raw")?;
                let chunk_size = codec.block_size();
                // Last chunk first: filesystems keep their busiest metadata (superblock, group
                // descriptors, bitmaps) near the start, and cleaning changes it.
                let order: Vec<u64> = SparseFile::open(&raw)?
                    .data_chunks(chunk_size)
                    .into_iter()
                    .rev()
                    .collect();
                let next = AtomicUsize::new(0);
                let blocks = Mutex::new(HashMap::new());
                // What is kept is bounded: a slow appliance on a big disk must not fill memory
                // with compressed blocks.
                let kept = AtomicUsize::new(0);
                // As many workers as the final pass has: at nice 19 they only take CPU time the
                // appliance leaves idle.
                std::thread::scope(|scope| -> Result<()> {
                    let workers: Vec<_> = (0..threads)
                        .map(|_| {
                            let (codec, flag, order, next, blocks, raw, kept) =
                                (&codec, &flag, &order, &next, &blocks, &raw, &kept);
                            scope.spawn(move || -> Result<()> {
                                unsafe { nix::libc::setpriority(nix::libc::PRIO_PROCESS, 0, 19) };
                                let mut src = SparseFile::open(raw)?;
                                while !flag.load(Ordering::Relaxed) && kept.load(Ordering::SeqCst) < KEEP_AT_MOST {
                                    let Some(&index) = order.get(next.fetch_add(1, Ordering::SeqCst)) else {
                                        break;
                                    };
                                    let Some(Chunk::Data(d)) = src.chunk_at(index, chunk_size)? else {
                                        continue;
                                    };
                                    if d.iter().all(|b| *b == 0) {
                                        continue;
                                    }
                                    match codec.encode_until(&d, flag)? {
                                        Some(e) => {
                                            kept.fetch_add(e.bytes.len(), Ordering::SeqCst);
                                            blocks
                                                .lock()
                                                .unwrap_or_else(|e| e.into_inner())
                                                .insert(index, Arc::new(e));
                                        }
                                        None => break,
                                    }
                                }
                                Ok(())
                            })
                        })
                        .collect();
                    for w in workers {
                        w.join()
                            .map_err(|_| anyhow::anyhow!("a head-start worker panicked"))??;
                    }
                    Ok(())
                })?;
                let blocks = blocks.into_inner().unwrap_or_else(|e| e.into_inner());
                let file = std::fs::File::open(&raw).with_context(|| format!("opening {}", raw.display()))?;
                Ok(Precompressed {
                    file,
                    chunk_size,
                    blocks,
                })
            })
            .context("starting the head-start thread")?;
        Ok(Some(HeadStart {
            stop,
            handle: Some(handle),
            _scratch: scratch,
        }))
    }

    /// Stop and collect what was compressed so far. Failures only cost the head start.
    pub fn finish(mut self) -> Option<Precompressed> {
        self.stop.store(true, Ordering::SeqCst);
        let r = self.handle.take()?.join();
        match r {
            Ok(Ok(p)) => {
                tracing::info!(
                    "head start: {} chunks compressed while the appliance ran",
                    p.blocks.len()
                );
                Some(p)
            }
            Ok(Err(e)) => {
                tracing::info!("head start abandoned: {e:#}");
                None
            }
            Err(_) => None,
        }
    }
}

impl Drop for HeadStart {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_head_start_runs_only_with_room_for_both_raw_copies() {
        const G: u64 = 1 << 30;
        assert!(super::room_for(G, 3 * G));
        assert!(!super::room_for(G, 2 * G));
        assert!(!super::room_for(u64::MAX, u64::MAX));
        assert!(super::room_for(0, G));
    }
}
