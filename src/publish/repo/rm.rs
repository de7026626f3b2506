//! `goldify repo rm`: drop entries and remove their archives, all or nothing.

use super::metadata::{entries, files_of, load, lock, name_of, write_metadata};
use super::names::{shown, shown_path, unsafe_archive_name};
use crate::error::{Exit, Tag};
use crate::publish::atomic;
use anyhow::{Context, Result};
use serde_json::Value;
use std::collections::HashSet;
use std::path::{Path, PathBuf};

/// What `repo rm` did.
pub struct Removal {
    /// Archives removed.
    pub removed: Vec<PathBuf>,
    /// Files the removed entries named but that are not theirs to remove, and why.
    pub kept: Vec<(String, &'static str)>,
}

/// `goldify repo rm`: drop every entry named `name` from the metadata and remove their
/// archives (unless another entry still uses one), all or nothing (see the module
/// documentation).
pub fn remove(dir: &Path, name: &str) -> Result<Removal> {
    // A DIR that is no repository is refused before the lock file would be created in it.
    load(dir)?;
    let _lock = lock(dir).tag(Exit::Output)?;
    let mut doc = load(dir)?;
    let mut files: Vec<String> = Vec::new();
    let mut hit = false;
    if let Some(list) = doc.get_mut("os").and_then(Value::as_array_mut) {
        list.retain(|e| {
            if e.get("name").and_then(Value::as_str) != Some(name) {
                return true;
            }
            hit = true;
            for f in e.as_object().map(files_of).unwrap_or_default() {
                if !files.iter().any(|x| x == f) {
                    files.push(f.to_string());
                }
            }
            false
        });
    }
    if !hit {
        let names: Vec<&str> = entries(&doc).into_iter().map(name_of).collect();
        match crate::suggest::nearest(name, &names) {
            Some(n) => crate::bail_tag!(
                Exit::Usage,
                "no entry `{}` in {}, did you mean `{}`?",
                shown(name),
                shown_path(dir),
                shown(n)
            ),
            None => crate::bail_tag!(Exit::Usage, "no entry `{}` in {}", shown(name), shown_path(dir)),
        }
    }
    let still: HashSet<&str> = entries(&doc).into_iter().flat_map(files_of).collect();
    let mut kept = Vec::new();
    let mut doomed = Vec::new();
    for f in files.iter().filter(|f| !still.contains(f.as_str())) {
        if let Some(why) = unsafe_archive_name(f) {
            kept.push((f.clone(), why));
            continue;
        }
        let p = dir.join(f);
        match p.symlink_metadata() {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(e)
                    .with_context(|| format!("reading {}", shown_path(&p)))
                    .tag(Exit::Output)
            }
            Ok(m) if m.is_symlink() => crate::bail_tag!(
                Exit::Output,
                "{} is a symbolic link, not an archive; nothing was changed (goldify removes no links: remove it, then run `goldify repo rm` again)",
                shown_path(&p)
            ),
            Ok(m) if !m.is_file() => crate::bail_tag!(
                Exit::Output,
                "{} is not a regular file; nothing was changed",
                shown_path(&p)
            ),
            Ok(_) => doomed.push(p),
        }
    }
    // Move every archive aside (a failure puts back those already moved, as the guards
    // drop), commit the new metadata, and only then unlink.
    let asides = doomed
        .iter()
        .map(|p| atomic::Aside::new(p))
        .collect::<Result<Vec<_>>>()
        .context("nothing was changed")
        .tag(Exit::Output)?;
    write_metadata(dir, &doc)
        .context("nothing was changed")
        .tag(Exit::Output)?;
    let mut removed = Vec::new();
    for (aside, p) in asides.into_iter().zip(doomed) {
        match aside.discard() {
            Ok(()) => removed.push(p),
            Err(e) => tracing::warn!("{e:#}; `goldify repo gc` removes it"),
        }
    }
    atomic::sync_dir(dir).tag(Exit::Output)?;
    Ok(Removal { removed, kept })
}
