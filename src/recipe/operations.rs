//! `goldify run --operations a,b,-c`: pick or drop steps on the command line, read as
//! virt-sysprep reads its own `--operations`/`--enable` (virt-sysprep(1), OPTIONS):
//! "the first time the set of enabled operations is empty, while any further
//! --operations affects the operations enabled so far"; a name enables a step, `-name`
//! removes it, and the meta-names `defaults` and `all` stand for "the operations enabled
//! by default and all the available ones".
//!
//! In goldify the defaults are the recipe's steps (after `extends:` and `skip:`), and
//! `all` adds every step of the registry that runs without options. A step named here
//! that the recipe does not list is added with its default options; one with required
//! options (`write`, `delete`, …) cannot be, and is an error that says to put it in a
//! recipe. A recipe step left out still appears in the report, skipped, with the reason.

use super::{Recipe, StepItem};
use crate::steps;
use anyhow::{bail, Result};
use std::collections::BTreeSet;
use std::path::PathBuf;

/// Why a step did not run, in the report.
pub const LEFT_OUT: &str = "left out by --operations";

/// Apply `--operations` lists (each comma-separated, in the order given) to `recipe`.
/// No list: the recipe as it is.
pub fn select(recipe: &mut Recipe, lists: &[String]) -> Result<()> {
    if lists.is_empty() {
        return Ok(());
    }
    let defaults: Vec<String> = recipe.steps.iter().map(|s| s.name.clone()).collect();
    let mut enabled: BTreeSet<String> = BTreeSet::new();
    for list in lists {
        for token in list.split(',').map(str::trim) {
            let (remove, name) = match token.strip_prefix('-') {
                Some(n) => (true, n),
                None => (false, token),
            };
            let names: Vec<String> = match name {
                "" => bail!("--operations {list:?}: an empty name (names are separated by single commas)"),
                "defaults" => defaults.clone(),
                "all" => defaults
                    .iter()
                    .cloned()
                    .chain(
                        steps::REGISTRY
                            .iter()
                            .filter(|i| steps::required_options(i).is_ok())
                            .map(|i| i.name.to_string()),
                    )
                    .collect(),
                _ if steps::info(name).is_none() => {
                    bail!("--operations: {}", steps::unknown_step_message(name))
                }
                _ => vec![name.to_string()],
            };
            for n in names {
                if remove {
                    enabled.remove(&n);
                } else {
                    enabled.insert(n);
                }
            }
        }
    }
    if enabled.is_empty() {
        bail!(
            "--operations {} selects no step (it starts from none, as virt-sysprep's does: to drop steps from the recipe's, write `defaults,-STEP`)",
            lists.join(" --operations ")
        );
    }
    for item in &mut recipe.steps {
        item.selected = enabled.contains(&item.name);
    }
    for name in enabled.iter().filter(|n| !defaults.contains(n)) {
        let step = steps::build(
            name,
            serde::de::value::UnitDeserializer::<serde::de::value::Error>::new(),
        )
        .map_err(|e| anyhow::anyhow!("--operations: {e}; a step with options is added in a recipe"))?;
        recipe.steps.push(StepItem {
            name: name.clone(),
            step,
            when: None,
            origin: PathBuf::new(),
            selected: true,
        });
    }
    Ok(())
}

/// `--list-operations`: every step of the registry, `*` before those the recipe (as
/// `--operations` left it) applies, like virt-sysprep's list.
pub fn listing(recipe: &Recipe) -> String {
    let on: BTreeSet<&str> = recipe
        .steps
        .iter()
        .filter(|s| s.selected)
        .map(|s| s.name.as_str())
        .collect();
    let mut out = String::new();
    for info in steps::REGISTRY {
        let mark = if on.contains(info.name) { '*' } else { ' ' };
        out.push_str(&format!("{:<18} {mark} {}\n", info.name, info.summary));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recipe(text: &str) -> Recipe {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("r.yaml");
        std::fs::write(&p, text).unwrap();
        Recipe::load(&p).unwrap()
    }

    fn chosen(text: &str, lists: &[&str]) -> Result<Vec<(String, bool)>> {
        let mut r = recipe(text);
        let lists: Vec<String> = lists.iter().map(|s| s.to_string()).collect();
        select(&mut r, &lists)?;
        Ok(r.steps.iter().map(|s| (s.name.clone(), s.selected)).collect())
    }

    const R: &str = "steps: [logs, tmp-files, machine-id]\n";

    fn pairs(v: &[(&str, bool)]) -> Vec<(String, bool)> {
        v.iter().map(|(n, b)| (n.to_string(), *b)).collect()
    }

    #[test]
    fn like_virt_sysprep_the_set_starts_empty() {
        assert_eq!(
            chosen(R, &[]).unwrap(),
            pairs(&[("logs", true), ("tmp-files", true), ("machine-id", true)])
        );
        assert_eq!(
            chosen(R, &["logs"]).unwrap(),
            pairs(&[("logs", true), ("tmp-files", false), ("machine-id", false)])
        );
        assert_eq!(
            chosen(R, &["defaults,-tmp-files"]).unwrap(),
            pairs(&[("logs", true), ("tmp-files", false), ("machine-id", true)])
        );
        // A later list changes what the earlier ones enabled.
        assert_eq!(
            chosen(R, &["logs,tmp-files", "-logs,machine-id"]).unwrap(),
            pairs(&[("logs", false), ("tmp-files", true), ("machine-id", true)])
        );
    }

    #[test]
    fn a_step_not_in_the_recipe_is_added_with_its_defaults() {
        assert_eq!(
            chosen(R, &["defaults,fstrim"]).unwrap(),
            pairs(&[
                ("logs", true),
                ("tmp-files", true),
                ("machine-id", true),
                ("fstrim", true)
            ])
        );
        let e = chosen(R, &["defaults,write"]).unwrap_err().to_string();
        assert!(
            e.contains("step `write` needs its options: `path`") && e.contains("in a recipe"),
            "{e}"
        );
        // `all`: every step that runs without options, none that needs them.
        let all = chosen(R, &["all"]).unwrap();
        assert!(all.iter().all(|(_, on)| *on));
        assert!(all.iter().any(|(n, _)| n == "fstrim") && !all.iter().any(|(n, _)| n == "write"));
        assert_eq!(chosen(R, &["all,-all,logs"]).unwrap()[0], ("logs".to_string(), true));
    }

    #[test]
    fn the_listing_marks_what_would_run() {
        let mut r = recipe(R);
        select(&mut r, &["defaults,-logs".into()]).unwrap();
        let l = listing(&r);
        assert_eq!(l.lines().count(), steps::REGISTRY.len());
        let mark = |name: &str| l.lines().find(|x| x.starts_with(&format!("{name} "))).unwrap()[19..20].to_string();
        assert_eq!(mark("logs"), " ");
        assert_eq!(mark("tmp-files"), "*");
        assert_eq!(mark("fstrim"), " ");
    }

    #[test]
    fn unknown_names_empty_names_and_empty_sets_are_errors() {
        let e = chosen(R, &["defaults,-tmp-file"]).unwrap_err().to_string();
        assert_eq!(e, "--operations: unknown step `tmp-file`, did you mean `tmp-files`?");
        let e = chosen(R, &["logs,,tmp-files"]).unwrap_err().to_string();
        assert!(e.contains("an empty name"), "{e}");
        let e = chosen(R, &["-logs"]).unwrap_err().to_string();
        assert!(e.contains("selects no step") && e.contains("defaults,-STEP"), "{e}");
    }
}
