//! The one helper module of every test binary in tests/ (each includes it with `mod
//! common;`): the built binary and its runs, fixture images from vm-fixtures/ (built once
//! per machine, cached outside the repo), files and trees compared before and after,
//! read-only access to an image's files through goldify's own libguestfs guest, and the
//! README's commands as shell words (readme.rs).
//!
//! A test that cannot run here (no QEMU, no libguestfs, a fixture that does not build)
//! fails and says why: it never passes without having checked anything.
#![allow(dead_code)]

use goldify::guest::guestfs::{Drive, GuestfsGuest, OpenOptions};
use goldify::guest::{Guest, Kind, Meta};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Mutex, OnceLock};
use std::time::Instant;

mod readme;
// Most test binaries run no README command.
#[allow(unused_imports)]
pub use readme::*;

/// The binary under test, for tools that are handed its path (Packer).
pub const GOLDIFY: &str = env!("CARGO_BIN_EXE_goldify");

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn recipe(name: &str) -> PathBuf {
    repo().join("recipes").join(format!("{name}.yaml"))
}

pub fn goldify() -> Command {
    let mut c = Command::new(GOLDIFY);
    c.env_remove("RUST_LOG");
    c
}

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// `goldify ARGS…`, waited for.
pub fn run(args: &[&dyn AsRef<std::ffi::OsStr>]) -> Run {
    Run::of(goldify().args(args.iter().map(|a| a.as_ref())))
}

impl Run {
    /// Run a prepared command (usually `goldify()` with arguments) and wait for it.
    pub fn of(cmd: &mut Command) -> Run {
        let out: Output = cmd.output().expect("running goldify");
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    #[track_caller]
    pub fn ok(&self) -> &Self {
        assert_eq!(
            self.code, 0,
            "goldify failed\nstdout:\n{}\nstderr:\n{}",
            self.stdout, self.stderr
        );
        self
    }

    /// The error line (`goldify: error: …`); asserts there is exactly one.
    #[track_caller]
    pub fn error_line(&self) -> String {
        let errors: Vec<&str> = self
            .stderr
            .lines()
            .filter(|l| l.starts_with("goldify: error:"))
            .collect();
        assert_eq!(errors.len(), 1, "expected one error line, stderr:\n{}", self.stderr);
        errors[0].to_string()
    }
}

static FIXTURES: OnceLock<Mutex<HashMap<String, PathBuf>>> = OnceLock::new();

/// A fixture script: from `$GOLDIFY_FIXTURE_SCRIPTS` when set, else from vm-fixtures/.
pub fn fixture_script(script: &str) -> PathBuf {
    let dir = std::env::var_os("GOLDIFY_FIXTURE_SCRIPTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("vm-fixtures"));
    let p = dir.join(script);
    assert!(
        p.exists(),
        "fixture script {} not found (set GOLDIFY_FIXTURE_SCRIPTS)",
        p.display()
    );
    p
}

/// A fixture image built by a vm-fixtures script (cached: instant after the first build).
/// Tests must never write to it; goldify opens it read-only unless --in-place.
pub fn fixture(script: &str, args: &[&str]) -> PathBuf {
    let key = format!("{script} {}", args.join(" "));
    let map = FIXTURES.get_or_init(Default::default);
    if let Some(p) = map.lock().unwrap().get(&key) {
        return p.clone();
    }
    // The script's log goes straight to the terminal: a first build takes minutes.
    let out = timed(
        Command::new("bash")
            .arg(fixture_script(script))
            .args(args)
            .stderr(std::process::Stdio::inherit()),
    );
    assert!(
        out.status.success(),
        "vm-fixtures/{key} failed (see its output above); the host must run libguestfs"
    );
    let path = PathBuf::from(
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .lines()
            .last()
            .unwrap_or("")
            .to_string(),
    );
    assert!(path.is_file(), "vm-fixtures/{key} printed no image path");
    map.lock().unwrap().insert(key, path.clone());
    path
}

/// The disks of a fixture guest on several disks, in its order (the script prints one
/// path per line).
pub fn fixture_disks(script: &str, name: &str) -> Vec<PathBuf> {
    let out = timed(
        Command::new("bash")
            .arg(fixture_script(script))
            .arg(name)
            .stderr(std::process::Stdio::inherit()),
    );
    assert!(out.status.success(), "vm-fixtures/{script} {name} failed");
    let disks: Vec<PathBuf> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(PathBuf::from)
        .collect();
    assert!(disks.len() > 1 && disks.iter().all(|d| d.is_file()), "{disks:?}");
    disks
}

pub fn phony(name: &str) -> PathBuf {
    fixture("phony.sh", &[name])
}

/// A known value of phony guest `name` (root UUID, machine-id, hostname, MAC...): its
/// manifest's `[known]` table, vm-fixtures/phony/images/NAME.toml, which the image is
/// built from; `extends` is followed.
pub fn phony_known(name: &str, key: &str) -> String {
    let path = repo().join(format!("vm-fixtures/phony/images/{name}.toml"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let manifest: toml::Table = text.parse().unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let own = manifest.get("known").and_then(|k| k.get(key)).and_then(|v| v.as_str());
    match (own, manifest.get("extends").and_then(|v| v.as_str())) {
        (Some(v), _) => v.to_string(),
        (None, Some(base)) => phony_known(base, key),
        (None, None) => panic!("{}: no [known] {key}", path.display()),
    }
}

pub fn sha256(path: &Path) -> String {
    let out = Command::new("sha256sum").arg(path).output().expect("sha256sum");
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap_or("")
        .to_string()
}

/// Files in a directory (names), for "nothing written" checks.
pub fn entries(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|r| {
            r.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// Fail the test, clearly, unless `program` is on PATH.
pub fn require(program: &str, why: &str) {
    let found = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(program).is_file()))
        .unwrap_or(false);
    assert!(
        found,
        "{program} is not installed, and {why}: run scripts/setup-host.sh"
    );
}

/// The tail of a program's output, for failure messages.
pub fn tail(bytes: &[u8], lines: usize) -> String {
    let text = String::from_utf8_lossy(bytes);
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Run a command, echoing how long it took; returns its output whatever the exit code.
pub fn timed(cmd: &mut Command) -> Output {
    let line = format!("{cmd:?}");
    let t = Instant::now();
    let out = cmd.output().unwrap_or_else(|e| panic!("cannot start {line}: {e}"));
    eprintln!("[{:>6.1} s] {line} -> {}", t.elapsed().as_secs_f64(), out.status);
    out
}

/// `sh -c SCRIPT` in `dir`, which must succeed; its stdout.
pub fn sh(script: &str, dir: &Path) -> String {
    let out = Command::new("sh")
        .arg("-c")
        .arg(script)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{script}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn json(path: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))).unwrap()
}

pub fn yaml(path: &Path) -> serde_yaml::Value {
    serde_yaml::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// Every file below `dir` with its contents, for "nothing changed" checks.
pub fn snapshot(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut v: Vec<(String, Vec<u8>)> = walkdir::WalkDir::new(dir)
        .into_iter()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_file())
        .map(|e| {
            (
                e.path().strip_prefix(dir).unwrap().display().to_string(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect();
    v.sort();
    v
}

/// A small tmpfs mounted on `dir` (e.g. `size` "1m"), for "disk full" cases; unmounted
/// when dropped. Mounting needs root: without it the test fails and says so.
pub fn tmpfs(dir: &Path, size: &str) -> Tmpfs {
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
        .arg(dir)
        .status();
    assert!(
        mounted.is_ok_and(|s| s.success()),
        "cannot mount a {size} tmpfs on {} (the test needs root)",
        dir.display()
    );
    Tmpfs(dir.to_path_buf())
}

pub struct Tmpfs(PathBuf);

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

/// The environment that makes a guestfish started by a test use the backend and
/// accelerator goldify uses on this host (TCG where KVM does not work).
pub fn guestfs_env() -> Vec<(&'static str, &'static str)> {
    let mut env = vec![("LIBGUESTFS_BACKEND", "direct")];
    if !goldify::guest::launch::accel().is_kvm() {
        env.push(("LIBGUESTFS_BACKEND_SETTINGS", "force_tcg"));
    }
    env
}

/// SHA-256 and mtime of a file: proof that nothing wrote it.
pub fn fingerprint(path: &Path) -> (String, std::time::SystemTime) {
    let mtime = std::fs::metadata(path)
        .and_then(|m| m.modified())
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let hash = sha256(path);
    assert!(!hash.is_empty(), "sha256sum {} failed", path.display());
    (hash, mtime)
}

/// A scratch directory under target/, kept after the run for inspection, emptied first.
pub fn scratch(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("creating {}: {e}", dir.display()));
    dir
}

/// Read-only view of an image's files, through the same libguestfs guest goldify uses.
pub struct Image(pub GuestfsGuest);

pub fn open(path: &Path) -> Image {
    open_all(&[path])
}

/// The guest on several disks, in its order.
pub fn open_all(paths: &[&Path]) -> Image {
    let formats: Vec<&str> = paths
        .iter()
        .map(
            |p| match goldify::disk::detect::detect(p).expect("detecting the image") {
                goldify::disk::detect::Detected::Disk(f) => f.name(),
                _ => panic!("{p:?} is compressed"),
            },
        )
        .collect();
    let drives: Vec<Drive> = paths
        .iter()
        .zip(&formats)
        .map(|(p, f)| Drive { path: p, format: f })
        .collect();
    Image(
        GuestfsGuest::open(
            &drives,
            &OpenOptions {
                readonly: true,
                in_place: false,
                verbose: false,
                shown: &goldify::guest::guestfs::shown(paths),
                remove_hiberfile: false,
                keys: &[],
            },
        )
        .unwrap_or_else(|e| panic!("opening {paths:?}: {e:#}")),
    )
}

impl Image {
    pub fn exists(&self, p: &str) -> bool {
        self.0.lstat(p).unwrap_or_else(|e| panic!("lstat {p}: {e:#}")).is_some()
    }

    pub fn meta(&self, p: &str) -> Meta {
        self.0.lstat(p).unwrap().unwrap_or_else(|| panic!("{p} missing"))
    }

    pub fn kind(&self, p: &str) -> Option<Kind> {
        self.0.lstat(p).unwrap().map(|m| m.kind)
    }

    pub fn text(&self, p: &str) -> String {
        String::from_utf8_lossy(
            &self
                .0
                .read(p, 64 << 20)
                .unwrap_or_else(|e| panic!("reading {p}: {e:#}")),
        )
        .into_owned()
    }

    pub fn list(&self, p: &str) -> Vec<String> {
        self.0.list(p).unwrap_or_else(|e| panic!("listing {p}: {e:#}"))
    }

    pub fn link(&self, p: &str) -> String {
        self.0.readlink(p).unwrap()
    }

    pub fn guest(&self) -> &GuestfsGuest {
        &self.0
    }
}
