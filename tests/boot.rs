//! The QEMU boot tier: real Debian 12 guests, cleaned by `goldify run`, proven by
//! `goldify verify --boot`. Slow (each verification boots two clones; under TCG a boot
//! takes minutes), so these tests are ignored by a plain `cargo test` and run as a tier:
//!
//!     cargo test --test boot -- --ignored
//!
//! Nothing here skips: without QEMU, libguestfs or the fixtures, a test fails and says why.
//! The heavy work is serialized (one goldify at a time; each verification already boots
//! its clones side by side), and every golden image is made once per process and shared.

mod common;

use common::*;
use serde_json::Value;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, OnceLock};

/// Per-boot limit given to `goldify verify`: generous, the host may be busy.
const BOOT_TIMEOUT: &str = "900";

/// One heavy job (an appliance, a pair of booting clones) at a time: parallel tests would
/// only slow each other's emulated CPUs down towards their timeouts.
fn machine() -> MutexGuard<'static, ()> {
    static M: Mutex<()> = Mutex::new(());
    M.lock().unwrap_or_else(|e| e.into_inner())
}

/// Once per process: the tools the tier needs, and QEMU's accelerator as goldify sees it.
/// (libguestfs itself is proven by the first `goldify run`, whose error says what broke.)
fn preflight() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(preflight_once);
}

fn preflight_once() {
    require("qemu-system-x86_64", "the boot tests boot clones under QEMU");
    require("qemu-img", "goldify makes overlays with qemu-img");
    require("mmdebstrap", "the Debian fixtures are built with mmdebstrap");
    require("cloud-localds", "the used Debian fixture is booted with a NoCloud seed");
    let out = timed(goldify().args(["doctor", "--no-launch"]));
    assert!(
        out.status.success(),
        "goldify doctor says this host cannot run libguestfs or QEMU:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        tail(&out.stderr, 10)
    );
}

struct Variant {
    used: PathBuf,
    golden: PathBuf,
}

fn debian(cloud_init: bool) -> &'static Variant {
    static WITH: OnceLock<Variant> = OnceLock::new();
    static WITHOUT: OnceLock<Variant> = OnceLock::new();
    let cell = if cloud_init { &WITH } else { &WITHOUT };
    cell.get_or_init(|| {
        preflight();
        let args: &[&str] = if cloud_init { &[] } else { &["--no-cloud-init"] };
        let used = fixture("debian12.sh", args);
        let name = if cloud_init { "debian12" } else { "debian12-nocloudinit" };
        let dir = scratch(&format!("boot/{name}"));
        let _m = machine();
        let recipe = repo().join("recipes/debian.yaml");
        let out = timed(
            goldify()
                .args(["run", recipe.to_str().unwrap()])
                .arg(&used)
                .arg("-o")
                .arg(&dir)
                .args(["--name", "golden"]),
        );
        assert!(
            out.status.success(),
            "goldify run failed on {}:\n{}",
            used.display(),
            tail(&out.stderr, 15)
        );
        Variant {
            used,
            golden: dir.join("golden.qcow2"),
        }
    })
}

struct Verified {
    code: i32,
    report: Value,
}

/// `goldify verify --boot TEMPLATE [--source SOURCE] --json`, with the template proven
/// untouched afterwards.
fn verify(template: &Path, source: Option<&Path>, logs: &Path) -> Verified {
    let mut words: Vec<OsString> = vec!["goldify".into(), "verify".into(), "--boot".into(), template.into()];
    if let Some(s) = source {
        words.extend(["--source".into(), s.into()]);
    }
    verify_words(template, words, logs)
}

/// The README's proof-by-boot command, its file names replaced by `template` and `source`.
fn readme_verify(template: &Path, source: &Path, logs: &Path) -> Verified {
    let words = substitute(
        &readme_command("goldify verify --boot"),
        &[("out/used-golden.qcow2", &template), ("used.qcow2", &source)],
    );
    verify_words(template, words, logs)
}

/// Run `words` (a `goldify verify --boot …` command) with the options the tier needs: a
/// JSON report, a generous timeout, every console log kept in `logs`.
fn verify_words(template: &Path, words: Vec<OsString>, logs: &Path) -> Verified {
    let before = fingerprint(template);
    let mut cmd = command_from_words(&words);
    cmd.args(["--json", "--timeout", BOOT_TIMEOUT, "--keep-logs"]).arg(logs);
    let out = {
        let _m = machine();
        timed(&mut cmd)
    };
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!("{stderr}");
    let report: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "goldify verify printed no JSON report ({e}), exit {}; stderr:\n{}",
            out.status,
            tail(&out.stderr, 20)
        )
    });
    assert_eq!(
        fingerprint(template),
        before,
        "verify changed the template {}",
        template.display()
    );
    Verified {
        code: out.status.code().unwrap_or(-1),
        report,
    }
}

fn clones(r: &Value) -> &Vec<Value> {
    r["clones"].as_array().expect("clones")
}

fn check<'a>(clone: &'a Value, name: &str) -> (&'a str, &'a str) {
    let c = clone["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no check {name}"));
    (c["status"].as_str().unwrap(), c["detail"].as_str().unwrap())
}

fn facts(clone: &Value) -> &Value {
    &clone["report"]["facts"]
}

/// Every check passed on every clone, and none carries the source's identity.
fn assert_distinct_and_healthy(v: &Verified, summary: &str) {
    let cl = clones(&v.report);
    assert_eq!(cl.len(), 2);
    for c in cl {
        for k in c["checks"].as_array().unwrap() {
            assert_ne!(
                k["status"], "fail",
                "{summary}: {} {}: {}",
                c["name"], k["name"], k["detail"]
            );
        }
    }
    assert_eq!(v.code, 0, "{summary}: verify exited {}", v.code);
    let src = &v.report["source"];
    let src_id = src["machine_id"].as_str().expect("the source's machine-id was read");
    let src_keys: Vec<&str> = src["host_keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["fingerprint"].as_str().unwrap())
        .collect();
    assert!(!src_keys.is_empty(), "the used source has host keys");
    let ids: Vec<&str> = cl.iter().map(|c| facts(c)["machine_id"].as_str().unwrap()).collect();
    assert_ne!(ids[0], ids[1]);
    for (c, id) in cl.iter().zip(&ids) {
        assert_ne!(*id, src_id, "{} has the source's machine-id", c["name"]);
        for k in facts(c)["host_keys"].as_array().unwrap() {
            assert!(
                !src_keys.contains(&k["fingerprint"].as_str().unwrap()),
                "{} has a source host key",
                c["name"]
            );
        }
        let (status, detail) = check(c, "sshd");
        assert_eq!(status, "pass", "{detail}");
        eprintln!(
            "{summary}: {} reported after {:.1} s (kernel up {} s), off after {:.1} s",
            c["name"],
            c["report_after"].as_f64().unwrap_or(f64::NAN),
            c["running_after"],
            c["boot_seconds"].as_f64().unwrap_or(f64::NAN)
        );
    }
}

#[test]
#[ignore = "QEMU boot tier: cargo test --test boot -- --ignored"]
fn debian_with_cloud_init_golden_boots_as_distinct_clones() {
    let d = debian(true);
    let v = readme_verify(&d.golden, &d.used, &scratch("boot/logs-cloud-init"));
    assert_distinct_and_healthy(&v, "debian12 + cloud-init");
    for c in clones(&v.report) {
        let (status, detail) = check(c, "cloud-init");
        assert_eq!(status, "pass", "{detail}");
        let ci = &facts(c)["cloud_init"];
        assert_eq!(
            ci["instance_id"], c["offered_instance_id"],
            "cloud-init took the instance goldify offered"
        );
        assert_ne!(ci["instance_id"], v.report["source"]["cloud_init_instance_id"]);
    }
}

#[test]
#[ignore = "QEMU boot tier: cargo test --test boot -- --ignored"]
fn debian_without_cloud_init_golden_regenerates_host_keys_at_first_boot() {
    let d = debian(false);
    let v = verify(&d.golden, Some(&d.used), &scratch("boot/logs-no-cloud-init"));
    assert_distinct_and_healthy(&v, "debian12 without cloud-init");
    for c in clones(&v.report) {
        assert_eq!(check(c, "cloud-init").0, "skip");
        // Only goldify's first-boot unit can have made these keys.
        assert!(!facts(c)["host_keys"].as_array().unwrap().is_empty());
    }
}

#[test]
#[ignore = "QEMU boot tier: cargo test --test boot -- --ignored"]
fn negative_control_clones_of_the_used_disk_fail() {
    // The check must be able to fail: two clones of the used disk itself share its
    // machine-id and host keys. No --source: the clones alone give it away.
    let d = debian(false);
    let v = verify(&d.used, None, &scratch("boot/logs-negative"));
    assert_eq!(v.code, 6, "verify of the used disk must exit 6 (verification failed)");
    assert_eq!(v.report["ok"], false);
    for c in clones(&v.report) {
        let (status, detail) = check(c, "machine-id");
        assert_eq!(status, "fail", "{detail}");
        assert!(detail.contains("also on clone"), "{detail}");
        assert_eq!(check(c, "host-keys").0, "fail");
        let log = c["serial_log"].as_str().expect("a failed clone's console log is kept");
        assert!(Path::new(log).is_file(), "{log}");
    }
}

/// Fail at once, saying why, when this goldify cannot publish (issue 4 not merged yet).
fn require_publish() {
    let help = timed(goldify().args(["run", "--help"]));
    assert!(
        String::from_utf8_lossy(&help.stdout).contains("--publish"),
        "needs the vmmanager publish target (issue 4): this goldify has no `run --publish`"
    );
}

/// Publish `used` as a VMmanager template with goldify and return the `.xz` archive.
///
/// This is the one place that knows issue 4's command line: `goldify run … --publish
/// vmmanager --publish-dir REPO`. If that changes, change it here.
fn publish_vmmanager(used: &Path, dir: &Path) -> PathBuf {
    let repo_dir = dir.join("repo");
    let recipe = repo().join("recipes/debian.yaml");
    let out = timed(
        goldify()
            .args(["run", recipe.to_str().unwrap()])
            .arg(used)
            .arg("-o")
            .arg(dir)
            .args(["--publish", "vmmanager", "--publish-dir"])
            .arg(&repo_dir),
    );
    assert!(
        out.status.success(),
        "goldify run --publish vmmanager failed:\n{}",
        tail(&out.stderr, 15)
    );
    let archives: Vec<PathBuf> = std::fs::read_dir(&repo_dir)
        .unwrap_or_else(|e| panic!("{}: {e}", repo_dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "xz"))
        .collect();
    assert_eq!(
        archives.len(),
        1,
        "one .xz archive in {}: {archives:?}",
        repo_dir.display()
    );
    assert!(
        repo_dir.join("metadata.json").is_file(),
        "metadata.json in {}",
        repo_dir.display()
    );
    archives[0].clone()
}

#[test]
#[ignore = "QEMU boot tier: cargo test --test boot -- --ignored"]
fn vmmanager_template_decompressed_with_stock_xz_boots() {
    require_publish();
    preflight();
    let used = fixture("debian12.sh", &[]);
    let dir = scratch("boot/vmmanager");
    let archive = {
        let _m = machine();
        publish_vmmanager(&used, &dir)
    };
    require("xz", "the VMmanager archive is checked with stock xz -d");
    let raw = dir.join("template.raw");
    let out = timed(
        std::process::Command::new("sh")
            .arg("-c")
            .arg("xz -d -c \"$1\" > \"$2\"")
            .arg("sh")
            .arg(&archive)
            .arg(&raw),
    );
    assert!(
        out.status.success(),
        "xz -d {} failed: {}",
        archive.display(),
        tail(&out.stderr, 5)
    );
    let v = verify(&raw, Some(&used), &scratch("boot/logs-vmmanager"));
    assert_distinct_and_healthy(&v, "VMmanager template");
}

/// The README's first command: `./scripts/demo.sh` installs what is missing, builds the
/// release binary and the used Debian 12 disk, and leaves the golden disk in
/// out/debian12.qcow2 (here in a scratch directory, through GOLDIFY_DEMO_OUT).
#[test]
#[ignore = "QEMU boot tier: cargo test --test boot -- --ignored"]
fn readme_demo_makes_a_golden_debian_disk() {
    preflight();
    let out_dir = scratch("boot/demo");
    let words = substitute(&readme_command("./scripts/demo.sh"), &[]);
    let out = {
        let _m = machine();
        timed(
            command_from_words(&words)
                .current_dir(repo())
                .env("GOLDIFY_DEMO_OUT", &out_dir),
        )
    };
    assert!(
        out.status.success(),
        "./scripts/demo.sh failed:\n{}\n{}",
        tail(&out.stdout, 20),
        tail(&out.stderr, 20)
    );
    let golden = out_dir.join("debian12.qcow2");
    assert!(golden.is_file(), "{} missing", golden.display());
    let said = String::from_utf8_lossy(&out.stdout);
    // The run's summary, then `goldify inspect` of the golden disk.
    assert!(
        said.contains(&format!("wrote {} (disk-qcow2", golden.display())),
        "{said}"
    );
}
