//! What a publishing run says it did, driven through the built binary on the phony Debian
//! fixture (vm-fixtures/phony.sh): the golden disk kept beside the published files, every
//! file and repository index named, timings that add up, the TCG notice said once.

mod common;
use common::*;

/// Publishing from the command line alone (`--publish` + `--set`), a namespaced
/// VirtualImage among it: the golden disk is still written to OUTDIR, the summary names
/// every file written and the repository index updated, the timings add up, and the TCG
/// notice is said once, plainly.
#[test]
fn command_line_publishing_keeps_the_golden_disk_and_says_what_it_touched() {
    let img = phony("debian");
    let t = tempfile::tempdir().unwrap();
    let (vm, out) = (t.path().join("vm"), t.path().join("out"));
    let r = Run::of(
        goldify()
            .arg("run")
            .arg(recipe("debian"))
            .arg(&img)
            .arg("-o")
            .arg(&out)
            .args(["--publish", "vmmanager", "--publish", "deckhouse"])
            .arg("--set")
            .arg(format!("vmmanager.repo={}", vm.display()))
            .args(["--set", "vmmanager.compression.preset=0"])
            .args(["--set", "deckhouse.base_url=https://img.example.com/golden"])
            .args([
                "--set",
                "deckhouse.kind=VirtualImage",
                "--set",
                "deckhouse.namespace=vms",
            ])
            .args(["--set", "deckhouse.container_disk=false", "--json"]),
    );
    r.ok();
    let report: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();

    // The golden disk, beside the published files, and the same disk as deckhouse's.
    let golden: Vec<String> = entries(&out)
        .into_iter()
        .filter(|e| e.ends_with("-golden.qcow2"))
        .collect();
    assert_eq!(golden.len(), 1, "{:?}", entries(&out));
    sh(&format!("qemu-img compare -q {} debian-12.qcow2", golden[0]), &out);

    // The VirtualImage: namespaced, importing the qcow2 over HTTP with its checksum.
    let vi = yaml(&out.join("debian-12.virtualimage.yaml"));
    assert_eq!(vi["kind"].as_str(), Some("VirtualImage"));
    assert_eq!(vi["metadata"]["namespace"].as_str(), Some("vms"));
    assert_eq!(vi["metadata"]["name"].as_str(), Some("debian-12"));
    let http = &vi["spec"]["dataSource"]["http"];
    assert_eq!(
        http["url"].as_str(),
        Some("https://img.example.com/golden/debian-12.qcow2")
    );
    let sha256 = sh("sha256sum debian-12.qcow2", &out);
    assert_eq!(http["checksum"]["sha256"].as_str(), sha256.split_whitespace().next());
    assert!(!out.join("debian-12.oci.tar").exists(), "container_disk=false");

    // Every file written is an artifact; the repository index is said to be updated.
    let artifacts = report["artifacts"].as_array().unwrap();
    let paths: Vec<&str> = artifacts.iter().map(|a| a["path"].as_str().unwrap()).collect();
    for p in [
        out.join(&golden[0]),
        out.join("debian-12.qcow2"),
        out.join("debian-12.virtualimage.yaml"),
        vm.join("debian-12.xz"),
        out.join("goldify-manifest.json"),
    ] {
        assert!(
            paths.contains(&p.to_str().unwrap()),
            "{} not among {paths:?}",
            p.display()
        );
    }
    for a in artifacts {
        assert!(a["checksums"].is_object(), "{a}");
    }
    assert_eq!(
        report["updated"],
        serde_json::json!([{"target": "vmmanager", "path": vm.join("metadata.json"), "entry": "debian-12"}])
    );

    // The parts of the run add up to its total.
    let timings = report["timings"].as_object().unwrap();
    let total = timings["total"].as_f64().unwrap();
    let parts: f64 = timings
        .iter()
        .filter(|(k, _)| k.as_str() != "total")
        .map(|(_, v)| v.as_f64().unwrap())
        .sum();
    assert!(
        (total - parts).abs() < 0.01,
        "parts {parts} vs total {total}: {timings:?}"
    );
    assert!(timings["launch"].as_f64().unwrap() > 0.0 && timings["publish"].as_f64().unwrap() > 0.0);

    // Every step's keys are there, empty or null when there is nothing to say.
    for s in report["steps"].as_array().unwrap() {
        assert!(s["warnings"].is_array() && s.get("skipped").is_some(), "{s}");
    }

    // The TCG notice: once, plainly, as a warning.
    if !goldify::guest::launch::accel().is_kvm() {
        let notices: Vec<&str> = r.stderr.lines().filter(|l| l.contains("TCG")).collect();
        assert_eq!(notices.len(), 1, "{}", r.stderr);
        assert!(
            notices[0].contains("WARN") && notices[0].contains("goldify doctor"),
            "{}",
            notices[0]
        );
        assert!(
            !r.stderr.contains("Assertion") && !r.stderr.contains("kvm-all"),
            "{}",
            r.stderr
        );
    }
}

/// A dry run under -q: "would free", nothing written, and no notice on stderr.
#[test]
fn a_quiet_dry_run_says_would_free_and_nothing_else() {
    let img = phony("debian");
    let t = tempfile::tempdir().unwrap();
    let out = t.path().join("out");
    let r = Run::of(
        goldify()
            .arg("-q")
            .arg("run")
            .arg(recipe("debian"))
            .arg(&img)
            .arg("-o")
            .arg(&out)
            .arg("--dry-run"),
    );
    r.ok();
    assert!(
        r.stdout.contains("would free") && r.stdout.contains("total: would free"),
        "{}",
        r.stdout
    );
    assert!(!r.stdout.contains(" freed "), "{}", r.stdout);
    assert!(!r.stderr.contains("TCG"), "-q says nothing: {}", r.stderr);
    assert!(!out.exists());
}
