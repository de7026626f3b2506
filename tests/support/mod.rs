//! Helpers for the QEMU boot tier and the Packer test (tests/boot.rs, tests/packer.rs).
//!
//! A test that cannot run here (no QEMU, no libguestfs, a fixture that does not build)
//! fails and says why: it never passes without having checked anything.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Instant;

pub const GOLDIFY: &str = env!("CARGO_BIN_EXE_goldify");

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
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
pub fn run(cmd: &mut Command) -> Output {
    let line = format!("{cmd:?}");
    let t = Instant::now();
    let out = cmd.output().unwrap_or_else(|e| panic!("cannot start {line}: {e}"));
    eprintln!("[{:>6.1} s] {line} -> {}", t.elapsed().as_secs_f64(), out.status);
    out
}

pub fn goldify(args: &[&str]) -> Command {
    let mut c = Command::new(GOLDIFY);
    c.args(args);
    c
}

/// Build (or reuse) a fixture with one of the vm-fixtures/ scripts; returns the image path.
pub fn fixture(script: &str, args: &[&str]) -> PathBuf {
    let path = repo().join("vm-fixtures").join(script);
    assert!(path.exists(), "fixture script {} is missing", path.display());
    let out = run(Command::new("bash").arg(&path).args(args));
    assert!(
        out.status.success(),
        "fixture {script} {args:?} could not be built ({}); its last output:\n{}",
        out.status,
        tail(&out.stderr, 25)
    );
    let image = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    assert!(
        image.is_file(),
        "fixture {script} printed {image:?}, which is not a file"
    );
    image
}

/// SHA-256 and mtime of a file: proof that nothing wrote it.
pub fn fingerprint(path: &Path) -> (String, std::time::SystemTime) {
    let mtime = std::fs::metadata(path)
        .and_then(|m| m.modified())
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let out = run(Command::new("sha256sum").arg(path));
    assert!(out.status.success(), "sha256sum {} failed", path.display());
    let hash = String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string();
    (hash, mtime)
}

/// A scratch directory under target/, kept after the run for inspection, emptied first.
pub fn scratch(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("creating {}: {e}", dir.display()));
    dir
}
