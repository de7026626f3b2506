//! Empty /var/log: live log files are truncated (kept with owner and mode, so services
//! that reopen them and tools such as `last` keep working); rotated and compressed
//! archives and the binary journal are removed (a truncated .gz or .journal is a corrupt
//! file, not an empty one). The journal directory itself stays, so persistent journaling
//! stays on; its per-machine subdirectory, named after the old machine-id, goes.

use super::{Ctx, OptionDoc, Phase, Step, StepInfo};
use crate::guest::Kind;
use anyhow::Result;
use regex::Regex;
use serde::{Deserialize, Serialize};
use std::sync::LazyLock;

pub(crate) static INFO: StepInfo = StepInfo {
    name: "logs",
    summary: "truncate /var/log files (journal, wtmp/btmp/lastlog, cloud-init logs…), remove rotated and compressed ones",
    families: &[],
    options: &[
        OptionDoc { name: "mode", kind: "truncate|delete", default: "truncate", help: "what happens to live log files" },
        OptionDoc { name: "keep", kind: "list of globs", default: "[]", help: "paths under /var/log to leave alone" },
    ],
    phase: Phase::Main,
    repeatable: false,
};

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Mode {
    #[default]
    Truncate,
    Delete,
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct Logs {
    pub mode: Mode,
    #[serde(deserialize_with = "super::validate::patterns")]
    pub keep: Vec<String>,
}

/// Removed rather than truncated: rotated or compressed (`syslog.1`, `messages-20240101`,
/// `dpkg.log.2.gz`, `x.old`) and binary journals.
pub(crate) fn is_archive(name: &str) -> bool {
    ARCHIVE.is_match(name)
}

/// Compiled once: `is_archive` runs for every file the walk of /var/log finds.
static ARCHIVE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(\.\d+|-\d{8}|\.old|\.gz|\.xz|\.bz2|\.zst|\.lz4|\.journal~?)(\.gz|\.xz|\.bz2|\.zst)?$")
        .expect("static regex")
});

impl Step for Logs {
    fn info(&self) -> &'static StepInfo {
        &INFO
    }

    fn apply(&self, ctx: &mut Ctx) -> Result<()> {
        let root = "/var/log";
        match ctx.lstat(root)? {
            Some(m) if m.kind == Kind::Dir => {}
            Some(m) if m.kind == Kind::Symlink => {
                ctx.warn("/var/log is a symlink; not following it");
                return Ok(());
            }
            _ => return Ok(()),
        }
        let keep: Vec<glob::Pattern> = self
            .keep
            .iter()
            .map(|k| glob::Pattern::new(k).map_err(|e| anyhow::anyhow!("bad glob {k:?} in `keep`: {e}")))
            .collect::<Result<_>>()?;
        let machine_id = ctx
            .read_text("/etc/machine-id")
            .unwrap_or(None)
            .map(|s| s.trim().to_string())
            .filter(|s| s.len() == 32);
        let entries = ctx.guest.walk(root)?;
        let mut removed_dirs: Vec<String> = Vec::new();
        for e in entries {
            if removed_dirs.iter().any(|d| e.path.starts_with(&format!("{d}/"))) {
                continue;
            }
            if keep.iter().any(|k| k.matches(&e.path)) {
                continue;
            }
            let name = crate::guest::parent(&e.path).len();
            let name = &e.path[name + 1..];
            match e.meta.kind {
                Kind::Dir => {
                    // /var/log/journal/<machine-id>: the old machine's journal.
                    let in_journal = crate::guest::parent(&e.path) == "/var/log/journal";
                    let named_like_id = name.len() == 32 && name.bytes().all(|b| b.is_ascii_hexdigit());
                    if in_journal && (named_like_id || machine_id.as_deref() == Some(name)) {
                        ctx.remove(&e.path)?;
                        removed_dirs.push(e.path.clone());
                    }
                }
                Kind::File if is_archive(name) || self.mode == Mode::Delete => {
                    ctx.remove(&e.path)?;
                }
                Kind::File => {
                    ctx.truncate(&e.path)?;
                }
                // Symlinks and device nodes under /var/log are not logs; never followed.
                _ => {}
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::guest::memory::MemoryGuest;
    use crate::guest::{Guest, OsFacts};

    #[test]
    fn archives() {
        for n in ["syslog.1", "dpkg.log.2.gz", "messages-20240101", "x.old", "kern.log.1.xz", "system@x.journal~"] {
            assert!(is_archive(n), "{n}");
        }
        assert!(is_archive("system.journal"), "binary journals are removed, not truncated");
        for n in ["syslog", "wtmp", "lastlog", "cloud-init.log", "auth.log"] {
            assert!(!is_archive(n), "{n}");
        }
    }

    #[test]
    fn truncates_live_removes_archives_and_old_journal() {
        let g = MemoryGuest::new(OsFacts::sample("debian"));
        g.file("/etc/machine-id", b"0123456789abcdef0123456789abcdef\n");
        g.file("/var/log/syslog", b"lots");
        g.file("/var/log/syslog.2.gz", b"gz");
        g.file("/var/log/apt/history.log", b"x");
        g.file("/var/log/journal/0123456789abcdef0123456789abcdef/system.journal", b"j");
        g.link("/var/log/evil", "/etc/machine-id");
        let mut ctx = Ctx::new(&g, false, "logs");
        Logs::default().apply(&mut ctx).unwrap();
        assert_eq!(g.content("/var/log/syslog").unwrap(), b"");
        assert_eq!(g.content("/var/log/apt/history.log").unwrap(), b"");
        assert!(!g.exists("/var/log/syslog.2.gz"));
        assert!(g.exists("/var/log/journal"));
        assert!(!g.exists("/var/log/journal/0123456789abcdef0123456789abcdef"));
        assert_eq!(g.readlink("/var/log/evil").unwrap(), "/etc/machine-id");
        assert_eq!(g.content("/etc/machine-id").unwrap().len(), 33);
    }

    #[test]
    fn hard_linked_log_is_replaced_not_truncated_through() {
        let g = MemoryGuest::new(OsFacts::sample("debian"));
        g.file("/etc/shadow", b"root:$6$secret:19844::::::\n")
            .own("/etc/shadow", 0, 42, 0o640)
            .hardlink("/etc/shadow", "/var/log/x.log");
        let mut ctx = Ctx::new(&g, false, "logs");
        Logs::default().apply(&mut ctx).unwrap();
        assert_eq!(g.content("/etc/shadow").unwrap(), b"root:$6$secret:19844::::::\n");
        assert_eq!(g.content("/var/log/x.log").unwrap(), b"");
        let m = g.lstat("/var/log/x.log").unwrap().unwrap();
        assert_eq!((m.mode, m.gid, m.nlink), (0o640, 42, 1));
        assert!(ctx.report.warnings[0].contains("hard links"), "{:?}", ctx.report.warnings);
        assert_eq!(ctx.report.freed, 0, "the blocks still belong to /etc/shadow");
    }

    #[test]
    fn symlinked_var_log_is_not_followed() {
        let g = MemoryGuest::new(OsFacts::sample("debian"));
        g.file("/etc/passwd", b"root:x:0:0::/root:/bin/sh\n");
        g.link("/var/log", "/etc");
        let mut ctx = Ctx::new(&g, false, "logs");
        Logs::default().apply(&mut ctx).unwrap();
        assert_eq!(g.content("/etc/passwd").unwrap().len(), 26);
        assert_eq!(ctx.report.warnings.len(), 1);
    }
}
