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
//!
//! Staging lives here; run ids and claims in runs.rs, the safe opens and locks in
//! safe_files.rs.

mod runs;
mod safe_files;

use anyhow::{anyhow, Context, Result};
use runs::{claim, temp_prefix, Claim};
pub use runs::{is_run_lock, is_work_file, probe_run, run_of, uuid_v4, RunState};
pub use safe_files::{check_regular, lock_file, open_regular, read_bounded, FileLock};
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

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

#[cfg(test)]
mod tests {
    use super::runs::run_id;
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
