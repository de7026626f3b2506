//! `--set TARGET.KEY=VALUE`: a publish target's settings from the command line, typed
//! through the same serde settings as the recipe's `publish:` section. A value is read as
//! YAML (`--set vmmanager.compression.preset=1` is a number, `--set
//! checksums.algorithms=[sha256,sha1]` a list); a dotted key reaches into a nested setting.

use super::target::Target;
use anyhow::{bail, Result};
use serde_yaml::{Mapping, Value};

std::thread_local! {
    /// The `--set`s of the recipe being loaded (see [`while_loading`]).
    static LOADING: std::cell::RefCell<Vec<Override>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Load a recipe with `sets` known to its `publish:` section: a target the recipe lists
/// without a required setting that `--set` gives is then no recipe error. serde gives a
/// `Deserialize` no context of its own, so the section reads them from this thread for the
/// duration of `load`.
pub fn while_loading<R>(sets: &[Override], load: impl FnOnce() -> R) -> R {
    struct Reset;
    impl Drop for Reset {
        fn drop(&mut self) {
            LOADING.with(|l| l.borrow_mut().clear());
        }
    }
    LOADING.with(|l| *l.borrow_mut() = sets.to_vec());
    let _reset = Reset;
    load()
}

/// The `--set`s for `target` of the recipe being loaded.
pub(super) fn loading(target: &str) -> Vec<Override> {
    LOADING.with(|l| l.borrow().iter().filter(|s| s.target == target).cloned().collect())
}

/// One `--set`, as given.
#[derive(Debug, Clone, PartialEq)]
pub struct Override {
    pub target: String,
    /// The setting's path below the target (`compression.preset` → [compression, preset]).
    pub key: Vec<String>,
    pub value: Value,
}

impl Override {
    /// How the option is named in messages: `--set deckhouse.base_url`.
    pub fn option(&self) -> String {
        format!("--set {}.{}", self.target, self.key.join("."))
    }
}

/// clap's value parser for `--set`: `TARGET.KEY=VALUE`.
pub fn parse(arg: &str) -> Result<Override, String> {
    let Some((path, raw)) = arg.split_once('=') else {
        return Err(format!(
            "expected TARGET.KEY=VALUE (e.g. deckhouse.base_url=https://…), not {arg:?}"
        ));
    };
    let mut parts = path.split('.');
    let target = parts.next().unwrap_or_default().to_string();
    let key: Vec<String> = parts.map(str::to_string).collect();
    if target.is_empty() || key.is_empty() || key.iter().any(String::is_empty) {
        return Err(format!(
            "expected TARGET.KEY=VALUE (e.g. deckhouse.base_url=https://…), not {path:?}"
        ));
    }
    let value = if raw.is_empty() {
        Value::String(String::new())
    } else {
        serde_yaml::from_str::<Value>(raw).map_err(|e| format!("{path}: the value is not YAML: {e}"))?
    };
    Ok(Override { target, key, value })
}

/// Check every `--set` against the registry: a known target and setting, each given once,
/// the target one this run publishes (`published`). Errors name the option.
pub fn check(sets: &[Override], published: &[&str]) -> Result<()> {
    check_names(sets)?;
    for s in sets {
        if !published.contains(&s.target.as_str()) {
            bail!(
                "{}: this run does not publish to `{}` (add `--publish {}`, or list it under `publish:` in the recipe)",
                s.option(),
                s.target,
                s.target
            );
        }
    }
    Ok(())
}

/// Every `--set` names a known target and one of its settings, once.
pub fn check_names(sets: &[Override]) -> Result<()> {
    for (i, s) in sets.iter().enumerate() {
        let Some(info) = super::REGISTRY.iter().find(|t| t.name == s.target) else {
            bail!("{}: {}", s.option(), super::target::unknown_target_message(&s.target));
        };
        let names: Vec<&str> = info.options.iter().map(|o| o.name).collect();
        if !names.contains(&s.key[0].as_str()) {
            let hint = match crate::suggest::nearest(&s.key[0], &names) {
                Some(n) => format!("did you mean `{n}`?"),
                None => format!("its settings: {}", names.join(", ")),
            };
            bail!(
                "{}: publish target `{}` has no setting `{}`, {hint}",
                s.option(),
                s.target,
                s.key[0]
            );
        }
        if sets[..i].iter().any(|o| o.target == s.target && o.key == s.key) {
            bail!("{} is given twice", s.option());
        }
    }
    Ok(())
}

/// The target `name` built from `base` (the recipe's settings, or none) with its `--set`
/// overrides on top, and those settings; `None` when no `--set` names it.
pub fn build(name: &str, base: &Value, sets: &[Override]) -> Result<Option<(Box<dyn Target>, Value)>> {
    let mine: Vec<&Override> = sets.iter().filter(|s| s.target == name).collect();
    if mine.is_empty() {
        return Ok(None);
    }
    let mut settings = match base {
        Value::Null => Value::Mapping(Mapping::new()),
        v => v.clone(),
    };
    for s in &mine {
        put(&mut settings, &s.key, s.value.clone()).map_err(|e| anyhow::anyhow!("{}: {e}", s.option()))?;
    }
    let options: Vec<String> = mine.iter().map(|s| s.option()).collect();
    let target = super::build(name, settings.clone()).map_err(|e| {
        anyhow::anyhow!(
            "{}: {}",
            options.join(", "),
            super::target::explain_missing(name, &super::target::about(name, &e.to_string()))
        )
    })?;
    Ok(Some((target, settings)))
}

/// Set `key` (a path) in a mapping, creating the mappings on the way.
fn put(v: &mut Value, key: &[String], value: Value) -> Result<()> {
    let Value::Mapping(m) = v else {
        bail!("the setting above `{}` is not a mapping", key[0]);
    };
    let k = Value::String(key[0].clone());
    if key.len() == 1 {
        m.insert(k, value);
        return Ok(());
    }
    let next = m.entry(k).or_insert_with(|| Value::Mapping(Mapping::new()));
    if next.is_null() {
        *next = Value::Mapping(Mapping::new());
    }
    put(next, &key[1..], value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_typed_values_and_refuses_malformed_ones() {
        let o = parse("vmmanager.compression.preset=1").unwrap();
        assert_eq!(o.target, "vmmanager");
        assert_eq!(o.key, ["compression", "preset"]);
        assert_eq!(o.value, Value::Number(1.into()));
        assert_eq!(o.option(), "--set vmmanager.compression.preset");
        let o = parse("deckhouse.base_url=https://img.example.com/a=b").unwrap();
        assert_eq!(o.value, Value::String("https://img.example.com/a=b".into()));
        for bad in [
            "deckhouse.base_url",
            "deckhouse=x",
            ".x=1",
            "deckhouse..x=1",
            "deckhouse.=1",
            "=1",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn put_reaches_into_nested_settings() {
        let mut v: Value = serde_yaml::from_str("{compression: {preset: 6}, name: a}").unwrap();
        put(
            &mut v,
            &["compression".into(), "threads".into()],
            Value::Number(2.into()),
        )
        .unwrap();
        assert_eq!(
            v,
            serde_yaml::from_str::<Value>("{compression: {preset: 6, threads: 2}, name: a}").unwrap()
        );
        assert!(put(&mut v, &["name".into(), "x".into()], Value::Null).is_err());
    }
}
