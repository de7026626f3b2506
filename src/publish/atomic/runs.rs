//! Run ids and each run's claim on a directory it has work files in: the ownership of
//! work files that the staging module (mod.rs) describes. Temporary names carry the run id,
//! and `.goldify-run-<id>.lock`, held while the run has files there, tells a live run from
//! a killed one.

use super::safe_files::{lock_file, open_regular, FileLock};
use anyhow::{bail, Context, Result};
use nix::fcntl::{Flock, FlockArg};
use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock, Mutex, Weak};

/// Temporary names start with this, so `goldify repo gc` knows them for leftovers of a
/// killed run (SIGKILL skips the guards).
const TEMP_PREFIX: &str = ".goldify-tmp-";
/// Publish scratch directories of earlier versions, which kept them in the publish
/// directory; only ever leftovers now.
const OLD_SCRATCH_PREFIX: &str = ".goldify-publish-";
/// `.goldify-run-<id>.lock`: a run's claim on a directory (see the module documentation).
const RUN_LOCK_PREFIX: &str = ".goldify-run-";
const LOCK_SUFFIX: &str = ".lock";

/// This process's run id: 12 hex digits, random.
pub(super) fn run_id() -> &'static str {
    static ID: LazyLock<String> = LazyLock::new(|| uuid_v4().replace('-', "")[..12].to_string());
    &ID
}

/// Whether `name` is one of goldify's work files: a temporary file or directory, a run's
/// lock, or an earlier version's scratch directory.
pub fn is_work_file(name: &str) -> bool {
    name.starts_with(TEMP_PREFIX) || name.starts_with(OLD_SCRATCH_PREFIX) || run_of_lock(name).is_some()
}

/// The run that owns a work file, when its name says (`.goldify-tmp-<id>-…` or
/// `.goldify-run-<id>.lock`); earlier versions' names carry none.
pub fn run_of(name: &str) -> Option<&str> {
    if let Some(id) = run_of_lock(name) {
        return Some(id);
    }
    let rest = name.strip_prefix(TEMP_PREFIX)?;
    let (id, _) = rest.split_once('-')?;
    is_run_id(id).then_some(id)
}

/// Whether `name` is a run's lock (`.goldify-run-<id>.lock`).
pub fn is_run_lock(name: &str) -> bool {
    run_of_lock(name).is_some()
}

fn run_of_lock(name: &str) -> Option<&str> {
    let id = name.strip_prefix(RUN_LOCK_PREFIX)?.strip_suffix(LOCK_SUFFIX)?;
    is_run_id(id).then_some(id)
}

fn is_run_id(s: &str) -> bool {
    s.len() == 12 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

fn run_lock_path(dir: &Path, id: &str) -> PathBuf {
    dir.join(format!("{RUN_LOCK_PREFIX}{id}{LOCK_SUFFIX}"))
}

/// What a run id's lock in a directory says about the run.
pub enum RunState {
    /// The run holds its lock: its files are in use.
    Live,
    /// Nobody holds it (the lock, taken now, is kept until dropped, so that the run's
    /// files can be removed before the lock file; `None` when there is no lock file).
    Gone(Option<FileLock>),
}

/// Whether run `id` still lives, by trying its lock in `dir` (never creating it).
pub fn probe_run(dir: &Path, id: &str) -> Result<RunState> {
    let path = run_lock_path(dir, id);
    let f = match open_regular(&path) {
        Ok(Some(f)) => f,
        // No lock file, or a name that is not one we made (a link, a FIFO): no run owns it.
        Ok(None) | Err(_) => return Ok(RunState::Gone(None)),
    };
    match Flock::lock(f, FlockArg::LockExclusiveNonblock) {
        Ok(flock) => Ok(RunState::Gone(Some(FileLock { _flock: flock, path }))),
        Err((_, nix::errno::Errno::EWOULDBLOCK)) => Ok(RunState::Live),
        Err((_, e)) => bail!("locking {}: {e}", path.display()),
    }
}

/// This run's claim on a directory it has temporary files in (see the module
/// documentation): shared by every such file, released with the last.
pub(super) struct Claim {
    lock: FileLock,
}

impl std::fmt::Debug for Claim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Claim")
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        // Unlinked while still locked; the flock goes when the file closes.
        let _ = std::fs::remove_file(&self.lock.path);
    }
}

pub(super) fn claim(dir: &Path) -> Result<Arc<Claim>> {
    /// (device, inode) of a directory → this run's claim on it.
    type Claims = HashMap<(u64, u64), Weak<Claim>>;
    static CLAIMS: LazyLock<Mutex<Claims>> = LazyLock::new(Default::default);
    // By device and inode: two spellings of one directory must share one claim (a second
    // flock on the same file from this process would wait for the first forever).
    let meta = std::fs::metadata(dir).with_context(|| format!("reading directory {}", dir.display()))?;
    let key = (meta.dev(), meta.ino());
    let mut claims = CLAIMS.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(c) = claims.get(&key).and_then(Weak::upgrade) {
        return Ok(c);
    }
    claims.retain(|_, w| w.strong_count() > 0);
    let c = Arc::new(Claim {
        lock: lock_file(&run_lock_path(dir, run_id()))?,
    });
    claims.insert(key, Arc::downgrade(&c));
    Ok(c)
}

pub(super) fn temp_prefix() -> String {
    format!("{TEMP_PREFIX}{}-", run_id())
}

/// A random (version 4) UUID: a run's id (in temporary names, the run manifest).
pub fn uuid_v4() -> String {
    let mut b = [0u8; 16];
    if std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut b))
        .is_err()
    {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        b = (t ^ ((std::process::id() as u128) << 64)).to_le_bytes();
    }
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex::encode(b);
    format!("{}-{}-{}-{}-{}", &h[..8], &h[8..12], &h[12..16], &h[16..20], &h[20..])
}
