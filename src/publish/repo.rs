//! VMmanager repositories: `metadata.json` (`{"type": "os"|"lxd", "os": [entries]}`) next to
//! the archives it names. This module owns the file: it reads and checks it, merges one
//! entry under an exclusive lock (two runs publishing at once both end with their
//! entries), replaces it atomically, and implements `goldify repo list|verify|rm|gc`.

use super::atomic::{self, Staged};
use super::hash::{Algo, HashWriter};
use crate::error::{Exit, Tag};
use anyhow::{anyhow, bail, Context, Result};
use serde::Serialize;
use serde_json::{Map, Value};
use std::fs::File;
use std::path::{Path, PathBuf};

pub const METADATA: &str = "metadata.json";
const LOCK: &str = ".metadata.json.lock";
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

/// Read `metadata.json`; `None` when the repository has none yet.
pub fn read(dir: &Path) -> Result<Option<Value>> {
    let path = dir.join(METADATA);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        // No repository yet (the directory, or a parent, is missing or not a directory:
        // creating it is what says what is wrong).
        Err(e) if e.kind() == std::io::ErrorKind::NotFound || e.raw_os_error() == Some(nix::libc::ENOTDIR) => {
            return Ok(None)
        }
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    let v: Value = serde_json::from_str(&text).map_err(|e| anyhow!("{} is not valid JSON: {e}", path.display()))?;
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
/// valid and of the right type. [`ensure_writable_dir`] is the other half.
pub fn check(dir: &Path, want: RepoType) -> Result<()> {
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

/// Create `dir` if needed and prove it writable by creating (and removing) a temporary file.
pub fn ensure_writable_dir(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir)
        .with_context(|| format!("creating publish directory {}", dir.display()))
        .tag(Exit::Output)?;
    tempfile::Builder::new()
        .prefix(atomic::TEMP_PREFIX)
        .tempfile_in(dir)
        .map(drop)
        .with_context(|| format!("publish directory {} is not writable", dir.display()))
        .tag(Exit::Output)
}

/// An exclusive lock on the repository's metadata, held until dropped.
pub struct Lock {
    _flock: nix::fcntl::Flock<File>,
}

pub fn lock(dir: &Path) -> Result<Lock> {
    let path = dir.join(LOCK);
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("opening lock file {}", path.display()))?;
    let flock = nix::fcntl::Flock::lock(f, nix::fcntl::FlockArg::LockExclusive)
        .map_err(|(_, e)| anyhow!("locking {}: {e}", path.display()))?;
    Ok(Lock { _flock: flock })
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

// ---------------------------------------------------------------------------------------
// goldify repo

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    Available,
    FileMissing,
    ChecksumMismatch,
    SizeMismatch,
    UnreferencedFile,
}

impl Status {
    pub fn describe(self) -> &'static str {
        match self {
            Status::Available => "available",
            Status::FileMissing => "file missing",
            Status::ChecksumMismatch => "checksum mismatch",
            Status::SizeMismatch => "size mismatch",
            Status::UnreferencedFile => "unreferenced file",
        }
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
    pub fn ok(&self) -> bool {
        self.rows.iter().all(|r| r.status == Status::Available)
    }

    pub fn print_human(&self, out: &mut dyn std::io::Write) -> std::io::Result<()> {
        let kind = self.kind.map(|k| k.name()).unwrap_or("unknown");
        writeln!(
            out,
            "{} ({kind} repository, {} entries)",
            self.dir,
            self.rows.iter().filter(|r| r.name.is_some()).count()
        )?;
        let w = self
            .rows
            .iter()
            .map(|r| r.name.as_deref().unwrap_or("-").len())
            .max()
            .unwrap_or(4)
            .max(4);
        let fw = self.rows.iter().map(|r| r.file.len()).max().unwrap_or(4).max(4);
        writeln!(out, "  {:<w$}  {:<fw$}  {:>10}  STATUS", "NAME", "FILE", "SIZE")?;
        for r in &self.rows {
            let size = r.size.map(crate::report::human_bytes).unwrap_or_else(|| "-".into());
            writeln!(
                out,
                "  {:<w$}  {:<fw$}  {:>10}  {}",
                r.name.as_deref().unwrap_or("-"),
                r.file,
                size,
                r.status.describe()
            )?;
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

/// Whether a file in the repository directory is bookkeeping, not an orphan: the
/// metadata, its lock, and what a run publishing into this directory writes beside the
/// archives (the run manifest, checksum lists).
fn is_bookkeeping(name: &str) -> bool {
    name == METADATA
        || name == LOCK
        || name == super::manifest::DEFAULT_FILE
        || super::hash::Algo::ALL.iter().any(|a| a.sums_file() == name)
}

/// Files in the directory no entry references (our temporary leftovers included).
fn unreferenced(dir: &Path, doc: &Value) -> Result<Vec<(String, u64)>> {
    let referenced: std::collections::HashSet<&str> = entries(doc).into_iter().filter_map(file_of).collect();
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).with_context(|| format!("listing {}", dir.display()))? {
        let e = e.with_context(|| format!("listing {}", dir.display()))?;
        let name = e.file_name().to_string_lossy().into_owned();
        let meta = e
            .metadata()
            .with_context(|| format!("reading {}", e.path().display()))?;
        if !meta.is_file() || is_bookkeeping(&name) || referenced.contains(name.as_str()) {
            continue;
        }
        out.push((name, meta.len()));
    }
    out.sort();
    Ok(out)
}

fn load(dir: &Path) -> Result<Value> {
    read(dir)
        .tag(Exit::Input)?
        .ok_or_else(|| crate::error::tagged(anyhow!("{} has no {METADATA}", dir.display()), Exit::Input))
}

/// `goldify repo list` (sizes only) and `goldify repo verify` (checksums too).
pub fn list(dir: &Path, verify: bool) -> Result<Listing> {
    let doc = load(dir)?;
    let kind = repo_type(&doc);
    let mut rows = Vec::new();
    for e in entries(&doc) {
        let name = e.get("name").and_then(Value::as_str).unwrap_or("?").to_string();
        let Some(file) = file_of(e) else {
            rows.push(Row {
                name: Some(name),
                file: "-".into(),
                size: None,
                status: Status::FileMissing,
            });
            continue;
        };
        // A file name from metadata must not lead out of the repository.
        let path = if file.contains('/') || file.starts_with('.') {
            None
        } else {
            Some(dir.join(file))
        };
        let size = path
            .as_ref()
            .and_then(|p| std::fs::metadata(p).ok())
            .filter(|m| m.is_file())
            .map(|m| m.len());
        let status = match size {
            None => Status::FileMissing,
            Some(s) if !size_matches(e, s) => Status::SizeMismatch,
            Some(_) if verify && !checksum_matches(e, path.as_deref().expect("size implies a path"))? => {
                Status::ChecksumMismatch
            }
            Some(_) => Status::Available,
        };
        rows.push(Row {
            name: Some(name),
            file: file.to_string(),
            size,
            status,
        });
    }
    for (file, size) in unreferenced(dir, &doc)? {
        rows.push(Row {
            name: None,
            file,
            size: Some(size),
            status: Status::UnreferencedFile,
        });
    }
    Ok(Listing {
        dir: dir.display().to_string(),
        kind,
        rows,
    })
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
    let mut f = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut w = HashWriter::new(std::io::sink(), [algo]);
    std::io::copy(&mut f, &mut w).with_context(|| format!("reading {}", path.display()))?;
    let (_, _, sums) = w.finish();
    Ok(sums.get(algo.name()).is_some_and(|got| got.eq_ignore_ascii_case(want)))
}

/// `goldify repo rm`: drop the entry from the metadata (atomically), then its archive
/// unless another entry still uses it. Returns the files removed.
pub fn remove(dir: &Path, name: &str) -> Result<Vec<PathBuf>> {
    let _lock = lock(dir).tag(Exit::Output)?;
    let mut doc = load(dir)?;
    let list = doc
        .get_mut("os")
        .and_then(Value::as_array_mut)
        .ok_or_else(|| anyhow!("no entries"))?;
    let before = list.len();
    let mut files = Vec::new();
    list.retain(|e| {
        let hit = e.get("name").and_then(Value::as_str) == Some(name);
        if hit {
            if let Some(f) = e.get("file_name").and_then(Value::as_str) {
                files.push(f.to_string());
            }
        }
        !hit
    });
    if list.len() == before {
        let names: Vec<&str> = entries(&doc)
            .iter()
            .filter_map(|e| e.get("name").and_then(Value::as_str))
            .collect();
        match crate::suggest::nearest(name, &names) {
            Some(n) => crate::bail_tag!(
                Exit::Usage,
                "no entry `{name}` in {}, did you mean `{n}`?",
                dir.display()
            ),
            None => crate::bail_tag!(Exit::Usage, "no entry `{name}` in {}", dir.display()),
        }
    }
    let mut text = serde_json::to_vec_pretty(&doc)?;
    text.push(b'\n');
    atomic::write_file(&dir.join(METADATA), &text).tag(Exit::Output)?;
    let still: std::collections::HashSet<&str> = entries(&doc).into_iter().filter_map(file_of).collect();
    let mut removed = Vec::new();
    for f in files {
        if still.contains(f.as_str()) || f.contains('/') || f.starts_with('.') {
            continue;
        }
        let p = dir.join(&f);
        match std::fs::remove_file(&p) {
            Ok(()) => removed.push(p),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(e)
                    .with_context(|| format!("removing {}", p.display()))
                    .tag(Exit::Output)
            }
        }
    }
    atomic::sync_dir(dir)?;
    Ok(removed)
}

/// `goldify repo gc`: remove every file no entry references (and leftovers of killed
/// runs). Returns what was (or, with `dry_run`, would be) removed.
pub fn gc(dir: &Path, dry_run: bool) -> Result<Vec<(PathBuf, u64)>> {
    let _lock = lock(dir).tag(Exit::Output)?;
    let doc = load(dir)?;
    let mut out = Vec::new();
    for (f, size) in unreferenced(dir, &doc)? {
        let p = dir.join(&f);
        if !dry_run {
            std::fs::remove_file(&p)
                .with_context(|| format!("removing {}", p.display()))
                .tag(Exit::Output)?;
        }
        out.push((p, size));
    }
    if !dry_run {
        atomic::sync_dir(dir)?;
    }
    Ok(out)
}

/// `goldify repo …`: run the action and print its result.
pub fn command(action: crate::cli::RepoAction) -> Result<Exit> {
    use crate::cli::RepoAction;
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let print = |out: &mut dyn Write, l: &Listing, json: bool| -> Result<Exit> {
        if json {
            writeln!(out, "{}", serde_json::to_string_pretty(l)?)?;
        } else {
            l.print_human(out)?;
        }
        Ok(if l.ok() { Exit::Success } else { Exit::Verify })
    };
    match action {
        RepoAction::List { dir, json } => print(&mut out, &list(&dir, false)?, json),
        RepoAction::Verify { dir, json } => print(&mut out, &list(&dir, true)?, json),
        RepoAction::Rm { dir, name } => {
            let removed = remove(&dir, &name)?;
            writeln!(out, "removed entry {name} from {}", dir.join(METADATA).display())?;
            for p in removed {
                writeln!(out, "removed {}", p.display())?;
            }
            Ok(Exit::Success)
        }
        RepoAction::Gc { dir, dry_run } => {
            let files = gc(&dir, dry_run)?;
            let verb = if dry_run { "would remove" } else { "removed" };
            for (p, size) in &files {
                writeln!(out, "{verb} {} ({})", p.display(), crate::report::human_bytes(*size))?;
            }
            let total: u64 = files.iter().map(|f| f.1).sum();
            writeln!(
                out,
                "{verb} {} unreferenced file(s), {}",
                files.len(),
                crate::report::human_bytes(total)
            )?;
            Ok(Exit::Success)
        }
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
        assert!(list(dir.path(), false).unwrap().ok());
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
        assert_eq!(status(&v, ".goldify-tmp-abc"), Status::UnreferencedFile);
        assert!(!v.ok());

        let removed = remove(d, "bad").unwrap();
        assert_eq!(removed, [d.join("bad.xz")]);
        assert!(remove(d, "bda").is_err());
        let collected = gc(d, false).unwrap();
        assert_eq!(collected.len(), 2);
        assert!(!d.join("stray.bin").exists() && d.join("good.xz").exists());
        assert!(
            d.join("SHA256SUMS").exists() && d.join("goldify-manifest.json").exists(),
            "gc keeps run bookkeeping"
        );
        let mut out = Vec::new();
        list(d, true).unwrap().print_human(&mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("good.xz") && text.contains("file missing"), "{text}");
    }
}
