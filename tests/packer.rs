//! examples/packer/ with a real `packer build`, the README's command: the `file` builder
//! copies a phony Debian disk, then manifest → shell-local (goldify run --packer-manifest) → artifice → checksum.
//! Needs packer, libguestfs and qemu-img; fails (never skips) without them.

mod common;

use common::*;

#[test]
fn packer_chain_ends_with_goldify_artifacts_and_their_checksums() {
    require("packer", "this test runs a real `packer build`");
    require("qemu-img", "goldify makes overlays with qemu-img");
    let disk = fixture("phony.sh", &["debian"]);
    let dir = scratch("packer");
    let template = repo().join("examples/packer/golden.pkr.hcl");
    // The README's command (CHECKPOINT_DISABLE=1: Packer 1.6.6 needs nothing from the
    // network; make sure it does not try), with this test's disk and the checkout's
    // template. The template runs `goldify` from PATH: the binary under test.
    let bin = dir.join("bin");
    std::fs::create_dir(&bin).unwrap();
    std::os::unix::fs::symlink(GOLDIFY, bin.join("goldify")).unwrap();
    let path = std::env::join_paths(
        std::iter::once(bin).chain(std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())),
    )
    .unwrap();
    let words = substitute(
        &readme_command("CHECKPOINT_DISABLE=1 packer build"),
        &[
            ("disk=used.qcow2", &format!("disk={}", disk.display())),
            ("golden.pkr.hcl", &template),
        ],
    );
    let out = timed(
        command_from_words(&words)
            .current_dir(&dir)
            .env("PATH", path)
            .env("PACKER_NO_COLOR", "1")
            .env("PACKER_CACHE_DIR", dir.join("packer-cache")),
    );
    let log = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "packer build failed:\n{log}\n{}",
        tail(&out.stderr, 10)
    );

    // The manifest post-processor recorded the builder's disk; goldify read it from there.
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("packer-manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["builds"][0]["name"], "vm");
    assert_eq!(manifest["builds"][0]["files"][0]["name"], "output-vm/disk.qcow2");
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("output-golden/goldify-report.json")).unwrap()).unwrap();
    assert_eq!(report["input"], "output-vm/disk.qcow2");
    let machine_id = report["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["step"] == "machine-id")
        .unwrap();
    assert!(
        !machine_id["changes"].as_array().unwrap().is_empty(),
        "the machine-id step changed something"
    );

    // artifice made goldify's files the artifact; checksum hashed exactly those.
    assert!(
        log.contains("Created artifact from files: output-golden/golden.qcow2, output-golden/goldify-report.json"),
        "{log}"
    );
    let golden = dir.join("output-golden/golden.qcow2");
    let info = timed(
        std::process::Command::new("qemu-img")
            .args(["info", "--output=json"])
            .arg(&golden),
    );
    assert!(info.status.success(), "qemu-img info {}", golden.display());
    let info: serde_json::Value = serde_json::from_slice(&info.stdout).unwrap();
    assert_eq!(info["format"], "qcow2");
    assert!(info.get("backing-filename").is_none(), "the golden disk stands alone");

    let sums = std::fs::read_to_string(dir.join("output-golden/vm_sha256.checksum")).expect("the checksum file");
    let mut seen = Vec::new();
    for line in sums.lines() {
        let (hash, name) = line
            .split_once(char::is_whitespace)
            .unwrap_or_else(|| panic!("bad line {line:?}"));
        let name = name.trim().trim_start_matches('*');
        assert_eq!(
            hash,
            sha256(&dir.join("output-golden").join(name)),
            "checksum of {name}"
        );
        seen.push(name.to_string());
    }
    seen.sort();
    assert_eq!(seen, ["golden.qcow2", "goldify-report.json"]);
    // The builder's own disk is left as the builder made it: goldify worked on an overlay.
    assert_eq!(sha256(&dir.join("output-vm/disk.qcow2")), sha256(&disk));
}
