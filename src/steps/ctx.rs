//! The context a step runs in: the guest for reading, and mutating helpers that record
//! every change for the report and, under `--dry-run`, write nothing but remember what the
//! real run would have removed or truncated.

use super::READ_LIMIT;
use crate::guest::{self, Entry, Guest, Kind, Meta};
use crate::report::{Action, Change, StepReport};
use anyhow::{Context, Result};
use std::collections::{BTreeMap, BTreeSet};

pub(crate) struct Ctx<'a> {
    pub guest: &'a dyn Guest,
    pub dry_run: bool,
    pub report: StepReport,
    dry: DryRunDone,
}

/// Under `--dry-run`, what the run has removed and truncated so far (in this step, and in
/// the steps before when the context continues them). Later lookups see the guest as the
/// real run would have left it, so the report is the real run's: a path that two globs or
/// two steps match, or that lies in a tree removed before, is reported once, and a file
/// removed and then written again is reported as created.
#[derive(Default)]
pub(crate) struct DryRunDone {
    removed: BTreeSet<String>,
    truncated: BTreeSet<String>,
    /// What each removal and truncation freed: a tree removed later frees only the rest
    /// (the real run measures the tree after them), so no byte is counted twice.
    freed: BTreeMap<String, u64>,
}

impl DryRunDone {
    /// Bytes already counted as freed below the directory `dir`.
    fn freed_below(&self, dir: &str) -> u64 {
        let prefix = format!("{}/", dir.trim_end_matches('/'));
        self.freed
            .range(prefix.clone()..)
            .take_while(|(p, _)| p.starts_with(&prefix))
            .map(|(_, n)| n)
            .sum()
    }

    /// Whether `path` or a directory above it was removed.
    fn removed(&self, path: &str) -> bool {
        let mut p = path;
        loop {
            if self.removed.contains(p) {
                return true;
            }
            match p.rfind('/') {
                Some(0) | None => return false,
                Some(i) => p = &p[..i],
            }
        }
    }
}

impl<'a> Ctx<'a> {
    pub(crate) fn new(guest: &'a dyn Guest, dry_run: bool, step: &str) -> Ctx<'a> {
        Ctx {
            guest,
            dry_run,
            report: StepReport {
                step: step.to_string(),
                ..Default::default()
            },
            dry: DryRunDone::default(),
        }
    }

    /// Continue a dry run: this step sees what the steps before it removed and truncated.
    pub(crate) fn continuing(self, done: DryRunDone) -> Ctx<'a> {
        Ctx { dry: done, ..self }
    }

    /// The step's report, and what a dry run has done so far, for the next step.
    pub(crate) fn finish(self) -> (StepReport, DryRunDone) {
        (self.report, self.dry)
    }

    pub(crate) fn facts(&self) -> &crate::guest::OsFacts {
        self.guest.facts()
    }

    pub(crate) fn warn(&mut self, msg: impl Into<String>) {
        let msg = msg.into();
        // The run's summary lists warnings; the log line is for -v.
        tracing::info!("{}: {msg}", self.report.step);
        self.report.warnings.push(msg);
    }

    fn record(&mut self, path: &str, action: Action, freed: u64) {
        self.report.freed += freed;
        self.report.changes.push(Change {
            path: path.to_string(),
            action,
            freed,
        });
    }

    /// lstat that turns a refused guest symlink into a warning and `None`.
    pub(crate) fn lstat(&mut self, path: &str) -> Result<Option<Meta>> {
        if self.dry.removed(path) {
            return Ok(None);
        }
        match self.guest.lstat(path) {
            Err(e) if guest::is_unsafe(&e) => {
                self.warn(format!("skipping {path}: {e:#}"));
                Ok(None)
            }
            Ok(Some(m)) if self.dry.truncated.contains(path) => Ok(Some(Meta {
                size: 0,
                allocated: 0,
                ..m
            })),
            r => r,
        }
    }

    /// Remove a file, link or tree if it exists. Returns whether something was removed.
    pub(crate) fn remove(&mut self, path: &str) -> Result<bool> {
        let Some(meta) = self.lstat(path)? else {
            return Ok(false);
        };
        let freed = if meta.kind == Kind::Dir {
            let usage = self.guest.usage(path).unwrap_or(0);
            if self.dry_run {
                usage.saturating_sub(self.dry.freed_below(path))
            } else {
                usage
            }
        } else {
            freed_by(&Entry {
                path: path.into(),
                meta: meta.clone(),
            })
        };
        if self.dry_run {
            self.dry.removed.insert(path.to_string());
            self.dry.freed.insert(path.to_string(), freed);
        } else {
            self.guest.remove(path)?;
        }
        self.record(path, Action::Removed, freed);
        Ok(true)
    }

    /// Cut a regular file to zero bytes (kept with its owner and mode).
    pub(crate) fn truncate(&mut self, path: &str) -> Result<bool> {
        let Some(meta) = self.lstat(path)? else {
            return Ok(false);
        };
        if meta.kind != Kind::File {
            return Ok(false);
        }
        if meta.size == 0 && meta.allocated == 0 {
            return Ok(false);
        }
        self.note_hard_links(path, &meta);
        let freed = freed_by(&Entry {
            path: path.into(),
            meta,
        });
        if self.dry_run {
            self.dry.truncated.insert(path.to_string());
            self.dry.freed.insert(path.to_string(), freed);
        } else {
            self.guest.truncate(path)?;
        }
        self.record(path, Action::Truncated, freed);
        Ok(true)
    }

    /// Write a file (replacing its content, keeping owner and mode if it exists).
    pub(crate) fn write(&mut self, path: &str, data: &[u8]) -> Result<()> {
        let existing = self.lstat(path)?;
        if let Some(m) = &existing {
            self.note_hard_links(path, m);
        }
        if !self.dry_run {
            self.guest.write(path, data)?;
        }
        self.record(
            path,
            if existing.is_some() {
                Action::Written
            } else {
                Action::Created
            },
            0,
        );
        Ok(())
    }

    /// A registry value (see [`Guest::registry_get`]); a missing hive reads as `None`.
    pub(crate) fn registry_get(
        &mut self,
        hive: &str,
        key: &[&str],
        name: &str,
    ) -> Result<Option<crate::guest::registry::RegValue>> {
        match self.lstat(hive)? {
            Some(m) if m.kind == Kind::File => self.guest.registry_get(hive, key, name),
            _ => Ok(None),
        }
    }

    /// Set registry values in a hive file (keys created as needed); each key is recorded
    /// as an edit of `hive\key`.
    pub(crate) fn registry_set(&mut self, hive: &str, edits: &[crate::guest::registry::RegEdit]) -> Result<()> {
        if !self.dry_run {
            self.guest
                .registry_set(hive, edits)
                .with_context(|| format!("editing the registry hive {hive}"))?;
        }
        for e in edits {
            self.record(&format!("{hive}\\{}", e.key.join("\\")), Action::Edited, 0);
        }
        Ok(())
    }

    /// Replace a file's content (callers compare first); records an edit.
    pub(crate) fn edit(&mut self, path: &str, new: &[u8]) -> Result<()> {
        self.note_hard_links_of(path)?;
        if !self.dry_run {
            self.guest.write(path, new)?;
        }
        self.record(path, Action::Edited, 0);
        Ok(())
    }

    /// A name that shares its inode with other names gets an inode of its own when it is
    /// written, truncated, or has its mode or owner changed (the Guest contract); the
    /// report says so, since the other names keep the old content.
    fn note_hard_links(&mut self, path: &str, meta: &Meta) {
        if meta.is_shared() && meta.kind == Kind::File {
            self.warn(format!(
                "{path} shares its inode with {} other name(s) (hard links); it gets its own copy, the other names are left as they were",
                meta.nlink - 1
            ));
        }
    }

    fn note_hard_links_of(&mut self, path: &str) -> Result<()> {
        if let Some(m) = self.lstat(path)? {
            self.note_hard_links(path, &m);
        }
        Ok(())
    }

    pub(crate) fn mkdir_p(&mut self, path: &str) -> Result<()> {
        if self.lstat(path)?.is_some() {
            return Ok(());
        }
        if !self.dry_run {
            self.guest.mkdir_p(path)?;
        }
        self.record(path, Action::Created, 0);
        Ok(())
    }

    pub(crate) fn chmod(&mut self, mode: u32, path: &str) -> Result<()> {
        self.note_hard_links_of(path)?;
        if !self.dry_run {
            self.guest.chmod(mode, path)?;
        }
        self.record(path, Action::Chmod, 0);
        Ok(())
    }

    pub(crate) fn chown(&mut self, uid: u32, gid: u32, path: &str) -> Result<()> {
        self.note_hard_links_of(path)?;
        if !self.dry_run {
            self.guest.chown(uid, gid, path)?;
        }
        self.record(path, Action::Chown, 0);
        Ok(())
    }

    pub(crate) fn symlink(&mut self, target: &str, link: &str) -> Result<()> {
        if !self.dry_run {
            self.guest.symlink(target, link)?;
        }
        self.record(link, Action::Linked, 0);
        Ok(())
    }

    /// Enable a systemd unit for `target` the way `systemctl enable` would, offline.
    pub(crate) fn enable_unit(&mut self, unit: &str, target: &str) -> Result<()> {
        let dir = format!("/etc/systemd/system/{target}.wants");
        self.mkdir_p(&dir)?;
        let link = format!("{dir}/{unit}");
        if self.lstat(&link)?.is_none() {
            self.symlink(&format!("/etc/systemd/system/{unit}"), &link)?;
        }
        Ok(())
    }

    /// Remove every path matching each glob.
    pub(crate) fn remove_globs(&mut self, patterns: &[&str]) -> Result<()> {
        for pattern in patterns {
            for path in self.glob(pattern)? {
                self.remove(&path)?;
            }
        }
        Ok(())
    }

    /// Expand a glob in the guest; a refused symlink on the way becomes a warning.
    pub(crate) fn glob(&mut self, pattern: &str) -> Result<Vec<String>> {
        match guest::glob(self.guest, pattern) {
            Err(e) if guest::is_unsafe(&e) => {
                self.warn(format!("skipping {pattern}: {e:#}"));
                Ok(Vec::new())
            }
            Ok(mut paths) => {
                paths.retain(|p| !self.dry.removed(p));
                Ok(paths)
            }
            r => r.with_context(|| format!("expanding {pattern}")),
        }
    }

    /// Remove what is inside a directory, keeping the directory itself.
    pub(crate) fn empty_dir(&mut self, dir: &str) -> Result<()> {
        match self.lstat(dir)? {
            Some(m) if m.kind == Kind::Dir => {}
            Some(m) if m.kind == Kind::Symlink => {
                self.warn(format!("{dir} is a symlink; not following it"));
                return Ok(());
            }
            _ => return Ok(()),
        }
        for name in self.guest.list(dir)? {
            self.remove(&guest::join(dir, &name))?;
        }
        Ok(())
    }

    /// Read a small text file, if it exists and is a regular file.
    pub(crate) fn read_text(&mut self, path: &str) -> Result<Option<String>> {
        match self.lstat(path)? {
            Some(m) if m.kind == Kind::File => {
                let bytes = self
                    .guest
                    .read(path, READ_LIMIT)
                    .with_context(|| format!("reading {path}"))?;
                Ok(Some(String::from_utf8_lossy(&bytes).into_owned()))
            }
            Some(m) if m.kind != Kind::File => {
                self.warn(format!("{path} is not a regular file; left alone"));
                Ok(None)
            }
            _ => Ok(None),
        }
    }

    pub(crate) fn home_dirs(&mut self) -> Result<Vec<String>> {
        let mut homes = vec!["/root".to_string()];
        homes.extend(
            self.glob("/home/*")?
                .into_iter()
                .filter(|h| matches!(self.guest.lstat(h), Ok(Some(Meta { kind: Kind::Dir, .. })))),
        );
        Ok(homes)
    }
}

/// Bytes given back by removing or truncating `e`: nothing for a directory entry itself,
/// nor for a hard-linked file (its other names keep the blocks).
fn freed_by(e: &Entry) -> u64 {
    if e.meta.kind == Kind::Dir || e.meta.is_shared() {
        0
    } else {
        e.meta.allocated
    }
}

#[cfg(test)]
mod tests {
    use super::Ctx;
    use crate::guest::memory::MemoryGuest;
    use crate::guest::OsFacts;

    /// One step truncates a log, the next removes its directory: the dry run frees what
    /// the real run frees, not the log's bytes twice.
    fn freed(dry_run: bool) -> u64 {
        let g = MemoryGuest::new(OsFacts::sample("debian"));
        g.file("/var/log/app/big.log", &[7u8; 10000])
            .file("/var/log/app/small.log", &[1u8; 3000]);
        let mut a = Ctx::new(&g, dry_run, "logs");
        assert!(a.truncate("/var/log/app/big.log").unwrap());
        let (ra, done) = a.finish();
        let mut b = Ctx::new(&g, dry_run, "delete").continuing(done);
        assert!(b.remove("/var/log/app").unwrap());
        let (rb, _) = b.finish();
        ra.freed + rb.freed
    }

    #[test]
    fn a_dry_run_counts_no_byte_twice() {
        let real = freed(false);
        assert!(real >= 13000, "{real}");
        assert_eq!(freed(true), real);
    }
}
