//! Atomic publishing: every file is written under a temporary name in its destination
//! directory, fsynced, and renamed into place; then the directory is fsynced. Readers see
//! the old file or the new one, never half of one, and a failure (full disk, Ctrl-C)
//! leaves only the old state: temporary files are removed when their guard drops.

use anyhow::{anyhow, Context, Result};
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Temporary names start with this, so `goldify repo gc` knows them for leftovers of a
/// killed run (SIGKILL skips the guards).
pub const TEMP_PREFIX: &str = ".goldify-tmp-";

/// A file being written for `dest`.
pub struct Staged {
    tmp: tempfile::NamedTempFile,
    dest: PathBuf,
}

impl Staged {
    pub fn new(dest: &Path) -> Result<Staged> {
        let dir = parent(dest);
        let tmp = tempfile::Builder::new()
            .prefix(TEMP_PREFIX)
            .tempfile_in(dir)
            .with_context(|| format!("creating a temporary file in {}", dir.display()))?;
        Ok(Staged {
            tmp,
            dest: dest.to_path_buf(),
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

/// A directory being built for `dest` (an OCI layout): renamed into place as a whole;
/// an existing one is swapped out atomically (renameat2 RENAME_EXCHANGE) and removed.
pub struct StagedDir {
    tmp: Option<tempfile::TempDir>,
    dest: PathBuf,
}

impl StagedDir {
    pub fn new(dest: &Path) -> Result<StagedDir> {
        let dir = parent(dest);
        let tmp = tempfile::Builder::new()
            .prefix(TEMP_PREFIX)
            .tempdir_in(dir)
            .with_context(|| format!("creating a temporary directory in {}", dir.display()))?;
        Ok(StagedDir {
            tmp: Some(tmp),
            dest: dest.to_path_buf(),
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
