//! Locks and bookkeeping files opened safely: never through a symbolic link (O_NOFOLLOW),
//! never blocking on a FIFO (O_NONBLOCK, then fstat(2)), never read without a bound, and a
//! wait for a lock held by another process can be interrupted.

use anyhow::{anyhow, bail, Context, Result};
use nix::fcntl::{Flock, FlockArg};
use std::fs::File;
use std::io::Read;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

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
    pub(super) _flock: Flock<File>,
    pub(super) path: PathBuf,
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

#[cfg(test)]
mod tests {
    use super::*;

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
        use std::sync::atomic::{AtomicBool, Ordering};
        use std::sync::Arc;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("l.lock");
        let held = lock_file(&p).unwrap();
        let released = Arc::new(AtomicBool::new(false));
        let (p2, r2) = (p.clone(), released.clone());
        // The waiter gets the lock only after the holder let it go, however the threads
        // are scheduled (no timing assumed).
        let waiter = std::thread::spawn(move || {
            drop(lock_file(&p2).unwrap());
            r2.load(Ordering::SeqCst)
        });
        std::thread::sleep(std::time::Duration::from_millis(300));
        released.store(true, Ordering::SeqCst);
        drop(held);
        assert!(waiter.join().unwrap(), "the lock was taken while held");
    }
}
