//! User step: create a symlink in the guest. The target is stored as given; goldify itself
//! never follows guest links.

use super::{Ctx, OptionDoc, Phase, Step, StepInfo};
use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};

pub(crate) static INFO: StepInfo = StepInfo {
    name: "symlink",
    summary: "create a symlink",
    families: &[],
    options: &[
        OptionDoc { name: "target", kind: "string", default: "(required)", help: "what the link points to" },
        OptionDoc { name: "link", kind: "string", default: "(required)", help: "absolute guest path of the link" },
        OptionDoc { name: "force", kind: "bool", default: "false", help: "replace an existing file or link" },
    ],
    phase: Phase::Main,
    repeatable: true,
};

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Symlink {
    #[serde(deserialize_with = "super::validate::link_target")]
    pub target: String,
    #[serde(deserialize_with = "super::validate::file_path")]
    pub link: String,
    #[serde(default)]
    pub force: bool,
}

impl Step for Symlink {
    fn info(&self) -> &'static StepInfo {
        &INFO
    }

    fn apply(&self, ctx: &mut Ctx) -> Result<()> {
        crate::guest::components(&self.link)?;
        if self.target.is_empty() || self.target.contains('\0') {
            bail!("symlink target must be a non-empty path");
        }
        if let Some(m) = ctx.lstat(&self.link)? {
            if m.kind == crate::guest::Kind::Symlink && ctx.guest.readlink(&self.link)? == self.target {
                return Ok(());
            }
            if !self.force {
                bail!("{} already exists (set `force: true` to replace it)", self.link);
            }
            ctx.remove(&self.link)?;
        }
        ctx.symlink(&self.target, &self.link)
    }
}

#[cfg(test)]
mod tests {
    use crate::guest::memory::MemoryGuest;
    use crate::guest::{Guest, OsFacts};
    use crate::report::Action;
    use crate::steps::testing::{apply, changes, dry_run_matches, tree};

    /// The step tests/user_steps.rs runs in a real image.
    const DATA: &str = "{target: /srv/app/data, link: /data}";

    fn guest() -> MemoryGuest {
        let g = MemoryGuest::new(OsFacts::sample("debian"));
        g.dir("/srv/app/data")
            .file("/etc/motd", b"old motd")
            .file("/etc/shadow", b"root:*:::\n")
            .link("/etc/localtime", "/usr/share/zoneinfo/Etc/UTC")
            .link("/srv/etc", "/etc");
        g
    }

    #[test]
    fn creates_the_link_with_the_target_as_given() {
        let g = guest();
        let report = apply(&g, "symlink", DATA).unwrap();
        assert_eq!(changes(&report), [(Action::Linked, "/data")]);
        assert_eq!(g.readlink("/data").unwrap(), "/srv/app/data");
        // Relative and dangling targets are stored as they are: goldify never resolves them.
        apply(&g, "symlink", "{target: ../usr/bin/nowhere, link: /etc/rel}").unwrap();
        assert_eq!(g.readlink("/etc/rel").unwrap(), "../usr/bin/nowhere");
        // The same link again changes nothing.
        assert!(apply(&g, "symlink", DATA).unwrap().changes.is_empty());
    }

    #[test]
    fn an_existing_path_is_replaced_only_with_force() {
        let g = guest();
        let before = tree(&g);
        let options = "{target: /usr/share/zoneinfo/Europe/Paris, link: /etc/localtime}";
        let err = apply(&g, "symlink", options).unwrap_err();
        assert!(err.to_string().contains("/etc/localtime already exists"), "{err:#}");
        assert!(apply(&g, "symlink", "{target: /run/motd, link: /etc/motd}").is_err());
        assert_eq!(tree(&g), before);

        let report = apply(&g, "symlink", "{target: /run/motd, link: /etc/motd, force: true}").unwrap();
        assert_eq!(
            changes(&report),
            [(Action::Removed, "/etc/motd"), (Action::Linked, "/etc/motd")]
        );
        assert_eq!(g.readlink("/etc/motd").unwrap(), "/run/motd");
        let options = "{target: /usr/share/zoneinfo/Europe/Paris, link: /etc/localtime, force: true}";
        apply(&g, "symlink", options).unwrap();
        assert_eq!(
            g.readlink("/etc/localtime").unwrap(),
            "/usr/share/zoneinfo/Europe/Paris"
        );
    }

    #[test]
    fn refusals_write_nothing() {
        let g = guest();
        let before = tree(&g);
        for options in [
            "{target: /x, link: data}",
            "{target: /x, link: /srv/../data}",
            "{target: '', link: /data}",
            // Never created through a guest symlink, even with force.
            "{target: /x, link: /srv/etc/evil, force: true}",
            "{target: /x, link: /srv/etc/shadow, force: true}",
        ] {
            assert!(apply(&g, "symlink", options).is_err(), "{options}");
        }
        assert_eq!(tree(&g), before);
    }

    #[test]
    fn dry_run_reports_and_writes_nothing() {
        dry_run_matches(guest, "symlink", DATA);
        dry_run_matches(guest, "symlink", "{target: /run/motd, link: /etc/motd, force: true}");
    }
}
