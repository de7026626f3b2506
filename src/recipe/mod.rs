//! Recipes: strict YAML (unknown fields, steps and wrong types are errors with
//! file:line:column), `extends:` another recipe, `vars:` expanded as `${name}` in string
//! options, and `when:` conditions on OS facts.

pub mod operations;
pub mod search;
mod when;

use crate::error::{Exit, Tag};
use crate::steps::{self, Step};
use crate::suggest::nearest;
use anyhow::{anyhow, Context, Result};
use regex::Regex;
use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::LazyLock;
pub use when::When;

/// A recipe larger than this is not a recipe.
const MAX_RECIPE_BYTES: u64 = 1 << 20;
const MAX_EXTENDS_DEPTH: usize = 16;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RecipeFile {
    name: Option<String>,
    description: Option<String>,
    extends: Option<String>,
    #[serde(default)]
    vars: BTreeMap<String, String>,
    /// Inherited steps to drop, by name.
    #[serde(default)]
    skip: Vec<String>,
    #[serde(default)]
    steps: Vec<StepItem>,
    output: Option<Output>,
    /// Publish targets, each parsed by its record (see publish/target.rs).
    publish: Option<crate::publish::section::Section>,
}

/// Where and how the golden disk is written.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Output {
    /// qcow2 (default), raw, vmdk or vdi.
    pub format: Option<crate::disk::Format>,
    /// Compress qcow2 clusters (slower, smaller).
    pub compress: Option<bool>,
}

#[derive(Debug)]
pub struct StepItem {
    pub name: String,
    pub step: Box<dyn Step>,
    pub when: Option<When>,
    /// The recipe file the step came from (for messages); empty for a step added by
    /// `--operations`.
    pub origin: PathBuf,
    /// False when `--operations` leaves the step out (it is reported as skipped).
    pub selected: bool,
}

#[derive(Debug)]
pub struct Recipe {
    pub name: String,
    pub description: Option<String>,
    pub path: PathBuf,
    pub vars: BTreeMap<String, String>,
    pub steps: Vec<StepItem>,
    pub output: Output,
    pub publish: crate::publish::section::Section,
}

impl Recipe {
    /// Load and validate a recipe and everything it extends.
    ///
    /// A plain `.yaml`/`.yml` name that is not in the current directory is looked up
    /// along the recipe search path (search.rs), so `goldify run debian.yaml DISK` takes
    /// the shipped recipe from anywhere.
    // run and check load with the command line's `--set`s (load_with); tests use this.
    #[cfg_attr(not(test), allow(dead_code))]
    pub fn load(path: &Path) -> Result<Recipe> {
        Recipe::load_with(path, &[])
    }

    /// Load a recipe with the command line's `--set`s: they may give a target the recipe
    /// lists what it lacks (its settings are built again with them when the run selects it).
    pub fn load_with(path: &Path, sets: &[crate::publish::overrides::Override]) -> Result<Recipe> {
        crate::publish::overrides::check_names(sets).tag(Exit::Usage)?;
        crate::publish::overrides::while_loading(sets, || Recipe::load_alone(path))
    }

    fn load_alone(path: &Path) -> Result<Recipe> {
        let path = &command_line_recipe(path).tag(Exit::Usage)?;
        let mut seen = HashSet::new();
        let mut recipe = load_chain(path, &mut seen, 0).tag(Exit::Usage)?;
        expand_vars(&mut recipe).tag(Exit::Usage)?;
        Ok(recipe)
    }

    /// What steps need from this machine (a file a step copies in), checked once the
    /// recipe is whole (`extends:`, `${var}` and `--operations` applied) and before the
    /// long work; steps left out are not asked.
    pub fn preflight(&self) -> Result<()> {
        for s in self.steps.iter().filter(|s| s.selected) {
            s.step
                .preflight()
                .with_context(|| format!("{}: step `{}`", self.path.display(), s.name))
                .tag(Exit::Usage)?;
        }
        Ok(())
    }

    /// The steps in the order they run: recipe order within each phase.
    pub fn ordered(&self) -> Vec<&StepItem> {
        let mut v: Vec<&StepItem> = self.steps.iter().collect();
        v.sort_by_key(|s| s.step.info().phase);
        v
    }
}

fn load_chain(path: &Path, seen: &mut HashSet<PathBuf>, depth: usize) -> Result<Recipe> {
    if depth > MAX_EXTENDS_DEPTH {
        anyhow::bail!(
            "{}: `extends:` goes deeper than {MAX_EXTENDS_DEPTH} recipes",
            path.display()
        );
    }
    let canonical = path
        .canonicalize()
        .with_context(|| format!("opening recipe {}", path.display()))?;
    if !seen.insert(canonical.clone()) {
        anyhow::bail!("{}: `extends:` loops back to this recipe", path.display());
    }
    let meta = std::fs::metadata(&canonical).with_context(|| format!("opening recipe {}", path.display()))?;
    if !meta.is_file() {
        anyhow::bail!("recipe {} is not a regular file", path.display());
    }
    if meta.len() > MAX_RECIPE_BYTES {
        anyhow::bail!("recipe {} is larger than {} bytes", path.display(), MAX_RECIPE_BYTES);
    }
    // Opened without blocking (a FIFO swapped in after the check above is refused too).
    let bytes = crate::hostfile::read_bounded(&canonical, MAX_RECIPE_BYTES)
        .with_context(|| format!("reading recipe {}", path.display()))?;
    let text = String::from_utf8(bytes).map_err(|_| anyhow!("{}: the recipe is not UTF-8 text", path.display()))?;
    let file = parse(&text, path)?;
    let mut own_steps = file.steps;
    for s in &mut own_steps {
        s.origin = path.to_path_buf();
    }
    let mut own_publish = file.publish.unwrap_or_default();
    // The settings as written, for `--set` to override (the typed parse above gave the
    // errors their positions).
    let raw: serde_yaml::Value = serde_yaml::from_str(&text).unwrap_or_default();
    for t in &mut own_publish.0 {
        t.origin = path.to_path_buf();
        t.settings = raw["publish"][t.name.as_str()].clone();
    }
    let base = match &file.extends {
        Some(parent) => {
            let parent_path = extends_target(path, parent, &text)?;
            Some(
                load_chain(&parent_path, seen, depth + 1)
                    .with_context(|| format!("{}: in the recipe it extends", path.display()))?,
            )
        }
        None => None,
    };
    let name = file
        .name
        .or_else(|| path.file_stem().map(|s| s.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "recipe".into());
    let mut recipe = match base {
        Some(mut b) => {
            for skipped in &file.skip {
                if steps::info(skipped).is_none() {
                    anyhow::bail!(
                        "{}: `skip:` names {}",
                        path.display(),
                        steps::unknown_step_message(skipped)
                    );
                }
                b.steps.retain(|s| &s.name != skipped);
            }
            b.vars.extend(file.vars);
            b.name = name;
            b.description = file.description.or(b.description);
            b.path = path.to_path_buf();
            if let Some(o) = file.output {
                b.output.format = o.format.or(b.output.format);
                b.output.compress = o.compress.or(b.output.compress);
            }
            b.publish.merge(own_publish);
            b
        }
        None => {
            if !file.skip.is_empty() {
                anyhow::bail!("{}: `skip:` only makes sense with `extends:`", path.display());
            }
            Recipe {
                name,
                description: file.description,
                path: path.to_path_buf(),
                vars: file.vars,
                steps: Vec::new(),
                output: file.output.unwrap_or_default(),
                publish: own_publish,
            }
        }
    };
    for item in own_steps {
        let repeatable = item.step.info().repeatable;
        match recipe.steps.iter().position(|s| s.name == item.name) {
            Some(i) if !repeatable => recipe.steps[i] = item,
            _ => recipe.steps.push(item),
        }
    }
    Ok(recipe)
}

fn is_recipe(p: &Path) -> bool {
    matches!(p.extension().and_then(|e| e.to_str()), Some("yaml" | "yml"))
}

/// The recipe named on the command line: as given when it exists (or is not a plain
/// recipe name), else the first one along the search path.
fn command_line_recipe(path: &Path) -> Result<PathBuf> {
    if std::fs::symlink_metadata(path).is_ok() || !is_recipe(path) {
        return Ok(path.to_path_buf());
    }
    let tried = search::candidates(path.to_path_buf(), path);
    match search::first_existing(&tried) {
        Some(found) => Ok(found.clone()),
        None if tried.len() == 1 => Ok(path.to_path_buf()),
        None => anyhow::bail!("opening recipe {}: {}", path.display(), search::not_found(path, &tried)),
    }
}

/// What `extends:` may name: a recipe, that is a `.yaml` or `.yml` file, and when that name
/// is a symlink, one to a `.yaml` or `.yml` file. `extends: /etc/shadow` (or a key, a
/// device) is refused before anything opens it, so no message about it can quote it.
/// A plain name is looked up beside the recipe, then along the search path (search.rs).
fn extends_target(recipe: &Path, name: &str, text: &str) -> Result<PathBuf> {
    let at = match search::extends_position(text) {
        Some((line, col)) => format!("{}:{line}:{col}", recipe.display()),
        None => recipe.display().to_string(),
    };
    let beside = recipe.parent().unwrap_or(Path::new(".")).join(name);
    if !is_recipe(&beside) {
        anyhow::bail!("{at}: `extends: {name:?}` must name a recipe (a .yaml or .yml file)");
    }
    let tried = search::candidates(beside, Path::new(name));
    let Some(target) = search::first_existing(&tried).cloned() else {
        anyhow::bail!(
            "{at}: extends: {} {}",
            name.escape_debug(),
            search::not_found(Path::new(name), &tried)
        );
    };
    if let Ok(real) = target.canonicalize() {
        if !is_recipe(&real) {
            anyhow::bail!(
                "{at}: `extends: {name:?}` is a link to {}, which is not a .yaml or .yml file",
                real.display()
            );
        }
    }
    Ok(target)
}

fn parse(text: &str, path: &Path) -> Result<RecipeFile> {
    if text.trim().is_empty() {
        anyhow::bail!("{}: the recipe is empty", path.display());
    }
    serde_yaml::from_str::<RecipeFile>(text).map_err(|e| yaml_error(path, &e))
}

/// serde_yaml's own position suffix, replaced by the `file:line:col:` prefix.
static POSITION: LazyLock<Regex> = LazyLock::new(|| Regex::new(r" at line \d+ column \d+$").expect("static regex"));

/// The message without serde_yaml's own " at line L column C" where the prefix says it
/// already: at the end, or inside a scanner error ("… indicator at line 4 column 4, while
/// parsing a block collection").
fn without_position(msg: &str, location: Option<serde_yaml::Location>) -> String {
    let msg = POSITION.replace(msg, "");
    match location {
        Some(l) => msg.replace(&format!(" at line {} column {}", l.line(), l.column()), ""),
        None => msg.into_owned(),
    }
}

/// `file:line:col: message`, with a suggestion for a misspelt name.
///
/// The message never quotes a value of the file: whatever the user names as a recipe may be
/// something else (`/etc/shadow` parses as YAML), and the error line must not print it.
pub fn yaml_error(path: &Path, e: &serde_yaml::Error) -> anyhow::Error {
    let msg = e.to_string();
    let mut msg = explain_missing_setting(&name_publish_target(&scrub(&without_position(&msg, e.location()))));
    if let Some(s) = suggest(&e.to_string()) {
        msg.push_str(&format!(", did you mean `{s}`?"));
    }
    match e.location() {
        Some(l) => anyhow!("{}:{}:{}: {msg}", path.display(), l.line(), l.column()),
        None => anyhow!("{}: {msg}", path.display()),
    }
}

/// serde_yaml names where a publish target's settings went wrong as a path
/// (`publish.deckhouse.compression: …`); say it as every other message about a target does
/// (`publish target `deckhouse`: compression: …`).
fn name_publish_target(msg: &str) -> String {
    // An error about the target as a whole is already worded that way.
    if let Some(rest) = msg.strip_prefix("publish: ").filter(|r| r.contains("publish target")) {
        return rest.to_string();
    }
    static TARGET: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(r"^publish\.([A-Za-z0-9_-]+)(?:\.([^:\s]+))?: ").expect("static regex"));
    TARGET
        .replace(msg, |c: &regex::Captures| match c.get(2) {
            Some(rest) => format!("publish target `{}`: {}: ", &c[1], rest.as_str()),
            None => format!("publish target `{}`: ", &c[1]),
        })
        .into_owned()
}

/// "publish target `x`: missing field `y`" says what to do about it.
fn explain_missing_setting(msg: &str) -> String {
    static TARGET: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(r"^publish target `([A-Za-z0-9_-]+)`: missing field").expect("static regex"));
    match TARGET.captures(msg) {
        Some(c) => crate::publish::target::explain_missing(&c[1], msg),
        None => msg.to_string(),
    }
}

/// serde's messages with the file's own values taken out, the field path and what was
/// expected kept: `invalid type: string "root:$6$…", expected …` loses the string (serde
/// prints an unexpected value as `string "…"` or `integer `7``, de::Unexpected), and an
/// unknown field, variant or step is named only when it looks like a name (a line of
/// /etc/shadow parses as a mapping key).
fn scrub(msg: &str) -> String {
    static VALUE: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r#"(invalid (?:type|value): [a-z ]+?) (?:"(?:[^"\\]|\\.)*"|`[^`]*`)"#).expect("static regex")
    });
    static UNKNOWN: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(r"(unknown (?:field|variant|step)) `([^`]*)`").expect("static regex"));
    let msg = VALUE.replace_all(msg, "$1");
    UNKNOWN
        .replace_all(&msg, |c: &regex::Captures| {
            if looks_like_a_name(&c[2]) {
                c[0].to_string()
            } else {
                format!("{} (not a name; not shown)", &c[1])
            }
        })
        .into_owned()
}

fn looks_like_a_name(s: &str) -> bool {
    (1..=64).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// For serde's "unknown field `x`, expected one of `a`, `b`" messages: the nearest name.
fn suggest(msg: &str) -> Option<String> {
    static UNKNOWN: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(r"unknown (?:field|variant) `([^`]*)`, expected (.*)").expect("static regex"));
    static NAME: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"`([^`]*)`").expect("static regex"));
    if msg.contains("did you mean") {
        return None;
    }
    let c = UNKNOWN.captures(msg)?;
    let names: Vec<&str> = NAME
        .captures_iter(c.get(2)?.as_str())
        .filter_map(|m| m.get(1).map(|m| m.as_str()))
        .collect();
    nearest(&c[1], &names).map(str::to_string)
}

impl<'de> Deserialize<'de> for StepItem {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(StepItemVisitor)
    }
}

struct StepItemVisitor;

impl<'de> Visitor<'de> for StepItemVisitor {
    type Value = StepItem;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a step: `step-name: {options}` (optionally with `when:`), or a bare step name")
    }

    fn visit_str<E: de::Error>(self, name: &str) -> Result<StepItem, E> {
        let step = steps::build(name, serde::de::value::UnitDeserializer::<E>::new())?;
        Ok(StepItem {
            name: name.to_string(),
            step,
            when: None,
            origin: PathBuf::new(),
            selected: true,
        })
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<StepItem, A::Error> {
        let mut when = None;
        let mut found: Option<(String, Box<dyn Step>)> = None;
        while let Some(key) = map.next_key::<String>()? {
            if key == "when" {
                if when.is_some() {
                    return Err(de::Error::custom("`when` given twice"));
                }
                when = Some(map.next_value::<When>()?);
                continue;
            }
            if let Some((prev, _)) = &found {
                return Err(de::Error::custom(format!(
                    "one step per list item: `{prev}` and `{key}` are in the same item (start `{key}` with `- `)"
                )));
            }
            let step = map.next_value_seed(StepSeed(&key))?;
            found = Some((key, step));
        }
        let (name, step) = found.ok_or_else(|| de::Error::custom("a list item with `when:` but no step"))?;
        Ok(StepItem {
            name,
            step,
            when,
            origin: PathBuf::new(),
            selected: true,
        })
    }
}

struct StepSeed<'a>(&'a str);

impl<'de> de::DeserializeSeed<'de> for StepSeed<'_> {
    type Value = Box<dyn Step>;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        steps::build(self.0, d)
    }
}

/// Expand `${var}` in every string option; `$${` is a literal `${`.
fn expand_vars(recipe: &mut Recipe) -> Result<()> {
    for item in &mut recipe.steps {
        let value = item.step.to_yaml();
        if !yaml_mentions_vars(&value) {
            continue;
        }
        let expanded = substitute_value(value, &recipe.vars).map_err(|e| {
            let at = e
                .downcast_ref::<VarError>()
                .and_then(|v| locate(&item.origin, &v.token))
                .map(|(line, col)| format!(":{line}:{col}"))
                .unwrap_or_default();
            anyhow!("{}{at}: step `{}`: {e}", item.origin.display(), item.name)
        })?;
        item.step = steps::build(&item.name, expanded).map_err(|e| {
            anyhow!(
                "{}: step `{}` after expanding variables: {e}",
                item.origin.display(),
                item.name
            )
        })?;
    }
    Ok(())
}

fn yaml_mentions_vars(v: &serde_yaml::Value) -> bool {
    use serde_yaml::Value;
    match v {
        Value::String(s) => s.contains("${"),
        Value::Sequence(s) => s.iter().any(yaml_mentions_vars),
        Value::Mapping(m) => m.values().any(yaml_mentions_vars),
        _ => false,
    }
}

fn substitute_value(v: serde_yaml::Value, vars: &BTreeMap<String, String>) -> Result<serde_yaml::Value> {
    use serde_yaml::Value;
    Ok(match v {
        Value::String(s) => Value::String(substitute(&s, vars)?),
        Value::Sequence(s) => Value::Sequence(
            s.into_iter()
                .map(|x| substitute_value(x, vars))
                .collect::<Result<_>>()?,
        ),
        Value::Mapping(m) => Value::Mapping(
            m.into_iter()
                .map(|(k, x)| Ok((k, substitute_value(x, vars)?)))
                .collect::<Result<_>>()?,
        ),
        other => other,
    })
}

/// A `${…}` that cannot be expanded, with the text that names it (to find its line).
#[derive(Debug)]
struct VarError {
    token: String,
    message: String,
}

impl fmt::Display for VarError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for VarError {}

/// Line and column (1-based) of the first `token` in the recipe `path` outside a comment:
/// the recipe's steps are parsed before their variables are expanded, so the position of
/// a bad `${var}` is found again in the text.
fn locate(path: &Path, token: &str) -> Option<(usize, usize)> {
    let text = std::fs::read_to_string(path).ok()?;
    text.lines().enumerate().find_map(|(i, line)| {
        let at = line.find(token)?;
        let comment = line
            .find(" #")
            .or_else(|| line.trim_start().starts_with('#').then_some(0));
        match comment {
            Some(c) if c <= at => None,
            _ => Some((i + 1, line[..at].chars().count() + 1)),
        }
    })
}

pub fn substitute(s: &str, vars: &BTreeMap<String, String>) -> Result<String> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find("${") {
        if i > 0 && rest.as_bytes()[i - 1] == b'$' {
            out.push_str(&rest[..i - 1]);
            out.push_str("${");
            rest = &rest[i + 2..];
            continue;
        }
        out.push_str(&rest[..i]);
        let end = rest[i..].find('}').ok_or_else(|| VarError {
            token: rest[i..].to_string(),
            message: format!("unclosed `${{` in {s:?}"),
        })? + i;
        let name = &rest[i + 2..end];
        let value = vars.get(name).ok_or_else(|| {
            let names: Vec<&str> = vars.keys().map(String::as_str).collect();
            VarError {
                token: rest[i..=end].to_string(),
                message: match nearest(name, &names) {
                    Some(n) => format!("unknown variable `${{{name}}}`, did you mean `${{{n}}}`?"),
                    None => format!("unknown variable `${{{name}}}` (define it under `vars:`)"),
                },
            }
        })?;
        out.push_str(value);
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests;
