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
    /// Bytes this change freed on the guest's filesystem (allocated blocks), where known
    /// (would free, in a dry run); 0 otherwise.
    pub freed: u64,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct StepReport {
    pub step: String,
    pub changes: Vec<Change>,
    pub freed: u64,
    pub warnings: Vec<String>,
    /// Why the step did not run (null when it ran).
    pub skipped: Option<String>,
    pub seconds: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Artifact {
    pub kind: String,
    pub path: String,
    pub size: u64,
    /// Digest name → hex digest (empty when none were computed).
    pub checksums: std::collections::BTreeMap<String, String>,
}

/// A repository file a run changed rather than wrote whole: an index with the run's
/// entry merged in.
#[derive(Debug, Clone, Serialize)]
pub struct Updated {
    /// The target that changed it.
    pub target: String,
    pub path: String,
    /// The entry added or replaced.
    pub entry: String,
}

/// Seconds per phase of a run, in the order they happen. The phases follow one another
/// with no gap (each is measured by [`Clock::lap`]), so they add up to `total`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Timings {
    /// Loading the recipe, checking settings and outputs, opening the input (overlay,
    /// decompression), starting the vmmanager head start.
    pub prepare: f64,
    /// Starting the libguestfs appliance and inspecting the guest.
    pub launch: f64,
    pub steps: f64,
    /// What publishing reads from the open guest (the vmmanager-lxd tree, the layout).
    pub publish_read: f64,
    /// Closing the appliance (writing the cleaned disk).
    pub close: f64,
    /// Writing the golden disk without publishing.
    pub export: f64,
    /// Producing and committing every publish artifact (the golden disk among them).
    pub publish: f64,
    /// Writing the run manifest.
    pub record: f64,
    pub total: f64,
}

/// The clock of a run's phases: each lap is the time since the previous one.
pub struct Clock {
    start: std::time::Instant,
    last: std::time::Instant,
}

impl Clock {
    pub fn start() -> Clock {
        let now = std::time::Instant::now();
        Clock { start: now, last: now }
    }

    /// Seconds since the last lap (or the start).
    pub fn lap(&mut self) -> f64 {
        let now = std::time::Instant::now();
        let d = now.duration_since(self.last).as_secs_f64();
        self.last = now;
        d
    }

    /// Seconds from the start to the last lap: the sum of the laps.
    pub fn total(&self) -> f64 {
        self.last.duration_since(self.start).as_secs_f64()
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct RunReport {
    pub goldify_version: &'static str,
    /// The first (usually the only) input disk.
    pub input: String,
    /// Every input disk, in the guest's order.
    pub inputs: Vec<String>,
    pub recipe: String,
    pub dry_run: bool,
    pub in_place: bool,
    pub accel: String,
    pub os: Option<crate::guest::OsFacts>,
    /// What the user must know about how the guest was opened (a hibernated Windows
    /// session discarded by --remove-hiberfile).
    pub notices: Vec<String>,
    pub steps: Vec<StepReport>,
    pub artifacts: Vec<Artifact>,
    /// Repository indexes the run merged an entry into (metadata.json).
    pub updated: Vec<Updated>,
    pub timings: Timings,
}

impl RunReport {
    pub fn print_human(&self, out: &mut dyn std::io::Write) -> std::io::Result<()> {
        if let Some(os) = &self.os {
            writeln!(
                out,
                "{} ({} {}, {}) on {}",
                self.inputs.join(" + "),
                os.distro,
                os.version(),
                os.arch,
                os.root
            )?;
        }
        for n in &self.notices {
            writeln!(out, "  note: {n}")?;
        }
        let (changed, freed_verb) = if self.dry_run {
            ("would change", "would free")
        } else {
            ("changed", "freed")
        };
        for s in &self.steps {
            if let Some(why) = &s.skipped {
                writeln!(out, "  {:<20} skipped: {why}", s.step)?;
                continue;
            }
            writeln!(
                out,
                "  {:<20} {changed} {:>4} path{}, {freed_verb} {}",
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
            "total: {freed_verb} {} in {:.1} s",
            human_bytes(freed),
            self.timings.total
        )?;
        for a in &self.artifacts {
            writeln!(out, "wrote {} ({}, {})", a.path, a.kind, human_bytes(a.size))?;
        }
        for u in &self.updated {
            writeln!(
                out,
                "updated {} (entry `{}`, {})",
                u.path,
                u.entry.escape_debug(),
                u.target
            )?;
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
    use super::*;

    fn report(dry_run: bool) -> RunReport {
        RunReport {
            goldify_version: "0",
            input: "in.qcow2".into(),
            inputs: vec!["in.qcow2".into()],
            recipe: "r.yaml".into(),
            dry_run,
            in_place: false,
            accel: "tcg".into(),
            os: None,
            notices: Vec::new(),
            steps: vec![StepReport {
                step: "logs".into(),
                changes: vec![Change {
                    path: "/var/log/syslog".into(),
                    action: Action::Truncated,
                    freed: 2048,
                }],
                freed: 2048,
                ..Default::default()
            }],
            artifacts: vec![Artifact {
                kind: "vmmanager".into(),
                path: "/repo/debian-12.xz".into(),
                size: 10,
                checksums: Default::default(),
            }],
            updated: vec![Updated {
                target: "vmmanager".into(),
                path: "/repo/metadata.json".into(),
                entry: "debian-12".into(),
            }],
            timings: Timings::default(),
        }
    }

    fn human(r: &RunReport) -> String {
        let mut out = Vec::new();
        r.print_human(&mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn a_dry_run_says_would_free() {
        let text = human(&report(true));
        assert!(text.contains("would change    1 path, would free 2.0 KiB"), "{text}");
        assert!(text.contains("total: would free 2.0 KiB"), "{text}");
        assert!(!text.contains(" freed"), "{text}");
        let text = human(&report(false));
        assert!(
            text.contains("changed    1 path, freed 2.0 KiB") && text.contains("total: freed"),
            "{text}"
        );
    }

    #[test]
    fn the_summary_names_every_file_written_and_index_updated() {
        let text = human(&report(false));
        assert!(text.contains("wrote /repo/debian-12.xz (vmmanager, 10 B)"), "{text}");
        assert!(
            text.contains("updated /repo/metadata.json (entry `debian-12`, vmmanager)"),
            "{text}"
        );
    }

    /// JSON keys are always present, empty or null when there is nothing to say.
    #[test]
    fn json_keys_are_always_present() {
        let v = serde_json::to_value(report(false)).unwrap();
        let step = &v["steps"][0];
        for k in ["step", "changes", "freed", "warnings", "skipped", "seconds"] {
            assert!(step.get(k).is_some(), "steps[].{k} missing: {step}");
        }
        assert_eq!(step["warnings"], serde_json::json!([]));
        assert_eq!(step["skipped"], serde_json::Value::Null);
        assert_eq!(step["changes"][0]["freed"], 2048);
        assert_eq!(v["artifacts"][0]["checksums"], serde_json::json!({}));
        assert_eq!(v["updated"][0]["entry"], "debian-12");
        for k in [
            "prepare",
            "launch",
            "steps",
            "publish_read",
            "close",
            "export",
            "publish",
            "record",
            "total",
        ] {
            assert!(v["timings"].get(k).is_some(), "timings.{k} missing");
        }
    }

    #[test]
    fn laps_add_up_to_the_total() {
        let mut c = Clock::start();
        let mut sum = 0.0;
        for _ in 0..3 {
            std::thread::sleep(std::time::Duration::from_millis(2));
            sum += c.lap();
        }
        assert!((c.total() - sum).abs() < 1e-9, "{} vs {sum}", c.total());
    }

    #[test]
    fn bytes() {
        assert_eq!(super::human_bytes(512), "512 B");
        assert_eq!(super::human_bytes(1536), "1.5 KiB");
        assert_eq!(super::human_bytes(3 << 30), "3.0 GiB");
    }
}
