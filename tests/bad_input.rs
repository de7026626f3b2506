//! Bad input: each case gets one clear error line naming the file or option, the documented
//! exit code, and nothing written or lost.

mod common;
use common::*;
use std::io::Write;
use std::path::Path;

fn write(dir: &Path, name: &str, bytes: &[u8]) -> std::path::PathBuf {
    let p = dir.join(name);
    std::fs::File::create(&p).unwrap().write_all(bytes).unwrap();
    p
}

/// Runs goldify on `recipe`/`disk` into a fresh outdir and checks the common promises.
fn refused(recipe: &Path, disk: &Path, code: i32, mentions: &[&str]) -> String {
    let out = tempfile::tempdir().unwrap();
    let before = disk.exists().then(|| sha256(disk));
    let r = run(&[&"run", &recipe, &disk, &"-o", &out.path()]);
    assert_eq!(r.code, code, "stdout:\n{}\nstderr:\n{}", r.stdout, r.stderr);
    let line = r.error_line();
    for m in mentions {
        assert!(line.contains(m), "error line {line:?} should mention {m:?}");
    }
    assert!(
        entries(out.path()).is_empty(),
        "outdir not empty: {:?}",
        entries(out.path())
    );
    if let Some(before) = before {
        assert_eq!(sha256(disk), before, "input changed");
    }
    line
}

#[test]
fn malformed_recipes_exit_2_with_position() {
    let d = tempfile::tempdir().unwrap();
    let disk = write(d.path(), "disk.img", &[0u8; 4096]);
    let r = write(d.path(), "broken.yaml", b"name: x\nsteps: [\n");
    refused(&r, &disk, 2, &["broken.yaml:"]);
    let r = write(d.path(), "typo.yaml", b"name: x\nsteps:\n  - machine-idd: {}\n");
    refused(
        &r,
        &disk,
        2,
        &["typo.yaml:3:", "machine-idd", "did you mean `machine-id`"],
    );
    let r = write(d.path(), "opt.yaml", b"steps:\n  - logs: {mdoe: delete}\n");
    refused(&r, &disk, 2, &["opt.yaml:2:", "mdoe", "did you mean `mode`"]);
    let r = write(d.path(), "type.yaml", b"steps:\n  - fstab: {policy: [fix]}\n");
    refused(&r, &disk, 2, &["type.yaml:2:"]);
    let r = write(d.path(), "binary.yaml", &[0xff, 0xfe, 0x00, 0x41]);
    refused(&r, &disk, 2, &["binary.yaml"]);
    refused(&d.path().join("missing.yaml"), &disk, 2, &["missing.yaml"]);
}

#[test]
fn check_validates_without_a_disk() {
    for name in ["base", "debian", "ubuntu", "rhel", "alpine", "generic"] {
        run(&[&"check", &recipe(name)]).ok();
    }
    // The text shows each step's options, not only its name (as --json does).
    let text = run(&[&"check", &recipe("debian")]);
    assert!(
        text.ok().stdout.contains("  logs\n      mode: \"truncate\"\n"),
        "{}",
        text.stdout
    );
    let json = run(&[&"check", &"--json", &recipe("debian")]);
    let v: serde_json::Value = serde_json::from_str(&json.ok().stdout).unwrap();
    let logs = v["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["step"] == "logs")
        .unwrap();
    assert_eq!(logs["options"]["mode"], "truncate");
    assert_eq!(v["publish"], serde_json::json!([]), "keys always present");
    let d = tempfile::tempdir().unwrap();
    let r = write(
        d.path(),
        "w.yaml",
        b"steps:\n  - fstab: {}\n    when: {family: debain}\n",
    );
    let out = run(&[&"check", &r]);
    assert_eq!(out.code, 2);
    assert!(out.error_line().contains("w.yaml:3:"), "{}", out.stderr);
}

#[test]
fn steps_lists_the_registry() {
    let out = run(&[&"steps", &"--json"]);
    out.ok();
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let names: Vec<&str> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["step"].as_str().unwrap())
        .collect();
    for n in goldify::steps::REGISTRY.iter().map(|i| i.name) {
        assert!(names.contains(&n), "{n} missing from `goldify steps --json`");
    }
    for required in [
        "machine-id",
        "ssh-host-keys",
        "logs",
        "nic-configs",
        "fstab",
        "cloud-init-clean",
        "package-cache",
        "tmp-files",
        "shell-history",
        "hostname",
        "passwd-backups",
        "selinux-relabel",
        "fstrim",
        "delete",
        "truncate",
        "write",
        "edit",
        "mkdir",
        "chmod",
        "symlink",
        "run",
        "firstboot",
    ] {
        assert!(names.contains(&required), "{required} is not a step");
    }
    let text = run(&[&"steps"]);
    assert!(text.ok().stdout.contains("uninitialized|empty|remove"));
}

#[test]
fn missing_corrupt_and_encrypted_disks_exit_3() {
    let d = tempfile::tempdir().unwrap();
    let recipe = recipe("debian");
    refused(&recipe, &d.path().join("nope.qcow2"), 3, &["nope.qcow2"]);
    let mut corrupt = b"QFI\xfb\x00\x00\x00\x03".to_vec();
    corrupt.extend(std::iter::repeat(0xa5).take(4096));
    let c = write(d.path(), "corrupt.qcow2", &corrupt);
    refused(&recipe, &c, 3, &["corrupt.qcow2"]);
    let mut luks = b"LUKS\xba\xbe\x00\x02".to_vec();
    luks.resize(1 << 20, 0);
    let l = write(d.path(), "secret.img", &luks);
    refused(&recipe, &l, 3, &["secret.img", "encrypted"]);
    let e = write(d.path(), "empty.img", b"");
    refused(&recipe, &e, 3, &["empty.img"]);
    let trunc = write(d.path(), "trunc.xz", b"\xfd7zXZ\x00\x00\x04garbage");
    refused(&recipe, &trunc, 3, &["trunc.xz"]);
}

#[test]
fn unwritable_outdir_exits_5() {
    let disk = phony("debian");
    let r = run(&[&"run", &recipe("debian"), &disk, &"-o", &"/proc/goldify-out"]);
    assert_eq!(r.code, 5, "{}", r.stderr);
    assert!(r.error_line().contains("/proc/goldify-out"));
    let d = tempfile::tempdir().unwrap();
    let file = write(d.path(), "afile", b"x");
    let r = run(&[&"run", &recipe("debian"), &disk, &"-o", &file.join("sub")]);
    assert_eq!(r.code, 5, "{}", r.stderr);
    assert!(r.error_line().contains("afile"));
}

#[test]
fn disk_without_an_os_exits_3() {
    let d = tempfile::tempdir().unwrap();
    // A partitioned disk with an empty filesystem: libguestfs finds no OS.
    let disk = d.path().join("blank.img");
    let st = std::process::Command::new("guestfish")
        .envs(guestfs_env())
        .args(["-N", &format!("{}=fs:ext4:64M", disk.display()), "exit"])
        .status()
        .unwrap();
    assert!(st.success());
    refused(&recipe("debian"), &disk, 3, &["no operating system found", "blank.img"]);
}

#[test]
fn full_output_disk_exits_5_and_leaves_nothing() {
    let disk = phony("debian");
    let mnt = tempfile::tempdir().unwrap();
    let _tmpfs = tmpfs(mnt.path(), "1m");
    let before = sha256(&disk);
    let r = run(&[&"run", &recipe("debian"), &disk, &"-o", &mnt.path()]);
    assert_eq!(r.code, 5, "stdout:\n{}\nstderr:\n{}", r.stdout, r.stderr);
    r.error_line();
    assert!(entries(mnt.path()).is_empty(), "left behind: {:?}", entries(mnt.path()));
    assert_eq!(sha256(&disk), before);
}

#[test]
fn in_place_and_dry_run_conflict() {
    let r = run(&[&"run", &recipe("debian"), &"x.img", &"--in-place", &"--dry-run"]);
    assert_eq!(r.code, 2);
}

#[test]
fn full_work_filesystem_stops_the_appliance_instead_of_hanging() {
    // qemu would pause on ENOSPC and libguestfs wait forever; goldify watches the space.
    let disk = phony("debian");
    let mnt = tempfile::tempdir().unwrap();
    let _tmpfs = tmpfs(mnt.path(), "24m");
    let out = tempfile::tempdir().unwrap();
    let o = goldify()
        .env("TMPDIR", mnt.path())
        .arg("run")
        .arg(recipe("debian"))
        .arg(&disk)
        .arg("-o")
        .arg(out.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(5), "{stderr}");
    assert!(stderr.contains("less than 32 MiB free"), "{stderr}");
    assert!(entries(out.path()).is_empty());
    // libguestfs keeps its appliance cache (.guestfs-UID) in TMPDIR; goldify's own work
    // files must be gone.
    let left: Vec<String> = entries(mnt.path())
        .into_iter()
        .filter(|e| !e.starts_with(".guestfs-"))
        .collect();
    assert!(left.is_empty(), "work files left: {left:?}");
}

/// Publish targets are records: `goldify targets` lists every one, `--publish` takes only
/// their names, and a bad setting is a recipe error with file:line:col like any other.
#[test]
fn targets_are_listed_and_their_settings_checked_with_position() {
    let out = run(&[&"targets", &"--json"]);
    out.ok();
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let names: Vec<&str> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "vmmanager",
            "vmmanager-lxd",
            "disk",
            "deckhouse",
            "vcluster",
            "checksums",
            "manifest"
        ]
    );
    assert!(v
        .as_array()
        .unwrap()
        .iter()
        .all(|t| t["options"].as_array().is_some_and(|o| !o.is_empty())));
    let human = run(&[&"targets"]);
    human.ok();
    assert!(human.stdout.contains("deckhouse\n") && human.stdout.contains("base_url: URL (default required)"));

    let d = tempfile::tempdir().unwrap();
    let disk = write(d.path(), "disk.img", &[0u8; 4096]);
    let r = write(d.path(), "r.yaml", b"steps: []\n");
    let bad = run(&[
        &"run",
        &r,
        &disk,
        &"-o",
        &d.path().join("out"),
        &"--publish",
        &"vmmanger",
    ]);
    assert_eq!(bad.code, 2, "{}", bad.stderr);
    assert!(
        bad.stderr.contains("vmmanger") && bad.stderr.contains("vmmanager"),
        "{}",
        bad.stderr
    );
    assert!(!d.path().join("out").exists());

    let r = write(
        d.path(),
        "p.yaml",
        b"steps: []\npublish:\n  disk: {}\n  deckhouse: {kind: VirtualImage}\n",
    );
    let out = run(&[&"check", &r]);
    assert_eq!(out.code, 2);
    let line = out.error_line();
    assert!(
        line.contains("p.yaml:4:") && line.contains("missing setting `base_url`"),
        "{line}"
    );
    let r = write(
        d.path(),
        "q.yaml",
        b"steps: []\npublish:\n  manifest: {file: metadata.json}\n",
    );
    let out = run(&[&"check", &r]);
    assert_eq!(out.code, 2);
    assert!(
        out.error_line().contains("q.yaml:3:") && out.error_line().contains("reserved"),
        "{}",
        out.stderr
    );
    // `--publish` without the recipe's settings says where they go.
    let r = write(d.path(), "e.yaml", b"steps: []\n");
    let out = run(&[
        &"run",
        &r,
        &disk,
        &"-o",
        &d.path().join("out"),
        &"--publish",
        &"deckhouse",
    ]);
    assert_eq!(out.code, 2);
    assert!(
        out.error_line()
            .contains("--publish deckhouse: publish target `deckhouse`: missing setting `base_url`"),
        "{}",
        out.stderr
    );
    assert!(
        out.error_line().contains("--set deckhouse.base_url=…"),
        "{}",
        out.stderr
    );
    assert!(!d.path().join("out").exists());
}

/// The position is said once (serde_yaml's own " at line L column C" is dropped), and a
/// `${var}` that is not defined is an error at the line that uses it.
#[test]
fn positions_are_said_once_and_unknown_vars_have_one() {
    let d = tempfile::tempdir().unwrap();
    let r = write(
        d.path(),
        "bad-indent.yaml",
        b"name: x\nsteps:\n  - machine-id: {}\n   - logs: {}\n",
    );
    let out = run(&[&"check", &r]);
    assert_eq!(out.code, 2);
    let line = out.error_line();
    assert!(line.contains("bad-indent.yaml:4:4: "), "{line}");
    assert!(!line.contains("at line"), "position said twice: {line}");

    let r = write(
        d.path(),
        "v.yaml",
        b"vars: {alpha: b}\nsteps:\n  - delete:\n      paths: [\"/x/${alhpa}\"]\n",
    );
    let out = run(&[&"check", &r]);
    assert_eq!(out.code, 2);
    let line = out.error_line();
    assert!(line.contains("v.yaml:4:"), "{line}");
    assert!(
        line.contains("unknown variable `${alhpa}`, did you mean `${alpha}`?"),
        "{line}"
    );
    // In a recipe it extends, the position is in that file.
    let child = write(d.path(), "child.yaml", b"extends: v.yaml\nvars: {zzz: q}\n");
    let line = run(&[&"check", &child]).error_line();
    assert!(line.contains("v.yaml:4:"), "{line}");

    let r = write(d.path(), "t.yaml", b"steps: []\npublish:\n  vmmanger: {}\n");
    let line = run(&[&"check", &r]).error_line();
    assert!(line.contains("t.yaml:3:3: unknown publish target `vmmanger`"), "{line}");
}

/// With --json, a failure prints one JSON object on stdout besides the error line, for
/// every command that takes --json, clap's usage errors included.
#[test]
fn json_errors_are_one_object_on_stdout() {
    let d = tempfile::tempdir().unwrap();
    let missing = d.path().join("missing.yaml");
    let disk = write(d.path(), "disk.img", &[0u8; 4096]);
    let bad = write(d.path(), "bad.yaml", b"steps: [\n");
    let os = |args: &[&dyn AsRef<std::ffi::OsStr>]| -> Vec<std::ffi::OsString> {
        args.iter().map(|a| a.as_ref().to_os_string()).collect()
    };
    let cases = [
        (os(&[&"check", &"--json", &missing]), 2, "usage"),
        (os(&[&"run", &bad, &disk, &"--json", &"-o", &d.path()]), 2, "usage"),
        (
            os(&[&"run", &recipe("base"), &d.path().join("nope.img"), &"--json"]),
            3,
            "input",
        ),
        (os(&[&"inspect", &"--json", &d.path().join("nope.img")]), 3, "input"),
        (os(&[&"repo", &"list", &"--json", &d.path().join("norepo")]), 2, "usage"),
        (
            os(&[&"repo", &"verify", &"--json", &d.path().join("norepo")]),
            2,
            "usage",
        ),
        (
            os(&[&"verify", &"--boot", &"--json", &d.path().join("nope.qcow2")]),
            3,
            "input",
        ),
        (os(&[&"check", &"--json", &bad, &"--no-such-flag"]), 2, "usage"),
    ];
    for (args, code, kind) in cases {
        let r = Run::of(goldify().args(&args));
        assert_eq!(r.code, code, "{args:?}\n{}", r.stderr);
        let v: serde_json::Value = serde_json::from_str(&r.stdout)
            .unwrap_or_else(|e| panic!("{args:?}: stdout is not one JSON object ({e}):\n{}", r.stdout));
        let keys: Vec<&String> = v.as_object().unwrap().keys().collect();
        assert_eq!(keys, ["error"], "{v}");
        let e = &v["error"];
        assert_eq!(e["exit_code"], code, "{v}");
        assert_eq!(e["kind"], kind, "{v}");
        let message = e["message"].as_str().unwrap();
        assert!(!message.is_empty() && !message.contains('\n'), "{v}");
        assert!(r.stderr.contains(message.lines().next().unwrap()), "{}", r.stderr);
    }
    // Without --json, stdout stays empty.
    let r = run(&[&"check", &missing]);
    assert_eq!((r.code, r.stdout.as_str()), (2, ""));
}

/// `--set TARGET.KEY=VALUE` gives a target's settings on the command line, typed as the
/// recipe's are; every hostile form is one error line naming the option, exit 2, before
/// anything is written; `check` takes the same options as `run` and finds the same faults.
#[test]
fn set_gives_settings_and_refuses_hostile_ones() {
    let d = tempfile::tempdir().unwrap();
    let disk = write(d.path(), "disk.img", &[0u8; 4096]);
    let r = write(
        d.path(),
        "r.yaml",
        b"steps: []\npublish:\n  vcluster: {base_url: 'https://a.example/'}\n",
    );
    let out = d.path().join("out");
    // (extra arguments, what the error line says); each also through `check`.
    let cases: &[(&[&str], &[&str])] = &[
        (&["--set", "deckhouse.base_url"], &["--set", "TARGET.KEY=VALUE"]),
        (&["--set", "deckhouse=https://x"], &["--set", "TARGET.KEY=VALUE"]),
        (
            &["--set", "deckhous.base_url=https://x"],
            &["--set deckhous.base_url", "did you mean `deckhouse`?"],
        ),
        (
            &["--set", "vcluster.base_ulr=https://x"],
            &[
                "--set vcluster.base_ulr",
                "no setting `base_ulr`",
                "did you mean `base_url`?",
            ],
        ),
        (
            &["--set", "vcluster.base_url=ftp://x"],
            &["--set vcluster.base_url", "http:// or https://"],
        ),
        (
            &[
                "--set",
                "vcluster.base_url=https://x",
                "--set",
                "vcluster.base_url=https://y",
            ],
            &["--set vcluster.base_url is given twice"],
        ),
        (
            &["--set", "deckhouse.base_url=https://x"],
            &[
                "--set deckhouse.base_url",
                "does not publish to `deckhouse`",
                "--publish deckhouse",
            ],
        ),
        (
            &["--set", "manifest.file=metadata.json"],
            &["--set manifest.file", "reserved"],
        ),
        (
            &["--publish", "manifest", "--set", "manifest.file=metadata.json"],
            &["--set manifest.file", "reserved"],
        ),
        (
            &["--set", "vcluster.base_url=[1, 2]"],
            &["--set vcluster.base_url", "publish target `vcluster`"],
        ),
        (
            &["--set", "vcluster.base_url.x=1"],
            &["--set vcluster.base_url", "not a mapping"],
        ),
        (
            &["--publish", "deckhouse"],
            &[
                "missing setting `base_url`",
                "under `publish: deckhouse:`",
                "--set deckhouse.base_url=…",
            ],
        ),
        (
            &[
                "--publish",
                "deckhouse",
                "--set",
                "deckhouse.kind=VirtualImage",
                "--set",
                "deckhouse.base_url=https://x",
            ],
            &["--set deckhouse.kind, --set deckhouse.base_url", "namespace"],
        ),
    ];
    for (extra, says) in cases {
        for cmd in ["run", "check"] {
            let mut c = goldify();
            c.arg(cmd).arg(&r);
            if cmd == "run" {
                c.arg(&disk);
            }
            let res = Run::of(c.arg("-o").arg(&out).args(*extra));
            assert_eq!(res.code, 2, "{cmd} {extra:?}\n{}", res.stderr);
            let line = if res.stderr.starts_with("error:") {
                res.stderr.clone() // clap's own usage error (several lines)
            } else {
                res.error_line()
            };
            for s in *says {
                assert!(line.contains(s), "{cmd} {extra:?}: {line:?} should say {s:?}");
            }
            assert!(!out.exists(), "{cmd} {extra:?} created the outdir");
        }
    }
    // Accepted: typed through the target's settings (a number, a nested key).
    let ok = run(&[
        &"check",
        &r,
        &"--publish",
        &"deckhouse",
        &"--publish",
        &"vmmanager",
        &"--set",
        &"deckhouse.base_url=https://img.example.com/g",
        &"--set",
        &"deckhouse.tag=v1",
        &"--set",
        &"vmmanager.compression.preset=1",
        &"--json",
    ]);
    ok.ok();
    let v: serde_json::Value = serde_json::from_str(&ok.stdout).unwrap();
    assert_eq!(v["publish"], serde_json::json!(["vmmanager", "deckhouse"]));
    // A target the recipe lists without its required setting: the error says both ways,
    // and --set gives it.
    let listed = write(
        d.path(),
        "listed.yaml",
        b"steps: []\npublish:\n  deckhouse: {kind: VirtualImage, namespace: vms}\n",
    );
    let line = run(&[&"check", &listed]).error_line();
    assert!(
        line.contains("listed.yaml:3:")
            && line.contains("publish target `deckhouse`: missing setting `base_url`: add it under `publish: deckhouse:` in the recipe, or pass --set deckhouse.base_url=…"),
        "{line}"
    );
    let ok = run(&[
        &"check",
        &listed,
        &"--set",
        &"deckhouse.base_url=https://x.example/",
        &"--json",
    ]);
    let v: serde_json::Value = serde_json::from_str(&ok.ok().stdout).unwrap();
    assert_eq!(v["publish"], serde_json::json!(["deckhouse"]));
    let line = run(&[&"check", &listed, &"--set", &"deckhouse.base_url=ftp://x"]).error_line();
    assert!(
        line.contains("listed.yaml:3:") && line.contains("--set deckhouse.base_url") && line.contains("http://"),
        "{line}"
    );
    // Both commands document the options.
    for cmd in ["run", "check"] {
        let help = run(&[&cmd, &"--help"]);
        for opt in [
            "--set <TARGET.KEY=VALUE>",
            "--no-golden",
            "--publish <TARGET>",
            "--name <NAME>",
        ] {
            assert!(help.ok().stdout.contains(opt), "{cmd} --help lacks {opt}");
        }
    }
    let bad = run(&[
        &"check",
        &r,
        &"--publish",
        &"vmmanager",
        &"--set",
        &"vmmanager.compression.preset=x",
    ]);
    assert_eq!(bad.code, 2);
    assert!(
        bad.error_line().contains("--set vmmanager.compression.preset"),
        "{}",
        bad.stderr
    );
}

/// `check` with the options `run` would be given finds the conflicts `run` finds at its
/// start: two targets that want one file (known once --name decides it).
#[test]
fn check_finds_conflicts_the_command_line_decides() {
    let d = tempfile::tempdir().unwrap();
    let r = write(
        d.path(),
        "c.yaml",
        b"steps: []\npublish:\n  disk: {compress: true}\n  deckhouse: {base_url: 'https://x/'}\n",
    );
    run(&[&"check", &r]).ok();
    let out = run(&[&"check", &r, &"--name", &"debian-12", &"-o", &d.path()]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    let line = out.error_line();
    assert!(
        line.contains("debian-12.qcow2 is wanted as qcow2 (compressed) by the `disk` target"),
        "{line}"
    );
    let out = run(&[&"check", &r, &"--name", &"../x"]);
    assert_eq!(out.code, 2);
    assert!(out.error_line().contains("--name"), "{}", out.stderr);
    // An output that would replace the recipe itself.
    let out = run(&[
        &"check",
        &r,
        &"--name",
        &"c",
        &"--publish",
        &"disk",
        &"--set",
        &"disk.format=raw",
        &"--set",
        &"disk.name=c.yaml",
        &"-o",
        &d.path(),
    ]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(!d.path().join("out").exists());
}
