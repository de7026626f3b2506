//! Bad input: each case gets one clear error line naming the file or option, the documented
//! exit code, and nothing written or lost.

mod common;
use common::*;
use std::io::Write;
use std::path::Path;

fn write(dir: &Path, name: &str, bytes: &[u8]) -> std::path::PathBuf {
    let p = dir.join(name);
    std::fs::File::create(&p).unwrap().write_all(bytes).unwrap();
    p
}

/// Runs goldify on `recipe`/`disk` into a fresh outdir and checks the common promises.
fn refused(recipe: &Path, disk: &Path, code: i32, mentions: &[&str]) -> String {
    let out = tempfile::tempdir().unwrap();
    let before = disk.exists().then(|| sha256(disk));
    let r = run(&[&"run", &recipe, &disk, &"-o", &out.path()]);
    assert_eq!(r.code, code, "stdout:\n{}\nstderr:\n{}", r.stdout, r.stderr);
    let line = r.error_line();
    for m in mentions {
        assert!(line.contains(m), "error line {line:?} should mention {m:?}");
    }
    assert!(
        entries(out.path()).is_empty(),
        "outdir not empty: {:?}",
        entries(out.path())
    );
    if let Some(before) = before {
        assert_eq!(sha256(disk), before, "input changed");
    }
    line
}

#[test]
fn malformed_recipes_exit_2_with_position() {
    let d = tempfile::tempdir().unwrap();
    let disk = write(d.path(), "disk.img", &[0u8; 4096]);
    let r = write(d.path(), "broken.yaml", b"name: x\nsteps: [\n");
    refused(&r, &disk, 2, &["broken.yaml:"]);
    let r = write(d.path(), "typo.yaml", b"name: x\nsteps:\n  - machine-idd: {}\n");
    refused(
        &r,
        &disk,
        2,
        &["typo.yaml:3:", "machine-idd", "did you mean `machine-id`"],
    );
    let r = write(d.path(), "opt.yaml", b"steps:\n  - logs: {mdoe: delete}\n");
    refused(&r, &disk, 2, &["opt.yaml:2:", "mdoe", "did you mean `mode`"]);
    let r = write(d.path(), "type.yaml", b"steps:\n  - fstab: {policy: [fix]}\n");
    refused(&r, &disk, 2, &["type.yaml:2:"]);
    let r = write(d.path(), "binary.yaml", &[0xff, 0xfe, 0x00, 0x41]);
    refused(&r, &disk, 2, &["binary.yaml"]);
    refused(&d.path().join("missing.yaml"), &disk, 2, &["missing.yaml"]);
}

#[test]
fn check_validates_without_a_disk() {
    for name in ["base", "debian", "ubuntu", "rhel", "alpine", "generic"] {
        run(&[&"check", &recipe(name)]).ok();
    }
    let d = tempfile::tempdir().unwrap();
    let r = write(
        d.path(),
        "w.yaml",
        b"steps:\n  - fstab: {}\n    when: {family: debain}\n",
    );
    let out = run(&[&"check", &r]);
    assert_eq!(out.code, 2);
    assert!(out.error_line().contains("w.yaml:3:"), "{}", out.stderr);
}

#[test]
fn steps_lists_the_registry() {
    let out = run(&[&"steps", &"--json"]);
    out.ok();
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let names: Vec<&str> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    for n in goldify::steps::REGISTRY.iter().map(|i| i.name) {
        assert!(names.contains(&n), "{n} missing from `goldify steps --json`");
    }
    for required in [
        "machine-id",
        "ssh-host-keys",
        "logs",
        "nic-configs",
        "fstab",
        "cloud-init-clean",
        "package-cache",
        "tmp-files",
        "shell-history",
        "hostname",
        "passwd-backups",
        "selinux-relabel",
        "fstrim",
        "delete",
        "truncate",
        "write",
        "edit",
        "mkdir",
        "chmod",
        "symlink",
        "run",
        "firstboot",
    ] {
        assert!(names.contains(&required), "{required} is not a step");
    }
    let text = run(&[&"steps"]);
    assert!(text.ok().stdout.contains("uninitialized|empty|remove"));
}

#[test]
fn missing_corrupt_and_encrypted_disks_exit_3() {
    let d = tempfile::tempdir().unwrap();
    let recipe = recipe("debian");
    refused(&recipe, &d.path().join("nope.qcow2"), 3, &["nope.qcow2"]);
    let mut corrupt = b"QFI\xfb\x00\x00\x00\x03".to_vec();
    corrupt.extend(std::iter::repeat(0xa5).take(4096));
    let c = write(d.path(), "corrupt.qcow2", &corrupt);
    refused(&recipe, &c, 3, &["corrupt.qcow2"]);
    let mut luks = b"LUKS\xba\xbe\x00\x02".to_vec();
    luks.resize(1 << 20, 0);
    let l = write(d.path(), "secret.img", &luks);
    refused(&recipe, &l, 3, &["secret.img", "encrypted"]);
    let e = write(d.path(), "empty.img", b"");
    refused(&recipe, &e, 3, &["empty.img"]);
    let trunc = write(d.path(), "trunc.xz", b"\xfd7zXZ\x00\x00\x04garbage");
    refused(&recipe, &trunc, 3, &["trunc.xz"]);
}

#[test]
fn unwritable_outdir_exits_5() {
    let disk = phony("debian");
    let r = run(&[&"run", &recipe("debian"), &disk, &"-o", &"/proc/goldify-out"]);
    assert_eq!(r.code, 5, "{}", r.stderr);
    assert!(r.error_line().contains("/proc/goldify-out"));
    let d = tempfile::tempdir().unwrap();
    let file = write(d.path(), "afile", b"x");
    let r = run(&[&"run", &recipe("debian"), &disk, &"-o", &file.join("sub")]);
    assert_eq!(r.code, 5, "{}", r.stderr);
    assert!(r.error_line().contains("afile"));
}

#[test]
fn disk_without_an_os_exits_3() {
    let d = tempfile::tempdir().unwrap();
    // A partitioned disk with an empty filesystem: libguestfs finds no OS.
    let disk = d.path().join("blank.img");
    let st = std::process::Command::new("guestfish")
        .envs(guestfs_env())
        .args(["-N", &format!("{}=fs:ext4:64M", disk.display()), "exit"])
        .status()
        .unwrap();
    assert!(st.success());
    refused(&recipe("debian"), &disk, 3, &["no operating system found", "blank.img"]);
}

#[test]
fn full_output_disk_exits_5_and_leaves_nothing() {
    let disk = phony("debian");
    let mnt = tempfile::tempdir().unwrap();
    let _tmpfs = tmpfs(mnt.path(), "1m");
    let before = sha256(&disk);
    let r = run(&[&"run", &recipe("debian"), &disk, &"-o", &mnt.path()]);
    assert_eq!(r.code, 5, "stdout:\n{}\nstderr:\n{}", r.stdout, r.stderr);
    r.error_line();
    assert!(entries(mnt.path()).is_empty(), "left behind: {:?}", entries(mnt.path()));
    assert_eq!(sha256(&disk), before);
}

#[test]
fn in_place_and_dry_run_conflict() {
    let r = run(&[&"run", &recipe("debian"), &"x.img", &"--in-place", &"--dry-run"]);
    assert_eq!(r.code, 2);
}

#[test]
fn full_work_filesystem_stops_the_appliance_instead_of_hanging() {
    // qemu would pause on ENOSPC and libguestfs wait forever; goldify watches the space.
    let disk = phony("debian");
    let mnt = tempfile::tempdir().unwrap();
    let _tmpfs = tmpfs(mnt.path(), "24m");
    let out = tempfile::tempdir().unwrap();
    let o = goldify()
        .env("TMPDIR", mnt.path())
        .arg("run")
        .arg(recipe("debian"))
        .arg(&disk)
        .arg("-o")
        .arg(out.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(5), "{stderr}");
    assert!(stderr.contains("less than 32 MiB free"), "{stderr}");
    assert!(entries(out.path()).is_empty());
    // libguestfs keeps its appliance cache (.guestfs-UID) in TMPDIR; goldify's own work
    // files must be gone.
    let left: Vec<String> = entries(mnt.path())
        .into_iter()
        .filter(|e| !e.starts_with(".guestfs-"))
        .collect();
    assert!(left.is_empty(), "work files left: {left:?}");
}

/// Publish targets are records: `goldify targets` lists every one, `--publish` takes only
/// their names, and a bad setting is a recipe error with file:line:col like any other.
#[test]
fn targets_are_listed_and_their_settings_checked_with_position() {
    let out = run(&[&"targets", &"--json"]);
    out.ok();
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let names: Vec<&str> = v.as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        ["vmmanager", "vmmanager-lxd", "disk", "deckhouse", "vcluster", "checksums", "manifest"]
    );
    assert!(v.as_array().unwrap().iter().all(|t| t["options"].as_array().is_some_and(|o| !o.is_empty())));
    let human = run(&[&"targets"]);
    human.ok();
    assert!(human.stdout.contains("deckhouse\n") && human.stdout.contains("base_url: URL (default required)"));

    let d = tempfile::tempdir().unwrap();
    let disk = write(d.path(), "disk.img", &[0u8; 4096]);
    let r = write(d.path(), "r.yaml", b"steps: []\n");
    let bad = run(&[&"run", &r, &disk, &"-o", &d.path().join("out"), &"--publish", &"vmmanger"]);
    assert_eq!(bad.code, 2, "{}", bad.stderr);
    assert!(bad.stderr.contains("vmmanger") && bad.stderr.contains("vmmanager"), "{}", bad.stderr);
    assert!(!d.path().join("out").exists());

    let r = write(d.path(), "p.yaml", b"steps: []\npublish:\n  disk: {}\n  deckhouse: {kind: VirtualImage}\n");
    let out = run(&[&"check", &r]);
    assert_eq!(out.code, 2);
    let line = out.error_line();
    assert!(line.contains("p.yaml:4:") && line.contains("missing field `base_url`"), "{line}");
    let r = write(d.path(), "q.yaml", b"steps: []\npublish:\n  manifest: {file: metadata.json}\n");
    let out = run(&[&"check", &r]);
    assert_eq!(out.code, 2);
    assert!(out.error_line().contains("q.yaml:3:") && out.error_line().contains("reserved"), "{}", out.stderr);
    // `--publish` without the recipe's settings says where they go.
    let r = write(d.path(), "e.yaml", b"steps: []\n");
    let out = run(&[&"run", &r, &disk, &"-o", &d.path().join("out"), &"--publish", &"deckhouse"]);
    assert_eq!(out.code, 2);
    assert!(out.error_line().contains("--publish deckhouse: missing field `base_url`"), "{}", out.stderr);
    assert!(out.error_line().contains("`publish:` section"), "{}", out.stderr);
    assert!(!d.path().join("out").exists());
}
