//! Inspection on the layouts real distributions ship (issue 11), on the guests of
//! vm-fixtures/layouts.sh and the phony guests: the facts `goldify inspect --json`
//! reports, the cleaned result where a layout used to leave data behind (btrfs /home),
//! LUKS refused without its key and opened with it, and a differential check against
//! libguestfs' own full inspection (inspect_os and inspect_get_*, run in the same test):
//! root, mountpoints, distro, major version, family and hostname agree, and where goldify
//! differs on purpose the table below says why.

mod common;
use common::*;
use goldify::guest::Family;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The LUKS passphrase of the layout fixtures (vm-fixtures/layouts/key).
fn key_file() -> PathBuf {
    repo().join("vm-fixtures/layouts/key")
}

fn layout(name: &str) -> PathBuf {
    fixture("layouts.sh", &[name])
}

/// `goldify inspect --json DISK ARGS…`, which must succeed.
fn inspect(disk: &Path, args: &[&str]) -> serde_json::Value {
    inspect_all(&[disk], args)
}

/// `goldify inspect --json ARGS… DISK…` of a guest on several disks.
fn inspect_all(disks: &[&Path], args: &[&str]) -> serde_json::Value {
    let mut a: Vec<&dyn AsRef<std::ffi::OsStr>> = vec![&"inspect", &"--json"];
    for x in args {
        a.push(x);
    }
    for d in disks {
        a.push(d);
    }
    let r = run(&a);
    r.ok();
    serde_json::from_str(&r.stdout).expect("--json report")
}

/// What the differential compares, from either side.
#[derive(Debug, PartialEq, Clone)]
struct Seen {
    root: String,
    mountpoints: BTreeMap<String, String>,
    distro: String,
    major: i64,
    family: String,
    hostname: String,
}

fn seen_by_goldify(report: &serde_json::Value) -> Seen {
    let os = &report["os"];
    Seen {
        root: os["root"].as_str().unwrap().into(),
        mountpoints: os["mountpoints"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| (m[0].as_str().unwrap().into(), m[1].as_str().unwrap().into()))
            .collect(),
        distro: os["distro"].as_str().unwrap().into(),
        major: os["major"].as_i64().unwrap(),
        family: os["family"].as_str().unwrap().into(),
        hostname: os["hostname"].as_str().unwrap().into(),
    }
}

/// libguestfs' full inspection of `disk`, the LUKS devices opened first (with the map
/// names goldify gives them) as the virt tools' --key does.
fn seen_by_libguestfs(disks: &[&Path], luks: &[&str]) -> Seen {
    let g = guestfs::Handle::create().expect("libguestfs handle");
    goldify::guest::launch::configure(&g).expect("configuring libguestfs");
    for disk in disks {
        g.add_drive(
            disk.to_str().unwrap(),
            guestfs::AddDriveOptArgs {
                readonly: Some(true),
                format: Some("qcow2"),
                ..Default::default()
            },
        )
        .expect("adding the disk");
    }
    g.launch().expect("launching the appliance");
    let key = std::fs::read_to_string(key_file()).unwrap();
    for dev in luks {
        let map = format!("luks-{}", dev.trim_start_matches("/dev/").replace('/', "-"));
        g.luks_open_ro(dev, key.trim_end(), &map).expect("opening LUKS");
    }
    if !luks.is_empty() {
        g.vg_activate_all(true).unwrap();
    }
    let roots = g.inspect_os().expect("inspect_os");
    assert_eq!(roots.len(), 1, "libguestfs found roots {roots:?} on {disks:?}");
    let root = &roots[0];
    let distro = g.inspect_get_distro(root).unwrap();
    let seen = Seen {
        root: root.clone(),
        mountpoints: g.inspect_get_mountpoints(root).unwrap().into_iter().collect(),
        family: Family::of_distro(&distro).to_string(),
        distro,
        major: g.inspect_get_major_version(root).unwrap() as i64,
        hostname: g.inspect_get_hostname(root).unwrap(),
    };
    let _ = g.shutdown();
    seen
}

/// goldify's facts and libguestfs' agree, but for the fields `differs` names with the
/// value libguestfs gives and the reason goldify does not.
fn differential(
    name: &str,
    disks: &[&Path],
    report: &serde_json::Value,
    luks: &[&str],
    differs: &[(&str, &str, &str)],
) {
    let ours = seen_by_goldify(report);
    let theirs = seen_by_libguestfs(disks, luks);
    // libguestfs 1.48 returns a btrfs subvolume's mountable without translating the
    // appliance's device name back to the guest's (daemon/daemon-c.c
    // guestfs_int_daemon_return_string_mountable: plain devices are translated, btrfsvol:
    // strings are not), so in an appliance that numbers the guest's only disk sdb it says
    // btrfsvol:/dev/sdb1/root. Every fixture here is one disk: its device is sda.
    let one_disk = |m: &str| match m.strip_prefix("btrfsvol:/dev/sd") {
        Some(rest) if !rest.starts_with('a') => format!("btrfsvol:/dev/sda{}", &rest[1..]),
        _ => m.to_string(),
    };
    let theirs = Seen {
        root: one_disk(&theirs.root),
        mountpoints: theirs
            .mountpoints
            .iter()
            .map(|(k, v)| (k.clone(), one_disk(v)))
            .collect(),
        ..theirs
    };
    let mut expected = ours.clone();
    for (field, libguestfs_value, why) in differs {
        eprintln!("{name}: goldify differs from libguestfs 1.48 on {field}: {why}");
        match *field {
            "distro" => expected.distro = libguestfs_value.to_string(),
            "family" => expected.family = libguestfs_value.to_string(),
            "major" => expected.major = libguestfs_value.parse().unwrap(),
            "hostname" => expected.hostname = libguestfs_value.to_string(),
            mp if mp.starts_with('/') => {
                expected
                    .mountpoints
                    .insert(mp.to_string(), libguestfs_value.to_string());
            }
            other => panic!("unknown field {other}"),
        }
    }
    assert_eq!(
        theirs, expected,
        "{name}: libguestfs (left) and goldify (right, with the named differences)"
    );
}

fn facts(report: &serde_json::Value) -> (String, String, i64, i64, String) {
    let os = &report["os"];
    (
        os["distro"].as_str().unwrap().into(),
        os["family"].as_str().unwrap().into(),
        os["major"].as_i64().unwrap(),
        os["minor"].as_i64().unwrap(),
        os["hostname"].as_str().unwrap().into(),
    )
}

fn s(v: &str) -> String {
    v.to_string()
}

#[test]
fn btrfs_subvolumes_root_home_and_subvolid() {
    let disk = layout("btrfs");
    let r = inspect(&disk, &[]);
    assert_eq!(facts(&r), (s("fedora"), s("rhel"), 33, 0, s("fedora-btrfs")));
    let seen = seen_by_goldify(&r);
    assert_eq!(seen.root, "btrfsvol:/dev/sda1/root");
    assert_eq!(seen.mountpoints["/home"], "btrfsvol:/dev/sda1/home");
    assert_eq!(seen.mountpoints["/srv"], "btrfsvol:/dev/sda1/srv");
    differential(
        "btrfs",
        &[&disk],
        &r,
        &[],
        &[(
            "/srv",
            "/dev/sda1",
            "fstab says subvolid=258; libguestfs 1.48 reads only subvol= and would mount the whole filesystem",
        )],
    );
}

#[test]
fn btrfs_run_cleans_the_home_subvolume() {
    let disk = layout("btrfs");
    let out = tempfile::tempdir().unwrap();
    let before = sha256(&disk);
    let res = run(&[
        &"run",
        &"--json",
        &"-o",
        &out.path(),
        &"--name",
        &"golden",
        &recipe("generic"),
        &disk,
    ]);
    res.ok();
    assert_eq!(sha256(&disk), before, "goldify modified its input");
    let img = open(&out.path().join("golden.qcow2"));
    // Read back through the subvolumes the guest mounts.
    assert!(
        !img.exists("/home/alice/.bash_history"),
        "history under the /home subvolume survived"
    );
    assert!(!img.exists("/root/.bash_history"));
    // ~/.ssh goes too (machine-state's ssh-userdir, virt-sysprep's default); the home stays.
    assert!(
        !img.exists("/home/alice/.ssh"),
        "~/.ssh under the /home subvolume survived"
    );
    assert!(img.exists("/home/alice"));
    assert_eq!(img.text("/srv/www/index.html"), "<h1>kept</h1>\n");
    assert!(!img.exists("/etc/ssh/ssh_host_ed25519_key"));
}

#[test]
fn ubuntu_from_lsb_release() {
    let disk = layout("ubuntu-lsb");
    let r = inspect(&disk, &[]);
    assert_eq!(facts(&r), (s("ubuntu"), s("debian"), 20, 4, s("ubuntu-lsb")));
    assert_eq!(r["os"]["product_name"], "Ubuntu 20.04.6 LTS");
    differential("ubuntu-lsb", &[&disk], &r, &[], &[]);
}

#[test]
fn arch() {
    let disk = layout("arch");
    let r = inspect(&disk, &[]);
    assert_eq!(facts(&r), (s("archlinux"), s("arch"), 0, 0, s("archie")));
    assert_eq!(r["os"]["package_management"], "pacman");
    differential("arch", &[&disk], &r, &[], &[]);
}

#[test]
fn fedora_from_fedora_release_and_sysconfig_hostname() {
    let disk = layout("fedora-release");
    let r = inspect(&disk, &[]);
    assert_eq!(facts(&r), (s("fedora"), s("rhel"), 38, 0, s("fedora-old.example.com")));
    let why = "libguestfs 1.48 reads Fedora's release only through /etc/redhat-release (a link to \
               /etc/fedora-release on Fedora); this guest has /etc/fedora-release alone";
    differential(
        "fedora-release",
        &[&disk],
        &r,
        &[],
        &[
            ("distro", "unknown", why),
            ("family", "other", why),
            ("major", "0", why),
        ],
    );
}

#[test]
fn coreos_usr_partition_mounted() {
    let disk = layout("coreos");
    let r = inspect(&disk, &[]);
    assert_eq!(facts(&r), (s("coreos"), s("other"), 647, 0, s("coreos-node")));
    let seen = seen_by_goldify(&r);
    assert_eq!(seen.mountpoints.get("/usr").map(String::as_str), Some("/dev/sda2"));
    // /usr/lib/systemd/systemd is on the /usr partition only.
    assert_eq!(r["os"]["init"], "systemd");
    differential("coreos", &[&disk], &r, &[], &[]);
}

#[test]
fn luks_on_a_partition_holding_lvm() {
    let disk = layout("luks-part");
    let res = run(&[&"inspect", &"--json", &disk]);
    assert_eq!(res.code, 3, "{}", res.stderr);
    let line = res.error_line();
    assert!(
        line.contains("/dev/sda1 is encrypted (LUKS)") && line.contains("--key"),
        "{line}"
    );
    let key = format!("/dev/sda1:file:{}", key_file().display());
    let r = inspect(&disk, &["--key", &key]);
    assert_eq!(facts(&r), (s("debian"), s("debian"), 12, 5, s("crypt-part")));
    assert_eq!(r["os"]["root"], "/dev/cryptvg/root");
    differential("luks-part", &[&disk], &r, &["/dev/sda1"], &[]);
}

#[test]
fn luks_run_cleans_through_the_mapping_and_the_golden_disk_stays_encrypted() {
    let disk = layout("luks-part");
    let out = tempfile::tempdir().unwrap();
    let key = format!("/dev/sda1:file:{}", key_file().display());
    // The README's command, with the fixture's disk and key.
    let words = substitute(
        &readme_command("goldify run debian.yaml encrypted.qcow2"),
        &[
            ("encrypted.qcow2", &disk),
            ("out/", &out.path()),
            ("/dev/sda1:file:luks.key", &key),
        ],
    );
    let res = Run::of(command_from_words(&words).args(["--json", "--name", "golden"]));
    res.ok();
    let golden = out.path().join("golden.qcow2");
    // Without the key the golden disk is refused as its input was.
    let res = run(&[&"inspect", &golden]);
    assert_eq!(res.code, 3, "{}", res.stderr);
    assert!(res.error_line().contains("/dev/sda1 is encrypted (LUKS)"));
    let keys = [goldify::guest::keys::Key::parse(&key).unwrap()];
    let g = goldify::guest::guestfs::GuestfsGuest::open(
        &[goldify::guest::guestfs::Drive {
            path: &golden,
            format: "qcow2",
        }],
        &goldify::guest::guestfs::OpenOptions {
            readonly: true,
            in_place: false,
            verbose: false,
            shown: &golden.display().to_string(),
            remove_hiberfile: false,
            keys: &keys,
        },
    )
    .expect("opening the golden disk with its key");
    use goldify::guest::Guest;
    assert!(
        g.lstat("/root/.bash_history").unwrap().is_none(),
        "root's history survived"
    );
    assert!(g.lstat("/etc/ssh/ssh_host_ed25519_key").unwrap().is_none());
    assert!(g.lstat("/etc/passwd").unwrap().is_some());
    g.close().unwrap();
}

#[test]
fn luks_on_a_logical_volume() {
    let disk = layout("luks-lv");
    let res = run(&[&"inspect", &"--json", &disk]);
    assert_eq!(res.code, 3, "{}", res.stderr);
    let line = res.error_line();
    assert!(line.contains("/dev/vg0/root is encrypted (LUKS)"), "{line}");
    let key = format!("/dev/vg0/root:file:{}", key_file().display());
    let r = inspect(&disk, &["--key", &key]);
    assert_eq!(facts(&r), (s("debian"), s("debian"), 12, 5, s("crypt-lv")));
    assert_eq!(r["os"]["root"], "/dev/mapper/luks-vg0-root");
    differential("luks-lv", &[&disk], &r, &["/dev/vg0/root"], &[]);
}

#[test]
fn luks_wrong_key_and_key_in_clear_refused() {
    let disk = layout("luks-lv");
    let dir = tempfile::tempdir().unwrap();
    let wrong = dir.path().join("wrong");
    std::fs::write(&wrong, "not-the-key\n").unwrap();
    let key = format!("/dev/vg0/root:file:{}", wrong.display());
    let res = run(&[&"inspect", &"--json", &"--key", &key, &disk]);
    assert_eq!(res.code, 3, "{}", res.stderr);
    let line = res.error_line();
    assert!(
        line.contains("/dev/vg0/root") && line.contains("does not open it"),
        "{line}"
    );
    assert!(!res.stderr.contains("not-the-key"));
    // Refused before anything is launched.
    let res = run(&[&"inspect", &"--key", &"/dev/vg0/root:key:goldify-fixture-key", &disk]);
    assert_eq!(res.code, 2, "{}", res.stderr);
    assert!(res.error_line().contains("visible to every user"));
    assert!(!res.stderr.contains("goldify-fixture-key"));
}

/// The phony guests of vm-fixtures/phony.sh, against libguestfs too.
#[test]
fn phony_guests_agree_with_libguestfs() {
    for name in ["debian", "ubuntu", "lvm"] {
        let disk = phony(name);
        differential(name, &[&disk], &inspect(&disk, &[]), &[], &[]);
    }
    let disk = phony("rhel");
    let why = "AlmaLinux: libguestfs 1.48 does not know os-release ID=almalinux nor its release file \
               (redhat-based); goldify takes the ID os-release gives";
    differential(
        "rhel",
        &[&disk],
        &inspect(&disk, &[]),
        &[],
        &[("distro", "redhat-based", why)],
    );
}

#[path = "inspection/multi_disk.rs"]
mod multi_disk;
