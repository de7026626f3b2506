//! A new user's first hour, without an appliance: installing goldify (the README's
//! `scripts/install.sh`, into a temporary HOME's ~/.local, with the debug binary:
//! `GOLDIFY_BIN` skips the release build), extending the shipped recipes from anywhere, completions, man pages, the
//! recipe search path, `-n` and `--operations`.

mod common;
use common::*;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The README's `scripts/install.sh`, run from the checkout for a user whose HOME is
/// `home` (so into `home`/.local), with the binary under test; its stdout.
fn install(home: &Path) -> String {
    let words = substitute(&readme_command("scripts/install.sh"), &[]);
    let out = command_from_words(&words)
        .current_dir(repo())
        .env("HOME", home)
        .env("GOLDIFY_BIN", GOLDIFY)
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "install.sh failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn installed(prefix: &Path, args: &[&dyn AsRef<std::ffi::OsStr>]) -> Run {
    let mut c = Command::new(prefix.join("bin/goldify"));
    c.env_remove("RUST_LOG").env_remove("GOLDIFY_RECIPE_PATH");
    Run::of(c.args(args.iter().map(|a| a.as_ref())))
}

#[test]
fn install_sh_installs_everything_and_the_installed_binary_finds_its_recipes() {
    let d = tempfile::tempdir().unwrap();
    let home = d.path().join("home");
    let prefix = home.join(".local");
    let said = install(&home);
    assert!(said.contains("is not on your PATH"), "{said}");
    let share = prefix.join("share");
    for f in [
        "goldify/recipes/debian.yaml",
        "goldify/recipes/base.yaml",
        "man/man1/goldify.1",
        "man/man1/goldify-run.1",
        "man/man1/goldify-repo-gc.1",
        "bash-completion/completions/goldify",
        "zsh/site-functions/_goldify",
        "fish/vendor_completions.d/goldify.fish",
    ] {
        let p = share.join(f);
        assert!(
            std::fs::metadata(&p).is_ok_and(|m| m.len() > 0),
            "{} missing or empty",
            p.display()
        );
    }
    // Idempotent: a second run over the first works and changes nothing it should keep.
    install(&home);

    // The README's example: a recipe saved anywhere extends the shipped debian.yaml,
    // found in PREFIX/share/goldify/recipes (the installed binary is not in a checkout).
    let work = d.path().join("anywhere");
    std::fs::create_dir(&work).unwrap();
    let mine = work.join("my-debian.yaml");
    std::fs::write(&mine, "name: my-debian\nextends: debian.yaml\nskip: [package-cache]\n").unwrap();
    let r = installed(&prefix, &[&"check", &"--json", &mine]);
    r.ok();
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    let from: Vec<&str> = v["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["from"].as_str().unwrap())
        .collect();
    let shipped = share.join("goldify/recipes");
    assert!(from.contains(&shipped.join("base.yaml").to_str().unwrap()), "{from:?}");
    assert!(
        !from.iter().any(|f| f.starts_with(repo().to_str().unwrap())),
        "{from:?}"
    );
    // A bare shipped name on the command line, from an unrelated directory.
    let r = Run::of(
        Command::new(prefix.join("bin/goldify"))
            .args(["check", "ubuntu.yaml"])
            .current_dir(&work),
    );
    r.ok();
    // A typo names the line, the files tried (the installed directory among them) and
    // the nearest recipe.
    std::fs::write(&mine, "name: my-debian\nextends: debian.yml\n").unwrap();
    let r = installed(&prefix, &[&"check", &mine]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    let line = r.error_line();
    let expected = format!(
        "goldify: error: {}:2:1: extends: debian.yml not found (looked in: {}, {}); did you mean debian.yaml?",
        mine.display(),
        work.join("debian.yml").display(),
        shipped.join("debian.yml").display()
    );
    assert_eq!(line, expected);
    // `goldify recipes` says where they are.
    let r = installed(&prefix, &[&"recipes"]);
    assert!(
        r.ok()
            .stdout
            .contains(&format!("  {}  [installed]\n", shipped.display())),
        "{}",
        r.stdout
    );
}

#[test]
fn goldify_recipe_path_comes_before_the_shipped_recipes() {
    let d = tempfile::tempdir().unwrap();
    let site = d.path().join("site");
    std::fs::create_dir(&site).unwrap();
    std::fs::write(site.join("debian.yaml"), "name: site-debian\nsteps: [fstrim]\n").unwrap();
    let mine = d.path().join("elsewhere.yaml");
    std::fs::write(&mine, "extends: debian.yaml\n").unwrap();
    let r = Run::of(
        goldify()
            .args(["check", "--json"])
            .arg(&mine)
            .env("GOLDIFY_RECIPE_PATH", format!("/nonexistent:{}", site.display())),
    );
    let v: serde_json::Value = serde_json::from_str(&r.ok().stdout).unwrap();
    assert_eq!(v["steps"].as_array().unwrap().len(), 1, "{v}");
    // Without it, the checkout's recipes (the binary runs from target/).
    let r = Run::of(
        goldify()
            .args(["check", "--json"])
            .arg(&mine)
            .env_remove("GOLDIFY_RECIPE_PATH"),
    );
    let v: serde_json::Value = serde_json::from_str(&r.ok().stdout).unwrap();
    assert!(v["steps"].as_array().unwrap().len() > 5, "{v}");
}

#[test]
fn hostile_extends_names_are_never_searched_for() {
    let d = tempfile::tempdir().unwrap();
    let site = d.path().join("site");
    std::fs::create_dir_all(site.join("sub")).unwrap();
    std::fs::write(site.join("x.yaml"), "steps: [fstrim]\n").unwrap();
    let here = d.path().join("here/deep");
    std::fs::create_dir_all(&here).unwrap();
    let env = ("GOLDIFY_RECIPE_PATH", site.join("sub"));
    // `../x.yaml` would be site/x.yaml if it were searched from site/sub: it is not.
    for (extends, tried) in [
        ("../x.yaml", here.join("../x.yaml")),
        ("/nonexistent/x.yaml", PathBuf::from("/nonexistent/x.yaml")),
    ] {
        let r = here.join("r.yaml");
        std::fs::write(&r, format!("extends: {extends}\n")).unwrap();
        let out = Run::of(goldify().arg("check").arg(&r).env(env.0, &env.1));
        assert_eq!(out.code, 2, "{}", out.stderr);
        assert!(
            out.error_line()
                .ends_with(&format!("not found (looked in: {})", tried.display())),
            "{}",
            out.stderr
        );
    }
    // Cycles through the search path are found.
    std::fs::write(site.join("sub/a.yaml"), "extends: b.yaml\n").unwrap();
    std::fs::write(site.join("sub/b.yaml"), "extends: a.yaml\n").unwrap();
    let r = here.join("r.yaml");
    std::fs::write(&r, "extends: a.yaml\n").unwrap();
    let out = Run::of(goldify().arg("check").arg(&r).env(env.0, &env.1));
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.error_line().contains("loops back"), "{}", out.stderr);
    // A FIFO found along the path is refused, not opened (which would hang).
    nix::unistd::mkfifo(
        &site.join("sub/fifo.yaml"),
        nix::sys::stat::Mode::from_bits_truncate(0o600),
    )
    .unwrap();
    std::fs::write(&r, "extends: fifo.yaml\n").unwrap();
    let out = Run::of(goldify().arg("check").arg(&r).env(env.0, &env.1));
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.error_line().contains("not a regular file"), "{}", out.stderr);
}

#[test]
fn completions_mention_every_subcommand() {
    for shell in ["bash", "zsh", "fish"] {
        let r = run(&[&"completions", &shell]);
        r.ok();
        for sub in [
            "run",
            "check",
            "steps",
            "targets",
            "verify",
            "repo",
            "recipes",
            "completions",
            "manpages",
        ] {
            assert!(r.stdout.contains(sub), "{shell} completion lacks {sub}");
        }
        assert!(r.stdout.contains("operations"), "{shell} completion lacks --operations");
    }
    let r = run(&[&"completions", &"tcsh"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
}

#[test]
fn manpages_writes_one_page_per_command() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path().join("man1");
    let r = run(&[&"manpages", &dir]);
    r.ok();
    let mut names = entries(&dir);
    names.retain(|n| n.ends_with(".1"));
    for page in [
        "goldify.1",
        "goldify-run.1",
        "goldify-check.1",
        "goldify-repo.1",
        "goldify-repo-list.1",
    ] {
        assert!(names.iter().any(|n| n == page), "{page} not in {names:?}");
    }
    let run_page = std::fs::read_to_string(dir.join("goldify-run.1")).unwrap();
    assert!(
        run_page.starts_with(".ie") || run_page.contains(".TH goldify-run 1"),
        "{run_page:.200}"
    );
    assert!(
        run_page.contains("dry\\-run") && run_page.contains("operations"),
        "{run_page}"
    );
    // Its listing is the pages it wrote.
    assert_eq!(r.stdout.lines().count(), names.len(), "{}", r.stdout);
    // DIR that cannot be created: output error.
    let file = d.path().join("file");
    std::fs::write(&file, "").unwrap();
    let r = run(&[&"manpages", &file.join("man1")]);
    assert_eq!(r.code, 5, "{}", r.stderr);
    assert!(r.error_line().contains("file/man1"), "{}", r.stderr);
}

#[test]
fn operations_are_checked_before_the_disk() {
    // A disk that does not exist: reaching it would exit 3, so exit 2 proves the
    // check came first.
    let d = tempfile::tempdir().unwrap();
    let disk = d.path().join("missing.qcow2");
    let cases: [(&[&str], &str); 4] = [
        (
            &["--operations", "defaults,-tmp-file"],
            "--operations: unknown step `tmp-file`, did you mean `tmp-files`?",
        ),
        (&["--enable", "write"], "step `write` needs its options"),
        (&["--operations", "-logs"], "selects no step"),
        (&["-n", "--operations", "logs,,fstrim"], "an empty name"),
    ];
    for (args, says) in cases {
        let mut c = goldify();
        c.arg("run")
            .arg(recipe("debian"))
            .arg(&disk)
            .args(args)
            .arg("-o")
            .arg(d.path());
        let r = Run::of(&mut c);
        assert_eq!(r.code, 2, "{args:?}: {}", r.stderr);
        assert!(r.error_line().contains(says), "{args:?}: {}", r.stderr);
    }
    let r = run(&[&"run", &recipe("debian"), &disk, &"-n", &"--in-place"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr.contains("--in-place") && r.stderr.contains("--dry-run"),
        "{}",
        r.stderr
    );
}

#[test]
fn list_operations_marks_what_the_run_would_apply() {
    let r = run(&[
        &"run",
        &recipe("debian"),
        &"--operations",
        &"defaults,-logs,selinux-relabel",
        &"--list-operations",
    ]);
    r.ok();
    let marked = |name: &str| {
        let line = r
            .stdout
            .lines()
            .find(|l| l.split_whitespace().next() == Some(name))
            .unwrap_or_else(|| panic!("{name} not listed:\n{}", r.stdout));
        line.split_whitespace().nth(1) == Some("*")
    };
    assert!(!marked("logs") && marked("selinux-relabel") && marked("machine-id") && !marked("write"));
    let plain = run(&[&"run", &recipe("debian"), &"--list-operations"]);
    assert!(plain
        .ok()
        .stdout
        .lines()
        .any(|l| l.starts_with("logs ") && l.contains(" * ")));
}
