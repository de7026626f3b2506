//! `goldify repo list` and `goldify repo verify`: each entry's status, the files no entry
//! references and goldify's work files (leftovers of ended runs, or in use by a live one),
//! and the listing printed for humans.

use super::metadata::{entries, file_of, files_of, load, name_of, repo_type, script_of, RepoType};
use super::names::{is_bookkeeping, shown, shown_path, unsafe_archive_name};
use crate::error::{Exit, Tag};
use crate::publish::atomic::{self, RunState};
use crate::publish::hash::{Algo, HashWriter};
use anyhow::{Context, Result};
use serde::Serialize;
use serde_json::{Map, Value};
use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::ffi::OsString;
use std::path::Path;

const MIB: u64 = 1 << 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    Available,
    FileMissing,
    ChecksumMismatch,
    SizeMismatch,
    /// The archive is a link, a FIFO, a directory…: reported, never followed or opened.
    NotAFile,
    /// The entry's `file_name` is not a plain name or is reserved (see [`unsafe_archive_name`]).
    UnsafeName,
    UnreferencedFile,
    /// A work file of a run that ended (killed) or of an earlier version.
    Leftover,
    /// A work file of a running goldify.
    InUse,
}

impl Status {
    pub fn describe(self) -> &'static str {
        match self {
            Status::Available => "available",
            Status::FileMissing => "file missing",
            Status::ChecksumMismatch => "checksum mismatch",
            Status::SizeMismatch => "size mismatch",
            Status::NotAFile => "not a regular file",
            Status::UnsafeName => "unsafe file name",
            Status::UnreferencedFile => "unreferenced file",
            Status::Leftover => "leftover of an ended run",
            Status::InUse => "in use by a running goldify",
        }
    }

    /// A file no entry references, which `repo gc` removes.
    pub fn is_stray(self) -> bool {
        matches!(self, Status::UnreferencedFile | Status::Leftover)
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Row {
    /// The entry's name; `None` for a file no entry references.
    pub name: Option<String>,
    pub file: String,
    pub size: Option<u64>,
    pub status: Status,
}

#[derive(Debug, Clone, Serialize)]
pub struct Listing {
    pub dir: String,
    #[serde(rename = "type")]
    pub kind: Option<RepoType>,
    pub rows: Vec<Row>,
}

impl Listing {
    /// Every entry available; with `strict`, no unreferenced file or leftover either.
    pub fn ok(&self, strict: bool) -> bool {
        self.rows.iter().all(|r| match r.status {
            Status::Available | Status::InUse => true,
            s if s.is_stray() => !strict,
            _ => false,
        })
    }

    pub fn strays(&self) -> Vec<&Row> {
        self.rows.iter().filter(|r| r.status.is_stray()).collect()
    }

    pub fn print_human(&self, out: &mut dyn std::io::Write) -> std::io::Result<()> {
        let kind = self.kind.map(|k| k.name()).unwrap_or("unknown");
        writeln!(
            out,
            "{} ({kind} repository, {} entries)",
            shown(&self.dir),
            self.rows.iter().filter(|r| r.name.is_some()).count()
        )?;
        let rows: Vec<(Cow<str>, Cow<str>, &Row)> = self
            .rows
            .iter()
            .map(|r| (shown(r.name.as_deref().unwrap_or("-")), shown(&r.file), r))
            .collect();
        let w = rows.iter().map(|r| r.0.chars().count()).max().unwrap_or(4).max(4);
        let fw = rows.iter().map(|r| r.1.chars().count()).max().unwrap_or(4).max(4);
        writeln!(out, "  {:<w$}  {:<fw$}  {:>10}  STATUS", "NAME", "FILE", "SIZE")?;
        for (name, file, r) in &rows {
            let size = r.size.map(crate::report::human_bytes).unwrap_or_else(|| "-".into());
            writeln!(out, "  {name:<w$}  {file:<fw$}  {size:>10}  {}", r.status.describe())?;
        }
        Ok(())
    }
}

/// Something in the directory no entry references.
pub(super) struct Stray {
    pub(super) name: OsString,
    pub(super) size: u64,
    /// [`Status::UnreferencedFile`], [`Status::Leftover`] or [`Status::InUse`].
    pub(super) status: Status,
    /// The run that owns it, for goldify's work files that say.
    pub(super) run: Option<String>,
    pub(super) run_lock: bool,
}

/// Regular files no entry references (the repository's own files aside), and goldify's
/// work files of any kind, each with whether a live run owns it. Other links, FIFOs,
/// directories and hidden files (a web server's `.htaccess`) are not ours to list or
/// remove: goldify writes no hidden name but its own. `runs` caches what each run's lock says;
/// a lock taken there stays held until the map is dropped.
pub(super) fn strays(dir: &Path, doc: &Value, runs: &mut HashMap<String, RunState>) -> Result<Vec<Stray>> {
    let referenced: HashSet<&str> = entries(doc)
        .into_iter()
        .flat_map(files_of)
        .filter(|f| unsafe_archive_name(f).is_none())
        .collect();
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).with_context(|| format!("listing {}", dir.display()))? {
        let e = e.with_context(|| format!("listing {}", dir.display()))?;
        let os_name = e.file_name();
        let name = os_name.to_string_lossy().into_owned();
        // lstat(2): DirEntry::metadata does not follow links.
        let meta = match e.metadata() {
            Ok(m) => m,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => continue,
            Err(err) => return Err(err).with_context(|| format!("reading {}", e.path().display())),
        };
        if atomic::is_work_file(&name) {
            let run = atomic::run_of(&name).map(str::to_string);
            let status = match &run {
                Some(id) => {
                    if !runs.contains_key(id) {
                        runs.insert(id.clone(), atomic::probe_run(dir, id)?);
                    }
                    match runs[id] {
                        RunState::Live => Status::InUse,
                        RunState::Gone(_) => Status::Leftover,
                    }
                }
                None => Status::Leftover,
            };
            let size = if meta.is_dir() {
                tree_size(&e.path())
            } else {
                meta.len()
            };
            out.push(Stray {
                run_lock: atomic::is_run_lock(&name),
                name: os_name,
                size,
                status,
                run,
            });
        } else if meta.is_file()
            && !name.starts_with('.')
            && !is_bookkeeping(&name)
            && !referenced.contains(name.as_str())
        {
            out.push(Stray {
                name: os_name,
                size: meta.len(),
                status: Status::UnreferencedFile,
                run: None,
                run_lock: false,
            });
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// Bytes in the regular files below `dir` (links not followed).
fn tree_size(dir: &Path) -> u64 {
    walkdir::WalkDir::new(dir)
        .into_iter()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_file())
        .filter_map(|e| e.metadata().ok())
        .map(|m| m.len())
        .sum()
}

/// `goldify repo list` (sizes only) and `goldify repo verify` (checksums too).
pub fn list(dir: &Path, verify: bool) -> Result<Listing> {
    let doc = load(dir)?;
    let mut rows = Vec::new();
    for e in entries(&doc) {
        rows.push(entry_row(dir, e, file_of(e), e, verify)?);
        // A Windows entry's install script, checked as its archive is (checksum, no size).
        if let (Some(script), Some(fields)) = (script_of(e), e.get("install_script").and_then(Value::as_object)) {
            rows.push(entry_row(dir, e, Some(script), fields, verify)?);
        }
    }
    for s in strays(dir, &doc, &mut HashMap::new()).tag(Exit::Output)? {
        rows.push(Row {
            name: None,
            file: s.name.to_string_lossy().into_owned(),
            size: Some(s.size),
            status: s.status,
        });
    }
    Ok(Listing {
        dir: dir.display().to_string(),
        kind: repo_type(&doc),
        rows,
    })
}

/// The row of one file an entry names: `file`, with the size and checksum `fields` give.
fn entry_row(
    dir: &Path,
    e: &Map<String, Value>,
    file: Option<&str>,
    fields: &Map<String, Value>,
    verify: bool,
) -> Result<Row> {
    let row = |file: &str, size: Option<u64>, status: Status| Row {
        name: Some(name_of(e).to_string()),
        file: file.to_string(),
        size,
        status,
    };
    let Some(file) = file else {
        return Ok(row("-", None, Status::FileMissing));
    };
    if unsafe_archive_name(file).is_some() {
        return Ok(row(file, None, Status::UnsafeName));
    }
    let path = dir.join(file);
    let meta = match path.symlink_metadata() {
        Ok(m) => m,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(row(file, None, Status::FileMissing)),
        Err(err) => {
            return Err(err)
                .with_context(|| format!("reading {}", shown_path(&path)))
                .tag(Exit::Output)
        }
    };
    if !meta.is_file() {
        return Ok(row(file, None, Status::NotAFile));
    }
    let size = meta.len();
    let status = if !size_matches(fields, size) {
        Status::SizeMismatch
    } else if verify && !checksum_matches(fields, &path).tag(Exit::Output)? {
        Status::ChecksumMismatch
    } else {
        Status::Available
    };
    Ok(row(file, Some(size), status))
}

/// `archive_size_mib` is whole MiB; accept a rounding either way.
fn size_matches(entry: &Map<String, Value>, size: u64) -> bool {
    match entry.get("archive_size_mib").and_then(Value::as_f64) {
        None => true,
        Some(mib) => (size as f64 / MIB as f64 - mib).abs() < 1.0,
    }
}

fn checksum_matches(entry: &Map<String, Value>, path: &Path) -> Result<bool> {
    let Some(want) = entry.get("checksum").and_then(Value::as_str) else {
        return Ok(true);
    };
    let algo = match want.len() {
        32 => Algo::Md5,
        40 => Algo::Sha1,
        64 => Algo::Sha256,
        128 => Algo::Sha512,
        _ => return Ok(false),
    };
    // Opened the safe way: it may have been replaced by a link or a FIFO since the lstat.
    let Some(mut f) = atomic::open_regular(path)? else {
        return Ok(false);
    };
    let mut w = HashWriter::new(std::io::sink(), [algo]);
    std::io::copy(&mut f, &mut w).with_context(|| format!("reading {}", path.display()))?;
    let (_, _, sums) = w.finish();
    Ok(sums.get(algo.name()).is_some_and(|got| got.eq_ignore_ascii_case(want)))
}
