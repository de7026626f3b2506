//! Hostile-input cases: outputs. See main.rs.
//!
//! No artifact of any target may replace the input disk, the recipe, or another artifact
//! of the same run, and every target takes only plain file names; `--in-place` on a disk
//! that cannot be written says so before the appliance starts. The helpers shared with the
//! work-file cases live in work_files.rs.

use super::work_files::{mkdir, recipe_in};
use crate::common::*;
use std::path::{Path, PathBuf};
use std::process::Command;

/// An input the refusals below must stop at before even reading it: if goldify got as far
/// as detecting its format, it would exit 3, not 2.
fn not_a_disk(path: &Path) -> PathBuf {
    std::fs::write(path, b"not a disk image\n").unwrap();
    path.to_path_buf()
}

/// Every path below `dir` (not following links), for "nothing else was created" checks.
fn tree(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = walkdir::WalkDir::new(dir)
        .min_depth(1)
        .into_iter()
        .filter_map(|e| e.ok())
        .map(|e| e.path().strip_prefix(dir).unwrap().display().to_string())
        .collect();
    v.sort();
    v
}

/// A run refused before anything started: the code, one error line that mentions every
/// one of `mentions`, and the line for further checks.
#[track_caller]
fn refused(r: &Run, code: i32, mentions: &[&str]) -> String {
    assert_eq!(r.code, code, "stderr:\n{}", r.stderr);
    let line = r.error_line();
    for m in mentions {
        assert!(line.contains(m), "{m:?} not in {line:?}");
    }
    assert!(
        !r.stderr.contains("appliance"),
        "refused only after the launch:\n{}",
        r.stderr
    );
    line
}

// ---------------------------------------------------------------------------------------
// Outputs never replace inputs
// ---------------------------------------------------------------------------------------

/// The case: `run d/vm-golden.qcow2 -o d --name vm-golden --publish disk`
/// replaced the input with the golden disk and exited 0.
#[test]
fn disk_target_never_replaces_its_input() {
    let t = tempfile::tempdir().unwrap();
    let d = mkdir(&t.path().join("d"));
    let input = d.join("vm-golden.qcow2");
    std::fs::copy(phony("debian"), &input).unwrap();
    let before = sha256(&input);
    let r = run(&[
        &"run",
        &recipe("debian"),
        &input,
        &"-o",
        &d,
        &"--name",
        &"vm-golden",
        &"--publish",
        &"disk",
    ]);
    let line = refused(&r, 2, &["`disk`", &input.display().to_string(), "input disk"]);
    assert!(
        line.contains(&d.join("vm-golden.qcow2").display().to_string()),
        "{line}"
    );
    assert_eq!(sha256(&input), before, "the input changed");
    assert_eq!(entries(&d), ["vm-golden.qcow2"]);
}

/// The same file under another name: a symbolic link or a hard link to the input, as
/// the plain output or as any target's artifact. Compared by device and inode.
#[test]
fn no_artifact_is_the_input_under_another_name() {
    // (what, extra arguments, the publish section, the artifact's name in the output
    // directory, how it is made the input)
    struct Case {
        what: &'static str,
        args: &'static [&'static str],
        publish: &'static str,
        artifact: &'static str,
        symlink: bool,
    }
    let cases = [
        Case {
            what: "plain output, hard link",
            args: &["--name", "hard", "--no-publish"],
            publish: "",
            artifact: "hard.qcow2",
            symlink: false,
        },
        Case {
            what: "plain output, symlink",
            args: &["--name", "soft", "--format", "raw", "--no-publish"],
            publish: "",
            artifact: "soft.img",
            symlink: true,
        },
        Case {
            what: "disk target, symlink",
            args: &["--name", "link", "--publish", "disk"],
            publish: "",
            artifact: "link.qcow2",
            symlink: true,
        },
        Case {
            what: "vmmanager archive, hard link",
            args: &["--name", "tpl"],
            publish: "  vmmanager: {}\n",
            artifact: "tpl.xz",
            symlink: false,
        },
        Case {
            what: "vmmanager-lxd archive, symlink",
            args: &["--name", "tpl"],
            publish: "  vmmanager-lxd: {}\n",
            artifact: "tpl.tar.gz",
            symlink: true,
        },
        Case {
            what: "deckhouse image, hard link",
            args: &["--name", "tpl"],
            publish: "  deckhouse: {base_url: 'https://img.example.com/', container_disk: false}\n",
            artifact: "tpl.qcow2",
            symlink: false,
        },
        Case {
            what: "deckhouse oci-archive, hard link",
            args: &["--name", "tpl"],
            publish: "  deckhouse: {base_url: 'https://img.example.com/'}\n",
            artifact: "tpl.oci.tar",
            symlink: false,
        },
        Case {
            what: "vcluster manifest, symlink",
            args: &["--name", "tpl"],
            publish: "  vcluster: {base_url: 'https://img.example.com/'}\n",
            artifact: "tpl.osimage.yaml",
            symlink: true,
        },
        Case {
            what: "checksums, hard link",
            args: &[],
            publish: "  disk: {name: x}\n  checksums: {algorithms: [sha512]}\n",
            artifact: "SHA512SUMS",
            symlink: false,
        },
        Case {
            what: "run manifest, symlink",
            args: &[],
            publish: "  disk: {name: x}\n  manifest: {file: run.json}\n",
            artifact: "run.json",
            symlink: true,
        },
    ];
    for c in cases {
        let t = tempfile::tempdir().unwrap();
        let input = not_a_disk(&mkdir(&t.path().join("in")).join("used.qcow2"));
        let out = mkdir(&t.path().join("out"));
        let artifact = out.join(c.artifact);
        if c.symlink {
            std::os::unix::fs::symlink(&input, &artifact).unwrap();
        } else {
            std::fs::hard_link(&input, &artifact).unwrap();
        }
        let recipe = if c.publish.is_empty() {
            recipe("debian")
        } else {
            recipe_in(t.path(), "r.yaml", c.publish)
        };
        let before = tree(t.path());
        let mut args: Vec<&dyn AsRef<std::ffi::OsStr>> = vec![&"run", &recipe, &input, &"-o", &out];
        for a in c.args {
            args.push(a);
        }
        let r = run(&args);
        assert_eq!(r.code, 2, "{}: {}", c.what, r.stderr);
        let line = r.error_line();
        for m in [input.display().to_string(), artifact.display().to_string()] {
            assert!(line.contains(&m), "{}: {m} not in {line}", c.what);
        }
        assert_eq!(tree(t.path()), before, "{}: something was created", c.what);
        assert_eq!(std::fs::read(&input).unwrap(), b"not a disk image\n", "{}", c.what);
    }
}

/// Without --name or a name setting, the archive is named after the guest
/// (`debian-12.xz`), known only once the appliance has opened it: re-cleaning a template
/// published in the same repository must not replace it (checked before anything is
/// written, exit 2). One appliance launch.
#[test]
fn archive_named_after_the_guest_never_replaces_its_input() {
    let t = tempfile::tempdir().unwrap();
    let repo = mkdir(&t.path().join("repo"));
    let input = repo.join("debian-12.xz");
    let st = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "xz -0 -c '{}' > '{}'",
            phony("debian").display(),
            input.display()
        ))
        .status()
        .unwrap();
    assert!(st.success());
    let before = sha256(&input);
    let recipe = recipe_in(t.path(), "r.yaml", "  vmmanager: {compression: {preset: 0}}\n");
    let r = run(&[&"run", &recipe, &input, &"-o", &repo]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    let line = r.error_line();
    assert!(
        line.contains("`vmmanager`") && line.contains(&input.display().to_string()) && line.contains("input disk"),
        "{line}"
    );
    assert_eq!(sha256(&input), before, "the input changed");
    assert_eq!(entries(&repo), ["debian-12.xz"]);
}

/// The recipe is an input too: a run manifest named like the recipe would replace it.
#[test]
fn no_artifact_replaces_the_recipe() {
    let t = tempfile::tempdir().unwrap();
    let input = not_a_disk(&t.path().join("used.qcow2"));
    let out = mkdir(&t.path().join("out"));
    let recipe = recipe_in(&out, "recipe.yaml", "  disk: {}\n  manifest: {file: recipe.yaml}\n");
    let text = std::fs::read(&recipe).unwrap();
    let r = run(&[&"run", &recipe, &input, &"-o", &out]);
    refused(&r, 2, &["`manifest`", "recipe", &recipe.display().to_string()]);
    assert_eq!(std::fs::read(&recipe).unwrap(), text);
    assert_eq!(entries(&out), ["recipe.yaml"]);
}

/// Two targets of one run writing the same file: the later rename would silently replace
/// the earlier artifact (which the checksums and the manifest still describe).
#[test]
fn no_two_artifacts_share_a_file() {
    for (publish, file, targets) in [
        (
            "  disk: {name: golden}\n  manifest: {file: golden.qcow2}\n",
            "golden.qcow2",
            ["`disk`", "`manifest`"],
        ),
        // (A manifest named SHA256SUMS is refused sooner, as a reserved name: repos.rs.)
        (
            "  deckhouse: {base_url: 'https://x/', name: b}\n  manifest: {file: b.oci.tar}\n",
            "b.oci.tar",
            ["`deckhouse`", "`manifest`"],
        ),
        (
            "  vcluster: {base_url: 'https://x/', name: a}\n  deckhouse: {base_url: 'https://x/', name: b}\n  manifest: {file: a.osimage.yaml}\n",
            "a.osimage.yaml",
            ["`vcluster`", "`manifest`"],
        ),
    ] {
        let t = tempfile::tempdir().unwrap();
        let input = not_a_disk(&t.path().join("used.qcow2"));
        let out = t.path().join("out");
        let recipe = recipe_in(t.path(), "r.yaml", publish);
        let r = run(&[&"run", &recipe, &input, &"-o", &out]);
        let path = out.join(file).display().to_string();
        refused(&r, 2, &[&path, targets[0], targets[1]]);
        assert!(!out.exists(), "{publish}: {out:?} was created");
    }
}

/// `--name ../escaped` wrote outside OUTDIR with the `disk` target; every target that
/// takes the name must refuse it, before anything is created.
#[test]
fn names_are_plain_file_names_for_every_target() {
    for (what, publish) in [
        ("plain output", ""),
        ("disk", "  disk: {}\n"),
        ("vmmanager", "  vmmanager: {}\n"),
        ("vmmanager-lxd", "  vmmanager-lxd: {}\n"),
        ("deckhouse", "  deckhouse: {base_url: 'https://img.example.com/'}\n"),
        ("vcluster", "  vcluster: {base_url: 'https://img.example.com/'}\n"),
    ] {
        for name in ["../escaped", ".hidden", "a/b", ""] {
            let t = tempfile::tempdir().unwrap();
            let input = not_a_disk(&t.path().join("used.qcow2"));
            let recipe = if publish.is_empty() {
                recipe("debian")
            } else {
                recipe_in(t.path(), "r.yaml", publish)
            };
            let before = tree(t.path());
            let out = t.path().join("a").join("out");
            let r = run(&[&"run", &recipe, &input, &"-o", &out, &"--name", &name]);
            assert_eq!(r.code, 2, "{what} --name {name:?}: {}", r.stderr);
            let line = r.error_line();
            assert!(
                line.contains("--name") && line.contains(&format!("{name:?}")),
                "{what}: {line}"
            );
            assert_eq!(tree(t.path()), before, "{what} --name {name:?}: something was created");
        }
    }
}

// ---------------------------------------------------------------------------------------
// --in-place on a disk that cannot be written
// ---------------------------------------------------------------------------------------

fn empty_qcow2(path: &Path) -> PathBuf {
    let st = Command::new("qemu-img")
        .args(["create", "-q", "-f", "qcow2"])
        .arg(path)
        .arg("16M")
        .status()
        .unwrap();
    assert!(st.success());
    path.to_path_buf()
}

/// A read-only filesystem (a tmpfs remounted read-only; tests run as root, who bypasses
/// mode bits, so a 0444 file would not do): exit 5 naming the disk, before the launch
/// (it was exit 7, "appliance failed to start").
#[test]
fn in_place_on_a_read_only_filesystem_exits_5_before_the_launch() {
    let t = tempfile::tempdir().unwrap();
    let mnt = mkdir(&t.path().join("ro"));
    let st = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=64m", "tmpfs"])
        .arg(&mnt)
        .status()
        .unwrap();
    assert!(st.success(), "this test mounts a tmpfs and needs root");
    struct Unmount(PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg(&self.0).status();
        }
    }
    let _u = Unmount(mnt.clone());
    let disk = empty_qcow2(&mnt.join("vm.qcow2"));
    let st = Command::new("mount")
        .args(["-o", "remount,ro"])
        .arg(&mnt)
        .status()
        .unwrap();
    assert!(st.success());
    let before = sha256(&disk);
    let r = run(&[&"run", &recipe("debian"), &disk, &"--in-place"]);
    refused(
        &r,
        5,
        &[&disk.display().to_string(), "--in-place", "Read-only file system"],
    );
    assert_eq!(sha256(&disk), before);
}

/// An immutable file (chattr +i): root cannot write it either.
#[test]
fn in_place_on_an_immutable_file_exits_5_before_the_launch() {
    let t = tempfile::tempdir().unwrap();
    let disk = empty_qcow2(&t.path().join("vm.qcow2"));
    let st = Command::new("chattr").arg("+i").arg(&disk).status().unwrap();
    assert!(st.success(), "chattr +i needs root and a filesystem with the attribute");
    struct Mutable(PathBuf);
    impl Drop for Mutable {
        fn drop(&mut self) {
            let _ = Command::new("chattr").arg("-i").arg(&self.0).status();
        }
    }
    let _m = Mutable(disk.clone());
    let before = sha256(&disk);
    let r = run(&[&"run", &recipe("debian"), &disk, &"--in-place"]);
    refused(&r, 5, &[&disk.display().to_string(), "--in-place", "not permitted"]);
    assert_eq!(sha256(&disk), before);
}
