//! Hostile-input cases: repository upkeep (`repo rm`, `repo list`, `repo gc`). The
//! repository's own files are never anyone's target; a removal is all or nothing; gc
//! removes goldify's leftovers but never a live run's files. See main.rs.
//!
//! Only `a_live_run_is_never_collected` launches appliances (two, side by side); every other
//! case works on repositories built here and fails before anything long starts.

use super::repos::{publish_recipe, refused, snapshot, status_of, Repo};
use crate::common::*;
use serde_json::{json, Value};
use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

/// `repo rm` of an entry whose file_name is the index, a checksum list, the run manifest,
/// the lock or a path out of the repository: the entry goes, the file stays (a warning
/// says so), nothing outside changes.
#[test]
fn rm_never_removes_the_repository_own_files() {
    let r = Repo::new(&json!({"type": "os", "os": [
        {"name": "index", "file_name": "metadata.json"},
        {"name": "sums", "file_name": "SHA256SUMS"},
        {"name": "manifest", "file_name": "goldify-manifest.json"},
        {"name": "lock", "file_name": ".metadata.json.lock"},
        {"name": "escape", "file_name": "../outside/sentinel"},
        {"name": "good", "file_name": "good.xz"},
    ]}));
    r.file("SHA256SUMS", b"0  good.xz\n");
    r.file("goldify-manifest.json", b"{\"builds\": []}\n");
    r.file(".metadata.json.lock", b"");
    r.file("good.xz", b"archive");
    let outside = snapshot(&r.outside);
    for (entry, file) in [
        ("index", "metadata.json"),
        ("sums", "SHA256SUMS"),
        ("manifest", "goldify-manifest.json"),
        ("lock", ".metadata.json.lock"),
        ("escape", "../outside/sentinel"),
    ] {
        let kept = r.dir.join(file);
        let res = run(&[&"repo", &"rm", &r.dir, &entry]);
        assert_eq!(res.code, 0, "rm {entry}: {}", res.stderr);
        assert!(!res.stderr.contains("goldify: error:"), "{}", res.stderr);
        assert!(
            res.stderr.contains(file) && res.stderr.contains("kept"),
            "rm {entry} should say {file} was kept:\n{}",
            res.stderr
        );
        assert!(kept.exists(), "rm {entry} removed {file}");
        assert!(!r.names().contains(&entry.to_string()), "entry {entry} still listed");
    }
    assert_eq!(r.names(), ["good"]);
    assert_eq!(snapshot(&r.outside), outside);
    // Listing such an entry never opens or hashes the file it names.
    let r = Repo::new(&json!({"type": "os", "os": [
        {"name": "index", "file_name": "metadata.json", "archive_size_mib": 0},
        {"name": "up", "file_name": "../outside/sentinel", "archive_size_mib": 0},
    ]}));
    let res = run(&[&"repo", &"verify", &"--json", &r.dir]);
    assert_eq!(res.code, 6, "{}", res.stderr);
    let v: Value = serde_json::from_str(&res.stdout).unwrap();
    assert_eq!(status_of(&v, "metadata.json").as_deref(), Some("unsafe-name"));
    assert_eq!(status_of(&v, "../outside/sentinel").as_deref(), Some("unsafe-name"));
}

/// `repo rm` checks every removal first: an archive that is a directory or a symbolic link
/// leaves metadata.json and every file exactly as they were.
#[test]
fn rm_is_all_or_nothing() {
    let r = Repo::new(&json!({"type": "os", "os": [
        {"name": "dup", "file_name": "a.xz"},
        {"name": "dup", "file_name": "b.xz"},
        {"name": "other", "file_name": "c.xz"},
    ]}));
    r.file("a.xz", b"archive a");
    r.file("c.xz", b"archive c");
    std::fs::create_dir(r.dir.join("b.xz")).unwrap();
    std::fs::write(r.dir.join("b.xz/inside"), b"x").unwrap();
    // A repository in use has its lock file; taking the lock changes nothing.
    r.file(".metadata.json.lock", b"");
    let before = snapshot(&r.dir);
    let res = run(&[&"repo", &"rm", &r.dir, &"dup"]);
    refused(&res, 5, &["b.xz", "not a regular file"]);
    assert_eq!(snapshot(&r.dir), before, "rm changed the repository part way");

    std::fs::remove_dir_all(r.dir.join("b.xz")).unwrap();
    std::os::unix::fs::symlink(r.outside.join("sentinel"), r.dir.join("b.xz")).unwrap();
    let before = snapshot(&r.dir);
    let outside = snapshot(&r.outside);
    let res = run(&[&"repo", &"rm", &r.dir, &"dup"]);
    refused(&res, 5, &["b.xz", "symbolic link"]);
    assert_eq!(snapshot(&r.dir), before);
    assert_eq!(snapshot(&r.outside), outside);

    // Once the link is gone, the same command removes both entries and a.xz.
    std::fs::remove_file(r.dir.join("b.xz")).unwrap();
    let res = run(&[&"repo", &"rm", &r.dir, &"dup"]);
    res.ok();
    assert_eq!(r.names(), ["other"]);
    assert_eq!(
        entries(&r.dir),
        [".metadata.json.lock", "c.xz", "metadata.json"],
        "no temporary file left"
    );
    let mode = std::fs::metadata(r.dir.join("metadata.json"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o7777, 0o644, "the served index stays world-readable");
}

/// `repo list`: unreferenced files are a warning (exit 0) unless --strict (exit 6); a
/// directory that is not a repository is a usage error (exit 2), not an input-disk one.
#[test]
fn list_exit_codes() {
    let r = Repo::new(&json!({"type": "os", "os": [{"name": "a", "file_name": "a.xz"}]}));
    r.file("a.xz", b"x");
    r.file("index.html", b"<html>");
    let res = run(&[&"repo", &"list", &r.dir]);
    assert_eq!(res.code, 0, "{}\n{}", res.stdout, res.stderr);
    assert!(res.stderr.contains("index.html"), "a warning names it: {}", res.stderr);
    assert!(!res.stderr.contains("goldify: error:"));
    let res = run(&[&"repo", &"list", &"--strict", &r.dir]);
    assert_eq!(res.code, 6, "{}", res.stderr);
    let res = run(&[&"repo", &"verify", &"--strict", &r.dir]);
    assert_eq!(res.code, 6, "{}", res.stderr);

    let missing = r.root.join("no-such-dir");
    for cmd in ["list", "verify", "gc"] {
        let res = run(&[&"repo", &cmd, &missing]);
        refused(&res, 2, &["no-such-dir"]);
    }
    let res = run(&[&"repo", &"rm", &missing, &"a"]);
    refused(&res, 2, &["no-such-dir"]);
    assert!(!missing.exists(), "a command created the directory");
    let res = run(&[&"repo", &"list", &r.outside]);
    refused(&res, 2, &["outside", "metadata.json"]);
    assert_eq!(entries(&r.outside), ["sentinel"]);
}

/// `repo gc` removes goldify's leftover directories and dead runs' files (never through a
/// symbolic link) and reports everything it removed.
#[test]
fn gc_removes_leftovers_and_reports_them() {
    let r = Repo::new(&json!({"type": "os", "os": [{"name": "a", "file_name": "a.xz"}]}));
    r.file("a.xz", b"x");
    // An OCI layout left by a killed run (StagedDir), holding a link out of the repository.
    let staged_dir = r.dir.join(".goldify-tmp-Ab12Cd");
    std::fs::create_dir_all(staged_dir.join("blobs/sha256")).unwrap();
    std::fs::write(staged_dir.join("blobs/sha256/0a"), b"blob").unwrap();
    std::os::unix::fs::symlink(&r.outside, staged_dir.join("escape")).unwrap();
    // The publish scratch of an earlier version.
    let scratch = r.dir.join(".goldify-publish-Zz9Yy8");
    std::fs::create_dir(&scratch).unwrap();
    std::fs::write(scratch.join("golden.raw"), vec![0u8; 4096]).unwrap();
    // A killed run: its lock (no one holds it) and its staged archive.
    r.file(".goldify-run-0123456789ab.lock", b"");
    r.file(".goldify-tmp-0123456789ab-Qw3Er4", b"half an archive");
    r.file("stray.bin", b"x");
    let outside = snapshot(&r.outside);
    let res = run(&[&"repo", &"list", &"--json", &r.dir]);
    let v: Value = serde_json::from_str(&res.stdout).unwrap();
    for f in [
        ".goldify-tmp-Ab12Cd",
        ".goldify-publish-Zz9Yy8",
        ".goldify-tmp-0123456789ab-Qw3Er4",
        ".goldify-run-0123456789ab.lock",
    ] {
        assert_eq!(status_of(&v, f).as_deref(), Some("leftover"), "{f}: {}", res.stdout);
    }
    let res = run(&[&"repo", &"gc", &r.dir]);
    res.ok();
    for f in [
        ".goldify-tmp-Ab12Cd",
        ".goldify-publish-Zz9Yy8",
        ".goldify-tmp-0123456789ab-Qw3Er4",
        ".goldify-run-0123456789ab.lock",
        "stray.bin",
    ] {
        assert!(res.stdout.contains(f), "gc should report {f}:\n{}", res.stdout);
    }
    assert_eq!(entries(&r.dir), [".metadata.json.lock", "a.xz", "metadata.json"]);
    assert_eq!(snapshot(&r.outside), outside, "gc followed a link");
}

/// Two runs publish into one repository at once while `repo gc` runs: gc leaves the live
/// runs' staged archives alone, both entries land, and the run manifest keeps both builds.
#[test]
fn a_live_run_is_never_collected() {
    let img = phony("debian");
    let r = Repo::new(&json!({"type": "os", "os": []}));
    // Preset 9 on one thread keeps each run compressing long enough for gc to meet it.
    let recipe = publish_recipe(
        &r.root,
        &format!(
            "  vmmanager: {{repo: {0}, compression: {{preset: 9, threads: 1}}}}\n  manifest: {{dir: {0}}}\n",
            r.dir.display()
        ),
    );
    /// A run that is stopped (SIGTERM: goldify then stops its appliance) if the test fails
    /// before it ends.
    struct Running(Option<std::process::Child>);
    impl Drop for Running {
        fn drop(&mut self) {
            if let Some(mut c) = self.0.take() {
                let pid = nix::unistd::Pid::from_raw(c.id() as i32);
                let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
                let _ = c.wait();
            }
        }
    }
    let start = |name: &str| {
        let child = goldify()
            .arg("run")
            .arg(&recipe)
            .arg(&img)
            .arg("-o")
            .arg(r.root.join(format!("work-{name}")))
            .args(["--name", name])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        Running(Some(child))
    };
    let (a, b) = (start("a"), start("b"));
    // Wait for a staged archive with bytes in it.
    let started = Instant::now();
    let staged = loop {
        let found = std::fs::read_dir(&r.dir).unwrap().filter_map(|e| e.ok()).find(|e| {
            e.file_name().to_string_lossy().starts_with(".goldify-tmp-")
                && e.metadata().is_ok_and(|m| m.is_file() && m.len() > 0)
        });
        if let Some(e) = found {
            break e.path();
        }
        assert!(started.elapsed() < Duration::from_secs(900), "no run staged an archive");
        std::thread::sleep(Duration::from_millis(50));
    };
    let gc = run(&[&"repo", &"gc", &r.dir]);
    gc.ok();
    assert!(staged.exists(), "gc removed a live run's archive:\n{}", gc.stdout);
    assert!(gc.stdout.contains("in use"), "{}", gc.stdout);
    for (name, mut running) in [("a", a), ("b", b)] {
        let out = running.0.take().unwrap().wait_with_output().unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "run {name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let mut names = r.names();
    names.sort();
    assert_eq!(names, ["a", "b"]);
    let manifest: Value = serde_json::from_slice(&std::fs::read(r.dir.join("goldify-manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["builds"].as_array().unwrap().len(), 2, "a build was lost");
    // Nothing of the runs is left: no lock, no temporary file; the repository is clean.
    let res = run(&[&"repo", &"list", &"--strict", &r.dir]);
    assert_eq!(res.code, 0, "{}\n{}", res.stdout, res.stderr);
    assert_eq!(
        entries(&r.dir),
        [
            ".goldify-manifest.json.lock",
            ".metadata.json.lock",
            "a.xz",
            "b.xz",
            "goldify-manifest.json",
            "metadata.json"
        ]
    );
}
