//! Shell and REPL histories of root and of every home directory under /home.

use super::{Ctx, Phase, Step, StepInfo, NO_OPTIONS};
use anyhow::Result;
use serde::{Deserialize, Serialize};

pub(crate) static INFO: StepInfo = StepInfo {
    name: "shell-history",
    summary: "remove bash, zsh, fish, python, less, vim, mysql, psql… histories of root and every /home user",
    families: &[],
    options: NO_OPTIONS,
    phase: Phase::Main,
    repeatable: false,
};

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ShellHistory {}

pub(crate) const FILES: &[&str] = &[
    ".bash_history",
    ".zsh_history",
    ".zhistory",
    ".histfile",
    ".sh_history",
    ".ash_history",
    ".local/share/fish/fish_history",
    ".python_history",
    ".lesshst",
    ".viminfo",
    ".mysql_history",
    ".psql_history",
    ".sqlite_history",
    ".node_repl_history",
    ".rediscli_history",
    ".wget-hsts",
];

impl Step for ShellHistory {
    fn info(&self) -> &'static StepInfo {
        &INFO
    }

    fn apply(&self, ctx: &mut Ctx) -> Result<()> {
        for home in ctx.home_dirs()? {
            for f in FILES {
                // A history that is a symlink (to /etc/shadow, say) is removed as a link.
                ctx.remove(&format!("{home}/{f}"))?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::guest::memory::MemoryGuest;
    use crate::guest::OsFacts;

    #[test]
    fn histories_go_links_not_followed() {
        let g = MemoryGuest::new(OsFacts::sample("debian"));
        g.file("/etc/shadow", b"secret");
        g.link("/root/.bash_history", "/etc/shadow");
        g.file("/home/alice/.python_history", b"import os");
        g.file("/home/alice/.bashrc", b"keep");
        let mut ctx = Ctx::new(&g, false, "shell-history");
        ShellHistory {}.apply(&mut ctx).unwrap();
        assert!(!g.exists("/root/.bash_history"));
        assert_eq!(g.content("/etc/shadow").unwrap(), b"secret");
        assert!(!g.exists("/home/alice/.python_history"));
        assert!(g.exists("/home/alice/.bashrc"));
    }
}
