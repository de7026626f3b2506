//! Hostile-input cases: work files and outputs. See main.rs.
//!
//! An unlucky operator (or a neighbour on the same host): the raw copies of an uncleaned
//! disk that goldify works on must be private (0600 in a 0700 directory, in TMPDIR, never
//! in OUTDIR or a repository a web server serves); a run killed with SIGKILL leaves them
//! behind, and the next run removes them; no artifact of any target may replace the
//! input disk, the recipe, or another artifact of the same run; `--in-place` on a disk
//! that cannot be written says so before the appliance starts.

use crate::common::*;
use std::collections::BTreeSet;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn mode(p: &Path) -> u32 {
    std::fs::symlink_metadata(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .mode()
        & 0o7777
}

fn mkdir(p: &Path) -> PathBuf {
    std::fs::create_dir_all(p).unwrap();
    p.to_path_buf()
}

/// A recipe that extends debian.yaml and publishes `publish` (YAML, indented by two).
fn recipe_in(dir: &Path, name: &str, publish: &str) -> PathBuf {
    let p = dir.join(name);
    let text = format!(
        "name: worktest\nextends: {}\npublish:\n{publish}",
        recipe("debian").display()
    );
    std::fs::write(&p, text).unwrap();
    p
}

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
        (
            "  checksums: {}\n  manifest: {file: SHA256SUMS}\n",
            "SHA256SUMS",
            ["`checksums`", "`manifest`"],
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

// ---------------------------------------------------------------------------------------
// Work files: private, in TMPDIR, swept after a SIGKILL
// ---------------------------------------------------------------------------------------

const WORK_PREFIX: &str = ".goldify-work-";

/// What a poll saw: path (relative to the polled directory), mode, file type.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Seen {
    path: String,
    mode: u32,
    kind: char,
}

fn sample(dir: &Path, skip: &[&str], into: &mut BTreeSet<Seen>) {
    let walk = walkdir::WalkDir::new(dir).min_depth(1).into_iter().filter_entry(|e| {
        let name = e.file_name().to_string_lossy();
        e.depth() > 1 || !skip.iter().any(|s| name == *s)
    });
    for e in walk.filter_map(|e| e.ok()) {
        // Entries come and go while the run works: what vanished is simply not seen.
        let Ok(m) = std::fs::symlink_metadata(e.path()) else {
            continue;
        };
        let ft = m.file_type();
        let kind = if ft.is_dir() {
            'd'
        } else if ft.is_file() {
            'f'
        } else if ft.is_symlink() {
            'l'
        } else if ft.is_fifo() {
            'p'
        } else if ft.is_socket() {
            's'
        } else {
            '?'
        };
        into.insert(Seen {
            path: e.path().strip_prefix(dir).unwrap().display().to_string(),
            mode: m.mode() & 0o7777,
            kind,
        });
    }
}

/// goldify with a private TMPDIR; libguestfs keeps using the appliance it has cached
/// (its cache directory follows TMPDIR unless LIBGUESTFS_CACHEDIR says otherwise).
fn goldify_with_tmpdir(tmp: &Path) -> Command {
    let cache = std::env::var_os("LIBGUESTFS_CACHEDIR")
        .or_else(|| std::env::var_os("TMPDIR"))
        .unwrap_or_else(|| "/var/tmp".into());
    let mut c = goldify();
    c.env("TMPDIR", tmp).env("LIBGUESTFS_CACHEDIR", cache);
    c
}

fn wait_for(child: &mut Child, what: &str, limit: Duration, mut found: impl FnMut() -> bool) {
    let t = Instant::now();
    while !found() {
        assert!(child.try_wait().unwrap().is_none(), "the run ended before {what}");
        assert!(t.elapsed() < limit, "no {what} after {limit:?}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn work_dirs(tmp: &Path) -> Vec<String> {
    entries(tmp)
        .into_iter()
        .filter(|n| n.starts_with(WORK_PREFIX))
        .collect()
}

/// One killed run and one normal run share the assertions (two appliance launches):
/// - every file goldify creates in TMPDIR while it works is 0600 in a 0700 directory, the
///   decompressed input and the head start's raw copy included, and nothing in TMPDIR
///   is readable by others, whatever the input's mode;
/// - the repository receives only what is published (and its own bookkeeping), with the
///   modes it always had;
/// - SIGKILL leaves work directories behind; the next run removes them (and says so in
///   one warning), but not a live run's, not another user's, not through a symlink.
#[test]
fn work_files_are_private_and_a_killed_runs_leftovers_are_swept() {
    let t = tempfile::tempdir().unwrap();
    let tmp = mkdir(&t.path().join("tmp"));
    let inputs = mkdir(&t.path().join("in"));
    // The user keeps the uncleaned disk private; no copy of it may be less so.
    let gz = inputs.join("used.qcow2.gz");
    let st = Command::new("sh")
        .arg("-c")
        .arg(format!("gzip -c '{}' > '{}'", phony("debian").display(), gz.display()))
        .status()
        .unwrap();
    assert!(st.success());
    let qcow = inputs.join("used.qcow2");
    std::fs::copy(phony("debian"), &qcow).unwrap();
    for p in [&gz, &qcow] {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let sums = (sha256(&gz), sha256(&qcow));

    // Run A, killed with SIGKILL while the appliance starts (libguestfs has made its own
    // temporary directory, which it does when it launches).
    let out_a = t.path().join("out-a");
    let mut a = goldify_with_tmpdir(&tmp)
        .arg("run")
        .arg(recipe("debian"))
        .arg(&gz)
        .arg("-o")
        .arg(&out_a)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut seen = BTreeSet::new();
    wait_for(&mut a, "the appliance launch", Duration::from_secs(300), || {
        sample(&tmp, &[], &mut seen);
        entries(&tmp).iter().any(|n| n.starts_with("libguestfs"))
    });
    std::thread::sleep(Duration::from_secs(1));
    sample(&tmp, &[], &mut seen);
    a.kill().unwrap(); // SIGKILL: no destructor runs
    a.wait().unwrap();

    let leftovers = work_dirs(&tmp);
    assert!(!leftovers.is_empty(), "a killed run leaves its work directory");
    let decompressed = seen
        .iter()
        .find(|s| s.path.starts_with(WORK_PREFIX) && s.path.ends_with("/input.raw"))
        .unwrap_or_else(|| panic!("the decompressed input was not in TMPDIR: {seen:#?}"));
    assert_eq!(decompressed.mode, 0o600, "the decompressed uncleaned input");
    for d in &leftovers {
        assert_eq!(mode(&tmp.join(d)), 0o700, "{d}");
        assert_eq!(mode(&tmp.join(d).join("lock")), 0o600, "{d}/lock");
    }
    assert!(entries(&out_a).is_empty(), "the killed run wrote into OUTDIR");

    // The killed run's helpers (libguestfs' recovery process) may hold the lock for a
    // moment: wait until it is free, as the next run would find it.
    for d in &leftovers {
        let f = std::fs::File::open(tmp.join(d).join("lock")).unwrap();
        let t0 = Instant::now();
        let mut f = Some(f);
        loop {
            match nix::fcntl::Flock::lock(f.take().unwrap(), nix::fcntl::FlockArg::LockExclusiveNonblock) {
                Ok(_unlocked_on_drop) => break,
                Err((back, _)) => f = Some(back),
            }
            assert!(t0.elapsed() < Duration::from_secs(60), "{d} stays locked");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    // What the sweep must leave alone: a live run's directory (its lock is held), one
    // that is a symlink, another user's, and one without a lock (not provably dead).
    let live = mkdir(&tmp.join(format!("{WORK_PREFIX}live")));
    std::fs::write(live.join("lock"), b"").unwrap();
    let _held = nix::fcntl::Flock::lock(
        std::fs::File::open(live.join("lock")).unwrap(),
        nix::fcntl::FlockArg::LockExclusiveNonblock,
    )
    .map_err(|(_, e)| e)
    .unwrap();
    let sentinel = mkdir(&t.path().join("sentinel"));
    std::fs::write(sentinel.join("lock"), b"").unwrap();
    std::fs::write(sentinel.join("keep"), b"keep").unwrap();
    std::os::unix::fs::symlink(&sentinel, tmp.join(format!("{WORK_PREFIX}link"))).unwrap();
    let foreign = mkdir(&tmp.join(format!("{WORK_PREFIX}foreign")));
    std::fs::write(foreign.join("lock"), b"").unwrap();
    for p in [&foreign.join("lock"), &foreign] {
        std::os::unix::fs::lchown(p, Some(65534), Some(65534)).unwrap();
    }
    let unlocked = mkdir(&tmp.join(format!("{WORK_PREFIX}nolock")));
    let planted = [
        format!("{WORK_PREFIX}live"),
        format!("{WORK_PREFIX}link"),
        format!("{WORK_PREFIX}foreign"),
        format!("{WORK_PREFIX}nolock"),
    ];

    // Run B: publishes a VMmanager archive (head start and raw export included) into a
    // repository that does not exist yet.
    let repo = t.path().join("repo");
    let recipe_b = recipe_in(t.path(), "b.yaml", "  vmmanager: {compression: {preset: 0}}\n");
    let err_b = t.path().join("b.stderr");
    let mut b = goldify_with_tmpdir(&tmp)
        .arg("run")
        .arg(&recipe_b)
        .arg(&qcow)
        .arg("-o")
        .arg(t.path().join("out-b"))
        .arg("--publish-dir")
        .arg(&repo)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&err_b).unwrap())
        .spawn()
        .unwrap();
    let skip: Vec<&str> = planted.iter().map(String::as_str).collect();
    let mut seen_b = BTreeSet::new();
    let mut in_repo = BTreeSet::new();
    let started = Instant::now();
    let status = loop {
        sample(&tmp, &skip, &mut seen_b);
        in_repo.extend(entries(&repo));
        if let Some(s) = b.try_wait().unwrap() {
            break s;
        }
        assert!(started.elapsed() < Duration::from_secs(600), "run B hangs");
        std::thread::sleep(Duration::from_millis(5));
    };
    let stderr = std::fs::read_to_string(&err_b).unwrap();
    assert_eq!(status.code(), Some(0), "{stderr}");

    // The sweep: the dead run's directories are gone, in one warning naming them.
    let warned: Vec<&str> = stderr.lines().filter(|l| l.contains("leftover")).collect();
    assert_eq!(warned.len(), 1, "{stderr}");
    assert!(warned[0].contains("WARN"), "{}", warned[0]);
    for d in &leftovers {
        assert!(!tmp.join(d).exists(), "{d} was not removed");
        assert!(warned[0].contains(d.as_str()), "{d} not in {}", warned[0]);
    }
    for p in &planted {
        assert!(std::fs::symlink_metadata(tmp.join(p)).is_ok(), "{p} was removed");
        assert!(!warned[0].contains(p.as_str()), "{}", warned[0]);
    }
    assert_eq!(std::fs::read(sentinel.join("keep")).unwrap(), b"keep");
    assert!(unlocked.exists() && live.join("lock").exists());
    let mut left = work_dirs(&tmp);
    left.retain(|d| !planted.contains(d));
    assert!(left.is_empty(), "run B left {left:?}");

    // Privacy, while both runs worked: goldify's directories 0700, everything in them
    // 0600, and nothing anywhere in TMPDIR readable by others (libguestfs makes its own
    // directory 0755 as root, for libvirt's qemu user; what it puts there is private).
    let all: Vec<&Seen> = seen.iter().chain(&seen_b).collect();
    for s in &all {
        if s.path.starts_with(WORK_PREFIX) {
            let want = if s.kind == 'd' { 0o700 } else { 0o600 };
            assert_eq!(s.mode, want, "{s:?}");
        } else if s.kind != 'd' && s.kind != 'l' {
            assert_eq!(s.mode & 0o077, 0, "{s:?} is readable by others");
        }
    }
    // The head start's raw copy of the uncleaned input and the overlay were in TMPDIR.
    for name in ["/input.raw", "/overlay.qcow2"] {
        assert!(
            seen_b
                .iter()
                .any(|s| s.path.starts_with(WORK_PREFIX) && s.path.ends_with(name)),
            "no {name} in TMPDIR during run B: {seen_b:#?}"
        );
    }

    // The repository only ever held what is published, with the modes it always had (and,
    // while the run staged files there, its temporary names and its run lock; the
    // manifest's lock stays, as the metadata's does).
    for n in &in_repo {
        assert!(
            [
                "debian-12.xz",
                "metadata.json",
                ".metadata.json.lock",
                "goldify-manifest.json",
                ".goldify-manifest.json.lock"
            ]
            .contains(&n.as_str())
                || n.starts_with(".goldify-tmp-")
                || (n.starts_with(".goldify-run-") && n.ends_with(".lock")),
            "{n} appeared in the repository: {in_repo:?}"
        );
    }
    assert_eq!(mode(&repo), 0o755);
    for f in ["debian-12.xz", "metadata.json", "goldify-manifest.json"] {
        assert_eq!(mode(&repo.join(f)), 0o644, "{f}");
    }
    assert_eq!(sums, (sha256(&gz), sha256(&qcow)), "an input changed");
}
