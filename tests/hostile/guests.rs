//! Hostile-input cases: guests. See main.rs.
//!
//! The guest's own tree attacks the cleaner (hard links here; the symlink traps of the
//! `hostile` phony guest are in steps_in_images.rs), and recipes name files or guest
//! paths they must not: a host file as `extends:`, paths that leave the guest tree.

use crate::common::*;

/// Owner, group, mode and content of a guest file, as the tests compare them.
fn snapshot(img: &Image, path: &str) -> (u32, u32, u32, String) {
    let m = img.meta(path);
    (m.uid, m.gid, m.mode, img.text(path))
}

fn warnings(report: &serde_json::Value, step: &str) -> String {
    let s = report["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["step"] == step)
        .unwrap_or_else(|| panic!("no step {step}"));
    s["warnings"].to_string()
}

/// The `hardlinks` phony guest: /var/log/x.log is /etc/shadow, /etc/machine-id is
/// /etc/gshadow, /etc/hostname is /etc/group, /etc/hosts is /srv/hosts.saved, and
/// /srv/*.alias name gshadow and passwd. The debian recipe plus a chmod and a write on the
/// aliases must leave every other name byte for byte, owner and mode as it was.
#[test]
fn hard_links_are_replaced_never_written_through() {
    let image = phony("hardlinks");
    let before = sha256(&image);
    let kept = [
        "/etc/shadow",
        "/etc/gshadow",
        "/etc/passwd",
        "/etc/group",
        "/srv/hosts.saved",
    ];
    let original: Vec<_> = {
        let img = open(&image);
        assert_eq!(img.meta("/etc/gshadow").nlink, 3, "the fixture's hard links");
        assert_eq!(img.meta("/var/log/x.log").nlink, 2, "the fixture's hard links");
        kept.iter().map(|p| snapshot(&img, p)).collect()
    };

    let dir = tempfile::tempdir().unwrap();
    let recipe_path = dir.path().join("hardlinks.yaml");
    std::fs::write(
        &recipe_path,
        format!(
            "extends: {}\nsteps:\n  - chmod: {{path: /srv/gshadow.alias, mode: \"0644\"}}\n  - write: {{path: /srv/passwd.alias, content: \"alias\\n\", owner: alice}}\n",
            recipe("debian").display()
        ),
    )
    .unwrap();
    let out = dir.path().join("out");
    let r = run(&[
        &"run",
        &"--json",
        &recipe_path,
        &image,
        &"-o",
        &out,
        &"--name",
        &"golden",
    ]);
    r.ok();
    assert_eq!(sha256(&image), before, "the input changed");
    assert_eq!(entries(&out), ["golden.qcow2"]);
    let report: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    for step in ["logs", "machine-id", "hostname", "chmod", "write"] {
        assert!(
            warnings(&report, step).contains("hard links"),
            "{step}: {}",
            warnings(&report, step)
        );
    }

    let img = open(&out.join("golden.qcow2"));
    for (path, was) in kept.iter().zip(&original) {
        assert_eq!(&snapshot(&img, path), was, "{path} changed through a hard link");
        assert_eq!(
            img.meta(path).nlink,
            1,
            "{path}: its other names got inodes of their own"
        );
    }
    // The names the steps wrote were cleaned, each in an inode of its own that keeps the
    // owner and mode the shared one had.
    let log = img.meta("/var/log/x.log");
    assert_eq!((log.size, log.mode, log.gid, log.nlink), (0, 0o640, 42, 1));
    assert_eq!(img.text("/etc/machine-id"), "uninitialized\n");
    assert_eq!(
        (img.meta("/etc/machine-id").mode, img.meta("/etc/machine-id").nlink),
        (0o444, 1)
    );
    assert_eq!(img.text("/etc/hostname"), "localhost\n");
    assert!(!img.text("/etc/hosts").contains("127.0.1.1"));
    assert!(img.text("/srv/hosts.saved").contains("127.0.1.1"));
    assert!(!img.exists("/root/.bash_history"));
    let alias = img.meta("/srv/gshadow.alias");
    assert_eq!((alias.mode, alias.gid, alias.nlink), (0o644, 42, 1));
    assert_eq!(img.text("/srv/gshadow.alias"), original[1].3);
    assert_eq!(img.text("/srv/passwd.alias"), "alias\n");
    assert_eq!(img.meta("/srv/passwd.alias").uid, 1000);
    // No replacement file was left behind.
    for d in ["/etc", "/srv", "/var/log"] {
        let left: Vec<String> = img.list(d).into_iter().filter(|n| n.starts_with(".goldify-")).collect();
        assert!(left.is_empty(), "{d}: {left:?}");
    }
}

/// A host file full of a secret, as `/etc/shadow` is.
const SECRET: &str =
    "root:$6$GOLDIFY-SENTINEL-SECRET$xyz:19844:0:99999:7:::\nalice:$y$GOLDIFY-SENTINEL-SECRET:19845:0:99999:7:::\n";

/// `check` and `run` on `recipe` exit 2 with one error line that mentions `names`, and
/// nothing of SECRET reaches stdout or stderr; nothing is written.
fn refused_without_echo(recipe: &std::path::Path, disk: &std::path::Path, names: &[&str]) {
    let out = tempfile::tempdir().unwrap();
    for r in [
        run(&[&"check", &recipe]),
        run(&[&"run", &recipe, &disk, &"-o", &out.path()]),
    ] {
        assert_eq!(r.code, 2, "{recipe:?}: {}", r.stderr);
        let line = r.error_line();
        for n in names {
            assert!(line.contains(n), "{line:?} should name {n:?}");
        }
        assert!(
            !r.stdout.contains("SENTINEL") && !r.stderr.contains("SENTINEL"),
            "the secret was printed:\n{}{}",
            r.stdout,
            r.stderr
        );
    }
    assert!(entries(out.path()).is_empty());
}

#[test]
fn host_files_named_as_recipes_are_never_printed() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    let shadow = dir.join("shadow");
    std::fs::write(&shadow, SECRET).unwrap();
    let shadow_yaml = dir.join("shadow.yaml");
    std::fs::write(&shadow_yaml, SECRET).unwrap();
    std::os::unix::fs::symlink(&shadow, dir.join("base.yaml")).unwrap();
    let disk = dir.join("disk.img");
    std::fs::write(&disk, [0u8; 4096]).unwrap();
    let sums: Vec<String> = [&shadow, &shadow_yaml, &disk].iter().map(|p| sha256(p)).collect();

    for (name, extends) in [
        ("abs.yaml", shadow.to_str().unwrap()),
        ("link.yaml", "base.yaml"),
        ("yaml.yaml", "shadow.yaml"),
        ("dev.yaml", "/dev/zero"),
    ] {
        let recipe = dir.join(name);
        std::fs::write(&recipe, format!("name: x\nextends: {extends}\n")).unwrap();
        refused_without_echo(&recipe, &disk, &[name]);
    }
    // The secret file itself given as the recipe.
    refused_without_echo(&shadow_yaml, &disk, &["shadow.yaml:1:1:"]);
    refused_without_echo(&shadow, &disk, &["shadow:1:1:"]);

    let after: Vec<String> = [&shadow, &shadow_yaml, &disk].iter().map(|p| sha256(p)).collect();
    assert_eq!(sums, after);
}

/// Guest paths that leave the tree, are relative, empty, hold a NUL byte, or would delete
/// the whole guest are recipe errors: `check` finds them, and `run` stops before the
/// appliance starts (the disk here has no OS: reaching it would exit 3).
#[test]
fn bad_user_step_paths_are_refused_before_the_launch() {
    let d = tempfile::tempdir().unwrap();
    let disk = d.path().join("disk.img");
    std::fs::write(&disk, [0u8; 4096]).unwrap();
    let before = sha256(&disk);
    for (i, step) in [
        "delete: {paths: [/var/log/../../etc/shadow]}",
        "truncate: {paths: [var/log/syslog]}",
        "write: {path: /etc/../root/.ssh/authorized_keys, content: x}",
        "edit: {path: '', regex: a, replace: b}",
        "mkdir: {path: /srv/../..}",
        "chmod: {path: '/etc/[', mode: '0600'}",
        "symlink: {target: /x, link: /, force: true}",
        "firstboot: {name: ../../../etc/cron.d/evil, script: 'id'}",
        "delete: {paths: ['/*']}",
    ]
    .iter()
    .enumerate()
    {
        let recipe = d.path().join(format!("bad{i}.yaml"));
        std::fs::write(&recipe, format!("name: bad\nsteps:\n  - fstrim\n  - {step}\n")).unwrap();
        let out = d.path().join(format!("out{i}"));
        for r in [run(&[&"check", &recipe]), run(&[&"run", &recipe, &disk, &"-o", &out])] {
            assert_eq!(r.code, 2, "{step}: {}", r.stderr);
            let line = r.error_line();
            assert!(line.contains(&format!("bad{i}.yaml:4:")), "{step}: {line}");
            assert!(r.stdout.is_empty(), "{step}: {}", r.stdout);
        }
        assert!(entries(&out).is_empty(), "{step}: {:?}", entries(&out));
    }
    assert_eq!(sha256(&disk), before);
}
