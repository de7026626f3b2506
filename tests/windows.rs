//! Windows guests, on the fixture vm-fixtures/windows.sh builds (Windows Server 2022 on
//! NTFS, clean and hibernated): inspection, the refusal of Linux-only recipes and of
//! `goldify verify`, the hibernated-volume refusal and `--remove-hiberfile`, and the
//! fixture's own hives read back with hivexget. Each test is one or two appliance
//! launches.

mod common;
use common::*;
use goldify::guest::{Guest, Kind};
use std::path::{Path, PathBuf};

/// The fixture's known values (vm-fixtures/README.md, windows/*.reg).
const PRODUCT: &str = "Windows Server 2022 Standard";
const HOSTNAME: &str = "WIN-GOLDIFY01";

fn windows(variant: &str) -> PathBuf {
    fixture("windows.sh", &[variant])
}

/// A recipe that applies to Windows: a user step that deletes, with the path spelt in
/// another case than the guest's (`/Windows/Temp`), as a Windows user would.
const TEMP_RECIPE: &str = "name: windows-temp\nsteps:\n  - delete: {paths: [\"/windows/TEMP/*\"], required: true}\n";

fn temp_recipe(dir: &Path) -> PathBuf {
    let p = dir.join("windows-temp.yaml");
    std::fs::write(&p, TEMP_RECIPE).unwrap();
    p
}

#[test]
fn inspect_json_reports_every_windows_fact() {
    let disk = windows("windows");
    let r = run(&[&"inspect", &"--json", &disk]);
    r.ok();
    let j: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    let os = &j["os"];
    assert_eq!(os["os_type"], "windows");
    assert_eq!(os["distro"], "windows");
    assert_eq!(os["family"], "windows");
    assert_eq!(os["product_name"], PRODUCT);
    assert_eq!((os["major"].as_i64(), os["minor"].as_i64()), (Some(10), Some(0)));
    assert_eq!(os["arch"], "x86_64");
    assert_eq!(os["hostname"], HOSTNAME);
    assert_eq!(os["current_control_set"], "ControlSet001");
    assert_eq!(os["systemroot"], "/Windows");
    assert_eq!(os["root"], "/dev/sda1");
    assert_eq!(os["init"], "unknown");
    assert_eq!(os["mountpoints"], serde_json::json!([["/", "/dev/sda1"]]));
    let fs = j["filesystems"].as_array().unwrap();
    assert_eq!(fs.len(), 1, "{fs:?}");
    assert_eq!(
        (fs[0]["device"].as_str(), fs[0]["fstype"].as_str()),
        (Some("/dev/sda1"), Some("ntfs"))
    );
    assert_eq!(j["fstab"], serde_json::json!([]));
    assert!(j.get("notices").is_none(), "a clean shutdown: {}", j["notices"]);
}

/// The hives in the image (read through goldify's guest, with the path in lower case as
/// libguestfs' own inspection spells it) hold what windows/*.reg says, read back by
/// hivexget; cmd.exe is the PE32+ header libguestfs takes for x86_64.
#[test]
fn fixture_hives_read_back_with_hivexget() {
    require("hivexget", "the fixture's hives are read with it (libhivex-bin)");
    let img = open(&windows("windows"));
    let g = img.guest();
    assert_eq!(g.facts().family, goldify::guest::Family::Windows);
    assert!(g.notices().is_empty(), "a clean shutdown: {:?}", g.notices());
    // Case-insensitive paths: every spelling finds the guest's own names.
    assert_eq!(img.kind("/windows/system32/CONFIG"), Some(Kind::Dir));
    assert!(img.list("/WINDOWS/temp").contains(&"MpCmdRun.log".to_string()));
    assert!(!img.exists("/windows/no-such-dir/file"));
    let cmd = g.read("/windows/system32/CMD.EXE", 1 << 20).unwrap();
    assert_eq!(&cmd[..2], b"MZ");
    let pe = u32::from_le_bytes(cmd[0x3c..0x40].try_into().unwrap()) as usize;
    assert_eq!(&cmd[pe..pe + 6], b"PE\0\0\x64\x86", "PE signature and machine x86-64");
    assert_eq!(
        &g.read("/hiberfil.sys", 8 << 20).unwrap()[..4096],
        &[0u8; 4096][..],
        "clean: zero header"
    );

    let dir = tempfile::tempdir().unwrap();
    for hive in ["software", "system"] {
        let bytes = g.read(&format!("/windows/system32/config/{hive}"), 64 << 20).unwrap();
        assert_eq!(&bytes[..4], b"regf");
        std::fs::write(dir.path().join(hive), bytes).unwrap();
    }
    let get = |hive: &str, key: &str, value: &str| -> String {
        let out = std::process::Command::new("hivexget")
            .arg(dir.path().join(hive))
            .args([key, value])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "hivexget {hive} {key} {value}: {}",
            tail(&out.stderr, 5)
        );
        String::from_utf8_lossy(&out.stdout).trim_end().to_string()
    };
    let cv = r"Microsoft\Windows NT\CurrentVersion";
    assert_eq!(get("software", cv, "ProductName"), PRODUCT);
    assert_eq!(get("software", cv, "CurrentMajorVersionNumber"), "10");
    assert_eq!(get("software", cv, "CurrentMinorVersionNumber"), "0");
    assert_eq!(get("software", cv, "CurrentBuild"), "20348");
    assert_eq!(get("software", cv, "InstallationType"), "Server");
    assert_eq!(
        get(
            "software",
            r"Microsoft\PowerShell\1\ShellIds\Microsoft.PowerShell",
            "ExecutionPolicy"
        ),
        "Restricted"
    );
    assert_eq!(get("system", "Select", "Current"), "1");
    assert_eq!(
        get("system", r"ControlSet001\Services\Tcpip\Parameters", "Hostname"),
        HOSTNAME
    );
    assert_eq!(
        get(
            "system",
            r"ControlSet001\Control\ComputerName\ComputerName",
            "ComputerName"
        ),
        HOSTNAME
    );
    assert_eq!(get("system", r"Setup\Status\SysprepStatus", "GeneralizationState"), "7");
    // MountedDevices names C: by the NTFS partition's GPT GUID (windows.sh sets it).
    let c = get("system", "MountedDevices", r"\DosDevices\C:");
    assert!(c.starts_with("444d494f3a49443a") || c.contains("DMIO:ID:"), "{c}");
}

#[test]
fn a_linux_only_recipe_refuses_windows_before_writing() {
    let disk = windows("windows");
    let before = fingerprint(&disk);
    let out = tempfile::tempdir().unwrap();
    let r = run(&[&"run", &recipe("generic"), &disk, &"-o", &out.path()]);
    assert_eq!(r.code, 3, "stdout:\n{}\nstderr:\n{}", r.stdout, r.stderr);
    let line = r.error_line();
    for m in [
        disk.to_str().unwrap(),
        &format!("is Windows ({PRODUCT})"),
        "generic.yaml has only Linux steps",
    ] {
        assert!(line.contains(m), "{line:?} should mention {m:?}");
    }
    assert!(!line.contains(".goldify-work"), "names the overlay: {line}");
    assert!(entries(out.path()).is_empty(), "{:?}", entries(out.path()));
    assert_eq!(fingerprint(&disk), before, "input changed");
}

/// ntfs-3g mounts a hibernated volume read-only without failing: goldify refuses it (one
/// line naming the cause and the option, nothing written, input unchanged); with
/// --remove-hiberfile the saved session is discarded (hiberfil.sys is gone from the
/// golden disk), the steps run, and the report says so.
#[test]
fn hibernated_volume_refused_unless_remove_hiberfile() {
    let disk = windows("windows-hibernated");
    let before = fingerprint(&disk);
    let dir = tempfile::tempdir().unwrap();
    let recipe = temp_recipe(dir.path());

    let out = dir.path().join("refused");
    let r = run(&[&"run", &recipe, &disk, &"-o", &out]);
    assert_eq!(r.code, 3, "stdout:\n{}\nstderr:\n{}", r.stdout, r.stderr);
    let line = r.error_line();
    for m in [
        disk.to_str().unwrap(),
        "hibernated",
        "hiberfil.sys",
        "read-only",
        "--remove-hiberfile",
    ] {
        assert!(line.contains(m), "{line:?} should mention {m:?}");
    }
    assert!(!line.contains(".goldify-work"), "names the overlay: {line}");
    assert!(entries(&out).is_empty(), "{:?}", entries(&out));
    assert_eq!(fingerprint(&disk), before, "input changed");

    // A dry run (a read-only mount, where nothing can be told from the mount) says what a
    // real run would do, from hiberfil.sys itself.
    let r = run(&[&"run", &recipe, &disk, &"--dry-run", &"--json"]);
    r.ok();
    let report: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(
        report["notices"],
        serde_json::json!(["/dev/sda1: Windows is hibernated; a real run refuses this disk unless --remove-hiberfile"])
    );

    let out = dir.path().join("discarded");
    let r = run(&[
        &"run",
        &recipe,
        &disk,
        &"-o",
        &out,
        &"--name",
        &"g",
        &"--remove-hiberfile",
        &"--json",
    ]);
    r.ok();
    assert_eq!(fingerprint(&disk), before, "input changed");
    let report: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    let notices = report["notices"].as_array().expect("notices in the report");
    assert_eq!(notices.len(), 1, "{notices:?}");
    let n = notices[0].as_str().unwrap();
    assert!(
        n.contains("/dev/sda1") && n.contains("hibernated") && n.contains("discarded"),
        "{n}"
    );
    let deleted: Vec<&str> = report["steps"][0]["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["path"].as_str().unwrap())
        .collect();
    assert!(deleted.contains(&"/windows/TEMP/MpCmdRun.log"), "{deleted:?}");

    let img = open(&out.join("g.qcow2"));
    assert!(!img.exists("/hiberfil.sys"), "the saved session is still there");
    assert_eq!(img.kind("/Windows/Temp"), Some(Kind::Dir), "the directory stays");
    assert!(img.list("/Windows/Temp").is_empty(), "{:?}", img.list("/Windows/Temp"));
    assert!(img.exists("/pagefile.sys") && img.exists("/Windows/System32/config/SYSTEM"));
}

#[test]
fn verify_refuses_a_windows_image() {
    let disk = windows("windows");
    let before = fingerprint(&disk);
    let r = run(&[&"verify", &"--boot", &disk, &"--timeout", &"60"]);
    assert_eq!(r.code, 3, "stdout:\n{}\nstderr:\n{}", r.stdout, r.stderr);
    let line = r.error_line();
    for m in [
        disk.to_str().unwrap(),
        "is Windows",
        PRODUCT,
        "cannot verify a Windows image",
    ] {
        assert!(line.contains(m), "{line:?} should mention {m:?}");
    }
    assert_eq!(fingerprint(&disk), before, "input changed");
}
