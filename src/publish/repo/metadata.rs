//! metadata.json itself: reading and checking it, the checks before a run's long work,
//! and publishing an entry (merged under the exclusive lock, then replaced atomically).

use super::names::{shown, shown_path, LOCK, METADATA};
use crate::error::{Exit, Tag};
use crate::publish::atomic::{self, Staged};
use anyhow::{anyhow, bail, Context, Result};
use serde::Serialize;
use serde_json::{Map, Value};
use std::path::Path;

/// The largest metadata.json goldify reads. VMmanager's index of a few hundred templates is
/// a few hundred KiB; the bound keeps a hostile or broken file (a sparse 2 GiB file) from
/// making goldify read without end.
pub const MAX_METADATA: u64 = 64 << 20;

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
/// file, owned by this run like every other (see atomic/runs.rs).
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
    let Some(name) = entry.get("name").and_then(Value::as_str) else {
        return Ok(());
    };
    for file in files_of(entry) {
        let Some(other) = entries(doc)
            .into_iter()
            .find(|e| files_of(e).contains(&file) && e.get("name").and_then(Value::as_str) != Some(name))
        else {
            continue;
        };
        let role = if file_of(other) == Some(file) {
            "archive"
        } else {
            "install script"
        };
        crate::bail_tag!(
            Exit::Usage,
            "{}: {} is the {role} of entry `{}`; publishing `{}` would replace it (set another image_name)",
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
        .find(|e| files_of(e).contains(&file))
        .map(|e| name_of(e).to_string()))
}

pub(super) fn entries(doc: &Value) -> Vec<&Map<String, Value>> {
    doc.get("os")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_object).collect())
        .unwrap_or_default()
}

pub(super) fn file_of(entry: &Map<String, Value>) -> Option<&str> {
    entry.get("file_name").and_then(Value::as_str)
}

/// The install script a Windows entry names beside its archive (`install_script.file_name`).
pub(super) fn script_of(entry: &Map<String, Value>) -> Option<&str> {
    entry.get("install_script")?.get("file_name")?.as_str()
}

/// Every file an entry names: its archive, and a Windows entry's install script.
pub(super) fn files_of(entry: &Map<String, Value>) -> Vec<&str> {
    file_of(entry).into_iter().chain(script_of(entry)).collect()
}

pub(super) fn name_of(entry: &Map<String, Value>) -> &str {
    entry.get("name").and_then(Value::as_str).unwrap_or("?")
}

/// The repository's metadata, for `goldify repo`: a DIR that names no repository is a
/// usage error (exit 2), a repository that cannot be read an output one (exit 5).
pub(super) fn load(dir: &Path) -> Result<Value> {
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

pub(super) fn write_metadata(dir: &Path, doc: &Value) -> Result<()> {
    let mut text = serde_json::to_vec_pretty(doc).context("serializing metadata")?;
    text.push(b'\n');
    atomic::write_file(&dir.join(METADATA), &text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::publish::repo::list::{list, Status};
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
                    .args([
                        "--exact",
                        "publish::repo::metadata::tests::lock_helper_process",
                        "--quiet",
                    ])
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
