//! Atomic publishing: every file is written under a temporary name in its destination
//! directory, fsynced, and renamed into place; then the directory is fsynced. Readers see
//! the old file or the new one, never half of one, and a failure (full disk, Ctrl-C)
//! leaves only the old state: temporary files are removed when their guard drops.
//!
//! Destination directories are shared (a repository is written by every run publishing
//! into it, and tidied by `goldify repo gc`), so this module also owns what makes that
//! safe:
//! - **Ownership of work files.** Each process has a run id. Its temporary names carry it
//!   (`.goldify-tmp-<id>-…`), and while it has any there it holds an exclusive flock(2) on
//!   `.goldify-run-<id>.lock` in that directory (taken before the first temporary file is
//!   created, removed after the last one is gone). A SIGKILLed run leaves both behind, and
//!   its lock is then free: whoever can take it (`goldify repo gc`) knows the run is dead
//!   and may remove its files; a lock that cannot be taken means a live run, whose files
//!   are left alone.
//! - **Locks and bookkeeping files opened safely.** Never through a symbolic link
//!   (O_NOFOLLOW), never blocking on a FIFO (O_NONBLOCK, then fstat(2)), never read without
//!   a bound, and a wait for a lock held by another process can be interrupted.

use anyhow::{anyhow, bail, Context, Result};
use nix::fcntl::{Flock, FlockArg};
use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock, Mutex, Weak};

/// Temporary names start with this, so `goldify repo gc` knows them for leftovers of a
/// killed run (SIGKILL skips the guards).
pub const TEMP_PREFIX: &str = ".goldify-tmp-";
/// Publish scratch directories of earlier versions, which kept them in the publish
/// directory; only ever leftovers now.
pub const OLD_SCRATCH_PREFIX: &str = ".goldify-publish-";
/// `.goldify-run-<id>.lock`: a run's claim on a directory (see the module documentation).
const RUN_LOCK_PREFIX: &str = ".goldify-run-";
const LOCK_SUFFIX: &str = ".lock";

/// This process's run id: 12 hex digits, random.
pub fn run_id() -> &'static str {
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

/// Open `path` for reading only if it is a regular file: never through a symbolic link
/// (O_NOFOLLOW fails with ELOOP, open(2)) and never blocking (a FIFO opened for reading
/// waits for a writer unless O_NONBLOCK, fifo(7); its type is then seen by fstat(2)).
/// `None` when it does not exist (or a parent is not a directory).
pub fn open_regular(path: &Path) -> Result<Option<File>> {
    let opened = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_NONBLOCK | nix::libc::O_CLOEXEC)
        .open(path);
    let f = match opened {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound || e.raw_os_error() == Some(nix::libc::ENOTDIR) => {
            return Ok(None)
        }
        Err(e) => return Err(refusal(path, e)),
    };
    let meta = f.metadata().with_context(|| format!("reading {}", path.display()))?;
    if !meta.is_file() {
        bail!("{} is not a regular file", path.display());
    }
    Ok(Some(f))
}

/// The error for a failed open: O_NOFOLLOW says ELOOP for a symbolic link.
fn refusal(path: &Path, e: std::io::Error) -> anyhow::Error {
    if e.raw_os_error() == Some(nix::libc::ELOOP) && path.symlink_metadata().is_ok_and(|m| m.is_symlink()) {
        return anyhow!(
            "{} is a symbolic link; goldify follows no links among the files it reads and replaces there",
            path.display()
        );
    }
    anyhow::Error::new(e).context(format!("opening {}", path.display()))
}

/// Read a whole file that must be regular and at most `limit` bytes; `None` when absent.
pub fn read_bounded(path: &Path, limit: u64) -> Result<Option<Vec<u8>>> {
    let Some(f) = open_regular(path)? else {
        return Ok(None);
    };
    let too_big = || {
        anyhow!(
            "{} is larger than {} MiB, the most goldify reads",
            path.display(),
            limit >> 20
        )
    };
    let len = f
        .metadata()
        .with_context(|| format!("reading {}", path.display()))?
        .len();
    if len > limit {
        return Err(too_big());
    }
    let mut buf = Vec::with_capacity(len as usize);
    // Bounded again: the file may grow while it is read.
    f.take(limit + 1)
        .read_to_end(&mut buf)
        .with_context(|| format!("reading {}", path.display()))?;
    if buf.len() as u64 > limit {
        return Err(too_big());
    }
    Ok(Some(buf))
}

/// Before the long work: `path` is absent or a regular file (that goldify may read, lock
/// or replace later).
pub fn check_regular(path: &Path) -> Result<()> {
    match path.symlink_metadata() {
        Ok(m) if m.is_symlink() => Err(refusal(path, std::io::Error::from_raw_os_error(nix::libc::ELOOP))),
        Ok(m) if !m.is_file() => bail!("{} is not a regular file", path.display()),
        _ => Ok(()),
    }
}

/// An exclusive flock(2) on a lock file, held until dropped.
pub struct FileLock {
    _flock: Flock<File>,
    path: PathBuf,
}

impl FileLock {
    /// Remove the lock file while still holding it, then release it.
    pub fn remove(self) -> Result<()> {
        std::fs::remove_file(&self.path).with_context(|| format!("removing {}", self.path.display()))
    }
}

/// Take the exclusive lock on `path`, creating the file if needed. A lock held by another
/// process is waited for, but a signal ends the wait (flock(2) itself would be restarted
/// after our handler ran, and the handler runs on its own thread anyway).
pub fn lock_file(path: &Path) -> Result<FileLock> {
    let started = std::time::Instant::now();
    let mut said = false;
    loop {
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o644)
            .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_NONBLOCK | nix::libc::O_CLOEXEC)
            .open(path)
            .map_err(|e| refusal(path, e))
            .with_context(|| format!("taking the lock {}", path.display()))?;
        let meta = f.metadata().with_context(|| format!("reading {}", path.display()))?;
        if !meta.is_file() {
            bail!("lock file {} is not a regular file", path.display());
        }
        let mut f = f;
        let flock = loop {
            match Flock::lock(f, FlockArg::LockExclusiveNonblock) {
                Ok(l) => break l,
                Err((back, nix::errno::Errno::EWOULDBLOCK | nix::errno::Errno::EINTR)) => {
                    f = back;
                    crate::interrupt::check()?;
                    if !said && started.elapsed() > std::time::Duration::from_secs(2) {
                        tracing::warn!("waiting for {}: another goldify holds it", path.display());
                        said = true;
                    }
                    std::thread::sleep(std::time::Duration::from_millis(50));
                }
                Err((_, e)) => bail!("locking {}: {e}", path.display()),
            }
        };
        // The file may have been removed (a run's lock, by `repo gc`) or replaced while we
        // waited: a lock on an unlinked file protects nothing, so take the one the name has now.
        match path.symlink_metadata() {
            Ok(now) if now.dev() == meta.dev() && now.ino() == meta.ino() => {
                return Ok(FileLock {
                    _flock: flock,
                    path: path.to_path_buf(),
                })
            }
            _ => continue,
        }
    }
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
struct Claim {
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

fn claim(dir: &Path) -> Result<Arc<Claim>> {
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

fn temp_prefix() -> String {
    format!("{TEMP_PREFIX}{}-", run_id())
}

/// A file being written for `dest`.
#[derive(Debug)]
pub struct Staged {
    tmp: tempfile::NamedTempFile,
    dest: PathBuf,
    // Dropped after `tmp` (fields drop in order): the claim outlives the file.
    _claim: Arc<Claim>,
}

impl Staged {
    pub fn new(dest: &Path) -> Result<Staged> {
        let dir = parent(dest);
        let claim = claim(dir).with_context(|| format!("creating a temporary file in {}", dir.display()))?;
        let tmp = tempfile::Builder::new()
            .prefix(&temp_prefix())
            .tempfile_in(dir)
            .with_context(|| format!("creating a temporary file in {}", dir.display()))?;
        Ok(Staged {
            tmp,
            dest: dest.to_path_buf(),
            _claim: claim,
        })
    }

    pub fn dest(&self) -> &Path {
        &self.dest
    }

    pub fn temp_path(&self) -> &Path {
        self.tmp.path()
    }

    pub fn file(&mut self) -> &mut File {
        self.tmp.as_file_mut()
    }

    /// Flush to stable storage and make the file world-readable (tempfile creates 0600;
    /// published files are meant to be served).
    pub fn sync(&mut self) -> Result<()> {
        let name = self.dest.display().to_string();
        self.tmp
            .as_file_mut()
            .flush()
            .with_context(|| format!("writing {name}"))?;
        // By path, not through our handle: an external writer (qemu-img) may have replaced
        // the file it was given.
        File::open(self.tmp.path())
            .and_then(|f| f.sync_all())
            .with_context(|| format!("syncing {name}"))?;
        std::fs::set_permissions(self.tmp.path(), std::os::unix::fs::PermissionsExt::from_mode(0o644))
            .with_context(|| format!("setting the mode of {name}"))?;
        Ok(())
    }

    /// Rename into place (after [`Staged::sync`]) and fsync the directory.
    pub fn commit(self) -> Result<()> {
        let dest = self.dest;
        self.tmp
            .persist(&dest)
            .map_err(|e| anyhow!("renaming into {}: {}", dest.display(), e.error))?;
        sync_dir(parent(&dest))
    }
}

impl Write for Staged {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.tmp.as_file_mut().write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.tmp.as_file_mut().flush()
    }
}

/// Write a small file atomically in one go.
pub fn write_file(dest: &Path, data: &[u8]) -> Result<()> {
    let mut s = Staged::new(dest)?;
    s.write_all(data)
        .with_context(|| format!("writing {}", dest.display()))?;
    s.sync()?;
    s.commit()
}

/// A file moved aside to a temporary name of this run (rename(2) within its directory,
/// never replacing anything): discarded once the change that needed it is committed, put
/// back if dropped before that.
pub struct Aside {
    from: PathBuf,
    tmp: Option<PathBuf>,
    _claim: Arc<Claim>,
}

impl Aside {
    pub fn new(path: &Path) -> Result<Aside> {
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let dir = parent(path);
        let claim = claim(dir).with_context(|| format!("moving {} aside", path.display()))?;
        loop {
            let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let tmp = dir.join(format!("{}aside-{n}", temp_prefix()));
            match rename_noreplace(path, &tmp) {
                Ok(()) => {
                    return Ok(Aside {
                        from: path.to_path_buf(),
                        tmp: Some(tmp),
                        _claim: claim,
                    })
                }
                Err(nix::errno::Errno::EEXIST) => continue,
                Err(e) => return Err(e).with_context(|| format!("moving {} aside", path.display())),
            }
        }
    }

    /// Remove the file for good.
    pub fn discard(mut self) -> Result<()> {
        let tmp = self.tmp.take().expect("discarded once");
        std::fs::remove_file(&tmp).with_context(|| format!("removing {} (was {})", tmp.display(), self.from.display()))
    }
}

impl Drop for Aside {
    fn drop(&mut self) {
        if let Some(tmp) = self.tmp.take() {
            if let Err(e) = rename_noreplace(&tmp, &self.from) {
                tracing::error!("cannot put {} back from {}: {e}", self.from.display(), tmp.display());
            }
        }
    }
}

fn rename_noreplace(from: &Path, to: &Path) -> nix::Result<()> {
    nix::fcntl::renameat2(
        nix::fcntl::AT_FDCWD,
        from,
        nix::fcntl::AT_FDCWD,
        to,
        nix::fcntl::RenameFlags::RENAME_NOREPLACE,
    )
}

/// A directory being built for `dest` (an OCI layout): renamed into place as a whole;
/// an existing one is swapped out atomically (renameat2 RENAME_EXCHANGE) and removed.
#[derive(Debug)]
pub struct StagedDir {
    tmp: Option<tempfile::TempDir>,
    dest: PathBuf,
    _claim: Arc<Claim>,
}

impl StagedDir {
    pub fn new(dest: &Path) -> Result<StagedDir> {
        let dir = parent(dest);
        let claim = claim(dir).with_context(|| format!("creating a temporary directory in {}", dir.display()))?;
        let tmp = tempfile::Builder::new()
            .prefix(&temp_prefix())
            .tempdir_in(dir)
            .with_context(|| format!("creating a temporary directory in {}", dir.display()))?;
        Ok(StagedDir {
            tmp: Some(tmp),
            dest: dest.to_path_buf(),
            _claim: claim,
        })
    }

    pub fn path(&self) -> &Path {
        self.tmp.as_ref().expect("not committed").path()
    }

    pub fn dest(&self) -> &Path {
        &self.dest
    }

    /// fsync every file and directory inside, and make them readable.
    pub fn sync(&mut self) -> Result<()> {
        for e in walkdir::WalkDir::new(self.path()).contents_first(true) {
            let e = e.with_context(|| format!("walking {}", self.path().display()))?;
            let mode = if e.file_type().is_dir() { 0o755 } else { 0o644 };
            std::fs::set_permissions(e.path(), std::os::unix::fs::PermissionsExt::from_mode(mode))
                .with_context(|| format!("setting the mode of {}", e.path().display()))?;
            File::open(e.path())
                .and_then(|f| f.sync_all())
                .with_context(|| format!("syncing {}", e.path().display()))?;
        }
        Ok(())
    }

    pub fn commit(mut self) -> Result<()> {
        let tmp = self.tmp.take().expect("committed once").keep();
        let dest = &self.dest;
        if dest.exists() {
            nix::fcntl::renameat2(
                nix::fcntl::AT_FDCWD,
                &tmp,
                nix::fcntl::AT_FDCWD,
                dest,
                nix::fcntl::RenameFlags::RENAME_EXCHANGE,
            )
            .with_context(|| format!("swapping {} into place", dest.display()))?;
            // `tmp` now holds the old directory.
            std::fs::remove_dir_all(&tmp).with_context(|| format!("removing the old {}", dest.display()))?;
        } else {
            std::fs::rename(&tmp, dest).with_context(|| format!("renaming into {}", dest.display()))?;
        }
        sync_dir(parent(dest))
    }
}

impl Drop for StagedDir {
    fn drop(&mut self) {
        // TempDir removes itself; nothing else to undo.
        self.tmp.take();
    }
}

fn parent(p: &Path) -> &Path {
    match p.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    }
}

pub fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|f| f.sync_all())
        .with_context(|| format!("syncing directory {}", dir.display()))
}

/// `create_dir_all` for directories goldify publishes into (OUTDIR, repositories, the
/// directory of kept logs): those it creates are 0755, as a served directory must be,
/// whatever the umask (goldify's is 0077, see workdir.rs); existing ones keep their mode.
pub fn create_public_dir_all(dir: &Path) -> Result<()> {
    let mut missing = Vec::new();
    let mut p = dir;
    while std::fs::metadata(p).is_err() {
        missing.push(p);
        match p.parent() {
            Some(up) if !up.as_os_str().is_empty() => p = up,
            _ => break,
        }
    }
    for d in missing.into_iter().rev() {
        match std::fs::create_dir(d) {
            Ok(()) => std::fs::set_permissions(d, std::os::unix::fs::PermissionsExt::from_mode(0o755))
                .with_context(|| format!("setting the mode of {}", d.display()))?,
            // Made meanwhile by someone else: theirs, mode included.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e).with_context(|| format!("creating {}", d.display())),
        }
    }
    Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn staged_file_appears_only_on_commit() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("a.xz");
        std::fs::write(&dest, b"old").unwrap();
        let mut s = Staged::new(&dest).unwrap();
        s.write_all(b"new").unwrap();
        s.sync().unwrap();
        assert_eq!(std::fs::read(&dest).unwrap(), b"old");
        s.commit().unwrap();
        assert_eq!(std::fs::read(&dest).unwrap(), b"new");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn dropped_staging_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut s = Staged::new(&dir.path().join("x")).unwrap();
            s.write_all(b"partial").unwrap();
            let _d = StagedDir::new(&dir.path().join("y")).unwrap();
        }
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn staged_dir_replaces_an_existing_one() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("img.oci");
        std::fs::create_dir(&dest).unwrap();
        std::fs::write(dest.join("old"), b"1").unwrap();
        let mut s = StagedDir::new(&dest).unwrap();
        std::fs::write(s.path().join("new"), b"2").unwrap();
        s.sync().unwrap();
        s.commit().unwrap();
        assert!(dest.join("new").exists() && !dest.join("old").exists());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        v.sort();
        v
    }

    /// What `repo rm` relies on: files moved aside come back unless discarded.
    #[test]
    fn aside_puts_back_unless_discarded() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        for f in ["a", "b"] {
            std::fs::write(d.join(f), f).unwrap();
        }
        {
            let a = Aside::new(&d.join("a")).unwrap();
            let _b = Aside::new(&d.join("b")).unwrap();
            assert_eq!(names(d).len(), 3, "two asides and this run's lock: {:?}", names(d));
            assert!(names(d).iter().all(|n| n.starts_with(".goldify-")));
            drop(a);
        }
        assert_eq!(names(d), ["a", "b"]);
        assert_eq!(std::fs::read(d.join("a")).unwrap(), b"a");
        Aside::new(&d.join("a")).unwrap().discard().unwrap();
        assert_eq!(names(d), ["b"]);
    }

    #[test]
    fn temporary_names_carry_the_run_and_its_lock_is_held() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let s = Staged::new(&d.join("x")).unwrap();
        let name = s.temp_path().file_name().unwrap().to_str().unwrap().to_string();
        assert_eq!(run_of(&name), Some(run_id()));
        assert!(is_work_file(&name));
        assert!(matches!(probe_run(d, run_id()).unwrap(), RunState::Live));
        // A second file in the same directory, named another way, shares the claim.
        let other = Staged::new(&d.join(".").join("y")).unwrap();
        assert_eq!(names(d).len(), 3, "{:?}", names(d));
        drop(s);
        assert!(matches!(probe_run(d, run_id()).unwrap(), RunState::Live));
        drop(other);
        assert!(
            names(d).is_empty(),
            "the run's lock goes with its last file: {:?}",
            names(d)
        );
        assert!(matches!(probe_run(d, run_id()).unwrap(), RunState::Gone(None)));
        assert_eq!(
            run_of(".goldify-tmp-abc123"),
            None,
            "earlier versions' names carry no run"
        );
        assert_eq!(run_of(".goldify-run-0123456789ab.lock"), Some("0123456789ab"));
    }

    #[test]
    fn hostile_locks_and_bookkeeping_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let outside = d.join("outside");
        std::os::unix::fs::symlink(&outside, d.join("link.lock")).unwrap();
        let e = format!("{:#}", lock_file(&d.join("link.lock")).err().unwrap());
        assert!(e.contains("is a symbolic link"), "{e}");
        assert!(!outside.exists());
        nix::unistd::mkfifo(&d.join("fifo.lock"), nix::sys::stat::Mode::S_IRWXU).unwrap();
        let e = format!("{:#}", lock_file(&d.join("fifo.lock")).err().unwrap());
        assert!(e.contains("not a regular file"), "{e}");
        let e = format!("{:#}", read_bounded(&d.join("fifo.lock"), 10).unwrap_err());
        assert!(e.contains("not a regular file"), "{e}");
        assert!(check_regular(&d.join("fifo.lock")).is_err() && check_regular(&d.join("link.lock")).is_err());
        assert!(check_regular(&d.join("absent")).is_ok());
        std::fs::write(d.join("f"), b"0123456789a").unwrap();
        let e = format!("{:#}", read_bounded(&d.join("f"), 10).unwrap_err());
        assert!(e.contains("larger than"), "{e}");
        assert_eq!(read_bounded(&d.join("f"), 11).unwrap().unwrap().len(), 11);
        assert!(read_bounded(&d.join("absent"), 10).unwrap().is_none());
        assert!(read_bounded(&d.join("f").join("under-a-file"), 10).unwrap().is_none());
    }

    /// A lock another process holds is waited for; a dead holder's lock is free.
    #[test]
    fn a_held_lock_is_waited_for() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("l.lock");
        let held = lock_file(&p).unwrap();
        let p2 = p.clone();
        let waiter = std::thread::spawn(move || {
            let t = std::time::Instant::now();
            drop(lock_file(&p2).unwrap());
            t.elapsed()
        });
        std::thread::sleep(std::time::Duration::from_millis(300));
        drop(held);
        assert!(waiter.join().unwrap() >= std::time::Duration::from_millis(250));
    }

    #[test]
    fn public_dirs_are_0755_whatever_the_umask_and_existing_ones_keep_theirs() {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o7777;
        let root = tempfile::tempdir().unwrap();
        let existing = root.path().join("mine");
        std::fs::create_dir(&existing).unwrap();
        std::fs::set_permissions(&existing, std::fs::Permissions::from_mode(0o750)).unwrap();
        // (Under goldify's own umask 0077: tests/hostile work_files.)
        let deep = existing.join("a/b");
        create_public_dir_all(&deep).unwrap();
        assert_eq!(mode(&existing), 0o750);
        assert_eq!(mode(&existing.join("a")), 0o755);
        assert_eq!(mode(&deep), 0o755);
        create_public_dir_all(&deep).unwrap();
        assert!(create_public_dir_all(&root.path().join("f/x")).is_ok());
        std::fs::write(root.path().join("file"), b"").unwrap();
        assert!(create_public_dir_all(&root.path().join("file/x")).is_err());
    }
}
