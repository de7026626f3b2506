//! Hostile-input cases: disks. See main.rs.
//!
//! A disk image's header can name other files: a qcow2 backing file or external data file,
//! the extents and the parent of a VMDK, or a network location (`nbd://…`, `json:{…}`).
//! qemu follows those names, and whatever it reads ends up in the golden disk. The images
//! here are built inside each test with qemu-img (or written by hand) so that they name a
//! sentinel file the test owns; every refusal must leave the sentinel, the input, OUTDIR
//! and TMPDIR as they were. Inputs that can block (FIFOs, devices) and a signal during a
//! blocking call are in blocking.rs, which runs in the same [`Lab`]: a process that hangs
//! is killed and fails the test.

use crate::common::*;
use std::ffi::OsStr;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A goldify process still running after this long has hung: it is killed and the test fails.
pub(super) const LIMIT: Duration = Duration::from_secs(20);
/// For the runs that do launch the appliance (a shared host under TCG can be slow).
const LAUNCH_LIMIT: Duration = Duration::from_secs(900);

/// A test's own directory: the sentinel a hostile header names, the disks, an empty
/// OUTDIR and the TMPDIR goldify works in.
pub(super) struct Lab {
    dir: tempfile::TempDir,
    secret: PathBuf,
    secret_sum: String,
}

impl Lab {
    pub(super) fn new() -> Lab {
        let dir = tempfile::tempdir().unwrap();
        let secret = dir.path().join("secret");
        // 1 MiB of recognisable bytes: what a golden disk must never contain.
        let line = b"HOST-SECRET goldify sentinel, never to be read into a disk\n";
        let bytes: Vec<u8> = line.iter().copied().cycle().take(1 << 20).collect();
        std::fs::write(&secret, bytes).unwrap();
        std::fs::create_dir(dir.path().join("out")).unwrap();
        std::fs::create_dir(dir.path().join("tmp")).unwrap();
        let secret_sum = sha256(&secret);
        Lab {
            dir,
            secret,
            secret_sum,
        }
    }

    pub(super) fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub(super) fn out(&self) -> PathBuf {
        self.path("out")
    }

    pub(super) fn qemu_img(&self, args: &[&str]) {
        let out = Command::new("qemu-img")
            .args(args)
            .current_dir(self.dir.path())
            .output()
            .expect("running qemu-img");
        assert!(
            out.status.success(),
            "qemu-img {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// A small qcow2 whose header names `backing` (of format `fmt`), written without
    /// opening it (`rebase -u`), as an attacker would.
    fn qcow2_backed_by(&self, name: &str, backing: &str, fmt: &str) -> PathBuf {
        self.qemu_img(&["create", "-q", "-f", "qcow2", name, "1M"]);
        self.qemu_img(&["rebase", "-q", "-u", "-b", backing, "-F", fmt, name]);
        self.path(name)
    }

    /// goldify `args` in TMPDIR=tmp/, which must have hung if it is still running after [`LIMIT`].
    pub(super) fn goldify(&self, args: &[&dyn AsRef<OsStr>]) -> Run {
        self.goldify_within(LIMIT, args)
    }

    fn goldify_within(&self, limit: Duration, args: &[&dyn AsRef<OsStr>]) -> Run {
        // libguestfs keeps its appliance cache under TMPDIR unless told where: keep the
        // usual one (a cold cache costs a minute, and it is not a goldify work file).
        let cache = std::env::var_os("LIBGUESTFS_CACHEDIR")
            .or_else(|| std::env::var_os("TMPDIR"))
            .unwrap_or_else(|| "/var/tmp".into());
        let mut c = goldify();
        c.env("TMPDIR", self.path("tmp"))
            .env("LIBGUESTFS_CACHEDIR", cache)
            .current_dir(self.dir.path())
            .args(args.iter().map(|a| a.as_ref()));
        start(c).finish(limit)
    }

    /// The promises of every refusal: the exit code, one error line naming what it must,
    /// OUTDIR and TMPDIR empty, the sentinel and `disk` unchanged.
    #[track_caller]
    pub(super) fn refused(&self, r: &Run, code: i32, mentions: &[&dyn AsRef<OsStr>]) -> String {
        assert_eq!(r.code, code, "stdout:\n{}\nstderr:\n{}", r.stdout, r.stderr);
        let line = r.error_line();
        for m in mentions {
            let m = m.as_ref().to_string_lossy();
            assert!(line.contains(m.as_ref()), "error line {line:?} should mention {m:?}");
        }
        assert!(entries(&self.out()).is_empty(), "OUTDIR: {:?}", entries(&self.out()));
        let tmp = self.path("tmp");
        assert!(entries(&tmp).is_empty(), "TMPDIR: {:?}", entries(&tmp));
        assert_eq!(sha256(&self.secret), self.secret_sum, "the sentinel changed");
        line
    }
}

/// A started goldify whose output is being collected.
pub(super) struct Running {
    child: Child,
    out: std::thread::JoinHandle<String>,
    err: std::thread::JoinHandle<String>,
}

pub(super) fn start(mut c: Command) -> Running {
    let mut child = c
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting goldify");
    let out = drain(child.stdout.take().unwrap());
    let err = drain(child.stderr.take().unwrap());
    Running { child, out, err }
}

fn drain(mut pipe: impl Read + Send + 'static) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = pipe.read_to_end(&mut s);
        String::from_utf8_lossy(&s).into_owned()
    })
}

impl Running {
    pub(super) fn pid(&self) -> nix::unistd::Pid {
        nix::unistd::Pid::from_raw(self.child.id() as i32)
    }

    /// Wait for the end, or kill the process after `limit` and fail: a hang must not
    /// stall the suite.
    pub(super) fn finish(mut self, limit: Duration) -> Run {
        let started = Instant::now();
        let status = loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                break s;
            }
            if started.elapsed() > limit {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!(
                    "goldify still ran after {} s and was killed; stderr:\n{}",
                    limit.as_secs(),
                    self.err.join().unwrap()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        Run {
            code: status.code().unwrap_or(-1),
            stdout: self.out.join().unwrap(),
            stderr: self.err.join().unwrap(),
        }
    }
}

pub(super) fn mkfifo(path: &Path) {
    nix::unistd::mkfifo(path, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
}

#[test]
fn backing_file_on_the_host_is_refused() {
    let lab = Lab::new();
    let secret = lab.secret.to_str().unwrap();
    // Absolute, relative (resolved beside the image), and through the `file:` protocol.
    for (name, backing) in [
        ("abs.qcow2", secret.to_string()),
        ("rel.qcow2", "secret".to_string()),
        ("proto.qcow2", format!("file:{secret}")),
    ] {
        let disk = lab.qcow2_backed_by(name, &backing, "raw");
        let before = sha256(&disk);
        let r = lab.goldify(&[&"run", &recipe("generic"), &disk, &"-o", &lab.out()]);
        let line = lab.refused(&r, 3, &[&disk, &backing, &"backing file"]);
        // A path can be allowed; a protocol never.
        let hint = if backing.starts_with("file:") {
            "never"
        } else {
            "--allow-backing"
        };
        assert!(line.contains(hint), "{line}");
        assert_eq!(sha256(&disk), before, "{name} changed");
    }
}

#[test]
fn vmdk_flat_extent_naming_a_host_file_is_refused() {
    let lab = Lab::new();
    let disk = lab.path("flat.vmdk");
    for target in [lab.secret.to_str().unwrap(), "secret"] {
        std::fs::write(
            &disk,
            format!(
                "# Disk DescriptorFile\nversion=1\nCID=fffffffe\nparentCID=ffffffff\n\
                 createType=\"monolithicFlat\"\n\n# Extent description\nRW 2048 FLAT \"{target}\" 0\n\n\
                 # The Disk Data Base\n#DDB\nddb.virtualHWVersion = \"4\"\nddb.adapterType = \"ide\"\n"
            ),
        )
        .unwrap();
        let r = lab.goldify(&[&"run", &recipe("generic"), &disk, &"-o", &lab.out()]);
        lab.refused(&r, 3, &[&disk, &target, &"extent"]);
    }
}

#[test]
fn vmdk_parent_is_refused() {
    let lab = Lab::new();
    // A monolithicSparse child whose embedded descriptor names its parent
    // (parentFileNameHint): qemu opens the parent as the backing file.
    lab.qemu_img(&["create", "-q", "-f", "vmdk", "parent.vmdk", "1M"]);
    lab.qemu_img(&[
        "create",
        "-q",
        "-f",
        "vmdk",
        "-b",
        "parent.vmdk",
        "-F",
        "vmdk",
        "child.vmdk",
    ]);
    let disk = lab.path("child.vmdk");
    let r = lab.goldify(&[&"run", &recipe("generic"), &disk, &"-o", &lab.out()]);
    lab.refused(&r, 3, &[&disk, &"parent.vmdk", &"backing file"]);
}

#[test]
fn qcow2_data_file_is_refused() {
    let lab = Lab::new();
    let secret = lab.secret.to_str().unwrap();
    // qemu-img create would write the data file: create over a scratch file, then rename
    // the reference in the header only (amend).
    lab.qemu_img(&[
        "create",
        "-q",
        "-f",
        "qcow2",
        "-o",
        "data_file=scratch,data_file_raw=on",
        "data.qcow2",
        "1M",
    ]);
    lab.qemu_img(&["amend", "-o", &format!("data_file={secret}"), "data.qcow2"]);
    std::fs::remove_file(lab.path("scratch")).unwrap();
    let disk = lab.path("data.qcow2");
    let r = lab.goldify(&[&"run", &recipe("generic"), &disk, &"-o", &lab.out()]);
    lab.refused(&r, 3, &[&disk, &secret, &"data file"]);
}

#[test]
fn network_and_json_backing_never_connect() {
    let lab = Lab::new();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let nbd = format!("nbd://127.0.0.1:{port}/x");
    let disk = lab.qcow2_backed_by("nbd.qcow2", &nbd, "raw");
    let r = lab.goldify(&[&"run", &recipe("generic"), &disk, &"-o", &lab.out()]);
    lab.refused(&r, 3, &[&disk, &nbd]);
    let r = lab.goldify(&[&"inspect", &disk]);
    lab.refused(&r, 3, &[&disk, &nbd]);
    match listener.accept() {
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
        other => panic!("something connected to the nbd:// backing file's address: {other:?}"),
    }

    let json = format!(
        r#"json:{{"driver":"raw","file":{{"driver":"file","filename":"{}"}}}}"#,
        lab.secret.display()
    );
    let disk = lab.qcow2_backed_by("json.qcow2", &json, "raw");
    let r = lab.goldify(&[&"run", &recipe("generic"), &disk, &"-o", &lab.out()]);
    lab.refused(&r, 3, &[&disk, &"json:"]);
}

#[test]
fn compressed_and_packer_inputs_are_checked_too() {
    let lab = Lab::new();
    let disk = lab.qcow2_backed_by("hostile.qcow2", lab.secret.to_str().unwrap(), "raw");
    let status = Command::new("gzip").arg("-k").arg(&disk).status().unwrap();
    assert!(status.success());
    let gz = lab.path("hostile.qcow2.gz");
    let r = lab.goldify(&[&"run", &recipe("generic"), &gz, &"-o", &lab.out()]);
    lab.refused(&r, 3, &[&gz, &lab.secret, &"backing file"]);

    let manifest = lab.path("packer-manifest.json");
    std::fs::write(
        &manifest,
        format!(
            r#"{{"builds": [{{"name": "vm", "builder_type": "qemu", "files": [{{"name": "{}", "size": 1}}],
                "packer_run_uuid": "r1"}}], "last_run_uuid": "r1"}}"#,
            disk.display()
        ),
    )
    .unwrap();
    let r = lab.goldify(&[
        &"run",
        &recipe("generic"),
        &"--packer-manifest",
        &manifest,
        &"-o",
        &lab.out(),
    ]);
    lab.refused(&r, 3, &[&disk, &lab.secret]);
}

#[test]
fn inspect_and_verify_refuse_hostile_disks() {
    let lab = Lab::new();
    let disk = lab.qcow2_backed_by("hostile.qcow2", lab.secret.to_str().unwrap(), "raw");
    let r = lab.goldify(&[&"inspect", &disk]);
    lab.refused(&r, 3, &[&disk, &lab.secret]);

    // The source is refused before anything starts, the template's appliance included.
    lab.qemu_img(&["create", "-q", "-f", "qcow2", "template.qcow2", "1M"]);
    let template = lab.path("template.qcow2");
    let r = lab.goldify(&[&"verify", &"--boot", &template, &"--source", &disk]);
    lab.refused(&r, 3, &[&disk, &lab.secret]);
    let r = lab.goldify(&[&"verify", &"--boot", &disk]);
    lab.refused(&r, 3, &[&disk, &lab.secret]);
}

#[test]
fn allow_backing_reads_a_chain_inside_the_directory() {
    let lab = Lab::new();
    let allowed = lab.path("allowed");
    std::fs::create_dir(&allowed).unwrap();
    let base = allowed.join("debian.qcow2");
    std::fs::copy(phony("debian"), &base).unwrap();
    let base_sum = sha256(&base);
    // A relative backing name inside the allowed directory, and the overlay outside it:
    // only what the disk names must be inside.
    lab.qemu_img(&[
        "create",
        "-q",
        "-f",
        "qcow2",
        "-b",
        "debian.qcow2",
        "-F",
        "qcow2",
        "allowed/mid.qcow2",
    ]);
    lab.qemu_img(&[
        "create",
        "-q",
        "-f",
        "qcow2",
        "-b",
        "allowed/mid.qcow2",
        "-F",
        "qcow2",
        "overlay.qcow2",
    ]);
    let overlay = lab.path("overlay.qcow2");
    let r = lab.goldify_within(
        LAUNCH_LIMIT,
        &[
            &"run",
            &recipe("generic"),
            &overlay,
            &"-o",
            &lab.out(),
            &"--allow-backing",
            &allowed,
            &"--json",
        ],
    );
    r.ok();
    // The guest was found through two backing links; the golden disk stands alone.
    let report: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(report["os"]["distro"], "debian", "{}", r.stdout);
    let golden = lab.out().join("overlay-golden.qcow2");
    let info = Command::new("qemu-img")
        .args(["info", "--output=json"])
        .arg(&golden)
        .output()
        .unwrap();
    let info: serde_json::Value = serde_json::from_slice(&info.stdout).unwrap();
    assert!(info.get("backing-filename").is_none(), "{info}");
    assert_eq!(sha256(&base), base_sum, "the backing file changed");
    assert!(entries(&lab.path("tmp")).is_empty(), "{:?}", entries(&lab.path("tmp")));
}

#[test]
fn allow_backing_refuses_links_that_leave_the_directory() {
    let lab = Lab::new();
    let allowed = lab.path("allowed");
    std::fs::create_dir(&allowed).unwrap();
    let secret = lab.secret.to_str().unwrap();

    // The first link already outside.
    let disk = lab.qcow2_backed_by("outside.qcow2", secret, "raw");
    let r = lab.goldify(&[
        &"run",
        &recipe("generic"),
        &disk,
        &"-o",
        &lab.out(),
        &"--allow-backing",
        &allowed,
    ]);
    lab.refused(&r, 3, &[&disk, &secret, &"outside"]);

    // The second link escapes: overlay -> allowed/mid.qcow2 -> the sentinel.
    lab.qcow2_backed_by("allowed/mid.qcow2", secret, "raw");
    let disk = lab.qcow2_backed_by("chain.qcow2", "allowed/mid.qcow2", "qcow2");
    let r = lab.goldify(&[
        &"run",
        &recipe("generic"),
        &disk,
        &"-o",
        &lab.out(),
        &"--allow-backing",
        &allowed,
    ]);
    lab.refused(&r, 3, &[&disk, &"mid.qcow2", &secret]);

    // A symlink inside the directory that leads out of it.
    std::os::unix::fs::symlink(&lab.secret, allowed.join("link.raw")).unwrap();
    let disk = lab.qcow2_backed_by("symlink.qcow2", "allowed/link.raw", "raw");
    let r = lab.goldify(&[
        &"run",
        &recipe("generic"),
        &disk,
        &"-o",
        &lab.out(),
        &"--allow-backing",
        &allowed,
    ]);
    lab.refused(&r, 3, &[&disk, &"link.raw", &secret]);

    // A FIFO inside the directory: refused before anything opens it.
    mkfifo(&allowed.join("pipe"));
    let disk = lab.qcow2_backed_by("pipe.qcow2", "allowed/pipe", "raw");
    let r = lab.goldify(&[
        &"run",
        &recipe("generic"),
        &disk,
        &"-o",
        &lab.out(),
        &"--allow-backing",
        &allowed,
    ]);
    lab.refused(&r, 3, &[&disk, &"allowed/pipe", &"FIFO"]);

    // Allowing does not open the network.
    let disk = lab.qcow2_backed_by("net.qcow2", "nbd://127.0.0.1:9/x", "raw");
    let r = lab.goldify(&[
        &"run",
        &recipe("generic"),
        &disk,
        &"-o",
        &lab.out(),
        &"--allow-backing",
        &allowed,
    ]);
    lab.refused(&r, 3, &[&disk, &"nbd://127.0.0.1:9/x"]);

    // The option itself must name a directory.
    let r = lab.goldify(&[&"inspect", &disk, &"--allow-backing", &"/dev/zero"]);
    lab.refused(&r, 2, &[&"--allow-backing", &"/dev/zero"]);
}
