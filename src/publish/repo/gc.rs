//! `goldify repo gc`: remove the files no entry references and the work files of runs that
//! ended, never what a live run owns.

use super::list::{strays, Status};
use super::metadata::{load, lock};
use super::names::shown_path;
use crate::error::{Exit, Tag};
use crate::publish::atomic::{self, RunState};
use anyhow::{Context, Result};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// What `repo gc` removed (or, with `dry_run`, would remove), and what it kept because a
/// running goldify owns it.
#[derive(Default)]
pub struct Collected {
    pub removed: Vec<(PathBuf, u64, Status)>,
    pub in_use: Vec<(PathBuf, u64)>,
}

/// `goldify repo gc`: remove every file no entry references, and goldify's work files
/// (directories too) of runs that ended; never what a live run owns, never through a link.
pub fn gc(dir: &Path, dry_run: bool) -> Result<Collected> {
    load(dir)?;
    let _lock = lock(dir).tag(Exit::Output)?;
    let doc = load(dir)?;
    let mut runs = HashMap::new();
    let mut found = strays(dir, &doc, &mut runs).tag(Exit::Output)?;
    // A run's lock goes last, once its files are gone.
    found.sort_by_key(|s| s.run_lock);
    let mut out = Collected::default();
    for s in found {
        let p = dir.join(&s.name);
        if s.status == Status::InUse {
            out.in_use.push((p, s.size));
            continue;
        }
        if !dry_run {
            let held = match (&s.run, s.run_lock) {
                (Some(id), true) => runs.remove(id),
                _ => None,
            };
            match held {
                Some(RunState::Gone(Some(lock))) => lock.remove(),
                _ => remove_path(&p),
            }
            .tag(Exit::Output)?;
        }
        out.removed.push((p, s.size, s.status));
    }
    if !dry_run {
        atomic::sync_dir(dir).tag(Exit::Output)?;
    }
    Ok(out)
}

/// Remove a file, a link (never what it points to) or one of goldify's directories.
/// std's `remove_dir_all` does not follow links inside the tree (fixed for CVE-2022-21658
/// in Rust 1.58.1) and removes a link given to it as the link.
fn remove_path(p: &Path) -> Result<()> {
    let removed = match p.symlink_metadata() {
        Ok(m) if m.is_dir() => std::fs::remove_dir_all(p),
        Ok(_) => std::fs::remove_file(p),
        Err(e) => Err(e),
    };
    match removed {
        // Gone already: its run committed or cleaned it up since the listing.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        r => r.with_context(|| format!("removing {}", shown_path(p))),
    }
}
