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
    assert_eq!(j["notices"], serde_json::json!([]), "a clean shutdown");
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
    let get = |hive: &str, key: &str, value: &str| hivexget(&dir.path().join(hive), key, value);
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

    // The README's command, with the recipe that deletes (windows.yaml would also need
    // dd.exe) and the JSON report.
    let out = dir.path().join("discarded");
    let words = substitute(
        &readme_command("goldify run windows.yaml used-windows.qcow2 -o out/ --remove-hiberfile"),
        &[("windows.yaml", &recipe), ("used-windows.qcow2", &disk), ("out/", &out)],
    );
    let r = Run::of(command_from_words(&words).args(["--name", "g", "--json"]));
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

/// The README's Windows command, end to end on the fixture: recipes/windows.yaml cleans
/// every used path, installs VMmanager's first-run setup (files byte-exact in CRLF, the
/// execution policy and the first-boot service read back from the hives with hivexget),
/// and `--publish vmmanager-windows` writes the package (tar.gz of metainfo.xml, the
/// script and the raw disk) and its metadata.json entry, checksums true.
#[test]
fn windows_recipe_publishes_a_vmmanager_windows_template() {
    require("hivexget", "the golden disk's hives are read with it (libhivex-bin)");
    require("tar", "the package is listed and unpacked with GNU tar");
    let d = tempfile::tempdir().unwrap();
    // goldify cannot ship dd.exe: a stand-in, named as the shipped recipe names it.
    let dd: Vec<u8> = b"MZ stand-in for dd.exe\0".iter().cycle().take(4096).copied().collect();
    std::fs::write(d.path().join("dd.exe"), &dd).unwrap();
    let input = windows("windows");
    let before = fingerprint(&input);
    let out = Run::of(
        goldify()
            .current_dir(d.path())
            .args(["run", "--json"])
            .arg(recipe("windows"))
            .arg(&input)
            .args(["-o", "out", "--publish", "vmmanager-windows", "--publish-dir", "repo"]),
    );
    out.ok();
    assert_eq!(fingerprint(&input), before, "the input is never written");
    let report: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let warnings: Vec<String> = report["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["step"] == "windows-readiness")
        .flat_map(|s| {
            s["warnings"]
                .as_array()
                .unwrap()
                .iter()
                .map(|w| w.as_str().unwrap().to_string())
        })
        .collect();
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("not generalized") || w.contains("cannot tell")),
        "{warnings:?}"
    );

    // The golden disk: every used path gone, directories kept, users' files kept.
    let golden = d.path().join("out").join(format!("{}-golden.qcow2", stem_of(&input)));
    let img = open(&golden);
    for gone in [
        "/pagefile.sys",
        "/swapfile.sys",
        "/Windows/MEMORY.DMP",
        "/Windows/INF/setupapi.dev.log",
    ] {
        assert!(!img.exists(gone), "{gone} survived");
    }
    for emptied in [
        "/Windows/Temp",
        "/Users/Administrator/AppData/Local/Temp",
        "/Users/Alice/AppData/Local/Temp",
        "/Windows/SoftwareDistribution/Download",
        "/Windows/Prefetch",
        "/$Recycle.Bin",
        "/Windows/Panther",
        "/Windows/Minidump",
        "/Windows/Logs/CBS",
    ] {
        assert_eq!(img.list(emptied), Vec::<String>::new(), "{emptied}");
    }
    for kept in [
        "/Users/Alice/Documents/report.txt",
        "/Users/Administrator/Desktop/notes.txt",
        "/Program Files/Example/readme.txt",
        "/Windows/SoftwareDistribution/DataStore/DataStore.edb",
        "/Windows/System32/winevt/Logs/System.evtx",
    ] {
        assert!(img.exists(kept), "{kept} was removed");
    }
    // C:\vmmgr, byte-exact, CRLF.
    let bytes = |p: &str| img.0.read(p, 1 << 20).unwrap();
    assert_eq!(
        bytes("/vmmgr/firstrun.cmd"),
        b"@echo off\r\npowershell.exe C:\\vmmgr\\firstrun.ps1 >NUL\r\n"
    );
    assert_eq!(
        bytes("/vmmgr/ddwrap.cmd"),
        b"@echo off\r\nC:\\vmmgr\\dd.exe --list 2>&1\r\n"
    );
    let ps1 = bytes("/vmmgr/firstrun.ps1");
    assert_eq!(
        ps1.windows(2).filter(|w| w == b"\r\n").count(),
        ps1.iter().filter(|b| **b == b'\n').count()
    );
    assert_eq!(bytes("/vmmgr/dd.exe"), dd);
    assert_eq!(&bytes("/vmmgr/vmmgr_firstrun.xml")[..2], [0xff, 0xfe]);
    let fb = "/Program Files/goldify/firstboot";
    assert_eq!(
        bytes(&format!("{fb}/rhsrvany.exe")),
        std::fs::read("/usr/share/virt-tools/rhsrvany.exe").unwrap()
    );
    let scripts = img.list(&format!("{fb}/scripts"));
    assert_eq!(scripts, ["0010-clear-event-logs.cmd", "0050-vmmgr-firstrun.cmd"]);
    // The hives, read back on the host with hivexget.
    let hives = tempfile::tempdir().unwrap();
    for hive in ["SOFTWARE", "SYSTEM"] {
        std::fs::write(
            hives.path().join(hive),
            img.0
                .read(&format!("/Windows/System32/config/{hive}"), 64 << 20)
                .unwrap(),
        )
        .unwrap();
    }
    drop(img);
    let get = |hive: &str, key: &str, value: &str| hivexget(&hives.path().join(hive), key, value);
    assert_eq!(
        get(
            "SOFTWARE",
            r"Microsoft\PowerShell\1\ShellIds\Microsoft.PowerShell",
            "ExecutionPolicy"
        ),
        "RemoteSigned"
    );
    let svc = r"ControlSet001\Services\goldify-firstboot";
    assert_eq!(get("SYSTEM", svc, "Start"), "2");
    assert_eq!(get("SYSTEM", svc, "Type"), "16");
    assert_eq!(
        get("SYSTEM", svc, "ImagePath"),
        r#""C:\Program Files\goldify\firstboot\rhsrvany.exe" -s goldify-firstboot"#
    );
    assert_eq!(
        get("SYSTEM", &format!(r"{svc}\Parameters"), "CommandLine"),
        r#"cmd /c "C:\Program Files\goldify\firstboot\firstboot.cmd""#
    );

    // The package and its entry.
    let repo = d.path().join("repo");
    let meta = json(&repo.join("metadata.json"));
    let entry = &meta["os"][0];
    let name = entry["name"].as_str().unwrap().to_string();
    assert_eq!(name, "windows-10");
    let pkg = repo.join("windows-10.tar.gz");
    let sha1 = |p: &Path| {
        sh(&format!("sha1sum '{}' | cut -d' ' -f1", p.display()), d.path())
            .trim()
            .to_string()
    };
    assert_eq!(entry["file_name"], "windows-10.tar.gz");
    assert_eq!(entry["checksum"], sha1(&pkg));
    assert_eq!(entry["kms_supported"], false);
    assert_eq!(entry["install_script"]["file_name"], "windows-10.cmd");
    assert_eq!(entry["install_script"]["checksum"], sha1(&repo.join("windows-10.cmd")));
    assert_eq!(entry["install_script"]["updated_at"], entry["updated_at"]);
    assert_eq!(entry["image_size_mib"], 512);
    let listing = sh(&format!("tar -tzf '{}'", pkg.display()), d.path());
    assert_eq!(
        listing.lines().collect::<Vec<_>>(),
        ["metainfo.xml", "windows.cmd", "windows-10.img"]
    );
    let unpacked = d.path().join("unpacked");
    std::fs::create_dir(&unpacked).unwrap();
    sh(
        &format!("tar -xzf '{}' -C '{}'", pkg.display(), unpacked.display()),
        d.path(),
    );
    let script = std::fs::read(unpacked.join("windows.cmd")).unwrap();
    assert_eq!(script, std::fs::read(repo.join("windows-10.cmd")).unwrap());
    assert!(
        String::from_utf8(script).unwrap().contains("($PASS)\"\r\n"),
        "macros left for VMmanager, CRLF"
    );
    let raw = d.path().join("golden.raw");
    sh(
        &format!("qemu-img convert -O raw '{}' '{}'", golden.display(), raw.display()),
        d.path(),
    );
    assert_eq!(
        sha256(&unpacked.join("windows-10.img")),
        sha256(&raw),
        "the disk in the package is the golden disk"
    );
    let xml = std::fs::read_to_string(unpacked.join("metainfo.xml")).unwrap();
    let doc = roxmltree::Document::parse(&xml).expect("metainfo.xml is XML");
    let field = |n: &str| {
        doc.descendants()
            .find(|e| e.has_tag_name(n))
            .and_then(|e| e.text())
            .unwrap_or("")
            .to_string()
    };
    assert_eq!(field("osname"), "windows-10");
    assert_eq!(field("hddimage"), "windows-10.img");
    assert_eq!(field("installdrive"), "windows.cmd");
    assert_eq!(field("type"), "ostemplate");
    assert_eq!(field("version"), "10.0");
    assert_eq!(field("disk"), "512");
    assert_eq!(field("elem"), "VMmgr");
    for f in [
        "ipv4",
        "ipv6",
        "mem",
        "tags",
        "rebootcount",
        "virtiodisk",
        "virtionet",
        "macro",
    ] {
        assert!(doc.descendants().any(|e| e.has_tag_name(f)), "metainfo.xml lacks {f}");
    }
    Run::of(goldify().args(["repo", "verify"]).arg(&repo)).ok();
}

/// A value of a hive file on the host, as hivexget prints it.
fn hivexget(hive: &Path, key: &str, value: &str) -> String {
    let out = std::process::Command::new("hivexget")
        .arg(hive)
        .args([key, value])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "hivexget {} {key} {value}: {}",
        hive.display(),
        tail(&out.stderr, 5)
    );
    String::from_utf8_lossy(&out.stdout).trim_end().to_string()
}

fn stem_of(p: &Path) -> String {
    p.file_stem().unwrap().to_string_lossy().into_owned()
}
