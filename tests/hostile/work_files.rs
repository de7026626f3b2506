//! Hostile-input cases: work files. See main.rs.
//!
//! An unlucky operator (or a neighbour on the same host): the raw copies of an uncleaned
//! disk that goldify works on must be private (0600 in a 0700 directory, in TMPDIR, never
//! in OUTDIR or a repository a web server serves); a run killed with SIGKILL leaves them
//! behind, and the next run removes them. What a run may write (never over an input,
//! never twice to one file, `--in-place` only on a writable disk) is in outputs.rs.

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

pub(super) fn mkdir(p: &Path) -> PathBuf {
    std::fs::create_dir_all(p).unwrap();
    p.to_path_buf()
}

/// A recipe that extends debian.yaml and publishes `publish` (YAML, indented by two).
pub(super) fn recipe_in(dir: &Path, name: &str, publish: &str) -> PathBuf {
    let p = dir.join(name);
    let text = format!(
        "name: worktest\nextends: {}\npublish:\n{publish}",
        recipe("debian").display()
    );
    std::fs::write(&p, text).unwrap();
    p
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
