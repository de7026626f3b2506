//! Unit tests of the pipeline's decisions: which steps run, which OS a recipe refuses,
//! the golden disk's names.

use crate::guest::memory::MemoryGuest;
use crate::guest::OsFacts;

#[test]
fn when_and_families_decide_which_steps_run() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("r.yaml");
    std::fs::write(
        &path,
        "steps:\n  - machine-id: {}\n  - delete: {paths: [/etc/a]}\n    when: {family: rhel}\n  - delete: {paths: [/etc/b]}\n    when: {distro: debian, version: '>= 12'}\n",
    )
    .unwrap();
    let recipe = crate::recipe::Recipe::load(&path).unwrap();
    let g = MemoryGuest::new(OsFacts::sample("debian"));
    g.file("/etc/a", b"a")
        .file("/etc/b", b"b")
        .file("/etc/machine-id", b"0123456789abcdef0123456789abcdef\n");
    let phase = crate::progress::phase("test");
    let mut reports = Vec::new();
    super::apply_steps(&recipe, &g, false, &phase, &mut reports).unwrap();
    assert!(g.exists("/etc/a") && !g.exists("/etc/b"));
    let names: Vec<&str> = reports.iter().map(|r| r.step.as_str()).collect();
    assert_eq!(names, ["delete", "delete", "machine-id"]);
    assert!(reports[0].skipped.as_deref().unwrap().contains("rhel"));
    assert_eq!(g.content("/etc/machine-id").unwrap(), b"uninitialized\n");
}

fn windows_facts() -> OsFacts {
    crate::guest::windows::facts(
        "/dev/sda1",
        vec![("/".into(), "/dev/sda1".into())],
        crate::guest::windows::Inspected {
            product_name: Some("Windows Server 2022 Standard".into()),
            major: Some(10),
            ..Default::default()
        },
    )
}

fn load(dir: &std::path::Path, name: &str, text: &str) -> crate::recipe::Recipe {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    crate::recipe::Recipe::load(&path).unwrap()
}

#[test]
fn a_recipe_of_linux_steps_refuses_windows_and_names_the_os() {
    let dir = tempfile::tempdir().unwrap();
    let disk = "/images/used-windows.qcow2";
    let linux = load(dir.path(), "generic.yaml", "steps:\n  - machine-id: {}\n  - logs: {}\n");
    let e = super::refuse_unsupported_os(&linux, &windows_facts(), disk).unwrap_err();
    assert_eq!(crate::error::exit_of(&e), crate::error::Exit::Input);
    let msg = format!("{e:#}");
    assert!(
        msg.starts_with("/images/used-windows.qcow2 is Windows (Windows Server 2022 Standard); "),
        "{msg}"
    );
    assert!(msg.ends_with("generic.yaml has only Linux steps"), "{msg}");
    // The same recipe on Linux, and a recipe with a step for every OS on Windows, run.
    super::refuse_unsupported_os(&linux, &OsFacts::sample("debian"), disk).unwrap();
    let mixed = load(
        dir.path(),
        "mixed.yaml",
        "steps:\n  - machine-id: {}\n  - delete: {paths: [/x]}\n",
    );
    super::refuse_unsupported_os(&mixed, &windows_facts(), disk).unwrap();
    // fstrim runs on every OS, but a Linux recipe that ends with it is still one.
    let trimmed = load(dir.path(), "base.yaml", "steps:\n  - machine-id: {}\n  - fstrim: {}\n");
    let e = super::refuse_unsupported_os(&trimmed, &windows_facts(), disk).unwrap_err();
    assert!(format!("{e:#}").ends_with("base.yaml has only Linux steps"), "{e:#}");
    let windows = load(
        dir.path(),
        "windows.yaml",
        "steps:\n  - windows-caches: {}\n  - fstrim: {}\n",
    );
    let e = super::refuse_unsupported_os(&windows, &OsFacts::sample("debian"), disk).unwrap_err();
    assert!(
        format!("{e:#}").ends_with("windows.yaml has no step for the debian family"),
        "{e:#}"
    );
    super::refuse_unsupported_os(&windows, &windows_facts(), disk).unwrap();
}

#[test]
fn on_windows_linux_steps_are_skipped_and_when_family_windows_holds() {
    let dir = tempfile::tempdir().unwrap();
    let recipe = load(
        dir.path(),
        "w.yaml",
        "steps:\n  - machine-id: {}\n  - delete: {paths: [\"/windows/TEMP/*.LOG\"]}\n    when: {family: windows}\n  - delete: {paths: [/pagefile.sys]}\n    when: {family: debian}\n",
    );
    let g = MemoryGuest::new(windows_facts());
    g.file("/Windows/Temp/setup.log", b"x")
        .file("/Windows/Temp/keep.txt", b"x")
        .file("/pagefile.sys", b"x");
    let phase = crate::progress::phase("test");
    let mut reports = Vec::new();
    super::apply_steps(&recipe, &g, false, &phase, &mut reports).unwrap();
    // Directories and the glob match without regard to case on Windows.
    assert!(!g.exists("/Windows/Temp/setup.log") && g.exists("/Windows/Temp/keep.txt"));
    assert_eq!(reports[0].changes[0].path, "/windows/TEMP/setup.log");
    assert!(g.exists("/pagefile.sys"));
    let skipped: Vec<Option<&str>> = reports.iter().map(|r| r.skipped.as_deref()).collect();
    assert_eq!(skipped[0], None);
    assert!(skipped[1].unwrap().contains("debian"), "{skipped:?}");
    assert_eq!(skipped[2], Some("does not apply to the windows family"));
}

/// A used machine whose leftovers several steps of the base recipe match: logs removes
/// the rotated cloud-init log and accounting file that cloud-init-clean and
/// machine-state look for again, tmp-files empties the /var/tmp/abrt that
/// machine-state's crash data names.
fn used_machine() -> MemoryGuest {
    let mut g = MemoryGuest::new(OsFacts::sample("debian"));
    g.filesystems.push(crate::guest::Filesystem {
        device: "/dev/sda1".into(),
        fstype: "ext4".into(),
        uuid: Some("0e3c".into()),
        label: None,
        mountpoint: Some("/".into()),
    });
    g.file("/etc/machine-id", b"0123456789abcdef0123456789abcdef\n")
        .file("/etc/fstab", b"UUID=0e3c / ext4 defaults 0 1\n")
        .file("/etc/hostname", b"used\n")
        .file("/etc/shadow-", b"root:old:::\n")
        .file("/etc/ssh/ssh_host_ed25519_key", b"k")
        .file("/usr/sbin/sshd", b"elf")
        .file("/var/log/syslog", b"log")
        .file("/var/log/cloud-init.log", b"log")
        .file("/var/log/cloud-init.log.1", b"old log")
        .file("/var/log/account/pacct", b"acct")
        .file("/var/log/account/pacct.1", b"old acct")
        .file("/var/tmp/abrt/ccpp-1/coredump", b"core")
        .file("/var/lib/cloud/instances/i-1/user-data.txt", b"#cloud-config")
        .file("/root/.bash_history", b"ls\n")
        .file("/root/.ssh/authorized_keys", b"ssh-ed25519 AAAA");
    g
}

#[test]
fn a_dry_run_of_the_base_recipe_reports_what_the_real_run_does() {
    let base = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("recipes/base.yaml");
    let recipe = crate::recipe::Recipe::load(&base).unwrap();
    let phase = crate::progress::phase("test");
    let mut planned = Vec::new();
    super::apply_steps(&recipe, &used_machine(), true, &phase, &mut planned).unwrap();
    let mut done = Vec::new();
    super::apply_steps(&recipe, &used_machine(), false, &phase, &mut done).unwrap();
    let changes = |reports: &[crate::report::StepReport]| -> Vec<(String, Vec<(crate::report::Action, String)>)> {
        reports
            .iter()
            .map(|r| {
                (
                    r.step.clone(),
                    r.changes.iter().map(|c| (c.action, c.path.clone())).collect(),
                )
            })
            .collect()
    };
    assert_eq!(changes(&planned), changes(&done));
}

#[test]
fn steps_left_out_by_operations_are_reported_and_added_ones_run() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("r.yaml");
    std::fs::write(&path, "steps: [tmp-files, machine-id]\n").unwrap();
    let mut recipe = crate::recipe::Recipe::load(&path).unwrap();
    crate::recipe::operations::select(&mut recipe, &["defaults,-tmp-files,shell-history".into()]).unwrap();
    let g = MemoryGuest::new(OsFacts::sample("debian"));
    g.file("/tmp/x", b"x")
        .file("/root/.bash_history", b"ls\n")
        .file("/etc/machine-id", b"0123456789abcdef0123456789abcdef\n");
    let phase = crate::progress::phase("test");
    let mut reports = Vec::new();
    super::apply_steps(&recipe, &g, false, &phase, &mut reports).unwrap();
    let seen: Vec<(&str, Option<&str>)> = reports
        .iter()
        .map(|r| (r.step.as_str(), r.skipped.as_deref()))
        .collect();
    assert_eq!(
        seen,
        [
            ("tmp-files", Some("left out by --operations")),
            ("shell-history", None),
            ("machine-id", None)
        ]
    );
    assert!(g.exists("/tmp/x") && !g.exists("/root/.bash_history"));
}

#[test]
fn stems() {
    assert_eq!(super::stem(std::path::Path::new("/x/debian.qcow2")), "debian");
    assert_eq!(super::stem(std::path::Path::new("ubuntu.img.xz")), "ubuntu");
    assert_eq!(super::stem(std::path::Path::new("disk")), "disk");
}

#[test]
fn golden_names_one_per_disk() {
    use std::path::PathBuf;
    let disks = |v: &[&str]| v.iter().map(PathBuf::from).collect::<Vec<_>>();
    let names = |d: &[&str], n: Option<&str>| super::golden_names(&disks(d), n);
    assert_eq!(names(&["a/vm.qcow2"], None).unwrap(), ["vm-golden"]);
    assert_eq!(names(&["a/vm.qcow2"], Some("t")).unwrap(), ["t"]);
    assert_eq!(
        names(&["os.qcow2", "var.img"], None).unwrap(),
        ["os-golden", "var-golden"]
    );
    assert_eq!(names(&["os.qcow2", "var.img"], Some("t")).unwrap(), ["t-1", "t-2"]);
    assert_eq!(names(&[], None).unwrap(), ["<disk>-golden"]);
    // Two inputs of one name would write one golden disk over the other.
    let e = names(&["a/disk.img", "b/disk.qcow2"], None).unwrap_err();
    assert_eq!(crate::error::exit_of(&e), crate::error::Exit::Usage);
    assert!(
        format!("{e}").contains("disks a/disk.img and b/disk.qcow2 would both give the golden disk disk-golden"),
        "{e}"
    );
}
