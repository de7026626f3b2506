//! What a run did: per step, every path changed and the bytes freed; the artifacts; timings.
//! Printed as a short human summary, or as JSON with `--json`.

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    Removed,
    Truncated,
    Written,
    Created,
    Edited,
    Chmod,
    Chown,
    Linked,
    Ran,
    Trimmed,
    Recreated,
}

#[derive(Debug, Clone, Serialize)]
pub struct Change {
    pub path: String,
    pub action: Action,
    /// Bytes this change freed on the guest's filesystem (allocated blocks), where known.
    #[serde(skip_serializing_if = "is_zero")]
    pub freed: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct StepReport {
    pub step: String,
    pub changes: Vec<Change>,
    pub freed: u64,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skipped: Option<String>,
    pub seconds: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Artifact {
    pub kind: String,
    pub path: String,
    pub size: u64,
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub checksums: std::collections::BTreeMap<String, String>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Timings {
    pub prepare: f64,
    pub launch: f64,
    pub steps: f64,
    pub close: f64,
    pub export: f64,
    pub publish: f64,
    pub total: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct RunReport {
    pub goldify_version: &'static str,
    pub input: String,
    pub recipe: String,
    pub dry_run: bool,
    pub in_place: bool,
    pub accel: String,
    pub os: Option<crate::guest::OsFacts>,
    /// What the user must know about how the guest was opened (a hibernated Windows
    /// session discarded by --remove-hiberfile).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notices: Vec<String>,
    pub steps: Vec<StepReport>,
    pub artifacts: Vec<Artifact>,
    pub timings: Timings,
}

impl RunReport {
    pub fn print_human(&self, out: &mut dyn std::io::Write) -> std::io::Result<()> {
        if let Some(os) = &self.os {
            writeln!(
                out,
                "{} ({} {}, {}) on {}",
                self.input,
                os.distro,
                os.version(),
                os.arch,
                os.root
            )?;
        }
        for n in &self.notices {
            writeln!(out, "  note: {n}")?;
        }
        let verb = if self.dry_run { "would change" } else { "changed" };
        for s in &self.steps {
            if let Some(why) = &s.skipped {
                writeln!(out, "  {:<20} skipped: {why}", s.step)?;
                continue;
            }
            writeln!(
                out,
                "  {:<20} {verb} {:>4} path{}, freed {}",
                s.step,
                s.changes.len(),
                if s.changes.len() == 1 { "" } else { "s" },
                human_bytes(s.freed)
            )?;
            if self.dry_run {
                for c in &s.changes {
                    writeln!(out, "      {:?} {}", c.action, c.path.escape_debug())?;
                }
            }
            for w in &s.warnings {
                writeln!(out, "      warning: {w}")?;
            }
        }
        let freed: u64 = self.steps.iter().map(|s| s.freed).sum();
        writeln!(
            out,
            "total: freed {} in {:.1} s",
            human_bytes(freed),
            self.timings.total
        )?;
        for a in &self.artifacts {
            writeln!(out, "wrote {} ({}, {})", a.path, a.kind, human_bytes(a.size))?;
        }
        Ok(())
    }
}

pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn bytes() {
        assert_eq!(super::human_bytes(512), "512 B");
        assert_eq!(super::human_bytes(1536), "1.5 KiB");
        assert_eq!(super::human_bytes(3 << 30), "3.0 GiB");
    }
}
