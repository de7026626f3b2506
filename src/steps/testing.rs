//! Helpers for the steps' unit tests. A step is built from its record the way a recipe
//! builds it (its registry name and YAML options, defaults filled in by serde) and applied
//! to a guest, usually a `MemoryGuest`. Only the `Guest` trait is used to look at the
//! result, so the helpers do not depend on how the in-memory guest stores its tree.

use super::{build, Ctx, Step};
use crate::guest::{Guest, Kind, Meta};
use crate::report::{Action, StepReport};
use anyhow::{anyhow, Result};

/// Build step `name` from `options` (YAML, `~` for the defaults) and apply it.
pub(crate) fn apply(guest: &dyn Guest, name: &str, options: &str) -> Result<StepReport> {
    let step = step(name, options)?;
    let mut ctx = Ctx::new(guest, false, name);
    step.apply(&mut ctx)?;
    Ok(ctx.report)
}

/// The same as `goldify run --dry-run` does it.
pub(crate) fn dry_run(guest: &dyn Guest, name: &str, options: &str) -> Result<StepReport> {
    let step = step(name, options)?;
    let mut ctx = Ctx::new(guest, true, name);
    step.apply(&mut ctx)?;
    Ok(ctx.report)
}

/// The step a recipe line `- NAME: OPTIONS` builds, through the registry.
fn step(name: &str, options: &str) -> Result<Box<dyn Step>> {
    let value: serde_yaml::Value =
        serde_yaml::from_str(options).map_err(|e| anyhow!("options {options:?} of step `{name}`: {e}"))?;
    let step = build(name, value).map_err(|e| anyhow!("building step `{name}`: {e}"))?;
    assert_eq!(step.info().name, name, "the registry built another step");
    Ok(step)
}

/// Every entry of the guest's tree with its metadata and its content (a link's target):
/// equal before and after means nothing was written, removed, chmod'ed or chown'ed.
pub(crate) fn tree(guest: &dyn Guest) -> Vec<(String, Meta, Vec<u8>)> {
    guest
        .walk("/")
        .expect("walking the guest")
        .into_iter()
        .map(|e| {
            let body = match e.meta.kind {
                Kind::File => guest.read(&e.path, u64::MAX).expect("reading a file of the guest"),
                Kind::Symlink => guest
                    .readlink(&e.path)
                    .expect("reading a link of the guest")
                    .into_bytes(),
                _ => Vec::new(),
            };
            (e.path, e.meta, body)
        })
        .collect()
}

/// What a report says was done, in order.
pub(crate) fn changes(report: &StepReport) -> Vec<(Action, &str)> {
    report.changes.iter().map(|c| (c.action, c.path.as_str())).collect()
}

/// The promise of `--dry-run`, checked on two copies of the same guest: the dry run leaves
/// its copy exactly as it was and reports the very changes the real run then makes.
/// Returns the real run's report.
#[track_caller]
pub(crate) fn dry_run_matches<G: Guest>(make: impl Fn() -> G, name: &str, options: &str) -> StepReport {
    let dry = make();
    let before = tree(&dry);
    let planned = dry_run(&dry, name, options).expect("dry run");
    assert_eq!(tree(&dry), before, "the dry run of `{name}` changed the guest");
    let real = make();
    let done = apply(&real, name, options).expect("real run");
    assert_eq!(
        changes(&planned),
        changes(&done),
        "the dry run of `{name}` reports other changes"
    );
    done
}

/// A file of the guest as text (for readable assertion failures).
#[track_caller]
pub(crate) fn text(guest: &dyn Guest, path: &str) -> String {
    let bytes = guest
        .read(path, u64::MAX)
        .unwrap_or_else(|e| panic!("reading {path}: {e:#}"));
    String::from_utf8(bytes).unwrap_or_else(|e| panic!("{path} is not UTF-8: {e}"))
}
