//! User step: change the mode of paths matching a glob (symlinks are skipped).

use super::{Ctx, FileMode, OptionDoc, Phase, Step, StepInfo};
use crate::guest::Kind;
use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};

pub(crate) static INFO: StepInfo = StepInfo {
    name: "chmod",
    summary: "change the mode of paths matching a glob",
    families: &[],
    options: &[
        OptionDoc { name: "path", kind: "glob", default: "(required)", help: "absolute guest path; globs allowed" },
        OptionDoc { name: "mode", kind: "octal string", default: "(required)", help: "e.g. \"0600\"" },
    ],
    phase: Phase::Main,
    repeatable: true,
};

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Chmod {
    #[serde(deserialize_with = "super::validate::glob")]
    pub path: String,
    pub mode: FileMode,
}

impl Default for Chmod {
    fn default() -> Self {
        Chmod { path: String::new(), mode: FileMode(0o644) }
    }
}

impl Step for Chmod {
    fn info(&self) -> &'static StepInfo {
        &INFO
    }

    fn apply(&self, ctx: &mut Ctx) -> Result<()> {
        crate::guest::components(&self.path)?;
        let paths = ctx.glob(&self.path)?;
        if paths.is_empty() {
            bail!("nothing matches {}", self.path);
        }
        for p in paths {
            if matches!(ctx.lstat(&p)?, Some(m) if m.kind != Kind::Symlink) {
                ctx.chmod(self.mode.0, &p)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::guest::memory::MemoryGuest;
    use crate::guest::{Guest, OsFacts};
    use crate::report::Action;
    use crate::steps::testing::{apply, changes, dry_run_matches, tree};

    fn guest() -> MemoryGuest {
        let g = MemoryGuest::new(OsFacts::sample("debian"));
        g.file("/srv/app/a.conf", b"a")
            .file("/srv/app/b.conf", b"b")
            .file("/srv/app/notes.txt", b"n")
            .file("/etc/shadow", b"root:*:::\n")
            .link("/srv/app/shadow.conf", "/etc/shadow");
        g.chown(1000, 1000, "/srv/app/a.conf").unwrap();
        g.chmod(0o640, "/etc/shadow").unwrap();
        g
    }

    #[test]
    fn matches_get_the_mode_links_and_neighbours_do_not() {
        let g = guest();
        let report = apply(&g, "chmod", "{path: /srv/app/*.conf, mode: '0600'}").unwrap();
        assert_eq!(
            changes(&report),
            [(Action::Chmod, "/srv/app/a.conf"), (Action::Chmod, "/srv/app/b.conf")]
        );
        let a = g.lstat("/srv/app/a.conf").unwrap().unwrap();
        assert_eq!((a.mode, a.uid, a.gid), (0o600, 1000, 1000), "the owner stays");
        assert_eq!(g.lstat("/srv/app/b.conf").unwrap().unwrap().mode, 0o600);
        assert_eq!(g.lstat("/srv/app/notes.txt").unwrap().unwrap().mode, 0o644);
        // The link matched the glob but is skipped: its target keeps its mode.
        assert_eq!(g.lstat("/etc/shadow").unwrap().unwrap().mode, 0o640);
        assert_eq!(g.readlink("/srv/app/shadow.conf").unwrap(), "/etc/shadow");

        // A directory (tests/user_steps.rs does this one in a real image).
        apply(&g, "chmod", "{path: /srv/app, mode: 0711}").unwrap();
        assert_eq!(g.lstat("/srv/app").unwrap().unwrap().mode, 0o711);
    }

    #[test]
    fn nothing_matching_and_bad_paths_fail_without_writing() {
        let g = guest();
        let before = tree(&g);
        let err = apply(&g, "chmod", "{path: '/srv/none/*', mode: '0600'}").unwrap_err();
        assert!(err.to_string().contains("nothing matches /srv/none/*"), "{err:#}");
        for path in ["srv/app/a.conf", "/srv/../etc/shadow", "/srv//app"] {
            let options = format!("{{path: '{path}', mode: '0600'}}");
            assert!(apply(&g, "chmod", &options).is_err(), "{path}");
        }
        assert_eq!(tree(&g), before);
    }

    #[test]
    fn dry_run_reports_and_writes_nothing() {
        dry_run_matches(guest, "chmod", "{path: /srv/app/*.conf, mode: '0600'}");
    }
}
