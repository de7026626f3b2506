//! Work directories: where goldify keeps what it works on — the decompressed input, the
//! overlay, the raw copies the head start and the publish pass read, scratch files of
//! the guest session.
//!
//! Most of them hold the guest's secrets before cleaning (SSH host keys, shadow, shell
//! histories), so:
//! - they live in the work parent ($TMPDIR), never in OUTDIR or in a repository that a
//!   web server serves;
//! - each is a fresh directory, 0700, and what is created in it is 0600: the process
//!   umask is 0077 from start-up ([`private_by_default`]), which also covers the files
//!   qemu-img and qemu create;
//! - each holds a `lock` file that its run keeps locked with flock(2) for its whole life.
//!   SIGKILL skips every destructor, so a killed run leaves its directory behind; its
//!   lock goes with the last process holding it (flock(2): the lock belongs to the open
//!   file description, which std opens close-on-exec; libguestfs' recovery process, a
//!   fork without exec, holds it until it has killed qemu). The next run can therefore
//!   tell a dead run's directory from a live one's, and removes it ([`sweep`]).

use crate::error::{Exit, Tag};
use anyhow::{Context, Result};
use nix::fcntl::{Flock, FlockArg, OFlag};
use nix::sys::stat::Mode;
use std::fs::File;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// Names of work directories start with this; [`sweep`] looks at nothing else.
pub(crate) const PREFIX: &str = ".goldify-work-";
/// The lock file inside each work directory.
const LOCK: &str = "lock";

/// A private work directory, locked by this process and removed when dropped.
pub(crate) struct WorkDir {
    // Dropped in this order: the directory is removed while its lock is still held.
    dir: tempfile::TempDir,
    _lock: Flock<File>,
    /// Removes the directory if a signal forces the process out before its guard runs.
    _cleanup: crate::interrupt::Cleanup,
}

impl WorkDir {
    pub(crate) fn path(&self) -> &Path {
        self.dir.path()
    }
}

/// A new work directory in `parent` (0700, with its lock held).
pub(crate) fn create(parent: &Path) -> Result<WorkDir> {
    let dir = tempfile::Builder::new()
        .prefix(PREFIX)
        // tempfile creates directories 0777 minus the umask unless asked.
        .permissions(std::fs::Permissions::from_mode(0o700))
        .tempdir_in(parent)
        .with_context(|| format!("creating a work directory in {}", parent.display()))
        .tag(Exit::Output)?;
    let lock = take_new_lock(dir.path())
        .with_context(|| format!("locking the work directory {}", dir.path().display()))
        .tag(Exit::Output)?;
    let cleanup = crate::interrupt::remove_on_forced_exit(dir.path());
    Ok(WorkDir {
        dir,
        _lock: lock,
        _cleanup: cleanup,
    })
}

/// The lock is created under another name, locked, and only then renamed to `lock`: a
/// sweeper never finds an unlocked `lock` in a live run's directory.
fn take_new_lock(dir: &Path) -> Result<Flock<File>> {
    let new = dir.join("lock.new");
    let f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&new)
        .with_context(|| format!("creating {}", new.display()))?;
    let f = Flock::lock(f, FlockArg::LockExclusiveNonblock).map_err(|(_, e)| e)?;
    std::fs::rename(&new, dir.join(LOCK)).with_context(|| format!("renaming {}", new.display()))?;
    Ok(f)
}

/// Files and directories goldify creates are private unless it gives them a mode: what
/// it publishes is made 0644 (files) and 0755 (directories) explicitly, in
/// publish/atomic/mod.rs, `disk::export` and [`crate::publish::atomic::create_public_dir_all`].
/// Set once at start-up, before any thread or child exists; stricter bits the user's
/// umask already has are kept.
pub fn private_by_default() {
    let private = Mode::from_bits_truncate(0o077);
    let old = nix::sys::stat::umask(private);
    nix::sys::stat::umask(old | private);
}

/// Remove the work directories that killed runs left in `parent`, and say so in one
/// warning. Only what is provably a dead run's is touched (see [`dead_runs_lock`]);
/// anything else, including what cannot be read, is left alone.
pub(crate) fn sweep(parent: &Path) {
    let removed = sweep_dead(parent);
    if removed.is_empty() {
        return;
    }
    let bytes: u64 = removed.iter().map(|(_, b)| b).sum();
    let names: Vec<&str> = removed.iter().map(|(n, _)| n.as_str()).collect();
    tracing::warn!(
        "removed {} leftover work director{} of killed goldify runs from {} ({}): {}",
        removed.len(),
        if removed.len() == 1 { "y" } else { "ies" },
        parent.display(),
        crate::report::human_bytes(bytes),
        names.join(", ")
    );
}

/// What [`sweep`] removed: names and the bytes they held.
fn sweep_dead(parent: &Path) -> Vec<(String, u64)> {
    let Ok(entries) = std::fs::read_dir(parent) else {
        return Vec::new();
    };
    let uid = nix::unistd::geteuid().as_raw();
    let mut removed = Vec::new();
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if !name.starts_with(PREFIX) {
            continue;
        }
        let path = e.path();
        let Some(lock) = dead_runs_lock(&path, uid) else {
            continue;
        };
        let bytes = disk_usage(&path);
        // remove_dir_all never follows symbolic links, at the top or below (std docs,
        // CVE-2022-21658 fix). The parent is normally sticky ($TMPDIR), so nobody else
        // can swap the checked directory for another between the check and here.
        match std::fs::remove_dir_all(&path) {
            Ok(()) => removed.push((name, bytes)),
            Err(err) => tracing::debug!("cannot remove the leftover {}: {err}", path.display()),
        }
        drop(lock);
    }
    removed.sort();
    removed
}

/// The lock of a work directory whose run is provably dead: a real directory (not a
/// link) owned by us, holding a regular file `lock` owned by us that nobody holds.
/// Returns it held, so that no other sweeper works on the same directory.
fn dead_runs_lock(dir: &Path, uid: u32) -> Option<Flock<File>> {
    // O_NOFOLLOW: a symbolic link named like a work directory is not one; O_NONBLOCK:
    // nothing opened here may block (a FIFO named `lock`).
    let d = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags((OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK).bits())
        .open(dir)
        .ok()?;
    let m = d.metadata().ok()?;
    if !m.is_dir() || m.uid() != uid {
        return None;
    }
    let fd = nix::fcntl::openat(
        &d,
        LOCK,
        OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .ok()?;
    let lock = File::from(fd);
    let m = lock.metadata().ok()?;
    if !m.is_file() || m.uid() != uid {
        return None;
    }
    Flock::lock(lock, FlockArg::LockExclusiveNonblock).ok()
}

/// Bytes allocated below `dir`, not following links.
fn disk_usage(dir: &Path) -> u64 {
    walkdir::WalkDir::new(dir)
        .into_iter()
        .filter_map(|e| e.ok())
        .filter_map(|e| e.metadata().ok())
        .map(|m| m.blocks() * 512)
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(p: &Path) -> u32 {
        std::fs::symlink_metadata(p).unwrap().mode() & 0o7777
    }

    #[test]
    fn a_work_dir_is_private_locked_and_removed_on_drop() {
        let parent = tempfile::tempdir().unwrap();
        let w = create(parent.path()).unwrap();
        let p = w.path().to_path_buf();
        assert!(p.file_name().unwrap().to_string_lossy().starts_with(PREFIX));
        assert_eq!(mode(&p), 0o700);
        assert_eq!(mode(&p.join(LOCK)), 0o600);
        assert!(!p.join("lock.new").exists());
        // A live run's directory is not a leftover.
        sweep(parent.path());
        assert!(p.exists());
        drop(w);
        assert!(!p.exists());
    }

    #[test]
    fn only_dead_runs_directories_are_swept() {
        let parent = tempfile::tempdir().unwrap();
        let dir = |n: &str| parent.path().join(format!("{PREFIX}{n}"));
        // A dead run: its lock file exists and nobody holds it.
        std::fs::create_dir(dir("dead")).unwrap();
        std::fs::write(dir("dead").join(LOCK), b"").unwrap();
        std::fs::write(dir("dead").join("input.raw"), vec![1u8; 8192]).unwrap();
        std::fs::create_dir(dir("dead").join("sub")).unwrap();
        // Not provably dead: no lock yet (a run between mkdir and its lock).
        std::fs::create_dir(dir("new")).unwrap();
        // A lock that is a FIFO must neither block nor count.
        std::fs::create_dir(dir("fifo")).unwrap();
        nix::unistd::mkfifo(&dir("fifo").join(LOCK), Mode::S_IRWXU).unwrap();
        // A lock that is a symbolic link is not followed.
        std::fs::create_dir(dir("linked")).unwrap();
        std::os::unix::fs::symlink("/etc/hostname", dir("linked").join(LOCK)).unwrap();
        // A symbolic link named like a work directory, to a directory that looks dead.
        let elsewhere = tempfile::tempdir().unwrap();
        std::fs::write(elsewhere.path().join(LOCK), b"").unwrap();
        std::fs::write(elsewhere.path().join("keep"), b"k").unwrap();
        std::os::unix::fs::symlink(elsewhere.path(), dir("symlink")).unwrap();
        // A file named like one.
        std::fs::write(dir("file"), b"x").unwrap();
        // Not ours at all.
        std::fs::create_dir(parent.path().join("other")).unwrap();
        std::fs::write(parent.path().join("other").join(LOCK), b"").unwrap();
        // A live run.
        let live = create(parent.path()).unwrap();

        let removed = sweep_dead(parent.path());
        let names: Vec<&str> = removed.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, [format!("{PREFIX}dead")]);
        assert!(removed[0].1 >= 8192);
        for n in ["new", "fifo", "linked", "symlink", "file"] {
            assert!(std::fs::symlink_metadata(dir(n)).is_ok(), "{n} was removed");
        }
        assert!(elsewhere.path().join("keep").exists());
        assert!(parent.path().join("other").exists() && live.path().exists());
    }

    #[test]
    fn another_users_directory_is_left_alone() {
        let parent = tempfile::tempdir().unwrap();
        let d = parent.path().join(format!("{PREFIX}theirs"));
        std::fs::create_dir(&d).unwrap();
        std::fs::write(d.join(LOCK), b"").unwrap();
        assert!(dead_runs_lock(&d, nix::unistd::geteuid().as_raw() + 1).is_none());
        assert!(dead_runs_lock(&d, nix::unistd::geteuid().as_raw()).is_some());
    }
}
