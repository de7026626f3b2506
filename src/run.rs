//! `goldify run`: recipe + disk → one appliance launch → steps → trim → golden disk.

use crate::disk::{self, Format};
use crate::error::{Exit, Tag};
use crate::guest::guestfs::{GuestfsGuest, OpenOptions};
use crate::guest::Guest;
use crate::outputs::{Input, Output};
use crate::recipe::Recipe;
use crate::report::{Artifact, RunReport, StepReport, Timings};
use crate::steps::Ctx;
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};
use std::time::Instant;

pub struct RunOptions {
    pub recipe: PathBuf,
    pub disk: PathBuf,
    pub outdir: PathBuf,
    pub in_place: bool,
    pub dry_run: bool,
    pub format: Option<Format>,
    pub name: Option<String>,
    pub verbose: u8,
    pub publish: crate::publish::Request,
}

/// The base name of the golden disk: the input's name without its extensions.
fn stem(input: &Path) -> String {
    let name = input
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "disk".into());
    let mut s = name.as_str();
    for ext in [".gz", ".xz", ".qcow2", ".img", ".raw", ".vmdk", ".vdi", ".qcow"] {
        s = s.strip_suffix(ext).unwrap_or(s);
    }
    if s.is_empty() {
        "disk".into()
    } else {
        s.to_string()
    }
}

/// What the run reads and must never overwrite: the disk, the recipe and every recipe
/// it extends.
fn inputs(opts: &RunOptions, recipe: &Recipe) -> Vec<Input> {
    let mut v = vec![Input {
        what: "input disk",
        path: opts.disk.clone(),
    }];
    let recipes = std::iter::once(&recipe.path).chain(recipe.steps.iter().map(|s| &s.origin));
    for path in recipes {
        if !path.as_os_str().is_empty() && !v.iter().any(|i| &i.path == path) {
            v.push(Input {
                what: "recipe",
                path: path.clone(),
            });
        }
    }
    v
}

pub fn run(opts: &RunOptions) -> Result<RunReport> {
    let t0 = Instant::now();
    let mut timings = Timings::default();
    let recipe = Recipe::load(&opts.recipe)?;
    if let Some(name) = opts.name.as_deref().filter(|n| !crate::outputs::is_plain_name(n)) {
        crate::bail_tag!(Exit::Usage, "--name {name:?} must be a plain file name");
    }
    let disk_name = opts
        .name
        .clone()
        .unwrap_or_else(|| format!("{}-golden", stem(&opts.disk)));
    let plan = crate::publish::plan(&recipe, &opts.publish, &opts.outdir, &disk_name)?
        .map(|p| p.with_run(opts.name.clone(), opts.format));
    let format = opts.format.or(recipe.output.format).unwrap_or(Format::Qcow2);
    let writes_output = !opts.dry_run && !opts.in_place;
    // When publishing, the golden disk file is the `disk` target's business.
    let dest =
        (writes_output && plan.is_none()).then(|| opts.outdir.join(format!("{disk_name}.{}", format.extension())));
    // Everything that will be written is checked now, before anything is created or
    // anything long starts: outputs never replace inputs, publish settings are sound.
    let inputs = inputs(opts, &recipe);
    if !opts.dry_run {
        let mut outputs: Vec<Output> = dest
            .iter()
            .map(|d| Output::file("the golden disk", d.clone()))
            .collect();
        if let Some(p) = &plan {
            p.check()?;
            outputs.extend(p.destinations(None)?);
        }
        crate::outputs::check(&outputs, &inputs)?;
        if let Some(p) = &plan {
            p.create_dirs()?;
        }
    }
    if opts.in_place && opts.dry_run {
        crate::bail_tag!(Exit::Usage, "--in-place and --dry-run exclude each other");
    }
    if !opts.disk.exists() {
        crate::bail_tag!(Exit::Input, "disk {} does not exist", opts.disk.display());
    }
    if opts.in_place {
        disk::check_writable(&opts.disk)?;
    }
    if dest.is_some() {
        crate::publish::atomic::create_public_dir_all(&opts.outdir)
            .with_context(|| format!("creating output directory {}", opts.outdir.display()))
            .tag(Exit::Output)?;
    }
    // Work files live in $TMPDIR, never in OUTDIR or a repository: even a killed run
    // leaves no partial files there, and what it leaves in $TMPDIR is private and removed
    // by the next run (workdir.rs).
    let work_parent = std::env::temp_dir();
    crate::workdir::sweep(&work_parent);

    let phase = crate::progress::phase(format!("opening {}", opts.disk.display()));
    let work = disk::prepare(&opts.disk, &work_parent, opts.in_place, opts.dry_run)?;
    timings.prepare = t0.elapsed().as_secs_f64();

    // Publishing a VMmanager archive: compress the input's chunks while the appliance works.
    let head_start = match (&plan, &work.input_format) {
        (Some(p), disk::detect::Detected::Disk(f)) if writes_output => {
            crate::publish::headstart::begin(p, &opts.disk, *f, &work_parent)?
        }
        _ => None,
    };

    let watch = work.watch_space();
    let (facts, reports, published) = guest_phase(opts, &recipe, plan.as_ref(), &inputs, &work, &phase, &mut timings)
        .map_err(|e| watch.explain(e))?;
    drop(watch);

    let mut artifacts = Vec::new();
    if let Some(dest) = &dest {
        phase.set(format!("writing {}", dest.display()));
        let t = Instant::now();
        let compress = recipe.output.compress.unwrap_or(false);
        disk::export(&work, format, compress, dest).tag(Exit::Output)?;
        timings.export = t.elapsed().as_secs_f64();
        let size = std::fs::metadata(dest)?.len();
        artifacts.push(Artifact {
            kind: format!("disk-{}", format.name()),
            path: dest.display().to_string(),
            size,
            checksums: Default::default(),
        });
    }
    drop(phase);
    if let (Some(p), Some((info, tree))) = (&plan, published) {
        if opts.dry_run {
            tracing::warn!("dry run: would publish {}", p.describe());
        } else {
            let t = Instant::now();
            let pre = head_start.and_then(|h| h.finish());
            artifacts.extend(crate::publish::execute(
                p,
                &info,
                &work,
                &work_parent,
                tree,
                pre.as_ref(),
            )?);
            timings.publish = t.elapsed().as_secs_f64();
        }
    }
    timings.total = t0.elapsed().as_secs_f64();
    let mut report = RunReport {
        goldify_version: env!("CARGO_PKG_VERSION"),
        input: opts.disk.display().to_string(),
        recipe: recipe.path.display().to_string(),
        dry_run: opts.dry_run,
        in_place: opts.in_place,
        accel: crate::guest::launch::accel().name.to_string(),
        os: Some(facts),
        steps: reports,
        artifacts,
        timings,
    };
    if let (Some(p), false) = (&plan, opts.dry_run) {
        let manifest = crate::publish::write_manifest(p, &report)?;
        report.artifacts.push(manifest);
    }
    Ok(report)
}

/// What publish targets read from the guest while it is open.
type Published = Option<(crate::publish::GuestInfo, Option<crate::publish::lxd::Exported>)>;

/// Everything that happens while the appliance runs: launch, steps, what publishing needs
/// from the guest, close.
fn guest_phase(
    opts: &RunOptions,
    recipe: &Recipe,
    plan: Option<&crate::publish::Plan>,
    inputs: &[Input],
    work: &disk::WorkDisk,
    phase: &crate::progress::Phase,
    timings: &mut Timings,
) -> Result<(crate::guest::OsFacts, Vec<StepReport>, Published)> {
    phase.set("launching the libguestfs appliance");
    let t = Instant::now();
    let guest = GuestfsGuest::open(
        &work.path,
        &OpenOptions {
            format: work.format.name(),
            readonly: opts.dry_run,
            in_place: opts.in_place,
            verbose: opts.verbose >= 2,
        },
    )
    .with_context(|| format!("opening {}", opts.disk.display()))?;
    timings.launch = t.elapsed().as_secs_f64();
    let facts = guest.facts().clone();
    tracing::info!(
        "found {} {} ({}) on {}",
        facts.distro,
        facts.version(),
        facts.arch,
        facts.root
    );

    let t = Instant::now();
    let mut reports = Vec::new();
    let result = apply_steps(recipe, &guest, opts.dry_run, phase, &mut reports);
    timings.steps = t.elapsed().as_secs_f64();
    if let Err(e) = result {
        if opts.in_place {
            // Leave the user's disk consistent: flush what was written before failing.
            let _ = guest.close();
        }
        return Err(e);
    }

    // What publish targets need from the guest is read now, while it is open.
    let published = match plan {
        Some(p) => {
            phase.set("reading the disk layout for publishing");
            let info = crate::publish::gather(&guest)?;
            let tree = if opts.dry_run {
                None
            } else {
                // Names that come from the guest are known now: checked before anything
                // is written, as the others were before the launch.
                crate::outputs::check(&p.destinations(Some(&info))?, inputs)?;
                phase.suspend(|| crate::publish::export_tree(p, &info, &guest))?
            };
            Some((info, tree))
        }
        None => None,
    };

    phase.set("closing the appliance");
    let t = Instant::now();
    guest.close().context("writing the cleaned disk").tag(Exit::Output)?;
    timings.close = t.elapsed().as_secs_f64();
    Ok((facts, reports, published))
}

/// Run the recipe's steps against any guest, in phase order, honouring `when:` and the
/// families each step applies to.
pub fn apply_steps(
    recipe: &Recipe,
    guest: &dyn Guest,
    dry_run: bool,
    phase: &crate::progress::Phase,
    reports: &mut Vec<StepReport>,
) -> Result<()> {
    let facts = guest.facts().clone();
    for item in recipe.ordered() {
        crate::interrupt::check()?;
        let info = item.step.info();
        let started = Instant::now();
        let mut ctx = Ctx::new(guest, dry_run, &item.name);
        if !info.applies_to(facts.family) {
            ctx.report.skipped = Some(format!("does not apply to the {} family", facts.family));
        } else if let Some(when) = item.when.as_ref().filter(|w| !w.holds(&facts)) {
            ctx.report.skipped = Some(format!("when: {} does not hold", when.describe()));
        } else {
            phase.set(format!("step {}", item.name));
            item.step
                .apply(&mut ctx)
                .with_context(|| format!("step `{}`", item.name))
                .tag(Exit::Step)?;
        }
        ctx.report.seconds = started.elapsed().as_secs_f64();
        reports.push(ctx.report);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::guest::memory::MemoryGuest;
    use crate::guest::OsFacts;

    #[test]
    fn when_and_families_decide_which_steps_run() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.yaml");
        std::fs::write(
            &path,
            "steps:\n  - machine-id: {}\n  - delete: {paths: [/etc/a]}\n    when: {family: rhel}\n  - delete: {paths: [/etc/b]}\n    when: {distro: debian, version: '>= 12'}\n",
        )
        .unwrap();
        let recipe = crate::recipe::Recipe::load(&path).unwrap();
        let g = MemoryGuest::new(OsFacts::sample("debian"));
        g.file("/etc/a", b"a")
            .file("/etc/b", b"b")
            .file("/etc/machine-id", b"0123456789abcdef0123456789abcdef\n");
        let phase = crate::progress::phase("test");
        let mut reports = Vec::new();
        super::apply_steps(&recipe, &g, false, &phase, &mut reports).unwrap();
        assert!(g.exists("/etc/a") && !g.exists("/etc/b"));
        let names: Vec<&str> = reports.iter().map(|r| r.step.as_str()).collect();
        assert_eq!(names, ["delete", "delete", "machine-id"]);
        assert!(reports[0].skipped.as_deref().unwrap().contains("rhel"));
        assert_eq!(g.content("/etc/machine-id").unwrap(), b"uninitialized\n");
    }

    #[test]
    fn stems() {
        assert_eq!(super::stem(std::path::Path::new("/x/debian.qcow2")), "debian");
        assert_eq!(super::stem(std::path::Path::new("ubuntu.img.xz")), "ubuntu");
        assert_eq!(super::stem(std::path::Path::new("disk")), "disk");
    }
}
