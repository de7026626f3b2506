//! inspect, doctor, interruption and multi-OS disks, driven through the binary.

mod common;
use common::*;
use std::path::Path;

#[test]
fn inspect_reports_os_filesystems_and_fstab() {
    let r = run(&[&"inspect", &"--json", &phony("debian")]);
    r.ok();
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["os"]["distro"], "debian");
    assert_eq!(v["os"]["family"], "debian");
    assert_eq!(v["os"]["init"], "systemd");
    assert_eq!(v["os"]["package_management"], "apt");
    let fstab = v["fstab"].as_array().unwrap();
    let root = fstab.iter().find(|e| e["mountpoint"] == "/").unwrap();
    assert_eq!(root["device"], "/dev/sda1");
    assert_eq!(root["stable"], false);
    assert!(v["filesystems"]
        .as_array()
        .unwrap()
        .iter()
        .any(|f| f["fstype"] == "ext4"));

    // AlmaLinux: libguestfs 1.48 says "redhat-based"; os-release says almalinux.
    let r = run(&[&"inspect", &"--json", &phony("rhel")]);
    let v: serde_json::Value = serde_json::from_str(&r.ok().stdout).unwrap();
    assert_eq!(v["os"]["distro"], "almalinux");
    assert_eq!(v["os"]["family"], "rhel");
    assert_eq!(v["os"]["selinux"], true);
}

#[test]
fn doctor_says_which_accelerator() {
    let r = run(&[&"doctor", &"--json"]);
    r.ok();
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["ok"], true);
    let accel = v["accel"]["name"].as_str().unwrap();
    assert!(accel == "kvm" || accel == "tcg");
    assert!(!v["accel"]["reason"].as_str().unwrap().is_empty());
    assert!(v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c["name"] == "appliance" && c["ok"] == true));
}

#[test]
fn interrupted_run_leaves_input_and_outdir_untouched() {
    let disk = phony("debian");
    let before = sha256(&disk);
    let out = tempfile::tempdir().unwrap();
    let mut child = goldify()
        .arg("run")
        .arg(recipe("debian"))
        .arg(&disk)
        .arg("-o")
        .arg(out.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Mid-launch or mid-steps: either way the run must stop cleanly.
    std::thread::sleep(std::time::Duration::from_secs(6));
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let status = child.wait().unwrap();
    let mut stderr = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut stderr).unwrap();
    assert_eq!(status.code(), Some(130), "{stderr}");
    assert!(stderr.contains("interrupted"), "{stderr}");
    assert!(entries(out.path()).is_empty(), "{:?}", entries(out.path()));
    assert_eq!(sha256(&disk), before);
}

#[test]
fn several_operating_systems_exit_3() {
    let dir = tempfile::tempdir().unwrap();
    let disk = dir.path().join("two-os.img");
    // Two root filesystems, each looking like its own Linux.
    let mut script =
        String::from("part-init /dev/sda mbr\npart-add /dev/sda p 2048 131071\npart-add /dev/sda p 131072 -2048\n");
    for (i, name) in [(1, "debian"), (2, "alpine")] {
        script.push_str(&format!(
            "mkfs ext4 /dev/sda{i}\nmount /dev/sda{i} /\nmkdir-p /etc\nmkdir-p /usr/bin\nmkdir-p /bin\n\
             write /etc/os-release \"ID={name}\\nVERSION_ID=1\\n\"\nwrite /etc/fstab \"/dev/sda{i} / ext4 defaults 0 1\\n\"\n\
             upload /usr/bin/ls /bin/ls\nupload /usr/bin/ls /usr/bin/ls\numount /\n"
        ));
    }
    let out = std::process::Command::new("guestfish")
        .envs(guestfs_env())
        .args(["-N", &format!("{}=disk:128M", disk.display())])
        .arg("--")
        .stdin(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            std::io::Write::write_all(c.stdin.as_mut().unwrap(), script.as_bytes())?;
            drop(c.stdin.take());
            c.wait_with_output()
        })
        .unwrap();
    assert!(out.status.success());
    let o = tempfile::tempdir().unwrap();
    let r = run(&[&"run", &recipe("generic"), &disk, &"-o", &o.path()]);
    assert_eq!(r.code, 3, "{}", r.stderr);
    let line = r.error_line();
    // The message itself names the user's disk, never the temporary overlay.
    assert!(line.contains("two-os.img holds several operating systems"), "{line}");
    assert!(!line.contains(".goldify-work") && !line.contains("overlay"), "{line}");
    assert!(entries(o.path()).is_empty());
    let _ = Path::new("");
}

/// `-n --operations`: the report names every step the option left out, and a step the
/// recipe lacks runs (here in a dry run: the disk and OUTDIR stay untouched).
#[test]
fn operations_decide_which_steps_run_and_the_report_says_so() {
    let disk = phony("debian");
    let before = sha256(&disk);
    let out = tempfile::tempdir().unwrap();
    // Saved outside recipes/: `extends:` finds the shipped one through the search path.
    let dir = tempfile::tempdir().unwrap();
    let mine = dir.path().join("mine.yaml");
    std::fs::write(&mine, "extends: generic.yaml\nskip: [shell-history]\n").unwrap();
    let r = run(&[
        &"run",
        &mine,
        &disk,
        &"-o",
        &out.path(),
        &"-n",
        &"--json",
        &"--operations",
        &"defaults,-logs,-tmp-files",
        &"--enable",
        &"shell-history",
    ]);
    let v: serde_json::Value = serde_json::from_str(&r.ok().stdout).unwrap();
    assert_eq!(v["dry_run"], true);
    let steps = v["steps"].as_array().unwrap();
    let skipped = |name: &str| {
        steps
            .iter()
            .find(|s| s["step"] == name)
            .unwrap_or_else(|| panic!("{name} not in the report: {v}"))["skipped"]
            .as_str()
            .map(str::to_string)
    };
    assert_eq!(skipped("logs").as_deref(), Some("left out by --operations"));
    assert_eq!(skipped("tmp-files").as_deref(), Some("left out by --operations"));
    assert_eq!(skipped("machine-id"), None);
    // Not in the recipe (skipped from generic.yaml): added by --enable, and run.
    assert_eq!(skipped("shell-history"), None);
    assert!(entries(out.path()).is_empty());
    assert_eq!(sha256(&disk), before);
}
