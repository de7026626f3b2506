//! `goldify run`: recipe + disk(s) → one appliance launch → steps → trim → golden disk(s).

use crate::disk::{self, Format};
use crate::error::{Exit, Tag};
use crate::guest::guestfs::{GuestfsGuest, OpenOptions};
use crate::guest::Guest;
use crate::outputs::{Input, Output};
use crate::recipe::Recipe;
use crate::report::{Artifact, Clock, RunReport, StepReport, Timings};
use crate::steps::{Ctx, DryRunDone};
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};
use std::time::Instant;

pub struct RunOptions {
    pub recipe: PathBuf,
    /// The guest's disks, in its order (most guests have one).
    pub disks: Vec<PathBuf>,
    pub outdir: PathBuf,
    pub in_place: bool,
    pub dry_run: bool,
    /// Discard a hibernated Windows session instead of refusing the disk.
    pub remove_hiberfile: bool,
    pub format: Option<Format>,
    pub name: Option<String>,
    pub verbose: u8,
    /// Directories the disk's backing files, extents and data files may be read from.
    pub allow: disk::refs::Allowed,
    /// Keys for the guest's encrypted devices (`--key`).
    pub keys: Vec<crate::guest::keys::Key>,
    pub publish: crate::publish::Request,
    /// `--operations` lists: which steps run (recipe/operations.rs).
    pub operations: Vec<String>,
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

/// The golden disks' base names, one per input: `--name` for one disk (NAME-1, NAME-2…
/// for several), else each input's name without its extensions, plus `-golden`.
fn golden_names(disks: &[PathBuf], name: Option<&str>) -> Result<Vec<String>> {
    let names: Vec<String> = match (name, disks.len()) {
        (_, 0) => vec![name.map_or_else(|| "<disk>-golden".into(), str::to_string)],
        (Some(n), 1) => vec![n.to_string()],
        (Some(n), _) => (1..=disks.len()).map(|i| format!("{n}-{i}")).collect(),
        (None, _) => disks.iter().map(|d| format!("{}-golden", stem(d))).collect(),
    };
    if let Some(i) = (1..names.len()).find(|&i| names[..i].contains(&names[i])) {
        let j = names.iter().position(|n| *n == names[i]).unwrap_or(0);
        crate::bail_tag!(
            Exit::Usage,
            "disks {} and {} would both give the golden disk {}; name them with --name (several disks become NAME-1, NAME-2, …)",
            disks[j].display(),
            disks[i].display(),
            names[i]
        );
    }
    Ok(names)
}

/// What the run reads and must never overwrite: the disks, the recipe and every recipe
/// it extends.
fn inputs(disks: &[PathBuf], recipe: &Recipe) -> Vec<Input> {
    let mut v: Vec<Input> = disks
        .iter()
        .map(|d| Input {
            what: "input disk",
            path: d.to_path_buf(),
        })
        .collect();
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

/// What the command line adds to a recipe, as `run` and `check` take it.
pub struct Settings<'a> {
    /// The input disks; none for `check`, where the golden disk's default name is not known.
    pub disks: &'a [PathBuf],
    pub outdir: &'a Path,
    pub name: Option<&'a str>,
    pub format: Option<Format>,
    pub dry_run: bool,
    /// `--in-place`: the input is the output; no golden disk is written besides it.
    pub in_place: bool,
    pub publish: &'a crate::publish::Request,
}

/// What `run` and `check` decide before anything long starts: the golden disks' names and
/// format, and the publish session with every setting and every destination the recipe
/// and the command line decide checked (reading only).
pub struct Planned {
    /// One per input disk, in order.
    pub disk_names: Vec<String>,
    pub format: Format,
    pub inputs: Vec<Input>,
    pub publish: Option<crate::publish::Session>,
}

pub fn plan(recipe: &mut Recipe, s: &Settings) -> Result<Planned> {
    if let Some(name) = s.name.filter(|n| !crate::outputs::is_plain_name(n)) {
        crate::bail_tag!(Exit::Usage, "--name {name:?} must be a plain file name");
    }
    let disk_names = golden_names(s.disks, s.name)?;
    let inputs = inputs(s.disks, recipe);
    let publish = crate::publish::Session::new(
        std::mem::take(&mut recipe.publish),
        s.publish,
        crate::publish::RunFacts {
            outdir: s.outdir.to_path_buf(),
            run_name: s.name.map(str::to_string),
            disk_name: disk_names[0].clone(),
            disks: s.disks.to_vec(),
            format: s.format.or(recipe.output.format),
            compress: recipe.output.compress,
            recipe_name: recipe.name.clone(),
            dry_run: s.dry_run,
            inputs: inputs.clone(),
            // A guest on several disks has its golden disks written by the run itself,
            // one per input; the `disk` target takes one.
            golden: !s.publish.no_golden && !s.in_place && s.disks.len() <= 1,
        },
    )?;
    Ok(Planned {
        disk_names,
        format: s.format.or(recipe.output.format).unwrap_or(Format::Qcow2),
        inputs,
        publish,
    })
}

pub fn run(opts: &RunOptions) -> Result<RunReport> {
    let mut clock = Clock::start();
    let mut timings = Timings::default();
    let mut recipe = Recipe::load_with(&opts.recipe, &opts.publish.set)?;
    crate::recipe::operations::select(&mut recipe, &opts.operations).tag(Exit::Usage)?;
    recipe.preflight()?;
    let writes_output = !opts.dry_run && !opts.in_place;
    if opts.disks.is_empty() {
        crate::bail_tag!(Exit::Usage, "no disk given");
    }
    for (i, d) in opts.disks.iter().enumerate() {
        if let Some(e) = opts.disks[..i]
            .iter()
            .find(|e| *e == d || crate::outputs::same_file(e, d))
        {
            crate::bail_tag!(
                Exit::Usage,
                "disk {} is given twice (also as {})",
                d.display(),
                e.display()
            );
        }
    }
    // Everything that will be written is checked now, before anything is created or
    // anything long starts: outputs never replace inputs, publish settings are sound.
    let Planned {
        disk_names,
        format,
        inputs,
        mut publish,
    } = plan(
        &mut recipe,
        &Settings {
            disks: &opts.disks,
            outdir: &opts.outdir,
            name: opts.name.as_deref(),
            format: opts.format,
            dry_run: opts.dry_run,
            in_place: opts.in_place,
            publish: &opts.publish,
        },
    )?;
    // When publishing, the golden disk file is the `disk` target's business; a guest on
    // several disks gets one golden disk per input from the run itself (--no-golden
    // leaves them out).
    let several = opts.disks.len() > 1;
    let golden = publish.is_none() || (several && !opts.publish.no_golden);
    let dests: Vec<PathBuf> = if writes_output && golden {
        disk_names
            .iter()
            .map(|n| opts.outdir.join(format!("{n}.{}", format.extension())))
            .collect()
    } else {
        Vec::new()
    };
    let outputs: Vec<Output> = dests
        .iter()
        .map(|d| Output::file("the golden disk", d.clone()))
        .collect();
    crate::outputs::check(&outputs, &inputs)?;
    if opts.in_place && opts.dry_run {
        crate::bail_tag!(Exit::Usage, "--in-place and --dry-run exclude each other");
    }
    for d in &opts.disks {
        if !d.exists() {
            crate::bail_tag!(Exit::Input, "disk {} does not exist", d.display());
        }
        if opts.in_place {
            disk::check_writable(d)?;
        }
    }
    if !dests.is_empty() {
        crate::publish::atomic::create_public_dir_all(&opts.outdir)
            .with_context(|| format!("creating output directory {}", opts.outdir.display()))
            .tag(Exit::Output)?;
    }
    // Work files live in $TMPDIR, never in OUTDIR or a repository: even a killed run
    // leaves no partial files there, and what it leaves in $TMPDIR is private and removed
    // by the next run (workdir.rs).
    let work_parent = std::env::temp_dir();
    crate::workdir::sweep(&work_parent);

    let phase = crate::progress::phase(format!("opening {}", crate::guest::guestfs::shown(&opts.disks)));
    let mut works = Vec::new();
    for d in &opts.disks {
        works.push(disk::prepare(
            d,
            &work_parent,
            opts.in_place,
            opts.dry_run,
            &opts.allow,
        )?);
    }

    // The input stays unchanged under the overlay while the appliance works: publishing
    // may start on it (the vmmanager head start).
    if let (Some(p), [work], true) = (&mut publish, works.as_slice(), writes_output) {
        if let disk::detect::Detected::Disk(f) = work.input_format {
            p.input_known(&crate::publish::Input {
                path: &work.source,
                format: f,
                scratch_parent: &work_parent,
            })?;
        }
    }

    timings.prepare = clock.lap();

    let watches: Vec<disk::SpaceWatch> = works.iter().map(disk::WorkDisk::watch_space).collect();
    let (facts, reports, notices) = guest_phase(
        opts,
        &recipe,
        publish.as_mut(),
        &works,
        &phase,
        (&mut clock, &mut timings),
    )
    .map_err(|e| watches.iter().fold(e, |e, w| w.explain(e)))?;
    drop(watches);

    let mut artifacts = Vec::new();
    for (work, dest) in works.iter().zip(&dests) {
        phase.set(format!("writing {}", dest.display()));
        let compress = recipe.output.compress.unwrap_or(false);
        disk::export(work, format, compress, dest).tag(Exit::Output)?;
        let size = std::fs::metadata(dest)?.len();
        artifacts.push(Artifact {
            kind: format!("disk-{}", format.name()),
            path: dest.display().to_string(),
            size,
            checksums: Default::default(),
        });
    }
    timings.export = clock.lap();
    drop(phase);
    let mut updated = Vec::new();
    if let Some(p) = &mut publish {
        // Targets that read the golden disk take a guest of one disk (Session::new).
        let (written, changed) = p.guest_closed(&works[0], &work_parent)?;
        artifacts.extend(written);
        updated = changed;
    }
    timings.publish = clock.lap();
    timings.total = clock.total();
    let mut report = RunReport {
        goldify_version: env!("CARGO_PKG_VERSION"),
        input: opts.disks[0].display().to_string(),
        inputs: opts.disks.iter().map(|d| d.display().to_string()).collect(),
        recipe: recipe.path.display().to_string(),
        dry_run: opts.dry_run,
        in_place: opts.in_place,
        accel: crate::guest::launch::accel().name.to_string(),
        os: Some(facts),
        notices,
        steps: reports,
        artifacts,
        updated,
        timings,
    };
    // The run manifest records the report as it is now (its own writing not yet timed).
    if let Some(p) = &mut publish {
        let recorded = p.reported(&report)?;
        report.artifacts.extend(recorded);
    }
    report.timings.record = clock.lap();
    report.timings.total = clock.total();
    Ok(report)
}

/// Everything that happens while the appliance runs: launch, steps, what publishing needs
/// from the guest, close.
fn guest_phase(
    opts: &RunOptions,
    recipe: &Recipe,
    publish: Option<&mut crate::publish::Session>,
    works: &[disk::WorkDisk],
    phase: &crate::progress::Phase,
    (clock, timings): (&mut Clock, &mut Timings),
) -> Result<(crate::guest::OsFacts, Vec<StepReport>, Vec<String>)> {
    phase.set("launching the libguestfs appliance");
    let drives: Vec<_> = works.iter().map(disk::WorkDisk::drive).collect();
    let named = crate::guest::guestfs::shown(&opts.disks);
    let guest = GuestfsGuest::open(
        &drives,
        &OpenOptions {
            readonly: opts.dry_run,
            in_place: opts.in_place,
            verbose: opts.verbose >= 2,
            shown: &named,
            remove_hiberfile: opts.remove_hiberfile,
            keys: &opts.keys,
        },
    )
    .with_context(|| format!("opening {named}"))?;
    timings.launch = clock.lap();
    let facts = guest.facts().clone();
    refuse_unsupported_os(recipe, &facts, &named)?;
    let notices = guest.notices().to_vec();
    for n in &notices {
        tracing::warn!("{n}");
    }
    tracing::info!(
        "found {} {} ({}) on {}",
        facts.distro,
        facts.version(),
        facts.arch,
        facts.root
    );

    let mut reports = Vec::new();
    let result = apply_steps(recipe, &guest, opts.dry_run, phase, &mut reports);
    timings.steps = clock.lap();
    if let Err(e) = result {
        if opts.in_place {
            // Leave the user's disk consistent: flush what was written before failing.
            let _ = guest.close();
        }
        return Err(e);
    }

    // What publish targets need from the guest is read now, while it is open.
    if let Some(p) = publish {
        p.guest_open(&guest, phase)?;
    }
    timings.publish_read = clock.lap();

    phase.set("closing the appliance");
    guest.close().context("writing the cleaned disk").tag(Exit::Output)?;
    timings.close = clock.lap();
    Ok((facts, reports, notices))
}

/// A recipe none of whose steps applies to the guest's OS (Linux steps only, on Windows)
/// would do nothing but copy the disk and call it golden: refused before any step runs.
fn refuse_unsupported_os(recipe: &Recipe, facts: &crate::guest::OsFacts, disk: &str) -> Result<()> {
    use crate::guest::Family;
    let ordered = recipe.ordered();
    // A built-in step for every OS (fstrim) does not make a recipe one for this OS: a Linux
    // recipe ends with fstrim, and so does a Windows one. A user step for every OS
    // (delete, truncate) does: the user wrote it. A recipe is refused when some of its
    // steps are for another OS and none of those that apply counts for this one.
    let neutral = |i: &&crate::recipe::StepItem| i.step.info().families == Family::ALL;
    let applies = |i: &&crate::recipe::StepItem| i.step.info().applies_to(facts.family);
    let counts = |i: &&crate::recipe::StepItem| applies(i) && (!neutral(i) || i.step.info().repeatable);
    let foreign = ordered.iter().any(|i| !applies(i));
    if !foreign || ordered.iter().any(counts) {
        return Ok(());
    }
    let os = if facts.family == Family::Windows {
        "Windows".to_string()
    } else {
        facts.distro.clone()
    };
    let what = if ordered
        .iter()
        .filter(|i| !neutral(i))
        .all(|i| i.step.info().families.is_empty())
    {
        "only Linux steps".to_string()
    } else {
        format!("no step for the {} family", facts.family)
    };
    crate::bail_tag!(
        Exit::Input,
        "{disk} is {os} ({}); {} has {what}",
        facts.product_name,
        recipe.path.display()
    )
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
    let mut dry_done = DryRunDone::default();
    for item in recipe.ordered() {
        crate::interrupt::check()?;
        let info = item.step.info();
        let started = Instant::now();
        let mut ctx = Ctx::new(guest, dry_run, &item.name).continuing(dry_done);
        if !item.selected {
            ctx.report.skipped = Some(crate::recipe::operations::LEFT_OUT.into());
        } else if !info.applies_to(facts.family) {
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
        let (report, done) = ctx.finish();
        dry_done = done;
        reports.push(report);
    }
    Ok(())
}

#[cfg(test)]
mod tests;
