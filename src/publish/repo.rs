//! VMmanager repositories: `metadata.json` (`{"type": "os"|"lxd", "os": [entries]}`) next to
//! the archives it names. This module owns the file: it reads and checks it, merges one
//! entry under an exclusive lock (two runs publishing at once both end with their
//! entries), replaces it atomically, and implements `goldify repo list|verify|rm|gc`.
//!
//! A repository's content is hostile input, and its own files are nobody's target:
//! - metadata.json is read only when it is a regular file (no link followed, no FIFO
//!   waited on) of at most [`MAX_METADATA`] bytes; its lock is never a link or a FIFO
//!   either (atomic.rs opens both).
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
//!   run holds `.goldify-run-<id>.lock` in that directory while they exist (atomic.rs), so
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

use super::atomic::{self, RunState, Staged};
use super::hash::{Algo, HashWriter};
use crate::error::{Exit, Tag};
use anyhow::{anyhow, bail, Context, Result};
use serde::Serialize;
use serde_json::{Map, Value};
use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::ffi::OsString;
use std::path::{Path, PathBuf};

pub const METADATA: &str = "metadata.json";
/// The run manifest's default name: a run publishing into the repository writes it there.
pub const MANIFEST_FILE: &str = "goldify-manifest.json";
const LOCK: &str = ".metadata.json.lock";
/// The largest metadata.json goldify reads. VMmanager's index of a few hundred templates is
/// a few hundred KiB; the bound keeps a hostile or broken file (a sparse 2 GiB file) from
/// making goldify read without end.
pub const MAX_METADATA: u64 = 64 << 20;
const MIB: u64 = 1 << 20;

/// What the repository serves: KVM templates (`os`) or LXD templates (`lxd`). VMmanager
/// wants them in separate repositories.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RepoType {
    Os,
    Lxd,
}

impl RepoType {
    pub fn name(self) -> &'static str {
        match self {
            RepoType::Os => "os",
            RepoType::Lxd => "lxd",
        }
    }
}

/// Read `metadata.json`; `None` when the repository has none yet (the directory, or a
/// parent, may be missing or not a directory: creating it is what says what is wrong).
pub fn read(dir: &Path) -> Result<Option<Value>> {
    let path = dir.join(METADATA);
    let Some(bytes) = atomic::read_bounded(&path, MAX_METADATA)? else {
        return Ok(None);
    };
    let v: Value = serde_json::from_slice(&bytes).map_err(|e| anyhow!("{} is not valid JSON: {e}", path.display()))?;
    if !v.is_object() {
        bail!("{} is not a JSON object", path.display());
    }
    if let Some(os) = v.get("os") {
        if !os.is_array() {
            bail!("{}: `os` is not an array", path.display());
        }
    }
    Ok(Some(v))
}

/// The repository's type as its metadata says, if it says.
pub fn repo_type(doc: &Value) -> Option<RepoType> {
    match doc.get("type").and_then(Value::as_str) {
        Some("os") => Some(RepoType::Os),
        Some("lxd") => Some(RepoType::Lxd),
        _ => None,
    }
}

/// Checks done before the long work, reading only: the repository's metadata (if any) is
/// valid and of the right type, and its lock (taken at the commit) is usable.
/// [`ensure_writable_dir`] is the other half.
pub fn check(dir: &Path, want: RepoType) -> Result<()> {
    atomic::check_regular(&dir.join(LOCK)).tag(Exit::Output)?;
    if let Some(doc) = read(dir).tag(Exit::Output)? {
        if let Some(t) = repo_type(&doc) {
            if t != want {
                crate::bail_tag!(
                    Exit::Usage,
                    "{} is a `{}` repository; templates of type `{}` belong in another one",
                    dir.join(METADATA).display(),
                    t.name(),
                    want.name()
                );
            }
        }
    }
    Ok(())
}

/// Create `dir` if needed and prove it writable by creating (and removing) a temporary
/// file, owned by this run like every other (see atomic.rs).
pub fn ensure_writable_dir(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir)
        .with_context(|| format!("creating publish directory {}", dir.display()))
        .tag(Exit::Output)?;
    Staged::new(&dir.join(METADATA))
        .map(drop)
        .with_context(|| format!("publish directory {} is not writable", dir.display()))
        .tag(Exit::Output)
}

/// The exclusive lock on the repository's metadata, held until dropped.
pub fn lock(dir: &Path) -> Result<atomic::FileLock> {
    atomic::lock_file(&dir.join(LOCK))
}

/// Merge `entry` into the metadata document: the entry with the same `name` is replaced
/// (fields goldify does not set are kept from the old entry), every other entry and every
/// other top-level field stay as they were.
pub fn merge(doc: Option<Value>, kind: RepoType, entry: Map<String, Value>) -> Result<Value> {
    let mut doc = match doc {
        Some(Value::Object(m)) => m,
        Some(_) => bail!("metadata is not a JSON object"),
        None => Map::new(),
    };
    if !doc.contains_key("type") {
        // `type` first, as VMmanager's examples write it.
        let mut m = Map::new();
        m.insert("type".into(), Value::String(kind.name().into()));
        m.extend(doc);
        doc = m;
    }
    let list = doc.entry("os").or_insert_with(|| Value::Array(Vec::new()));
    let list = list.as_array_mut().ok_or_else(|| anyhow!("`os` is not an array"))?;
    let name = entry.get("name").cloned();
    match list.iter_mut().find(|e| e.get("name") == name.as_ref()) {
        Some(Value::Object(old)) => {
            for (k, v) in entry {
                old.insert(k, v);
            }
        }
        _ => list.push(Value::Object(entry)),
    }
    Ok(Value::Object(doc))
}

/// Publish into the repository under its lock: merge the entry, write the new metadata
/// to a temporary file, then rename the staged artifacts and finally the metadata into
/// place. Until the last rename nothing a reader sees has changed; everything that can
/// fail for lack of space has happened before the first rename.
pub fn publish(dir: &Path, kind: RepoType, entry: Map<String, Value>, artifacts: Vec<Staged>) -> Result<()> {
    let _lock = lock(dir)?;
    let doc = read(dir)?;
    if let Some(doc) = &doc {
        refuse_taken_archive(dir, doc, &entry)?;
    }
    let merged = merge(doc, kind, entry)?;
    let mut meta = Staged::new(&dir.join(METADATA))?;
    let mut text = serde_json::to_vec_pretty(&merged).context("serializing metadata")?;
    text.push(b'\n');
    std::io::Write::write_all(&mut meta, &text).with_context(|| format!("writing {}", dir.join(METADATA).display()))?;
    meta.sync()?;
    for a in artifacts {
        a.commit()?;
    }
    meta.commit()
}

/// Another entry's archive is never replaced: VMmanager would go on serving it under that
/// entry's name and checksum.
fn refuse_taken_archive(dir: &Path, doc: &Value, entry: &Map<String, Value>) -> Result<()> {
    let (Some(name), Some(file)) = (entry.get("name").and_then(Value::as_str), file_of(entry)) else {
        return Ok(());
    };
    if let Some(other) = entries(doc)
        .into_iter()
        .find(|e| file_of(e) == Some(file) && e.get("name").and_then(Value::as_str) != Some(name))
    {
        crate::bail_tag!(
            Exit::Usage,
            "{}: {} is the archive of entry `{}`; publishing `{}` would replace it (set another image_name)",
            shown_path(&dir.join(METADATA)),
            shown(file),
            shown(name_of(other)),
            shown(name)
        );
    }
    Ok(())
}

/// The name of the entry of the repository in `dir` (if `dir` holds one) whose archive is
/// `file`: such a file is no other target's to write.
pub fn entry_using(dir: &Path, file: &str) -> Result<Option<String>> {
    let Some(doc) = read(dir)? else { return Ok(None) };
    Ok(entries(&doc)
        .into_iter()
        .find(|e| file_of(e) == Some(file))
        .map(|e| name_of(e).to_string()))
}

// ---------------------------------------------------------------------------------------
// Names

/// The repository's own files: the index, the run manifest, checksum lists, and the lock
/// of each (`.NAME.lock`).
pub fn is_bookkeeping(name: &str) -> bool {
    let base = name
        .strip_prefix('.')
        .and_then(|n| n.strip_suffix(".lock"))
        .unwrap_or(name);
    base == METADATA || base == MANIFEST_FILE || Algo::ALL.iter().any(|a| a.sums_file() == base)
}

/// Names no publish target may write and no entry may name as its archive: bookkeeping
/// and goldify's work files.
pub fn is_reserved(name: &str) -> bool {
    is_bookkeeping(name) || atomic::is_work_file(name)
}

/// Why `name` cannot be an entry's archive, if it cannot.
pub fn unsafe_archive_name(name: &str) -> Option<&'static str> {
    if name.is_empty() || name == "." || name == ".." || name.contains(['/', '\0']) {
        Some("not a plain file name")
    } else if name.chars().any(unprintable) {
        Some("a name with control characters")
    } else if is_reserved(name) {
        Some("a name reserved for the repository's own files")
    } else if name.starts_with('.') {
        Some("a hidden name")
    } else {
        None
    }
}

/// Characters a terminal acts on or that disguise a name: C0 and C1 controls (ESC starts
/// escape sequences, CSI is one in a single character), DEL, and the invisible formatting
/// characters that reorder or hide text (bidi embeddings, overrides and isolates,
/// zero-width marks: the "Trojan Source" set, CVE-2021-42574).
fn unprintable(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{061c}' | '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2060}'..='\u{2064}' | '\u{2066}'..='\u{2069}' | '\u{feff}'
        )
}

/// `s` as it may be printed for humans: unprintable characters as `\u{…}`, backslashes
/// doubled so that the escape cannot be forged.
pub fn shown(s: &str) -> Cow<'_, str> {
    if !s.chars().any(|c| c == '\\' || unprintable(c)) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 16);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            c if unprintable(c) => out.push_str(&format!("\\u{{{:x}}}", u32::from(c))),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// A path as it may be printed for humans (see [`shown`]).
pub fn shown_path(p: &Path) -> String {
    shown(&p.to_string_lossy()).into_owned()
}

// ---------------------------------------------------------------------------------------
// goldify repo

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

fn entries(doc: &Value) -> Vec<&Map<String, Value>> {
    doc.get("os")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_object).collect())
        .unwrap_or_default()
}

fn file_of(entry: &Map<String, Value>) -> Option<&str> {
    entry.get("file_name").and_then(Value::as_str)
}

fn name_of(entry: &Map<String, Value>) -> &str {
    entry.get("name").and_then(Value::as_str).unwrap_or("?")
}

/// Something in the directory no entry references.
struct Stray {
    name: OsString,
    size: u64,
    /// [`Status::UnreferencedFile`], [`Status::Leftover`] or [`Status::InUse`].
    status: Status,
    /// The run that owns it, for goldify's work files that say.
    run: Option<String>,
    run_lock: bool,
}

/// Regular files no entry references (the repository's own files aside), and goldify's
/// work files of any kind, each with whether a live run owns it. Other links, FIFOs,
/// directories and hidden files (a web server's `.htaccess`) are not ours to list or
/// remove: goldify writes no hidden name but its own. `runs` caches what each run's lock says;
/// a lock taken there stays held until the map is dropped.
fn strays(dir: &Path, doc: &Value, runs: &mut HashMap<String, RunState>) -> Result<Vec<Stray>> {
    let referenced: HashSet<&str> = entries(doc)
        .into_iter()
        .filter_map(file_of)
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

/// The repository's metadata, for `goldify repo`: a DIR that names no repository is a
/// usage error (exit 2), a repository that cannot be read an output one (exit 5).
fn load(dir: &Path) -> Result<Value> {
    match std::fs::metadata(dir) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => crate::bail_tag!(Exit::Usage, "{} is not a directory", shown_path(dir)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound || e.raw_os_error() == Some(nix::libc::ENOTDIR) => {
            crate::bail_tag!(Exit::Usage, "{}: no such directory", shown_path(dir))
        }
        Err(e) => {
            return Err(e)
                .with_context(|| format!("reading {}", shown_path(dir)))
                .tag(Exit::Output)
        }
    }
    read(dir).tag(Exit::Output)?.ok_or_else(|| {
        crate::error::tagged(
            anyhow!("{} is not a repository: it has no {METADATA}", shown_path(dir)),
            Exit::Usage,
        )
    })
}

/// `goldify repo list` (sizes only) and `goldify repo verify` (checksums too).
pub fn list(dir: &Path, verify: bool) -> Result<Listing> {
    let doc = load(dir)?;
    let mut rows = Vec::new();
    for e in entries(&doc) {
        rows.push(entry_row(dir, e, verify)?);
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

fn entry_row(dir: &Path, e: &Map<String, Value>, verify: bool) -> Result<Row> {
    let row = |file: &str, size: Option<u64>, status: Status| Row {
        name: Some(name_of(e).to_string()),
        file: file.to_string(),
        size,
        status,
    };
    let Some(file) = file_of(e) else {
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
    let status = if !size_matches(e, size) {
        Status::SizeMismatch
    } else if verify && !checksum_matches(e, &path).tag(Exit::Output)? {
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

/// What `repo rm` did.
pub struct Removal {
    /// Archives removed.
    pub removed: Vec<PathBuf>,
    /// Files the removed entries named but that are not theirs to remove, and why.
    pub kept: Vec<(String, &'static str)>,
}

fn write_metadata(dir: &Path, doc: &Value) -> Result<()> {
    let mut text = serde_json::to_vec_pretty(doc).context("serializing metadata")?;
    text.push(b'\n');
    atomic::write_file(&dir.join(METADATA), &text)
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
            if let Some(f) = e.get("file_name").and_then(Value::as_str) {
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
    let still: HashSet<&str> = entries(&doc).into_iter().filter_map(file_of).collect();
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn entry(name: &str, file: &str) -> Map<String, Value> {
        json!({"name": name, "file_name": file, "archive_size_mib": 1})
            .as_object()
            .unwrap()
            .clone()
    }

    #[test]
    fn merge_replaces_same_name_and_keeps_the_rest() {
        let doc = json!({"type": "os", "x-vendor": {"a": 1}, "os": [
            {"name": "debian-12", "file_name": "old.xz", "custom": true},
            {"name": "alma-9", "file_name": "alma.xz"}
        ]});
        let merged = merge(Some(doc), RepoType::Os, entry("debian-12", "new.xz")).unwrap();
        assert_eq!(merged["x-vendor"], json!({"a": 1}));
        let os = merged["os"].as_array().unwrap();
        assert_eq!(os.len(), 2);
        assert_eq!(os[0]["file_name"], "new.xz");
        assert_eq!(os[0]["custom"], true);
        assert_eq!(os[1]["name"], "alma-9");
        let fresh = merge(None, RepoType::Lxd, entry("a", "a.tar.gz")).unwrap();
        assert_eq!(
            fresh,
            json!({"type": "lxd", "os": [{"name": "a", "file_name": "a.tar.gz", "archive_size_mib": 1}]})
        );
        assert_eq!(
            serde_json::to_string(&fresh).unwrap().find("\"type\""),
            Some(1),
            "type comes first"
        );
    }

    #[test]
    fn invalid_metadata_is_refused() {
        assert!(
            check(Path::new("/nonexistent/repo"), RepoType::Os).is_ok(),
            "a new repository is fine"
        );
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(METADATA), "{\"type\": \"os\", ").unwrap();
        let e = format!("{:#}", check(dir.path(), RepoType::Os).unwrap_err());
        assert!(e.contains("is not valid JSON"), "{e}");
        std::fs::write(dir.path().join(METADATA), r#"{"type": "lxd", "os": []}"#).unwrap();
        let e = format!("{:#}", check(dir.path(), RepoType::Os).unwrap_err());
        assert!(e.contains("is a `lxd` repository"), "{e}");
        let not_dir = dir.path().join(METADATA).join("sub");
        assert!(ensure_writable_dir(&not_dir).is_err());
    }

    /// Two publishers at once, each through the lock: both entries survive.
    #[test]
    fn concurrent_publishers_both_land() {
        let dir = tempfile::tempdir().unwrap();
        let threads: Vec<_> = (0..8)
            .map(|i| {
                let d = dir.path().to_path_buf();
                std::thread::spawn(move || {
                    let file = format!("t{i}.xz");
                    let mut s = Staged::new(&d.join(&file)).unwrap();
                    std::io::Write::write_all(&mut s, b"archive").unwrap();
                    s.sync().unwrap();
                    publish(&d, RepoType::Os, entry(&format!("t{i}"), &file), vec![s]).unwrap();
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let doc = read(dir.path()).unwrap().unwrap();
        assert_eq!(entries(&doc).len(), 8);
        let listing = list(dir.path(), false).unwrap();
        assert!(
            listing.rows.iter().all(|r| r.status == Status::Available),
            "{:?}",
            listing.rows
        );
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            10,
            "8 archives, metadata.json and its lock: no run lock or temporary file left"
        );
    }

    /// Not a test on its own: the body of each process in `processes_publishing_at_once`.
    #[test]
    fn lock_helper_process() {
        let Ok(dir) = std::env::var("GOLDIFY_LOCK_HELPER_DIR") else {
            return;
        };
        let me = std::env::var("GOLDIFY_LOCK_HELPER_ID").unwrap();
        let d = Path::new(&dir);
        for i in 0..20 {
            let file = format!("p{me}-{i}.xz");
            let mut s = Staged::new(&d.join(&file)).unwrap();
            std::io::Write::write_all(&mut s, b"archive").unwrap();
            s.sync().unwrap();
            publish(d, RepoType::Os, entry(&format!("p{me}-{i}"), &file), vec![s]).unwrap();
        }
    }

    /// Separate processes (flock is per open file description, so threads would pass
    /// too; processes are what users run): every entry of every run survives.
    #[test]
    fn processes_publishing_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let exe = std::env::current_exe().unwrap();
        let children: Vec<_> = (0..4)
            .map(|id| {
                std::process::Command::new(&exe)
                    .args(["--exact", "publish::repo::tests::lock_helper_process", "--quiet"])
                    .env("GOLDIFY_LOCK_HELPER_DIR", dir.path())
                    .env("GOLDIFY_LOCK_HELPER_ID", id.to_string())
                    .stdout(std::process::Stdio::null())
                    .spawn()
                    .unwrap()
            })
            .collect();
        for mut c in children {
            assert!(c.wait().unwrap().success());
        }
        let doc = read(dir.path()).unwrap().unwrap();
        assert_eq!(entries(&doc).len(), 80);
        assert!(list(dir.path(), false).unwrap().ok(true));
    }

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

    #[test]
    fn reserved_and_unsafe_names() {
        for n in [
            "metadata.json",
            ".metadata.json.lock",
            "goldify-manifest.json",
            ".goldify-manifest.json.lock",
            "SHA256SUMS",
            "MD5SUMS",
            ".goldify-tmp-x",
            ".goldify-publish-x",
            ".goldify-run-0123456789ab.lock",
        ] {
            assert!(is_reserved(n), "{n}");
            assert!(unsafe_archive_name(n).is_some(), "{n}");
        }
        for n in [
            "",
            ".",
            "..",
            "a/b",
            "../x",
            ".hidden",
            "a\u{1b}b",
            "a\nb",
            "a\u{202e}b",
        ] {
            assert!(unsafe_archive_name(n).is_some(), "{n:?}");
        }
        for n in ["debian-12.xz", "metadata.json.xz", "SHA256SUMS.txt", "a b.tar.gz"] {
            assert_eq!(unsafe_archive_name(n), None, "{n}");
        }
    }

    #[test]
    fn names_are_escaped_for_terminals() {
        assert_eq!(shown("debian-12.xz"), "debian-12.xz");
        assert_eq!(shown("a\u{1b}[2Jb"), "a\\u{1b}[2Jb");
        assert_eq!(shown("x\u{202e}gpj.exe"), "x\\u{202e}gpj.exe");
        assert_eq!(shown("\u{9b}\u{7}\u{7f}\n"), "\\u{9b}\\u{7}\\u{7f}\\u{a}");
        assert_eq!(shown("a\\u{1b}"), "a\\\\u{1b}", "a literal escape is told apart");
        assert_eq!(shown("é ü 日本"), "é ü 日本");
    }

    /// Publishing `b` whose archive name another entry uses is refused; nothing changes.
    #[test]
    fn publish_never_takes_another_entrys_archive() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let doc = json!({"type": "os", "os": [{"name": "alma-9", "file_name": "b.xz"}]});
        std::fs::write(d.join(METADATA), serde_json::to_vec(&doc).unwrap()).unwrap();
        std::fs::write(d.join("b.xz"), b"alma").unwrap();
        let mut s = Staged::new(&d.join("b.xz")).unwrap();
        std::io::Write::write_all(&mut s, b"debian").unwrap();
        s.sync().unwrap();
        let e = publish(d, RepoType::Os, entry("b", "b.xz"), vec![s]).unwrap_err();
        assert_eq!(crate::error::exit_of(&e), Exit::Usage);
        assert!(format!("{e:#}").contains("archive of entry `alma-9`"), "{e:#}");
        assert_eq!(std::fs::read(d.join("b.xz")).unwrap(), b"alma");
        assert_eq!(read(d).unwrap().unwrap(), doc);
        // The same entry is replaced as before.
        let mut s = Staged::new(&d.join("b.xz")).unwrap();
        std::io::Write::write_all(&mut s, b"alma 2").unwrap();
        s.sync().unwrap();
        publish(d, RepoType::Os, entry("alma-9", "b.xz"), vec![s]).unwrap();
        assert_eq!(std::fs::read(d.join("b.xz")).unwrap(), b"alma 2");
    }
}
