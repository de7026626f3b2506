//! VMmanager repositories: `metadata.json` (`{"type": "os"|"lxd", "os": [entries]}`) next to
//! the archives it names. This module owns the file: it reads and checks it, merges one
//! entry under an exclusive lock (two runs publishing at once both end with their
//! entries), replaces it atomically, and implements `goldify repo list|verify|rm|gc`.
//!
//! A repository's content is hostile input, and its own files are nobody's target:
//! - metadata.json is read only when it is a regular file (no link followed, no FIFO
//!   waited on) of at most [`MAX_METADATA`] bytes; its lock is never a link or a FIFO
//!   either (atomic/safe_files.rs opens both).
//! - An entry's `file_name` is used only when it is a plain name: one component, not
//!   hidden, no control characters, and not one of the names [`is_reserved`] keeps for the
//!   repository's own files (the index, the run manifest, checksum lists, their locks,
//!   goldify's work files). Otherwise the entry is reported (`unsafe-name`) and the file
//!   it names is never opened, hashed or removed. An archive that is not a regular file (a
//!   link, a FIFO, a directory) is reported (`not-a-file`), never followed.
//! - Publishing never replaces the archive of another entry.
//! - `repo rm` is all or nothing: every archive to remove is checked, moved aside, then
//!   metadata.json is replaced, and only then are the moved files unlinked; a failure
//!   before the commit puts everything back.
//! - `repo gc` never touches what a live run owns. A run's work files carry its id and the
//!   run holds `.goldify-run-<id>.lock` in that directory while they exist (atomic/runs.rs), so
//!   gc removes them only once it can take that lock, which a running goldify holds from
//!   its first temporary file there (the writability check before the long work) to its
//!   last (the commit). Work files whose names carry no id come from earlier versions and
//!   are taken for leftovers.
//! - Names are shown to humans through [`shown`], with control and bidi characters
//!   escaped; JSON keeps them exact.
//!
//! Exit codes of `goldify repo`: 2 when DIR is not a repository (missing, not a directory,
//! no metadata.json: the argument names nothing to work on, which is a usage error and not
//! the input-disk code 3); 5 when the repository cannot be read or changed (metadata.json
//! invalid, too large or not a regular file, a lock that is not a regular file, a removal
//! that cannot happen); 6 when `list`/`verify` find an entry that is not available (with
//! `--strict`, also a file no entry references or a leftover).
//!
//! The jobs live apart: the names (names.rs), metadata.json and publishing (metadata.rs),
//! `list`/`verify` (list.rs), `rm` (rm.rs) and `gc` (gc.rs).

mod gc;
mod list;
mod metadata;
mod names;
mod rm;

pub use gc::gc;
pub use list::{list, Listing};
pub use metadata::{check, ensure_writable_dir, entry_using, publish, RepoType};
pub use names::{is_reserved, shown, shown_path, MANIFEST_FILE, METADATA};
pub use rm::remove;

#[cfg(test)]
mod tests {
    use super::list::Status;
    use super::*;
    use crate::publish::hash::Algo;
    use serde_json::json;

    #[test]
    fn list_verify_rm_gc() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let data = vec![5u8; 3 << 20];
        std::fs::write(d.join("good.xz"), &data).unwrap();
        std::fs::write(d.join("bad.xz"), &data).unwrap();
        std::fs::write(d.join("short.xz"), b"x").unwrap();
        std::fs::write(d.join("stray.bin"), b"x").unwrap();
        std::fs::write(d.join("SHA256SUMS"), b"x").unwrap();
        std::fs::write(d.join("goldify-manifest.json"), b"{}").unwrap();
        std::fs::write(d.join(".goldify-tmp-abc"), b"x").unwrap();
        std::fs::write(d.join(".htaccess"), b"Options -Indexes").unwrap();
        let sha1 = {
            let mut h = crate::publish::hash::Hashes::new([Algo::Sha1]);
            h.update(&data);
            h.finish()["sha1"].clone()
        };
        let doc = json!({"type": "os", "os": [
            {"name": "good", "file_name": "good.xz", "archive_size_mib": 3, "checksum": sha1},
            {"name": "bad", "file_name": "bad.xz", "archive_size_mib": 3, "checksum": "0".repeat(40)},
            {"name": "short", "file_name": "short.xz", "archive_size_mib": 3},
            {"name": "gone", "file_name": "gone.xz", "archive_size_mib": 3},
        ]});
        std::fs::write(d.join(METADATA), serde_json::to_string(&doc).unwrap()).unwrap();
        let status = |l: &Listing, f: &str| l.rows.iter().find(|r| r.file == f).unwrap().status;
        let l = list(d, false).unwrap();
        assert_eq!(status(&l, "bad.xz"), Status::Available, "list does not hash");
        let v = list(d, true).unwrap();
        assert_eq!(status(&v, "good.xz"), Status::Available);
        assert_eq!(status(&v, "bad.xz"), Status::ChecksumMismatch);
        assert_eq!(status(&v, "short.xz"), Status::SizeMismatch);
        assert_eq!(status(&v, "gone.xz"), Status::FileMissing);
        assert_eq!(status(&v, "stray.bin"), Status::UnreferencedFile);
        assert_eq!(status(&v, ".goldify-tmp-abc"), Status::Leftover);
        assert!(!v.ok(false));

        let removed = remove(d, "bad").unwrap();
        assert_eq!(removed.removed, [d.join("bad.xz")]);
        assert!(removed.kept.is_empty());
        assert!(remove(d, "bda").is_err());
        let collected = gc(d, false).unwrap();
        assert_eq!(collected.removed.len(), 2);
        assert!(!d.join("stray.bin").exists() && d.join("good.xz").exists());
        assert!(
            d.join("SHA256SUMS").exists() && d.join("goldify-manifest.json").exists(),
            "gc keeps run bookkeeping"
        );
        assert!(d.join(".htaccess").exists(), "hidden files are not goldify's");
        assert!(!d.join(".goldify-tmp-abc").exists());
        let mut out = Vec::new();
        list(d, true).unwrap().print_human(&mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("good.xz") && text.contains("file missing"), "{text}");
    }

    /// A Windows entry names two files: the archive and the install script beside it.
    /// Both are listed and verified, neither is a stray, rm removes both.
    #[test]
    fn a_windows_entry_names_its_install_script_too() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::write(d.join("win.tar.gz"), b"archive").unwrap();
        std::fs::write(d.join("win.cmd"), b"echo\r\n").unwrap();
        std::fs::write(d.join("other.cmd"), b"x").unwrap();
        let sha1 = |b: &[u8]| {
            let mut h = crate::publish::hash::Hashes::new([Algo::Sha1]);
            h.update(b);
            h.finish()["sha1"].clone()
        };
        let doc = json!({"type": "os", "os": [
            {"name": "win", "file_name": "win.tar.gz", "checksum": sha1(b"archive"),
             "install_script": {"file_name": "win.cmd", "checksum": sha1(b"echo\r\n"), "updated_at": "x"}},
        ]});
        std::fs::write(d.join(METADATA), serde_json::to_string(&doc).unwrap()).unwrap();
        let status = |l: &Listing, f: &str| l.rows.iter().find(|r| r.file == f).map(|r| r.status);
        let v = list(d, true).unwrap();
        assert_eq!(status(&v, "win.tar.gz"), Some(Status::Available));
        assert_eq!(status(&v, "win.cmd"), Some(Status::Available));
        assert_eq!(status(&v, "other.cmd"), Some(Status::UnreferencedFile));
        std::fs::write(d.join("win.cmd"), b"tampered").unwrap();
        assert_eq!(
            status(&list(d, true).unwrap(), "win.cmd"),
            Some(Status::ChecksumMismatch)
        );
        let removed = remove(d, "win").unwrap();
        assert_eq!(removed.removed.len(), 2);
        assert!(!d.join("win.cmd").exists() && !d.join("win.tar.gz").exists());
        assert!(d.join("other.cmd").exists());
    }
}
