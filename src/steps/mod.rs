//! Built-in steps: one file each, each a record (name, summary, options, applicability,
//! phase) and an `apply`. `goldify steps`, `goldify check` and the recipe parser all read
//! the same [`REGISTRY`], so documentation cannot drift from what runs.
//!
//! Steps see only [`Ctx`]: the guest for reading, and the ctx's own mutating helpers,
//! which record every change for the report and write nothing under `--dry-run`.

use crate::guest::{self, Family};
use anyhow::{Context, Result};
use serde::Serialize;

mod ctx;
pub(crate) use ctx::{Ctx, DryRunDone};

/// When a step runs relative to the others: recipe order within a phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    /// Cleaning and user steps, in recipe order.
    Main,
    /// The last writes into the guest (machine-id): nothing may put an ID back after it.
    Last,
    /// After every write: discard free space.
    Trim,
}

#[derive(Debug, Serialize)]
pub struct OptionDoc {
    pub name: &'static str,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub default: &'static str,
    pub help: &'static str,
}

#[derive(Debug, Serialize)]
pub struct StepInfo {
    /// `step` in JSON, as in `check --json` and the run report.
    #[serde(rename = "step")]
    pub name: &'static str,
    pub summary: &'static str,
    /// OS families the step applies to; empty means every Linux family (never Windows).
    pub families: &'static [Family],
    pub options: &'static [OptionDoc],
    pub phase: Phase,
    /// May appear several times in a recipe (user steps); otherwise a later occurrence
    /// (e.g. in a recipe that `extends:` another) replaces the earlier one.
    pub repeatable: bool,
}

impl StepInfo {
    pub(crate) fn applies_to(&self, family: Family) -> bool {
        if self.families.is_empty() {
            family.is_linux()
        } else {
            self.families.contains(&family)
        }
    }
}

/// Options serialized back to YAML (for `goldify check`, the report and `${var}` expansion).
pub(crate) trait Options {
    fn to_yaml(&self) -> serde_yaml::Value;
}

impl<T: Serialize> Options for T {
    fn to_yaml(&self) -> serde_yaml::Value {
        serde_yaml::to_value(self).unwrap_or(serde_yaml::Value::Null)
    }
}

pub(crate) trait Step: Options + std::fmt::Debug {
    fn info(&self) -> &'static StepInfo;
    /// What the step needs from this machine, checked before the appliance starts.
    fn preflight(&self) -> Result<()> {
        Ok(())
    }
    fn apply(&self, ctx: &mut Ctx) -> Result<()>;
}

macro_rules! registry {
    ($($module:ident :: $ty:ident),* $(,)?) => {
        $(pub(crate) mod $module;)*

        /// Every built-in step, in the order `goldify steps` lists them.
        pub static REGISTRY: &[&StepInfo] = &[$(&$module::INFO),*];

        /// Build a step from its options (any serde deserializer: the recipe's YAML
        /// keeps line and column in its errors). Null options mean the defaults.
        pub(crate) fn build<'de, D: serde::Deserializer<'de>>(name: &str, options: D) -> Result<Box<dyn Step>, D::Error> {
            use serde::Deserialize;
            $(
                if name == $module::INFO.name {
                    let opts: Option<$module::$ty> = Option::deserialize(options)?;
                    if opts.is_none() {
                        required_options(&$module::INFO).map_err(serde::de::Error::custom)?;
                    }
                    return Ok(Box::new(opts.unwrap_or_default()));
                }
            )*
            Err(serde::de::Error::custom(unknown_step_message(name)))
        }
    };
}

mod validate;
pub(crate) mod windows;

registry! {
    machine_id::MachineId,
    ssh_host_keys::SshHostKeys,
    logs::Logs,
    nic_configs::NicConfigs,
    fstab::Fstab,
    cloud_init_clean::CloudInitClean,
    package_cache::PackageCache,
    tmp_files::TmpFiles,
    shell_history::ShellHistory,
    hostname::Hostname,
    passwd_backups::PasswdBackups,
    selinux_relabel::SelinuxRelabel,
    machine_state::MachineState,
    fstrim::Fstrim,
    delete::Delete,
    truncate::Truncate,
    write::Write,
    edit::Edit,
    mkdir::Mkdir,
    chmod::Chmod,
    symlink::Symlink,
    run::Run,
    firstboot::Firstboot,
    windows_pagefile::WindowsPagefile,
    windows_temp_files::WindowsTempFiles,
    windows_caches::WindowsCaches,
    windows_recycle_bin::WindowsRecycleBin,
    windows_logs::WindowsLogs,
    windows_event_logs::WindowsEventLogs,
    vmmgr_firstrun::VmmgrFirstrun,
    windows_readiness::WindowsReadiness,
}

#[cfg(test)]
pub(crate) mod testing;
/// A step written without options (`- write`, `write: ~`) gets its defaults; one with
/// required options would get an empty path or command and fail only after the appliance
/// started, so it is a recipe error.
pub(crate) fn required_options(info: &StepInfo) -> Result<(), String> {
    let required: Vec<String> = info
        .options
        .iter()
        .filter(|o| o.default == "(required)")
        .map(|o| format!("`{}`", o.name))
        .collect();
    if required.is_empty() {
        return Ok(());
    }
    Err(format!(
        "step `{}` needs its options: {} (`goldify steps` describes them)",
        info.name,
        required.join(", ")
    ))
}

pub(crate) fn info(name: &str) -> Option<&'static StepInfo> {
    REGISTRY.iter().copied().find(|i| i.name == name)
}

pub(crate) fn unknown_step_message(name: &str) -> String {
    let names: Vec<&str> = REGISTRY.iter().map(|i| i.name).collect();
    match crate::suggest::nearest(name, &names) {
        Some(n) => format!("unknown step `{name}`, did you mean `{n}`?"),
        None => format!("unknown step `{name}` (`goldify steps` lists them)"),
    }
}

/// Files goldify reads from the guest to parse (configs, fstab) are bounded by this.
pub(crate) const READ_LIMIT: u64 = 4 << 20;

/// `enum`-style option documentation helper.
pub(crate) const NO_OPTIONS: &[OptionDoc] = &[];

/// A file mode written in octal, as a string (`"0640"`, `"755"`) or a YAML integer whose
/// digits are read as octal (`0640`, `755`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FileMode(pub u32);

impl<'de> serde::Deserialize<'de> for FileMode {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(serde::Deserialize)]
        #[serde(untagged)]
        enum Raw {
            S(String),
            N(u64),
        }
        let digits = match Raw::deserialize(d)
            .map_err(|_| serde::de::Error::custom("a mode must be octal digits like \"0644\""))?
        {
            Raw::S(s) => s,
            Raw::N(n) => n.to_string(),
        };
        let t = digits.trim_start_matches("0o");
        match u32::from_str_radix(t, 8) {
            Ok(m) if m <= 0o7777 && !t.is_empty() => Ok(FileMode(m)),
            _ => Err(serde::de::Error::custom(format!(
                "bad mode {digits:?}: use octal digits like \"0644\""
            ))),
        }
    }
}

impl Serialize for FileMode {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format!("{:04o}", self.0))
    }
}

/// `user`, `user:group`, `uid:gid`; names are looked up in the guest's /etc/passwd and
/// /etc/group (never the host's).
pub(crate) fn resolve_owner(ctx: &mut Ctx, owner: &str) -> Result<(u32, u32)> {
    let (user, group) = match owner.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (owner, None),
    };
    // passwd: name:x:uid:gid:…; group: name:x:gid:members. Returns (id, primary gid).
    let lookup = |ctx: &mut Ctx, file: &str, name: &str| -> Result<Option<(u32, Option<u32>)>> {
        if let Ok(n) = name.parse::<u32>() {
            return Ok(Some((n, Some(n))));
        }
        let text = ctx.read_text(file)?.unwrap_or_default();
        Ok(text.lines().find_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            if f.len() >= 3 && f[0] == name {
                Some((f[2].parse().ok()?, f.get(3).and_then(|g| g.parse().ok())))
            } else {
                None
            }
        }))
    };
    let (uid, primary_gid) = lookup(ctx, "/etc/passwd", user)?
        .ok_or_else(|| anyhow::anyhow!("owner {owner:?}: no user {user:?} in the guest's /etc/passwd"))?;
    let gid = match group {
        None => primary_gid.ok_or_else(|| anyhow::anyhow!("owner {owner:?}: {user:?} has no primary group"))?,
        Some(g) => lookup(ctx, "/etc/group", g)?
            .map(|(gid, _)| gid)
            .ok_or_else(|| anyhow::anyhow!("owner {owner:?}: no group {g:?} in the guest's /etc/group"))?,
    };
    Ok((uid, gid))
}

/// Absolute, normalized guest paths (globs allowed) in user steps' `paths:`.
pub(crate) fn check_abs(paths: &[String]) -> Result<()> {
    for p in paths {
        guest::components(p.trim_end_matches('/')).with_context(|| format!("path {p:?}"))?;
    }
    Ok(())
}

/// `goldify steps` as text, from the registry.
pub(crate) fn describe_all() -> String {
    describe_records(REGISTRY.iter().map(|i| {
        let families = if i.families.is_empty() {
            "all Linux".to_string()
        } else if i.families == Family::ALL {
            "every OS (Linux and Windows)".to_string()
        } else {
            i.families.iter().map(|f| f.name()).collect::<Vec<_>>().join(", ")
        };
        let phase = match i.phase {
            Phase::Main => "",
            Phase::Last => " [runs last]",
            Phase::Trim => " [runs after all writes]",
        };
        let note = format!(
            "{phase}\n    applies to: {families}{}",
            if i.repeatable { "; repeatable" } else { "" }
        );
        (i.name, i.summary, note, i.options)
    }))
}

/// The human listing of records (steps, publish targets): name and note, summary, then
/// one line per option.
pub(crate) fn describe_records<N: AsRef<str>>(
    records: impl Iterator<Item = (&'static str, &'static str, N, &'static [OptionDoc])>,
) -> String {
    let mut s = String::new();
    for (name, summary, note, options) in records {
        let note = note.as_ref();
        // A step's note starts with its phase on the name's line, then its families.
        let (head, tail) = note.split_once('\n').unwrap_or((note, ""));
        s.push_str(&format!("{name}{head}\n    {summary}\n"));
        if !tail.is_empty() {
            s.push_str(&format!("{tail}\n"));
        }
        for o in options {
            s.push_str(&format!(
                "    {}: {} (default {}) — {}\n",
                o.name, o.kind, o.default, o.help
            ));
        }
        s.push('\n');
    }
    s
}
