//! Every step's effect, checked inside real disk images: goldify runs on the phony guests
//! from vm-fixtures/phony.sh (Debian, Ubuntu, AlmaLinux, LVM, hostile) and on the real
//! Debian 12 from vm-fixtures/debian12.sh; the golden disk is then opened read-only with
//! goldify's own libguestfs guest and inspected file by file.

mod common;
use common::*;
use goldify::guest::{Guest, Kind};
use std::path::{Path, PathBuf};

/// `goldify run RECIPE IMAGE -o tmp --json`; checks the input is unchanged.
fn golden(recipe_name: &str, image: &Path, extra: &[&str]) -> (tempfile::TempDir, PathBuf, serde_json::Value) {
    let out = tempfile::tempdir().unwrap();
    let before = sha256(image);
    let mut args: Vec<&dyn AsRef<std::ffi::OsStr>> = vec![&"run", &"--json", &"-o"];
    let r = recipe(recipe_name);
    let outp = out.path().to_path_buf();
    args.push(&outp);
    args.push(&"--name");
    args.push(&"golden");
    for e in extra {
        args.push(e);
    }
    args.push(&r);
    args.push(&image);
    let res = run(&args);
    res.ok();
    assert_eq!(sha256(image), before, "goldify modified its input {image:?}");
    let report: serde_json::Value = serde_json::from_str(&res.stdout).expect("--json report");
    let disk = out.path().join("golden.qcow2");
    assert!(disk.is_file(), "no golden disk in {:?}", entries(out.path()));
    (out, disk, report)
}

fn step<'a>(report: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    report["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["step"] == name)
        .unwrap_or_else(|| panic!("no step {name}"))
}

fn changed(report: &serde_json::Value, name: &str) -> Vec<String> {
    step(report, name)["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["path"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn debian_phony_every_step() {
    let (_out, disk, report) = golden("debian", &phony("debian"), &[]);
    let order: Vec<&str> = report["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["step"].as_str().unwrap())
        .collect();
    assert_eq!(
        &order[order.len() - 2..],
        ["machine-id", "fstrim"],
        "machine-id must be the last write"
    );

    let img = open(&disk);
    // machine-id: first-boot state, dbus link kept, seeds gone.
    assert_eq!(img.text("/etc/machine-id"), "uninitialized\n");
    assert_eq!(img.meta("/etc/machine-id").mode, 0o444);
    assert_eq!(img.link("/var/lib/dbus/machine-id"), "/etc/machine-id");
    assert!(!img.exists("/var/lib/systemd/random-seed"));
    // ssh-host-keys: keys gone, config kept, Debian's first-boot keygen unit enabled.
    let keys: Vec<String> = img
        .list("/etc/ssh")
        .into_iter()
        .filter(|n| n.starts_with("ssh_host_"))
        .collect();
    assert!(keys.is_empty(), "host keys left: {keys:?}");
    assert!(img.exists("/etc/ssh/sshd_config"));
    let unit = img.text("/etc/systemd/system/goldify-ssh-keygen.service");
    assert!(unit.contains("ExecStart=/usr/bin/ssh-keygen -A") && unit.contains("Before=ssh.service"));
    assert_eq!(
        img.link("/etc/systemd/system/multi-user.target.wants/goldify-ssh-keygen.service"),
        "/etc/systemd/system/goldify-ssh-keygen.service"
    );
    // logs: truncated in place with owner and mode kept; archives and old journal removed.
    for log in ["/var/log/syslog", "/var/log/auth.log"] {
        let m = img.meta(log);
        assert_eq!((m.size, m.mode, m.uid, m.gid), (0, 0o640, 0, 4), "{log}");
    }
    assert_eq!(img.meta("/var/log/wtmp").size, 0);
    assert!(!img.exists("/var/log/syslog.1") && !img.exists("/var/log/syslog.2.gz"));
    assert_eq!(img.kind("/var/log/journal"), Some(Kind::Dir));
    assert!(img.list("/var/log/journal").is_empty());
    // cloud-init-clean: nothing left of the instance, logs gone.
    assert!(
        img.list("/var/lib/cloud").is_empty(),
        "{:?}",
        img.list("/var/lib/cloud")
    );
    assert!(!img.exists("/var/log/cloud-init.log"));
    // nic-configs.
    let ifaces = img.text("/etc/network/interfaces");
    assert!(
        !ifaces.contains("hwaddress") && ifaces.contains("iface ens3 inet dhcp"),
        "{ifaces}"
    );
    let eth0 = img.text("/etc/network/interfaces.d/eth0");
    assert!(
        !eth0.contains("hwaddress") && eth0.contains("address 10.20.30.41/24"),
        "{eth0}"
    );
    assert!(!img.exists("/etc/udev/rules.d/70-persistent-net.rules"));
    assert!(img.list("/var/lib/dhcp").is_empty(), "{:?}", img.list("/var/lib/dhcp"));
    // fstab fixed to the UUID of the filesystem on /dev/sda1, layout and comments kept.
    let fstab = img.text("/etc/fstab");
    assert!(
        fstab.starts_with("# /etc/fstab: static file system information.\n"),
        "{fstab}"
    );
    assert!(
        fstab.contains(&format!(
            "UUID={}       /               ext4    errors=remount-ro 0",
            phony_known("debian", "root_uuid")
        )),
        "{fstab}"
    );
    assert!(fstab.contains("proc            /proc           proc"), "{fstab}");
    // package-cache, tmp-files.
    assert!(!img.list("/var/cache/apt/archives").iter().any(|n| n.ends_with(".deb")));
    assert_eq!(img.kind("/var/cache/apt/archives/partial"), Some(Kind::Dir));
    assert!(img.list("/tmp").is_empty() && img.list("/var/tmp").is_empty());
    assert_eq!(img.meta("/tmp").mode, 0o1777);
    // shell-history: histories gone, the rest of the homes kept.
    for h in [
        "/root/.bash_history",
        "/home/alice/.bash_history",
        "/home/alice/.python_history",
        "/home/alice/.viminfo",
    ] {
        assert!(!img.exists(h), "{h}");
    }
    assert!(img.exists("/home/alice/.bashrc") && img.exists("/home/alice/Documents/notes.txt"));
    // hostname.
    assert_eq!(img.text("/etc/hostname"), "localhost\n");
    assert!(!img.text("/etc/hosts").contains("127.0.1.1"));
    // passwd-backups, machine-state (~/.ssh).
    assert!(!img.exists("/etc/shadow-") && img.exists("/etc/shadow"));
    assert!(!img.exists("/root/.ssh") && !img.exists("/home/alice/.ssh"));
    // selinux-relabel does nothing without SELinux.
    assert!(!img.exists("/.autorelabel"));
    assert!(step(&report, "selinux-relabel")["skipped"].is_string());
    assert_eq!(changed(&report, "fstrim"), ["/"]);
}

#[test]
fn ubuntu_phony_netplan_networkd_nm_and_esp() {
    let (_out, disk, report) = golden("ubuntu", &phony("ubuntu"), &[]);
    let img = open(&disk);
    // cloud-init's generated netplan file goes (clean --configs network); the installer's
    // stays, unpinned from its MAC.
    assert!(!img.exists("/etc/netplan/50-cloud-init.yaml"));
    let np = img.text("/etc/netplan/00-installer-config.yaml");
    assert!(
        !np.contains("macaddress") && !np.contains("set-name") && np.contains("dhcp4: true"),
        "{np}"
    );
    let v: serde_yaml::Value = serde_yaml::from_str(&np).unwrap();
    assert_eq!(v["network"]["ethernets"]["enp1s0"]["match"]["name"], "e*");
    assert_eq!(img.meta("/etc/netplan/00-installer-config.yaml").mode, 0o600);
    // networkd: MAC-matched .link removed, .network matched by name instead.
    assert!(!img.exists("/etc/systemd/network/10-eth.link"));
    let nw = img.text("/etc/systemd/network/20-wired.network");
    assert!(
        nw.contains("[Match]\nName=en* eth*\n") && !nw.contains("MACAddress"),
        "{nw}"
    );
    assert!(nw.contains("DHCP=ipv4"));
    // Leases of networkd and NetworkManager; NM's per-machine secret.
    assert!(!img.exists("/var/lib/systemd/netif/leases/2"));
    let nm = img.list("/var/lib/NetworkManager");
    assert!(
        !nm.iter()
            .any(|n| n.ends_with(".lease") || n == "secret_key" || n == "timestamps"),
        "{nm:?}"
    );
    // Stale /run contents.
    assert!(img.list("/run").is_empty(), "{:?}", img.list("/run"));
    // The ESP was mounted and trimmed too; fstab already used UUIDs.
    let trimmed = changed(&report, "fstrim");
    assert!(
        trimmed.contains(&"/".to_string()) && trimmed.contains(&"/boot/efi".to_string()),
        "{trimmed:?}"
    );
    assert!(changed(&report, "fstab").is_empty());
    assert_eq!(img.text("/etc/machine-id"), "uninitialized\n");
    // Ubuntu's log owner is syslog:adm (104:4); kept.
    let m = img.meta("/var/log/syslog");
    assert_eq!((m.size, m.uid, m.gid), (0, 104, 4));
}

#[test]
fn rhel_phony_ifcfg_nm_selinux_dnf() {
    let (_out, disk, report) = golden("rhel", &phony("rhel"), &[]);
    let img = open(&disk);
    let ifcfg = img.text("/etc/sysconfig/network-scripts/ifcfg-eth0");
    assert!(!ifcfg.contains("HWADDR") && !ifcfg.contains("UUID="), "{ifcfg}");
    assert!(
        ifcfg.contains("DEVICE=eth0") || ifcfg.contains("DEVICE=\"eth0\""),
        "{ifcfg}"
    );
    let nm = img.text("/etc/NetworkManager/system-connections/eth0.nmconnection");
    assert!(!nm.contains("mac-address=") && !nm.contains("uuid="), "{nm}");
    assert_eq!(
        img.meta("/etc/NetworkManager/system-connections/eth0.nmconnection")
            .mode,
        0o600
    );
    assert!(img.list("/var/lib/dhclient").is_empty());
    assert!(!img.exists("/var/lib/dhcpcd/eth0.lease"));
    // SELinux is enforcing: relabel at first boot.
    assert!(img.exists("/.autorelabel"));
    assert!(step(&report, "selinux-relabel")["skipped"].is_null());
    // dnf/yum caches emptied, directories kept; dnf history removed by the rhel recipe.
    assert!(img.list("/var/cache/dnf").is_empty());
    assert!(!img.exists("/var/lib/dnf/history.sqlite"));
    // AlmaLinux 9 has systemd 252: "uninitialized" is understood.
    assert_eq!(img.text("/etc/machine-id"), "uninitialized\n");
    // No Debian keygen unit: sshd-keygen@.service regenerates keys on EL.
    assert!(!img.exists("/etc/systemd/system/goldify-ssh-keygen.service"));
}

#[test]
fn lvm_phony_swap_recreated_and_mapper_names_accepted() {
    let (_out, disk, report) = golden("base", &phony("lvm"), &[]);
    // /dev/mapper and /dev/vg/lv names are stable: fstab policy `fail` passes.
    assert!(changed(&report, "fstab").is_empty());
    let swap = changed(&report, "fstrim");
    assert!(swap.iter().any(|p| p.contains("swap")), "{swap:?}");
    let img = open(&disk);
    let fs = img.guest().filesystems().unwrap();
    let s = fs.iter().find(|f| f.fstype == "swap").expect("swap still there");
    assert_eq!(s.uuid, Some(phony_known("lvm", "swap_uuid")));
    assert_eq!(s.label.as_deref(), Some("swap0"));
    assert_eq!(img.text("/etc/machine-id"), "uninitialized\n");
    assert!(
        img.exists("/boot/grub/grub.cfg"),
        "/boot (a separate filesystem) was mounted"
    );
}

#[test]
fn hostile_phony_nothing_escapes() {
    let image = phony("hostile");
    let (_out, disk, report) = golden("debian", &image, &[]);
    let img = open(&disk);
    // /var/log -> /etc was not followed: /etc is intact.
    assert!(img.text("/etc/passwd").contains("root:x:0:0"));
    assert!(img.text("/etc/shadow").contains("phonymarker"));
    assert_eq!(img.kind("/var/log"), Some(Kind::Symlink));
    assert!(step(&report, "logs")["warnings"]
        .as_array()
        .is_some_and(|w| !w.is_empty()));
    // /var/tmp -> / was not emptied.
    assert!(img.exists("/etc/fstab") && img.exists("/home/alice/.bashrc"));
    // Links are removed as links, never followed.
    assert!(!img.exists("/root/.bash_history"));
    assert!(!img.exists("/tmp/escape") && !img.exists("/tmp/host-canary"));
    // machine-id was a link to /etc/shadow: replaced by a regular file.
    assert_eq!(img.kind("/etc/machine-id"), Some(Kind::File));
    assert_eq!(img.text("/etc/machine-id"), "uninitialized\n");
    // A directory named like a host key is removed like one.
    assert!(!img.exists("/etc/ssh/ssh_host_rsa_key"));
    // Names with newlines, spaces, leading dashes and a literal '*'.
    assert!(img.list("/tmp").is_empty(), "{:?}", img.list("/tmp"));
    assert!(!img.list("/var/cache/apt/archives").iter().any(|n| n.ends_with(".deb")));
    // The 10 MB hostname became a plain short one; the 100 GiB sparse file is untouched.
    assert_eq!(img.text("/etc/hostname"), "localhost\n");
    assert_eq!(img.meta("/var/cache/huge.bin").size, 107374182400);
    // The cloud instance link to /etc went as a link.
    assert!(!img.exists("/var/lib/cloud/instance"));
    // Nothing on the host was touched either.
    assert!(!Path::new("/tmp/host-canary").exists());
}

#[test]
fn dry_run_lists_changes_and_writes_nothing() {
    let image = phony("debian");
    let before = sha256(&image);
    let out = tempfile::tempdir().unwrap();
    let r = run(&[&"run", &recipe("debian"), &image, &"-o", &out.path(), &"--dry-run"]);
    r.ok();
    assert!(r.stdout.contains("would change"), "{}", r.stdout);
    assert!(r.stdout.contains("/etc/ssh/ssh_host_ed25519_key"), "{}", r.stdout);
    assert!(r.stdout.contains("/var/log/syslog"), "{}", r.stdout);
    assert!(entries(out.path()).is_empty());
    assert_eq!(sha256(&image), before);
}

#[test]
fn in_place_edits_only_the_given_disk() {
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("vm.qcow2");
    std::fs::copy(phony("debian"), &copy).unwrap();
    let before = sha256(&copy);
    let r = run(&[&"run", &recipe("debian"), &copy, &"--in-place"]);
    r.ok();
    assert_ne!(sha256(&copy), before);
    assert_eq!(entries(dir.path()), ["vm.qcow2"], "in-place writes no other file");
    let img = open(&copy);
    assert_eq!(img.text("/etc/machine-id"), "uninitialized\n");
}

#[test]
fn compressed_and_raw_inputs_detected_by_content() {
    let dir = tempfile::tempdir().unwrap();
    // A raw image whose name lies about its format, and an xz of a qcow2.
    let raw = dir.path().join("disk.vmdk");
    let st = std::process::Command::new("qemu-img")
        .args(["convert", "-O", "raw"])
        .arg(phony("debian"))
        .arg(&raw)
        .status()
        .unwrap();
    assert!(st.success());
    let xz = dir.path().join("debian.qcow2.xz");
    let st = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "xz -T0 -1 -c '{}' > '{}'",
            phony("debian").display(),
            xz.display()
        ))
        .status()
        .unwrap();
    assert!(st.success());
    let gz = dir.path().join("debian.img.gz");
    let st = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("gzip -1 -c '{}' > '{}'", raw.display(), gz.display()))
        .status()
        .unwrap();
    assert!(st.success());
    for input in [&raw, &xz, &gz] {
        let out = tempfile::tempdir().unwrap();
        let r = run(&[
            &"run",
            &recipe("debian"),
            input,
            &"-o",
            &out.path(),
            &"--json",
            &"--format",
            &"raw",
        ]);
        r.ok();
        let report: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
        assert_eq!(report["os"]["distro"], "debian");
        let produced = entries(out.path());
        assert_eq!(produced.len(), 1, "{produced:?}");
        assert!(produced[0].ends_with("-golden.img"), "{produced:?}");
    }
}

#[test]
fn real_debian_used_image() {
    let used = fixture("debian12.sh", &[]);
    let (_out, disk, report) = golden("debian", &used, &[]);
    assert_eq!(report["os"]["distro"], "debian");
    assert_eq!(report["os"]["cloud_init"], true);
    let img = open(&disk);
    assert_eq!(img.text("/etc/machine-id"), "uninitialized\n");
    assert!(!img.list("/etc/ssh").iter().any(|n| n.starts_with("ssh_host_")));
    assert!(img.exists("/etc/systemd/system/goldify-ssh-keygen.service"));
    assert!(img.list("/var/lib/cloud").is_empty());
    assert!(img.list("/var/lib/dhcp").is_empty());
    assert!(!img.exists("/root/.bash_history") && !img.exists("/home/alice/.bash_history"));
    assert!(img.list("/var/log/journal").is_empty());
    assert!(img.exists("/etc/fstab") && img.text("/etc/fstab").contains("UUID="));
}
