use super::*;
use std::io::Write as _;

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::File::create(&p).unwrap().write_all(text.as_bytes()).unwrap();
    p
}

fn err(text: &str) -> String {
    let d = tempfile::tempdir().unwrap();
    let p = write(d.path(), "r.yaml", text);
    format!("{:#}", Recipe::load(&p).unwrap_err())
}

#[test]
fn parses_steps_when_and_bare_names() {
    let d = tempfile::tempdir().unwrap();
    let p = write(
        d.path(),
        "r.yaml",
        "name: t\nsteps:\n  - machine-id: {mode: empty}\n  - fstrim\n  - logs:\n    when: {family: debian}\n  - delete: {paths: [/tmp/x]}\n",
    );
    let r = Recipe::load(&p).unwrap();
    let names: Vec<&str> = r.ordered().iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["logs", "delete", "machine-id", "fstrim"]);
    assert!(r.steps[2].when.is_some());
}

#[test]
fn unknown_step_has_position_and_suggestion() {
    let e = err("name: t\nsteps:\n  - machine-idd: {}\n");
    assert!(e.contains("r.yaml:3:"), "{e}");
    assert!(e.contains("did you mean `machine-id`"), "{e}");
}

#[test]
fn unknown_option_has_suggestion() {
    let e = err("steps:\n  - machine-id: {mod: empty}\n");
    assert!(e.contains("r.yaml:2:"), "{e}");
    assert!(e.contains("did you mean `mode`"), "{e}");
}

#[test]
fn wrong_type_and_bad_value() {
    let e = err("steps:\n  - logs: {mode: shred}\n");
    assert!(e.contains("r.yaml:2:") && e.contains("shred"), "{e}");
    let e = err("steps: 7\n");
    assert!(e.contains("r.yaml:1:"), "{e}");
    let e = err("nmae: x\n");
    assert!(e.contains("did you mean `name`"), "{e}");
    let e = err("steps:\n  - logs: {}\n    fstrim: {}\n");
    assert!(e.contains("one step per list item"), "{e}");
}

#[test]
fn malformed_yaml() {
    let e = err("steps: [\n");
    assert!(e.contains("r.yaml:"), "{e}");
    let e = err("");
    assert!(e.contains("empty"), "{e}");
}

#[test]
fn extends_overrides_and_skips() {
    let d = tempfile::tempdir().unwrap();
    write(d.path(), "base.yaml", "name: base\nvars: {greeting: hi}\nsteps:\n  - logs: {}\n  - machine-id: {}\n  - tmp-files: {}\n  - write: {path: /etc/motd, content: '${greeting}'}\n");
    let p = write(
        d.path(),
        "child.yaml",
        "extends: base.yaml\nvars: {greeting: hello}\nskip: [tmp-files]\nsteps:\n  - machine-id: {mode: empty}\n  - write: {path: /etc/issue, content: '${greeting} $${literal}'}\n",
    );
    let r = Recipe::load(&p).unwrap();
    assert_eq!(r.name, "child");
    let names: Vec<&str> = r.steps.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["logs", "machine-id", "write", "write"]);
    assert_eq!(r.steps[1].step.to_yaml()["mode"], "empty");
    assert_eq!(r.steps[2].step.to_yaml()["content"], "hello");
    assert_eq!(r.steps[3].step.to_yaml()["content"], "hello ${literal}");
}

#[test]
fn unknown_var_and_extends_loop() {
    let e = err("vars: {name: x}\nsteps:\n  - write: {path: /a, content: '${nmae}'}\n");
    assert!(e.contains("did you mean `${name}`"), "{e}");
    let d = tempfile::tempdir().unwrap();
    write(d.path(), "a.yaml", "extends: b.yaml\n");
    let p = write(d.path(), "b.yaml", "extends: a.yaml\n");
    let e = format!("{:#}", Recipe::load(&p).unwrap_err());
    assert!(e.contains("loops"), "{e}");
    let p = write(d.path(), "c.yaml", "extends: missing.yaml\n");
    let e = format!("{:#}", Recipe::load(&p).unwrap_err());
    assert!(e.contains("missing.yaml"), "{e}");
}

#[test]
fn recipe_errors_are_usage_errors() {
    let d = tempfile::tempdir().unwrap();
    let p = write(d.path(), "r.yaml", "steps: [nope]\n");
    let e = Recipe::load(&p).unwrap_err();
    assert_eq!(crate::error::exit_of(&e), crate::error::Exit::Usage);
}

/// A host file that is not a recipe, full of something that must never be printed.
const SECRET: &str = "root:$6$GOLDIFY-SENTINEL-SECRET$abc:19844:0:99999:7:::\ndaemon:*:19844:0:99999:7:::\n";

#[test]
fn extends_names_only_recipes() {
    let d = tempfile::tempdir().unwrap();
    let secret = write(d.path(), "shadow", SECRET);
    for target in ["shadow", secret.to_str().unwrap(), "/dev/zero"] {
        let p = write(d.path(), "r.yaml", &format!("extends: {target}\n"));
        let e = format!("{:#}", Recipe::load(&p).unwrap_err());
        assert!(!e.contains("SENTINEL"), "{e}");
        assert!(e.contains("r.yaml") && e.contains(".yaml or .yml"), "{e}");
    }
    // A .yaml name that is a link to something else is refused too.
    std::os::unix::fs::symlink(&secret, d.path().join("base.yaml")).unwrap();
    let p = write(d.path(), "r.yaml", "extends: base.yaml\n");
    let e = format!("{:#}", Recipe::load(&p).unwrap_err());
    assert!(!e.contains("SENTINEL") && e.contains("base.yaml"), "{e}");
    // A link to a recipe is fine.
    write(d.path(), "real.yaml", "steps: [fstrim]\n");
    std::os::unix::fs::symlink(d.path().join("real.yaml"), d.path().join("link.yml")).unwrap();
    let p = write(d.path(), "r.yaml", "extends: link.yml\n");
    assert_eq!(Recipe::load(&p).unwrap().steps.len(), 1);
}

#[test]
fn errors_never_quote_values_of_the_file() {
    // The secret as the recipe itself, and as a .yaml file that a recipe extends.
    let d = tempfile::tempdir().unwrap();
    let p = write(d.path(), "shadow.yaml", SECRET);
    let e = format!("{:#}", Recipe::load(&p).unwrap_err());
    assert!(
        !e.contains("SENTINEL") && e.contains("shadow.yaml:1:1: unknown field (not a name; not shown)"),
        "{e}"
    );
    let p = write(d.path(), "token.yaml", "ghp_SENTINEL-token $x\n");
    let e = format!("{:#}", Recipe::load(&p).unwrap_err());
    assert!(
        !e.contains("SENTINEL") && e.contains("token.yaml:1:1: invalid type: string, expected"),
        "{e}"
    );
    let p = write(d.path(), "r.yaml", "extends: shadow.yaml\n");
    let e = format!("{:#}", Recipe::load(&p).unwrap_err());
    assert!(!e.contains("SENTINEL"), "{e}");
    // Type errors keep position and field, without the value.
    let e = err("name: x\nsteps:\n  - logs: {keep: 'SENTINEL'}\n");
    assert!(
        !e.contains("SENTINEL") && e.contains("r.yaml:3:") && e.contains("keep"),
        "{e}"
    );
    let e = err("description: [SENTINEL]\n");
    assert!(!e.contains("SENTINEL") && e.contains("description"), "{e}");
    let e = err("steps: 7\n");
    assert!(e.contains("r.yaml:1:") && e.contains("invalid type: integer,"), "{e}");
    let e = err("vars: {a: {b: \"SENT\\\"INEL\"}}\n");
    assert!(!e.contains("INEL"), "{e}");
    // goldify's own messages keep their names and hints.
    let e = err("steps:\n  - zzzzzzzz\n  - 'x:$SENTINEL$'\n");
    assert!(
        e.contains("unknown step `zzzzzzzz` (`goldify steps` lists them)"),
        "{e}"
    );
    let e = err("steps:\n  - 'x:$SENTINEL$'\n");
    assert!(
        !e.contains("SENTINEL") && e.contains("unknown step (not a name; not shown)"),
        "{e}"
    );
}

/// Bad guest paths and option values in user steps are recipe errors with a position,
/// found by `goldify check` before any appliance starts.
#[test]
fn user_step_paths_are_checked_with_the_recipe() {
    for (step, why) in [
        ("delete: {paths: [/etc/../etc/shadow]}", "\"..\""),
        ("delete: {paths: [/var/log/./x]}", "\".\""),
        ("delete: {paths: [etc/shadow]}", "absolute"),
        ("delete: {paths: ['']}", "absolute"),
        ("delete: {paths: [/tmp/]}", "empty component"),
        ("delete: {paths: [/]}", "whole guest"),
        ("delete: {paths: ['/*']}", "whole guest"),
        ("delete: {paths: ['/**']}", "whole guest"),
        ("delete: {paths: ['/tmp/[x']}", "glob"),
        ("delete: {paths: ['/tmp/a**']}", "glob"),
        ("truncate: {paths: [/var/log/../../etc/shadow]}", "\"..\""),
        ("write: {path: /etc/../root/x, content: y}", "\"..\""),
        ("write: {path: \"/etc/x\\0y\", content: y}", "NUL"),
        ("write: {path: /, content: y}", "root directory"),
        ("edit: {path: ../etc/hosts, regex: a, replace: b}", "absolute"),
        ("edit: {path: /etc/hosts, regex: '(', replace: b}", "regex"),
        ("mkdir: {path: /srv/../../x}", "\"..\""),
        ("mkdir: {path: /}", "root directory"),
        ("chmod: {path: '/srv//x', mode: '0600'}", "empty component"),
        ("chmod: {path: '/srv/[', mode: '0600'}", "glob"),
        ("symlink: {target: /x, link: /etc/../y}", "\"..\""),
        ("symlink: {target: /x, link: /, force: true}", "root directory"),
        ("symlink: {target: '', link: /y}", "target"),
        ("firstboot: {name: ../../etc/cron.d/x, script: 'true'}", "name"),
        ("firstboot: {name: ok, script: '  '}", "empty"),
        ("run: {command: ''}", "empty"),
        ("logs: {keep: ['[']}", "glob"),
        ("hostname: {name: 'bad_host name'}", "host name"),
    ] {
        let e = err(&format!("name: t\nsteps:\n  - {step}\n"));
        assert!(e.contains("r.yaml:3:"), "{step}: {e}");
        assert!(e.contains(why), "{step}: {e}");
    }
    // Parts named by variables are checked once the variables are expanded.
    let e = err("vars: {dir: /etc/..}\nsteps:\n  - delete: {paths: ['${dir}/shadow']}\n");
    assert!(e.contains("r.yaml") && e.contains("\"..\""), "{e}");
    let d = tempfile::tempdir().unwrap();
    let p = write(d.path(), "ok.yaml", "vars: {dir: /srv}\nsteps:\n  - mkdir: {path: '${dir}/app/'}\n  - delete: {paths: ['${dir}/*.tmp', '/tmp/**']}\n  - chmod: {path: /, mode: '0755'}\n");
    Recipe::load(&p).unwrap();
}

/// A user step named bare (or with null options) has no path to act on: a recipe error,
/// not a failure after the appliance started.
#[test]
fn required_options_cannot_be_left_out() {
    for (step, names) in [
        ("write", "`path`, `content`"),
        ("delete: ~", "`paths`"),
        ("symlink:", "`target`, `link`"),
        ("run", "`command`"),
    ] {
        let e = err(&format!("steps:\n  - fstrim\n  - {step}\n"));
        assert!(e.contains("r.yaml:3:") && e.contains(names), "{step}: {e}");
        assert!(e.contains("(`goldify steps` describes them)"), "{step}: {e}");
    }
}

#[test]
fn extends_a_missing_recipe_names_the_line_every_file_tried_and_a_suggestion() {
    let d = tempfile::tempdir().unwrap();
    write(d.path(), "debian.yaml", "steps: [fstrim]\n");
    let p = write(d.path(), "r.yaml", "name: x\n\nextends: debian.yml\n");
    let e = format!("{:#}", Recipe::load(&p).unwrap_err());
    let beside = d.path().join("debian.yml");
    assert!(
        e.starts_with(&format!(
            "{}:3:1: extends: debian.yml not found (looked in: {}, ",
            p.display(),
            beside.display()
        )),
        "{e}"
    );
    assert!(e.contains("share/goldify/recipes/debian.yml"), "{e}");
    assert!(e.ends_with("; did you mean debian.yaml?"), "{e}");
}

#[test]
fn extends_finds_the_shipped_recipes_from_anywhere() {
    // Unit tests run from target/debug/deps, where no recipes are installed: the
    // search path's own directory stands in for them.
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("recipes");
    let d = tempfile::tempdir().unwrap();
    let p = write(d.path(), "mine.yaml", "extends: debian.yaml\nsteps: [fstrim]\n");
    let r = crate::recipe::search::with_path(&[&shipped], || Recipe::load(&p)).unwrap();
    assert!(r.steps.iter().any(|s| s.name == "ssh-host-keys"), "{:?}", r.steps);
    assert!(r.steps.iter().any(|s| s.origin == shipped.join("base.yaml")));
    // A recipe beside the extending one wins over the search path.
    write(d.path(), "debian.yaml", "steps: [logs]\n");
    let r = crate::recipe::search::with_path(&[&shipped], || Recipe::load(&p)).unwrap();
    let names: Vec<&str> = r.steps.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["logs", "fstrim"]);
}

#[test]
fn only_plain_extends_names_are_searched() {
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("recipes");
    let d = tempfile::tempdir().unwrap();
    for name in ["../debian.yaml", "./debian.yaml", "/nonexistent/debian.yaml"] {
        let p = write(d.path(), "r.yaml", &format!("extends: {name}\n"));
        let e = format!(
            "{:#}",
            crate::recipe::search::with_path(&[&shipped], || Recipe::load(&p)).unwrap_err()
        );
        assert!(e.contains("not found (looked in: ") && !e.contains(", "), "{name}: {e}");
    }
}
