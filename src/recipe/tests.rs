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
