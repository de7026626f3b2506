//! Hostile-input cases: inputs that can block. A FIFO or a device given as the disk, the
//! recipe or a Packer manifest, and a signal while goldify waits in a blocking call (a
//! repository's lock): a process that hangs is killed and fails the test. See main.rs;
//! the lab these cases run in is disks.rs's.

use super::disks::{mkfifo, start, Lab, LIMIT};
use crate::common::*;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

#[test]
fn fifos_and_devices_as_disks_never_hang() {
    let lab = Lab::new();
    let fifo = lab.path("disk.fifo");
    mkfifo(&fifo);
    let zero = Path::new("/dev/zero");
    for disk in [fifo.as_path(), zero] {
        let r = lab.goldify(&[&"run", &recipe("generic"), &disk, &"-o", &lab.out()]);
        lab.refused(&r, 3, &[&disk, &"not a regular file"]);
        let r = lab.goldify(&[&"inspect", &disk]);
        lab.refused(&r, 3, &[&disk]);
    }
    lab.qemu_img(&["create", "-q", "-f", "qcow2", "template.qcow2", "1M"]);
    let template = lab.path("template.qcow2");
    let r = lab.goldify(&[&"verify", &"--boot", &template, &"--source", &fifo]);
    lab.refused(&r, 3, &[&fifo]);
    let r = lab.goldify(&[&"verify", &"--boot", &zero]);
    lab.refused(&r, 3, &[&zero]);
}

#[test]
fn fifos_and_devices_as_recipes_never_hang() {
    let lab = Lab::new();
    lab.qemu_img(&["create", "-q", "-f", "qcow2", "disk.qcow2", "1M"]);
    let disk = lab.path("disk.qcow2");
    let fifo = lab.path("recipe.yaml");
    mkfifo(&fifo);
    for recipe in [fifo.as_path(), Path::new("/dev/zero")] {
        let r = lab.goldify(&[&"run", &recipe, &disk, &"-o", &lab.out()]);
        lab.refused(&r, 2, &[&recipe]);
        let r = lab.goldify(&[&"check", &recipe]);
        lab.refused(&r, 2, &[&recipe]);
    }
    for parent in [fifo.to_str().unwrap(), "/dev/zero"] {
        let child = lab.path("child.yaml");
        std::fs::write(&child, format!("extends: {parent}\nsteps: []\n")).unwrap();
        let r = lab.goldify(&[&"check", &child]);
        lab.refused(&r, 2, &[&child, &parent]);
    }
}

#[test]
fn fifos_and_devices_as_packer_manifests_never_hang() {
    let lab = Lab::new();
    let fifo = lab.path("manifest.json");
    mkfifo(&fifo);
    for manifest in [fifo.as_path(), Path::new("/dev/zero")] {
        let r = lab.goldify(&[
            &"run",
            &recipe("generic"),
            &"--packer-manifest",
            &manifest,
            &"-o",
            &lab.out(),
        ]);
        lab.refused(&r, 2, &[&manifest, &"not a regular file"]);
    }
    // A manifest naming a FIFO as the build's disk.
    let disk_fifo = lab.path("disk.fifo");
    mkfifo(&disk_fifo);
    let manifest = lab.path("named.json");
    std::fs::write(
        &manifest,
        format!(
            r#"{{"builds": [{{"name": "vm", "builder_type": "qemu", "files": [{{"name": "{}", "size": 1}}],
                "packer_run_uuid": "r1"}}], "last_run_uuid": "r1"}}"#,
            disk_fifo.display()
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
    lab.refused(&r, 3, &[&disk_fifo]);
}

#[test]
fn sigterm_ends_a_command_blocked_on_a_repository_lock() {
    let lab = Lab::new();
    let repo = lab.path("repo");
    std::fs::create_dir(&repo).unwrap();
    let metadata = repo.join("metadata.json");
    std::fs::write(
        &metadata,
        r#"{"type": "os", "os": [{"name": "x", "file_name": "x.xz", "checksum": "0"}]}"#,
    )
    .unwrap();
    let sum = sha256(&metadata);
    // Another process holds the repository's lock (as a concurrent publish would).
    let lock = repo.join(".metadata.json.lock");
    // Its own process group, so that the test can stop flock and its sleep together.
    let mut holder = Command::new("flock")
        .arg(&lock)
        .args(["sleep", "60"])
        .process_group(0)
        .spawn()
        .expect("util-linux flock");
    let held = Instant::now();
    while Command::new("flock")
        .args(["-n"])
        .arg(&lock)
        .arg("true")
        .status()
        .unwrap()
        .success()
    {
        assert!(held.elapsed() < Duration::from_secs(10), "flock never took the lock");
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut c = goldify();
    c.env("TMPDIR", lab.path("tmp"))
        .arg("repo")
        .arg("rm")
        .arg(&repo)
        .arg("x");
    let running = start(c);
    // Blocked in flock(2) for a second, then SIGTERM.
    std::thread::sleep(Duration::from_secs(1));
    let sent = Instant::now();
    nix::sys::signal::kill(running.pid(), nix::sys::signal::Signal::SIGTERM).unwrap();
    let r = running.finish(LIMIT);
    let took = sent.elapsed();
    assert_eq!(r.code, 130, "stderr:\n{}", r.stderr);
    assert!(r.error_line().contains("interrupted"), "{}", r.stderr);
    assert!(took < Duration::from_secs(10), "took {took:?} to end after SIGTERM");
    assert!(holder.try_wait().unwrap().is_none(), "the lock holder was touched");
    assert_eq!(sha256(&metadata), sum, "metadata.json changed");
    let group = nix::unistd::Pid::from_raw(-(holder.id() as i32));
    let _ = nix::sys::signal::kill(group, nix::sys::signal::Signal::SIGKILL);
    let _ = holder.wait();
}
