//! Shared helpers for the integration tests: the built binary, fixture images from
//! vm-fixtures/ (built once per machine, cached outside the repo), and read-only access to
//! an image's files through goldify's own libguestfs guest.
#![allow(dead_code)]

use goldify::guest::guestfs::{GuestfsGuest, OpenOptions};
use goldify::guest::{Guest, Kind, Meta};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Mutex, OnceLock};

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn recipe(name: &str) -> PathBuf {
    repo().join("recipes").join(format!("{name}.yaml"))
}

pub fn goldify() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_goldify"));
    c.env_remove("RUST_LOG");
    c
}

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

pub fn run(args: &[&dyn AsRef<std::ffi::OsStr>]) -> Run {
    let out: Output = goldify()
        .args(args.iter().map(|a| a.as_ref()))
        .output()
        .expect("running goldify");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

impl Run {
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

/// A fixture image built by a vm-fixtures script (cached: instant after the first build).
/// Tests must never write to it; goldify opens it read-only unless --in-place.
pub fn fixture(script: &str, args: &[&str]) -> PathBuf {
    let key = format!("{script} {}", args.join(" "));
    let map = FIXTURES.get_or_init(Default::default);
    if let Some(p) = map.lock().unwrap().get(&key) {
        return p.clone();
    }
    let out = Command::new("bash")
        .arg(repo().join("vm-fixtures").join(script))
        .args(args)
        .stderr(std::process::Stdio::inherit())
        .output()
        .unwrap_or_else(|e| panic!("cannot run vm-fixtures/{script}: {e}"));
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

pub fn phony(name: &str) -> PathBuf {
    fixture("phony.sh", &[name])
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

/// Read-only view of an image's files, through the same libguestfs guest goldify uses.
pub struct Image(pub GuestfsGuest);

pub fn open(path: &Path) -> Image {
    let format = goldify::disk::detect::detect(path).expect("detecting the image");
    let goldify::disk::detect::Detected::Disk(format) = format else {
        panic!("{path:?} is compressed")
    };
    Image(
        GuestfsGuest::open(
            path,
            &OpenOptions {
                format: format.name(),
                readonly: true,
                in_place: false,
                verbose: false,
            },
        )
        .unwrap_or_else(|e| panic!("opening {path:?}: {e:#}")),
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
