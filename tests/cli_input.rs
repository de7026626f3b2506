//! The command line's own input: `--set` settings, the options `check` shares with `run`,
//! error positions, and the JSON error object. No appliance: each case fails (or passes
//! `check`) before any disk is opened.

mod common;
use common::*;
use std::path::Path;

fn write(dir: &Path, name: &str, bytes: &[u8]) -> std::path::PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
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

/// A guest on several disks: each golden disk is named after its input, and what would
/// collide is refused before any disk is opened (exit 2): two inputs of one name, a golden
/// disk that would replace the other input, one disk given twice (a hard link too), a
/// target that publishes one disk image. Nothing is created.
#[test]
fn several_disks_refuse_collisions_before_anything_starts() {
    let d = tempfile::tempdir().unwrap();
    let r = write(d.path(), "r.yaml", b"steps:\n  - machine-id: {}\n");
    std::fs::create_dir_all(d.path().join("a")).unwrap();
    std::fs::create_dir_all(d.path().join("b")).unwrap();
    let a = write(d.path(), "a/disk.qcow2", b"not read");
    let b = write(d.path(), "b/disk.img", b"not read");
    let c = write(d.path(), "c.img", b"not read");
    let out = d.path().join("out");
    // The first disk's golden disk would be written over the second disk.
    let golden_of_a = write(d.path(), "disk-golden.qcow2", b"the second disk");
    let cases: [(Vec<&dyn AsRef<std::ffi::OsStr>>, String); 4] = [
        (
            vec![&a, &b],
            format!(
                "disks {} and {} would both give the golden disk disk-golden",
                a.display(),
                b.display()
            ),
        ),
        (vec![&a, &"-a", &a], format!("disk {} is given twice", a.display())),
        (
            vec![&a, &"--publish", &"vmmanager", &"-a", &c],
            "publish target `vmmanager` makes a template of one disk, and this guest is on 2".into(),
        ),
        (vec![&a, &golden_of_a], "input disk".into()),
    ];
    for (i, (disks, said)) in cases.into_iter().enumerate() {
        let o = if i == 3 { d.path() } else { out.as_path() };
        let mut args: Vec<&dyn AsRef<std::ffi::OsStr>> = vec![&"run", &"-o", &o, &r];
        args.extend(disks);
        let res = run(&args);
        assert_eq!(res.code, 2, "{}", res.stderr);
        assert!(res.error_line().contains(&said), "{said}: {}", res.error_line());
        assert!(!out.exists());
    }
    // A hard link is the same disk.
    let link = d.path().join("link.qcow2");
    std::fs::hard_link(&a, &link).unwrap();
    let res = run(&[&"run", &"-n", &r, &a, &link]);
    assert_eq!(res.code, 2, "{}", res.stderr);
    assert!(res.error_line().contains("is given twice"), "{}", res.stderr);
}
