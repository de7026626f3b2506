//! Hostile-input cases: repositories. The repository's own files (metadata.json, its lock,
//! the run manifest, checksum lists, goldify's work files) are never anyone's target; its
//! files are read bounded and never followed through symbolic links; names from
//! metadata.json are escaped before a terminal sees them. See main.rs; `repo rm`, `list`
//! and `gc` are in repo_upkeep.rs, which uses the helpers here.
//!
//! No case here launches an appliance: each works on a repository built here and fails
//! before anything long starts.

use crate::common::*;
use serde_json::{json, Value};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// A repository directory with this metadata.json (and a sentinel directory beside it,
/// outside the repository, that no case may change).
pub(super) struct Repo {
    _t: tempfile::TempDir,
    pub(super) root: PathBuf,
    pub(super) dir: PathBuf,
    pub(super) outside: PathBuf,
}

impl Repo {
    pub(super) fn new(doc: &Value) -> Repo {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().to_path_buf();
        let dir = root.join("repo");
        let outside = root.join("outside");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::write(outside.join("sentinel"), b"host secret\n").unwrap();
        if !doc.is_null() {
            std::fs::write(dir.join("metadata.json"), serde_json::to_vec_pretty(doc).unwrap()).unwrap();
        }
        Repo {
            _t: t,
            root,
            dir,
            outside,
        }
    }

    pub(super) fn file(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let p = self.dir.join(name);
        std::fs::write(&p, bytes).unwrap();
        p
    }

    fn metadata(&self) -> Value {
        serde_json::from_slice(&std::fs::read(self.dir.join("metadata.json")).unwrap()).unwrap()
    }

    pub(super) fn names(&self) -> Vec<String> {
        self.metadata()["os"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["name"].as_str().unwrap().to_string())
            .collect()
    }
}

/// Every name below `dir` with its kind and content (symbolic links by their target,
/// never followed), for "nothing changed" checks.
pub(super) fn snapshot(dir: &Path) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = walkdir::WalkDir::new(dir)
        .into_iter()
        .filter_map(|e| e.ok())
        .map(|e| {
            let rel = e.path().strip_prefix(dir).unwrap().display().to_string();
            let t = e.file_type();
            let what = if t.is_symlink() {
                format!("-> {}", std::fs::read_link(e.path()).unwrap().display())
            } else if t.is_file() {
                let m = e.metadata().unwrap();
                // Large (sparse) files by size and time: hashing them would be the slow part.
                let content = if m.len() > 64 << 20 {
                    format!("{} bytes, mtime {:?}", m.len(), m.modified().unwrap())
                } else {
                    sha256(e.path())
                };
                format!("{content} {:o}", m.permissions().mode())
            } else if t.is_dir() {
                "dir".into()
            } else {
                "special".into()
            };
            (rel, what)
        })
        .collect();
    v.sort();
    v
}

/// Run goldify and fail the test (after killing it) if it does not end within `secs`.
fn run_within(secs: u64, args: &[&dyn AsRef<std::ffi::OsStr>]) -> Run {
    let t = tempfile::tempdir().unwrap();
    let (out, err) = (t.path().join("out"), t.path().join("err"));
    let mut child = goldify()
        .args(args.iter().map(|a| a.as_ref()))
        .stdin(std::process::Stdio::null())
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(std::fs::File::create(&err).unwrap())
        .spawn()
        .unwrap();
    let started = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if started.elapsed() > Duration::from_secs(secs) {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "goldify {:?} still running after {secs} s (hung)",
                args.iter().map(|a| a.as_ref().to_owned()).collect::<Vec<_>>()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Run {
        code: status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&std::fs::read(&out).unwrap()).into_owned(),
        stderr: String::from_utf8_lossy(&std::fs::read(&err).unwrap()).into_owned(),
    }
}

/// The error line of a refused command, checked for the exit code and the names it must
/// carry.
#[track_caller]
pub(super) fn refused(r: &Run, code: i32, mentions: &[&str]) -> String {
    assert_eq!(r.code, code, "stdout:\n{}\nstderr:\n{}", r.stdout, r.stderr);
    let line = r.error_line();
    for m in mentions {
        assert!(line.contains(m), "error line {line:?} should mention {m:?}");
    }
    line
}

pub(super) fn status_of(listing: &Value, file: &str) -> Option<String> {
    listing["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["file"] == file)
        .map(|r| r["status"].as_str().unwrap().to_string())
}

/// A recipe extending the shipped Debian one, with this `publish:` section.
pub(super) fn publish_recipe(dir: &Path, publish: &str) -> PathBuf {
    let p = dir.join("recipe.yaml");
    std::fs::write(
        &p,
        format!(
            "name: hostile\nextends: {}\npublish:\n{publish}",
            recipe("debian").display()
        ),
    )
    .unwrap();
    p
}

/// A recipe naming a bookkeeping file as a target's file is refused by `goldify check` and
/// at the start of `run`, before anything is created.
#[test]
fn reserved_names_are_refused_in_settings() {
    let r = Repo::new(&json!({"type": "os", "os": [{"name": "a", "file_name": "a.xz"}]}));
    r.file("a.xz", b"archive");
    let before = snapshot(&r.dir);
    let disk = r.root.join("in.qcow2");
    std::fs::write(&disk, b"never opened").unwrap();
    for file in ["metadata.json", "SHA256SUMS", "MD5SUMS", ".metadata.json.lock"] {
        let recipe = publish_recipe(
            &r.root,
            &format!(
                "  vmmanager: {{repo: {0}}}\n  manifest: {{dir: {0}, file: {file}}}\n",
                r.dir.display()
            ),
        );
        let res = run(&[&"check", &recipe]);
        refused(&res, 2, &["recipe.yaml", "manifest", file]);
        let out = r.root.join("out");
        let started = Instant::now();
        let res = run(&[&"run", &recipe, &disk, &"-o", &out]);
        refused(&res, 2, &["recipe.yaml", "manifest", file]);
        assert!(started.elapsed() < Duration::from_secs(10), "did it launch?");
        assert!(!out.exists(), "{} created", out.display());
        assert_eq!(snapshot(&r.dir), before, "the repository changed");
    }
    // The manifest may not take an archive an entry of the repository references either.
    let recipe = publish_recipe(
        &r.root,
        &format!("  manifest: {{dir: {}, file: a.xz}}\n", r.dir.display()),
    );
    let res = run(&[&"run", &recipe, &disk, &"-o", &r.root.join("out")]);
    refused(&res, 2, &["a.xz", "entry `a`"]);
    assert_eq!(snapshot(&r.dir), before);
}

/// A `.metadata.json.lock` that is a symbolic link or a FIFO: refused (exit 5) at once,
/// nothing created through the link, no hang.
#[test]
fn hostile_lock_files_are_refused() {
    let doc = json!({"type": "os", "os": [{"name": "a", "file_name": "a.xz"}]});
    let r = Repo::new(&doc);
    r.file("a.xz", b"archive");
    let target = r.outside.join("created-by-goldify");
    std::os::unix::fs::symlink(&target, r.dir.join(".metadata.json.lock")).unwrap();
    let before = snapshot(&r.dir);
    for args in [vec!["gc"], vec!["rm", "a"]] {
        let mut a: Vec<&dyn AsRef<std::ffi::OsStr>> = vec![&"repo", &args[0], &r.dir];
        if args.len() > 1 {
            a.push(&args[1]);
        }
        let res = run_within(20, &a);
        refused(&res, 5, &[".metadata.json.lock", "symbolic link"]);
        assert!(
            !target.exists(),
            "goldify {args:?} created a file through the lock's link"
        );
        assert_eq!(snapshot(&r.dir), before);
    }
    // `run` refuses it before the long work.
    let disk = r.root.join("in.qcow2");
    std::fs::write(&disk, b"never opened").unwrap();
    let recipe = publish_recipe(&r.root, &format!("  vmmanager: {{repo: {}}}\n", r.dir.display()));
    let res = run_within(20, &[&"run", &recipe, &disk, &"-o", &r.root.join("out")]);
    refused(&res, 5, &[".metadata.json.lock", "symbolic link"]);
    assert!(!target.exists());
    assert_eq!(snapshot(&r.dir), before);

    let r = Repo::new(&doc);
    nix::unistd::mkfifo(&r.dir.join(".metadata.json.lock"), nix::sys::stat::Mode::S_IRWXU).unwrap();
    let before = snapshot(&r.dir);
    let res = run_within(20, &[&"repo", &"gc", &r.dir]);
    refused(&res, 5, &[".metadata.json.lock", "not a regular file"]);
    assert_eq!(snapshot(&r.dir), before);
}

/// `repo gc` waiting for a lock another process holds ends on SIGTERM (exit 130), having
/// changed nothing.
#[test]
fn a_wait_for_the_lock_ends_on_sigterm() {
    let r = Repo::new(&json!({"type": "os", "os": []}));
    r.file("stray.bin", b"x");
    let lock = std::fs::File::create(r.dir.join(".metadata.json.lock")).unwrap();
    let _held = nix::fcntl::Flock::lock(lock, nix::fcntl::FlockArg::LockExclusive).unwrap();
    let before = snapshot(&r.dir);
    let mut child = goldify()
        .args(["repo", "gc"])
        .arg(&r.dir)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(1));
    assert!(child.try_wait().unwrap().is_none(), "gc did not wait for the lock");
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    let started = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > Duration::from_secs(10) {
            let _ = child.kill();
            panic!("gc ignored SIGTERM while waiting for the lock");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    let res = Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::new(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    refused(&res, 130, &["interrupted"]);
    assert_eq!(snapshot(&r.dir), before);
}

/// Archives that are symbolic links (to a host file with the right size and checksum, or
/// to a FIFO), FIFOs or directories are reported, never followed or opened.
#[test]
fn hostile_archives_are_reported_not_followed() {
    let secret = b"host secret\n";
    let sha1 = {
        use sha1::Digest;
        hex::encode(sha1::Sha1::digest(secret))
    };
    let r = Repo::new(&json!({"type": "os", "os": [
        {"name": "link", "file_name": "link.xz", "archive_size_mib": 0, "checksum": sha1},
        {"name": "fifo-link", "file_name": "fifo-link.xz"},
        {"name": "fifo", "file_name": "fifo.xz"},
        {"name": "dir", "file_name": "dir.xz"},
        {"name": "good", "file_name": "good.xz", "archive_size_mib": 0},
    ]}));
    r.file("good.xz", b"archive");
    std::os::unix::fs::symlink(r.outside.join("sentinel"), r.dir.join("link.xz")).unwrap();
    nix::unistd::mkfifo(&r.outside.join("fifo"), nix::sys::stat::Mode::S_IRWXU).unwrap();
    std::os::unix::fs::symlink(r.outside.join("fifo"), r.dir.join("fifo-link.xz")).unwrap();
    nix::unistd::mkfifo(&r.dir.join("fifo.xz"), nix::sys::stat::Mode::S_IRWXU).unwrap();
    std::fs::create_dir(r.dir.join("dir.xz")).unwrap();
    let (before, outside) = (snapshot(&r.dir), snapshot(&r.outside));
    for cmd in ["list", "verify"] {
        let res = run_within(20, &[&"repo", &cmd, &"--json", &r.dir]);
        assert_eq!(res.code, 6, "{cmd}: {}", res.stderr);
        let v: Value = serde_json::from_str(&res.stdout).unwrap();
        for f in ["link.xz", "fifo-link.xz", "fifo.xz", "dir.xz"] {
            assert_eq!(status_of(&v, f).as_deref(), Some("not-a-file"), "{cmd} {f}");
        }
        assert_eq!(status_of(&v, "good.xz").as_deref(), Some("available"));
        let human = run_within(20, &[&"repo", &cmd, &r.dir]);
        assert!(human.stdout.contains("not a regular file"), "{}", human.stdout);
    }
    assert_eq!(snapshot(&r.dir), before);
    assert_eq!(snapshot(&r.outside), outside);
}

/// metadata.json as a FIFO, a link to /dev/zero or a 2 GiB file: refused at once (exit 5,
/// one line naming it), by every command that reads it.
#[test]
fn hostile_metadata_is_bounded() {
    let disk_dir = tempfile::tempdir().unwrap();
    let disk = disk_dir.path().join("in.qcow2");
    std::fs::write(&disk, b"never opened").unwrap();
    type Make = fn(&Path);
    let cases: [(&str, Make, &str); 3] = [
        (
            "fifo",
            |p| nix::unistd::mkfifo(p, nix::sys::stat::Mode::S_IRWXU).unwrap(),
            "not a regular file",
        ),
        (
            "zero",
            |p| std::os::unix::fs::symlink("/dev/zero", p).unwrap(),
            "symbolic link",
        ),
        (
            "big",
            |p| std::fs::File::create(p).unwrap().set_len(2 << 30).unwrap(),
            "larger than",
        ),
    ];
    for (what, make, says) in cases {
        let r = Repo::new(&Value::Null);
        make(&r.dir.join("metadata.json"));
        let before = snapshot(&r.dir);
        for args in [vec!["list"], vec!["verify"], vec!["gc"], vec!["rm", "a"]] {
            let mut a: Vec<&dyn AsRef<std::ffi::OsStr>> = vec![&"repo", &args[0], &r.dir];
            if args.len() > 1 {
                a.push(&args[1]);
            }
            let res = run_within(10, &a);
            refused(&res, 5, &["metadata.json", says]);
            assert_eq!(snapshot(&r.dir), before, "{what}: {args:?}");
        }
        let recipe = publish_recipe(&r.root, &format!("  vmmanager: {{repo: {}}}\n", r.dir.display()));
        let res = run_within(10, &[&"run", &recipe, &disk, &"-o", &r.root.join("out")]);
        refused(&res, 5, &["metadata.json", says]);
        assert_eq!(snapshot(&r.dir), before, "{what}: run");
    }
}

/// Names with terminal escapes, control characters and bidi overrides are escaped in
/// human output and error lines; JSON keeps them exact.
#[test]
fn names_are_escaped_for_humans() {
    let name = "evil\u{1b}]0;owned\u{7}\u{1b}[2J\u{202e}gpj.xz";
    let r = Repo::new(&json!({"type": "os", "os": [
        {"name": name, "file_name": name},
        {"name": "good", "file_name": "good.xz"},
    ]}));
    r.file("good.xz", b"x");
    r.file("stray\u{1b}[31m\u{9b}red", b"x");
    let raw = |s: &str| s.contains('\u{1b}') || s.contains('\u{7}') || s.contains('\u{202e}') || s.contains('\u{9b}');
    let res = run(&[&"repo", &"list", &r.dir]);
    assert!(
        !raw(&res.stdout) && !raw(&res.stderr),
        "{:?}\n{:?}",
        res.stdout,
        res.stderr
    );
    assert!(res.stdout.contains("\\u{1b}]0;owned"), "{}", res.stdout);
    let res = run(&[&"repo", &"list", &"--json", &r.dir]);
    let v: Value = serde_json::from_str(&res.stdout).unwrap();
    assert!(v["rows"].as_array().unwrap().iter().any(|r| r["name"] == name));
    assert!(v["rows"]
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r["file"] == "stray\u{1b}[31m\u{9b}red"));
    // A misspelt name whose nearest match is the hostile one.
    let res = run(&[&"repo", &"rm", &r.dir, &"evil\u{1b}]0;owned\u{7}\u{1b}[2J\u{202e}gpj.x"]);
    let line = refused(&res, 2, &["did you mean"]);
    assert!(!raw(&line) && !raw(&res.stderr), "{:?}", res.stderr);
    let res = run(&[&"repo", &"gc", &"--dry-run", &r.dir]);
    res.ok();
    assert!(
        !raw(&res.stdout) && res.stdout.contains("stray\\u{1b}[31m"),
        "{}",
        res.stdout
    );
}

/// A run manifest that is a symbolic link or a FIFO, or a checksum list that is a
/// directory, is refused before the long work.
#[test]
fn hostile_manifest_is_refused() {
    let r = Repo::new(&Value::Null);
    let disk = r.root.join("in.qcow2");
    std::fs::write(&disk, b"never opened").unwrap();
    let recipe = publish_recipe(&r.root, &format!("  manifest: {{dir: {}}}\n", r.dir.display()));
    std::os::unix::fs::symlink(r.outside.join("sentinel"), r.dir.join("goldify-manifest.json")).unwrap();
    let outside = snapshot(&r.outside);
    let res = run_within(20, &[&"run", &recipe, &disk, &"-o", &r.root.join("out")]);
    refused(&res, 5, &["goldify-manifest.json", "symbolic link"]);
    assert_eq!(snapshot(&r.outside), outside);
    std::fs::remove_file(r.dir.join("goldify-manifest.json")).unwrap();
    nix::unistd::mkfifo(&r.dir.join("goldify-manifest.json"), nix::sys::stat::Mode::S_IRWXU).unwrap();
    let res = run_within(20, &[&"run", &recipe, &disk, &"-o", &r.root.join("out")]);
    refused(&res, 5, &["goldify-manifest.json", "not a regular file"]);
    std::fs::remove_file(r.dir.join("goldify-manifest.json")).unwrap();
    // Checksum lists likewise.
    let recipe = publish_recipe(
        &r.root,
        &format!(
            "  checksums: {{dir: {}, algorithms: [sha256, sha512]}}\n",
            r.dir.display()
        ),
    );
    std::fs::create_dir(r.dir.join("SHA512SUMS")).unwrap();
    let res = run_within(20, &[&"run", &recipe, &disk, &"-o", &r.root.join("out")]);
    refused(&res, 5, &["SHA512SUMS", "not a regular file"]);
    assert_eq!(entries(&r.dir), ["SHA512SUMS"]);
}
