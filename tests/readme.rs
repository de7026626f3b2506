//! README.md as a new user reads it: every command of its ```sh blocks is run.
//!
//! - `every_readme_command_is_run_by_a_test` (no appliance): each command is either run
//!   by `readme_commands_run_in_order` or claimed in [`ELSEWHERE`] by a named test whose
//!   source takes it from the README with `readme_command("<prefix>")`; every `goldify`
//!   command, claimed or not, parses.
//! - `readme_commands_run_in_order`: one sandbox (a working directory holding the files
//!   the README names, made from the cached fixtures, and a HOME of its own), every
//!   unclaimed command run there in README order with the binary under test. Each exits
//!   0, or the code its comment promises (`# exit N: …`), and shows the effect [`effects`]
//!   expects of it.

mod common;
use common::*;
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime};

/// What CI runs (.ci/run calls it); no test runs the whole suite from inside itself.
const RUN_BY_CI: &str = "run by CI";

/// README commands too slow or impossible in the sandbox, and where they are run: a test
/// file whose source holds `readme_command("<prefix>")`, or CI.
const ELSEWHERE: &[(&str, &str)] = &[
    // Builds the release binary and the real Debian fixture: the boot tier.
    ("./scripts/demo.sh", "tests/boot.rs"),
    ("./scripts/test.sh", RUN_BY_CI),
    // Installs into a HOME of its own, with the debug binary.
    ("scripts/install.sh", "tests/install.rs"),
    // Boots clones of a real Debian golden disk (the phony guests do not boot).
    ("goldify verify --boot", "tests/boot.rs"),
    ("CHECKPOINT_DISABLE=1 packer build", "tests/packer.rs"),
    // Already run on the hibernated fixture and the LUKS layout, where they are checked in
    // depth; here they would only add appliance time.
    (
        "goldify run windows.yaml used-windows.qcow2 -o out/ --remove-hiberfile",
        "tests/windows.rs",
    ),
    ("goldify run debian.yaml encrypted.qcow2", "tests/inspection.rs"),
];

fn claim(c: &ReadmeCommand) -> Option<&'static str> {
    ELSEWHERE
        .iter()
        .find(|(prefix, _)| c.starts_with(prefix))
        .map(|(_, by)| *by)
}

/// What the sandbox checks after each command it runs, by the command's text (its words
/// joined by spaces). Every command the sandbox runs has an entry: a new README command
/// needs one here.
fn effects() -> Vec<(&'static str, Effect)> {
    vec![
        (
            "goldify completions bash > ~/.local/share/bash-completion/completions/goldify",
            |c| {
                let f = c.home("/.local/share/bash-completion/completions/goldify");
                c.assert(read(&f).contains("_goldify"), "the bash completion is written");
            },
        ),
        ("goldify manpages ~/.local/share/man/man1", |c| {
            c.assert(
                c.home("/.local/share/man/man1/goldify-run.1").is_file(),
                "goldify-run.1 is written",
            );
        }),
        ("goldify run debian.yaml used.qcow2 -o out/", |c| {
            c.stdout_has("wrote out/used-golden.qcow2");
            c.assert(c.file("out/used-golden.qcow2").is_file(), "the golden disk is there");
            c.input_untouched();
        }),
        ("goldify run ubuntu.yaml os.qcow2 var.qcow2 -o out/", |c| {
            c.stdout_has("os.qcow2 + var.qcow2 (ubuntu 22");
            c.stdout_has("wrote out/os-golden.qcow2");
            c.stdout_has("wrote out/var-golden.qcow2");
        }),
        ("goldify inspect os.qcow2", |c| {
            c.assert(
                c.run.error_line().contains("/etc/fstab line 2")
                    && c.run.error_line().contains("give every disk of the guest"),
                "the refusal names the fstab line of /var",
            );
            c.nothing_written();
        }),
        ("goldify inspect used.qcow2", |c| {
            c.stdout_has("debian 12");
            c.nothing_written();
        }),
        ("goldify run debian.yaml used.qcow2 -n", |c| {
            c.stdout_has("would change");
            c.nothing_written();
        }),
        ("goldify run rhel.yaml vm.qcow2 --in-place", |c| {
            c.assert(
                c.changed("vm.qcow2") && c.tree().keys().eq(c.before.keys()),
                "vm.qcow2 itself is changed, and no file is added",
            );
        }),
        ("goldify check my-debian.yaml", |c| {
            c.stdout_has("recipe `my-debian` is valid");
            c.stdout_has("content: \"Welcome\\n\"");
        }),
        ("goldify recipes", |c| {
            c.stdout_has("[checkout]");
            c.stdout_has("debian.yaml");
        }),
        ("goldify steps", |c| c.stdout_has("machine-id [runs last]")),
        (
            "goldify run debian.yaml used.qcow2 -n --operations defaults,-logs",
            |c| {
                c.stdout_has("left out by --operations");
                c.nothing_written();
            },
        ),
        (
            "goldify run debian.yaml --operations machine-id,ssh-host-keys --list-operations",
            |c| {
                let marked: Vec<&str> = c
                    .run
                    .stdout
                    .lines()
                    .filter(|l| l.split_whitespace().nth(1) == Some("*"))
                    .filter_map(|l| l.split_whitespace().next())
                    .collect();
                c.assert(
                    marked == ["machine-id", "ssh-host-keys"],
                    &format!("exactly the two steps are marked: {marked:?}"),
                );
            },
        ),
        ("goldify targets", |c| c.stdout_has("vmmanager-windows")),
        (
            "goldify run debian.yaml used.qcow2 -o out/ --publish deckhouse --set deckhouse.base_url=https://img.example.com/golden --set deckhouse.tag=v1",
            |c| {
                let manifest = read(&c.file("out/debian-12.clustervirtualimage.yaml"));
                c.assert(
                    manifest.contains("https://img.example.com/golden/debian-12.qcow2"),
                    &format!("the manifest imports from base_url:\n{manifest}"),
                );
                c.assert(c.file("out/debian-12.oci.tar").is_file(), "the oci-archive is there");
                c.assert(c.changed("out/used-golden.qcow2"), "the golden disk is written too");
            },
        ),
        (
            "goldify check debian.yaml -o out/ --publish vmmanager --publish-dir repo/ --no-golden",
            |c| {
                c.stdout_has("publishes to: vmmanager");
                c.nothing_written();
            },
        ),
        (
            "goldify check debian.yaml --name web --publish disk --publish deckhouse --set disk.compress=true --set deckhouse.base_url=https://img.example.com/golden",
            |c| {
                c.assert(
                    c.run.error_line().contains("web.qcow2 is wanted as qcow2 (compressed) by the `disk` target"),
                    "the conflict names the file and the targets",
                );
                c.nothing_written();
            },
        ),
        (
            "goldify run windows.yaml used-windows.qcow2 --publish vmmanager-windows --publish-dir repo/",
            |c| {
                c.stdout_has("updated repo/metadata.json (entry `windows-10`, vmmanager-windows)");
                c.assert(c.file("repo/windows-10.tar.gz").is_file(), "the package is there");
                c.assert(c.file("used-windows-golden.qcow2").is_file(), "the golden disk is kept");
            },
        ),
        ("goldify repo list repo/", |c| {
            c.stdout_has("windows-10.tar.gz");
            c.stdout_has("available");
            c.stdout_has("unreferenced file");
        }),
        ("goldify repo verify repo/", |c| {
            c.stdout_has("available");
            c.nothing_written();
        }),
        ("goldify repo list repo/ --strict", |c| {
            c.stdout_has("old-template.xz");
            c.nothing_written();
        }),
        ("goldify repo gc repo/ --dry-run", |c| {
            c.stdout_has("would remove repo/old-template.xz");
            c.nothing_written();
        }),
        ("goldify repo gc repo/", |c| {
            c.stdout_has("removed repo/old-template.xz");
            c.assert(!c.file("repo/old-template.xz").exists(), "the stale archive is gone");
        }),
        ("goldify repo rm repo/ windows-10", |c| {
            let meta = json(&c.file("repo/metadata.json"));
            c.assert(meta["os"] == serde_json::json!([]), &format!("the entry is gone: {meta}"));
            c.assert(!c.file("repo/windows-10.tar.gz").exists(), "its package is gone");
        }),
        ("goldify doctor", |c| c.stdout_has("goldify will use: ")),
        (
            "TMPDIR=/var/tmp goldify run debian.yaml used.qcow2 -o out/",
            |c| {
                c.assert(c.changed("out/used-golden.qcow2"), "the golden disk is written again");
                c.input_untouched();
            },
        ),
        ("goldify inspect images/clone.qcow2", |c| {
            c.assert(
                c.run.error_line().contains("names backing file \"base.qcow2\""),
                "the refusal names the backing file",
            );
        }),
        ("goldify inspect images/clone.qcow2 --allow-backing images/", |c| {
            c.stdout_has("debian 12")
        }),
        ("goldify inspect missing.qcow2 --json", |c| {
            let v: serde_json::Value = serde_json::from_str(&c.run.stdout).unwrap_or_else(|e| {
                panic!("{}: stdout is not JSON ({e}):\n{}", c.said, c.run.stdout)
            });
            c.assert(
                v["error"]["exit_code"] == 3 && v["error"]["kind"] == "input",
                &format!("one error object: {v}"),
            );
        }),
    ]
}

type Effect = fn(&After);

/// Every file below the working directory: size and modification time.
type Tree = BTreeMap<String, (u64, SystemTime)>;

/// A command the sandbox ran, for its effect to be checked.
struct After<'a> {
    sandbox: &'a Sandbox,
    run: &'a Run,
    before: Tree,
    /// "README line N: `command`", for messages.
    said: String,
}

impl After<'_> {
    #[track_caller]
    fn assert(&self, ok: bool, what: &str) {
        assert!(
            ok,
            "{}: {what}\nstdout:\n{}\nstderr:\n{}",
            self.said,
            self.run.stdout,
            tail(self.run.stderr.as_bytes(), 10)
        );
    }

    #[track_caller]
    fn stdout_has(&self, text: &str) {
        self.assert(self.run.stdout.contains(text), &format!("stdout should say {text:?}"));
    }

    fn file(&self, name: &str) -> PathBuf {
        self.sandbox.work.join(name)
    }

    fn home(&self, rest: &str) -> PathBuf {
        PathBuf::from(format!("{}{rest}", self.sandbox.home.display()))
    }

    fn tree(&self) -> Tree {
        tree(&self.sandbox.work)
    }

    /// The file is new or was written since the command started.
    fn changed(&self, name: &str) -> bool {
        self.before.get(name) != self.tree().get(name)
    }

    #[track_caller]
    fn nothing_written(&self) {
        let after = self.tree();
        self.assert(
            after == self.before,
            &format!("nothing should be written; before {:?}, after {after:?}", self.before),
        );
    }

    #[track_caller]
    fn input_untouched(&self) {
        self.assert(
            sha256(&self.file("used.qcow2")) == self.sandbox.used_sha256,
            "used.qcow2 stays as it was",
        );
    }
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn tree(dir: &Path) -> Tree {
    walkdir::WalkDir::new(dir)
        .min_depth(1)
        .into_iter()
        .filter_map(|e| e.ok())
        .filter(|e| !e.file_type().is_dir())
        .map(|e| {
            let m = e.metadata().unwrap();
            let name = e.path().strip_prefix(dir).unwrap().display().to_string();
            (name, (m.len(), m.modified().unwrap()))
        })
        .collect()
}

/// A working directory holding the files the README's commands name, and a HOME.
struct Sandbox {
    work: PathBuf,
    home: PathBuf,
    used_sha256: String,
}

fn sandbox() -> Sandbox {
    let root = scratch("readme");
    let (work, home) = (root.join("work"), root.join("home"));
    // What a user's HOME has once bash-completion is installed.
    for d in [
        work.join("images"),
        work.join("repo"),
        home.join(".local/share/bash-completion/completions"),
    ] {
        std::fs::create_dir_all(&d).unwrap();
    }
    let copy = |from: &Path, to: &str| {
        std::fs::copy(from, work.join(to)).unwrap_or_else(|e| panic!("copying {} to {to}: {e}", from.display()));
    };
    copy(&phony("debian"), "used.qcow2");
    copy(&phony("rhel"), "vm.qcow2");
    // A guest on two disks: / on the first, /var on a volume group over both.
    let two = fixture_disks("layouts.sh", "vg-two-disks");
    copy(&two[0], "os.qcow2");
    copy(&two[1], "var.qcow2");
    copy(&fixture("windows.sh", &["windows"]), "used-windows.qcow2");
    // goldify cannot ship dd.exe; windows.yaml takes it from the current directory.
    let dd: Vec<u8> = b"MZ stand-in for dd.exe\0".iter().cycle().take(4096).copied().collect();
    std::fs::write(work.join("dd.exe"), dd).unwrap();
    // A linked clone: images/clone.qcow2 over images/base.qcow2.
    copy(&phony("debian"), "images/base.qcow2");
    let out = timed(
        std::process::Command::new("qemu-img")
            .args([
                "create",
                "-q",
                "-f",
                "qcow2",
                "-b",
                "base.qcow2",
                "-F",
                "qcow2",
                "clone.qcow2",
            ])
            .current_dir(work.join("images")),
    );
    assert!(out.status.success(), "qemu-img create: {}", tail(&out.stderr, 5));
    // An archive left from a template since renamed: what `repo gc` is for.
    std::fs::write(work.join("repo/old-template.xz"), "stale").unwrap();
    // The README's own recipes: ```yaml blocks that start with `# FILE.yaml`.
    for (name, text) in readme_files() {
        std::fs::write(work.join(&name), text).unwrap();
    }
    let used_sha256 = sha256(&work.join("used.qcow2"));
    Sandbox {
        work,
        home,
        used_sha256,
    }
}

/// ```yaml blocks of the README whose first line is `# NAME.yaml`: (NAME.yaml, the block).
fn readme_files() -> Vec<(String, String)> {
    let readme = read(&repo().join("README.md"));
    let mut files = Vec::new();
    let mut lines = readme.lines();
    while let Some(line) = lines.next() {
        if line.trim() != "```yaml" {
            continue;
        }
        let block: Vec<&str> = lines.by_ref().take_while(|l| l.trim() != "```").collect();
        if let Some(name) = block.first().and_then(|l| l.strip_prefix("# ")) {
            if name.ends_with(".yaml") && !name.contains(' ') {
                files.push((name.to_string(), block.join("\n") + "\n"));
            }
        }
    }
    files
}

/// Run one README command in the sandbox, as a shell would: `~` is the sandbox's HOME,
/// `> FILE` sends stdout there.
fn run_in(sandbox: &Sandbox, c: &ReadmeCommand) -> Run {
    let home = |w: &String| -> OsString {
        match w.strip_prefix("~/") {
            Some(rest) => sandbox.home.join(rest).into(),
            None => w.into(),
        }
    };
    let mut words: Vec<OsString> = c.words.iter().map(home).collect();
    let stdout_to = match words.iter().position(|w| w == ">") {
        Some(at) => {
            let file = words.split_off(at).pop().unwrap();
            Some(sandbox.work.join(file))
        }
        None => None,
    };
    let mut cmd = command_from_words(&words);
    cmd.current_dir(&sandbox.work)
        .env("HOME", &sandbox.home)
        .env_remove("GOLDIFY_RECIPE_PATH");
    if let Some(file) = &stdout_to {
        let f =
            std::fs::File::create(file).unwrap_or_else(|e| panic!("README line {}: {}: {e}", c.line, file.display()));
        cmd.stdout(f);
    }
    Run::of(&mut cmd)
}

#[test]
fn readme_commands_run_in_order() {
    let start = Instant::now();
    let sandbox = sandbox();
    let effects = effects();
    let mut ran = 0;
    for c in readme_commands().iter().filter(|c| claim(c).is_none()) {
        let said = format!("README line {}: `{}`", c.line, c.text);
        let effect = effects
            .iter()
            .find(|(text, _)| *text == c.text)
            .unwrap_or_else(|| panic!("{said}: no effect to check; add one to effects() in tests/readme.rs"))
            .1;
        let before = tree(&sandbox.work);
        let t = Instant::now();
        let run = run_in(&sandbox, c);
        eprintln!("[{:>6.1} s] {said} -> exit {}", t.elapsed().as_secs_f64(), run.code);
        let expected = c.expected_exit();
        assert_eq!(
            run.code,
            expected,
            "{said} exited {} (the README says {expected})\nstdout:\n{}\nstderr:\n{}",
            run.code,
            tail(run.stdout.as_bytes(), 10),
            tail(run.stderr.as_bytes(), 15)
        );
        effect(&After {
            sandbox: &sandbox,
            run: &run,
            before,
            said,
        });
        ran += 1;
    }
    assert!(ran >= 20, "only {ran} README commands ran");
    eprintln!(
        "{ran} README commands in {:.1} s (sandbox {})",
        start.elapsed().as_secs_f64(),
        sandbox.work.display()
    );
}

#[test]
fn every_readme_command_is_run_by_a_test() {
    use clap::Parser;
    let commands = readme_commands();
    // Every claim names one README command, and the test that runs it takes it from there.
    for (prefix, by) in ELSEWHERE {
        readme_command(prefix);
        let (file, needle) = if *by == RUN_BY_CI {
            (".ci/run", prefix.trim_start_matches("./").to_string())
        } else {
            (*by, format!("readme_command(\"{prefix}\")"))
        };
        assert!(
            read(&repo().join(file)).contains(&needle),
            "`{prefix}` is claimed by {file}, which does not hold `{needle}`"
        );
    }
    let effects = effects();
    for (text, _) in &effects {
        assert!(
            commands.iter().any(|c| c.text == *text && claim(c).is_none()),
            "effects() checks `{text}`, which is not a README command the sandbox runs"
        );
    }
    for c in &commands {
        let said = format!("README line {}: `{}`", c.line, c.text);
        if c.program() == "goldify" {
            // Claimed ones too: a typo in the boot tier's command fails here, at once.
            let argv: Vec<&String> = c.argv().iter().take_while(|w| *w != ">").collect();
            if let Err(e) = goldify::cli::Cli::try_parse_from(argv) {
                panic!("{said} does not parse:\n{e}");
            }
        } else {
            assert!(
                claim(c).is_some(),
                "{said} is run by no test: run it in tests/readme.rs or claim it in ELSEWHERE from a test that runs it"
            );
        }
    }
}

#[test]
fn readme_commands_are_read_as_a_shell_reads_them() {
    let md = "text\n```sh\n# a comment line\nTMPDIR=/var/tmp goldify run 'a b.yaml' \"c\\\"d\" e\\ f   # exit 3: says why\n\
              goldify x \\\n    --set k=v   # continued\ngoldify completions bash > ~/f\n```\n```text\ngoldify not a command\n```\n";
    let c = parse_readme(md);
    assert_eq!(c.len(), 3, "{c:?}");
    assert_eq!(c[0].line, 4);
    assert_eq!(
        c[0].words,
        ["TMPDIR=/var/tmp", "goldify", "run", "a b.yaml", "c\"d", "e f"]
    );
    assert_eq!(c[0].env(), [("TMPDIR".to_string(), "/var/tmp".to_string())]);
    assert_eq!((c[0].program(), c[0].expected_exit()), ("goldify", 3));
    assert_eq!(
        (c[1].line, c[1].text.as_str(), c[1].expected_exit()),
        (5, "goldify x --set k=v", 0)
    );
    assert_eq!(c[2].words, ["goldify", "completions", "bash", ">", "~/f"]);
    assert!(c[1].starts_with("goldify x") && !c[1].starts_with("goldify x --se"));
    for bad in ["a | b", "a $HOME", "a *.yaml", "a >> f", "a > f b", "a 'open", "a; b"] {
        assert!(shell_words(bad).is_err(), "{bad}");
    }
    let hidden = std::panic::catch_unwind(|| parse_readme("```console\n$ goldify steps\n```\n"));
    assert!(hidden.is_err(), "a ```console block would hide its commands");
}
