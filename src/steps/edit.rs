//! User step: regex replace in a text file (Rust regex syntax, `$1` for groups).

use super::{Ctx, OptionDoc, Phase, Step, StepInfo};
use anyhow::{anyhow, bail, Result};
use serde::{Deserialize, Serialize};

pub(crate) static INFO: StepInfo = StepInfo {
    name: "edit",
    summary: "regex replace in a file",
    families: &[],
    options: &[
        OptionDoc { name: "path", kind: "string", default: "(required)", help: "absolute guest path of a regular file" },
        OptionDoc { name: "regex", kind: "string", default: "(required)", help: "Rust regex; (?m) for ^/$ per line" },
        OptionDoc { name: "replace", kind: "string", default: "(required)", help: "replacement; $1 refers to a group" },
        OptionDoc { name: "required", kind: "bool", default: "true", help: "fail when the file is missing or nothing matches" },
    ],
    phase: Phase::Main,
    repeatable: true,
};

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Edit {
    #[serde(deserialize_with = "super::validate::file_path")]
    pub path: String,
    #[serde(deserialize_with = "super::validate::regex")]
    pub regex: String,
    pub replace: String,
    #[serde(default = "yes")]
    pub required: bool,
}

fn yes() -> bool {
    true
}

impl Default for Edit {
    fn default() -> Self {
        Edit { path: String::new(), regex: String::new(), replace: String::new(), required: true }
    }
}

impl Step for Edit {
    fn info(&self) -> &'static StepInfo {
        &INFO
    }

    fn apply(&self, ctx: &mut Ctx) -> Result<()> {
        crate::guest::components(&self.path)?;
        let re = regex::Regex::new(&self.regex).map_err(|e| anyhow!("bad regex {:?}: {e}", self.regex))?;
        let Some(text) = ctx.read_text(&self.path)? else {
            if self.required {
                bail!("{} does not exist", self.path);
            }
            return Ok(());
        };
        if !re.is_match(&text) {
            if self.required {
                bail!("{:?} does not match anything in {}", self.regex, self.path);
            }
            return Ok(());
        }
        let new = re.replace_all(&text, self.replace.as_str());
        if new != text {
            ctx.edit(&self.path, new.as_bytes())?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::guest::memory::MemoryGuest;
    use crate::guest::{Guest, OsFacts};
    use crate::report::Action;
    use crate::steps::testing::{apply, changes, dry_run_matches, text, tree};

    const HOSTS: &[u8] = b"127.0.0.1\tlocalhost\n::1 localhost ip6-localhost\n";
    /// The expression tests/user_steps.rs runs in a real image.
    const LOCALHOST: &str =
        r#"{path: /etc/hosts, regex: '(?m)^127\.0\.0\.1\s+localhost$', replace: '127.0.0.1 localhost template'}"#;

    fn guest() -> MemoryGuest {
        let g = MemoryGuest::new(OsFacts::sample("debian"));
        g.file("/etc/hosts", HOSTS).file("/etc/shadow", b"root:*:::\n");
        g.chmod(0o604, "/etc/hosts").unwrap();
        g.chown(0, 4, "/etc/hosts").unwrap();
        g.link("/etc/hosts.link", "/etc/shadow");
        g
    }

    #[test]
    fn replaces_in_place_keeping_owner_and_mode() {
        let g = guest();
        let report = apply(&g, "edit", LOCALHOST).unwrap();
        assert_eq!(changes(&report), [(Action::Edited, "/etc/hosts")]);
        assert_eq!(
            text(&g, "/etc/hosts"),
            "127.0.0.1 localhost template\n::1 localhost ip6-localhost\n"
        );
        let m = g.lstat("/etc/hosts").unwrap().unwrap();
        assert_eq!((m.mode, m.uid, m.gid), (0o604, 0, 4));
        // Groups in the replacement; every match is replaced.
        apply(
            &g,
            "edit",
            r"{path: /etc/hosts, regex: '(local)(host)', replace: '${2}_$1'}",
        )
        .unwrap();
        assert_eq!(
            text(&g, "/etc/hosts"),
            "127.0.0.1 host_local template\n::1 host_local ip6-host_local\n"
        );
        // A replacement that changes nothing records nothing.
        let report = apply(&g, "edit", "{path: /etc/hosts, regex: template, replace: template}").unwrap();
        assert!(report.changes.is_empty());
    }

    #[test]
    fn required_missing_or_unmatched_fails_without_writing() {
        let g = guest();
        let before = tree(&g);
        let err = apply(&g, "edit", "{path: /etc/nope, regex: x, replace: y}").unwrap_err();
        assert!(err.to_string().contains("/etc/nope does not exist"), "{err:#}");
        let err = apply(&g, "edit", "{path: /etc/hosts, regex: no-such-text, replace: x}").unwrap_err();
        assert!(
            err.to_string().contains("does not match anything in /etc/hosts"),
            "{err:#}"
        );
        let err = apply(&g, "edit", "{path: /etc/hosts, regex: '(', replace: x}").unwrap_err();
        assert!(err.to_string().contains("bad regex"), "{err:#}");
        assert!(apply(&g, "edit", "{path: etc/hosts, regex: x, replace: y}").is_err());
        for options in [
            "{path: /etc/nope, regex: x, replace: y, required: false}",
            "{path: /etc/hosts, regex: no-such-text, replace: x, required: false}",
        ] {
            assert!(apply(&g, "edit", options).unwrap().changes.is_empty(), "{options}");
        }
        assert_eq!(tree(&g), before);
    }

    #[test]
    fn a_link_is_not_edited_through() {
        let g = guest();
        let options = "{path: /etc/hosts.link, regex: root, replace: toor, required: false}";
        let report = apply(&g, "edit", options).unwrap();
        assert!(report.changes.is_empty());
        assert_eq!(report.warnings.len(), 1, "{:?}", report.warnings);
        assert_eq!(g.content("/etc/shadow").unwrap(), b"root:*:::\n");
        assert!(apply(&g, "edit", "{path: /etc/hosts.link, regex: root, replace: toor}").is_err());
        assert_eq!(g.content("/etc/shadow").unwrap(), b"root:*:::\n");
    }

    #[test]
    fn dry_run_reports_and_writes_nothing() {
        dry_run_matches(guest, "edit", LOCALHOST);
    }
}
