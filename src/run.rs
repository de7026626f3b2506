//! `goldify run`: recipe + disk → one appliance launch → steps → trim → golden disk.

use crate::disk::{self, Format};
use crate::error::{Exit, Tag};
use crate::guest::guestfs::{GuestfsGuest, OpenOptions};
use crate::guest::Guest;
use crate::outputs::{Input, Output};
use crate::recipe::Recipe;
use crate::report::{Artifact, RunReport, StepReport, Timings};
use crate::steps::{Ctx, DryRunDone};
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
    /// Directories the disk's backing files, extents and data files may be read from.
    pub allow: disk::refs::Allowed,
    /// Keys for the guest's encrypted devices (`--key`).
    pub keys: Vec<crate::guest::keys::Key>,
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
    let mut recipe = Recipe::load(&opts.recipe)?;
    if let Some(name) = opts.name.as_deref().filter(|n| !crate::outputs::is_plain_name(n)) {
        crate::bail_tag!(Exit::Usage, "--name {name:?} must be a plain file name");
    }
    let disk_name = opts
        .name
        .clone()
        .unwrap_or_else(|| format!("{}-golden", stem(&opts.disk)));
    let format = opts.format.or(recipe.output.format).unwrap_or(Format::Qcow2);
    let writes_output = !opts.dry_run && !opts.in_place;
    // Everything that will be written is checked now, before anything is created or
    // anything long starts: outputs never replace inputs, publish settings are sound.
    let inputs = inputs(opts, &recipe);
    let mut publish = crate::publish::Session::new(
        std::mem::take(&mut recipe.publish),
        &opts.publish,
        crate::publish::RunFacts {
            outdir: opts.outdir.clone(),
            run_name: opts.name.clone(),
            disk_name: disk_name.clone(),
            format: opts.format.or(recipe.output.format),
            compress: recipe.output.compress,
            recipe_name: recipe.name.clone(),
            dry_run: opts.dry_run,
            inputs: inputs.clone(),
        },
    )?;
    // When publishing, the golden disk file is the `disk` target's business.
    let dest =
        (writes_output && publish.is_none()).then(|| opts.outdir.join(format!("{disk_name}.{}", format.extension())));
    if let Some(d) = &dest {
        crate::outputs::check(&[Output::file("the golden disk", d.clone())], &inputs)?;
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
    let work = disk::prepare(&opts.disk, &work_parent, opts.in_place, opts.dry_run, &opts.allow)?;
    timings.prepare = t0.elapsed().as_secs_f64();

    // The input stays unchanged under the overlay while the appliance works: publishing
    // may start on it (the vmmanager head start).
    if let (Some(p), disk::detect::Detected::Disk(f), true) = (&mut publish, work.input_format, writes_output) {
        p.input_known(&crate::publish::Input {
            path: &work.source,
            format: f,
            scratch_parent: &work_parent,
        })?;
    }

    let watch = work.watch_space();
    let (facts, reports) =
        guest_phase(opts, &recipe, publish.as_mut(), &work, &phase, &mut timings).map_err(|e| watch.explain(e))?;
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
    if let Some(p) = &mut publish {
        let t = Instant::now();
        artifacts.extend(p.guest_closed(&work, &work_parent)?);
        timings.publish = t.elapsed().as_secs_f64();
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
    if let Some(p) = &mut publish {
        let recorded = p.reported(&report)?;
        report.artifacts.extend(recorded);
    }
    Ok(report)
}

/// Everything that happens while the appliance runs: launch, steps, what publishing needs
/// from the guest, close.
fn guest_phase(
    opts: &RunOptions,
    recipe: &Recipe,
    publish: Option<&mut crate::publish::Session>,
    work: &disk::WorkDisk,
    phase: &crate::progress::Phase,
    timings: &mut Timings,
) -> Result<(crate::guest::OsFacts, Vec<StepReport>)> {
    phase.set("launching the libguestfs appliance");
    let t = Instant::now();
    let guest = GuestfsGuest::open(
        &work.path,
        &OpenOptions {
            format: work.format.name(),
            readonly: opts.dry_run,
            in_place: opts.in_place,
            verbose: opts.verbose >= 2,
            keys: &opts.keys,
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
    if let Some(p) = publish {
        p.guest_open(&guest, phase)?;
    }

    phase.set("closing the appliance");
    let t = Instant::now();
    guest.close().context("writing the cleaned disk").tag(Exit::Output)?;
    timings.close = t.elapsed().as_secs_f64();
    Ok((facts, reports))
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
        let (report, done) = ctx.finish();
        dry_done = done;
        reports.push(report);
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

    /// A used machine whose leftovers several steps of the base recipe match: logs removes
    /// the rotated cloud-init log and accounting file that cloud-init-clean and
    /// machine-state look for again, tmp-files empties the /var/tmp/abrt that
    /// machine-state's crash data names.
    fn used_machine() -> MemoryGuest {
        let mut g = MemoryGuest::new(OsFacts::sample("debian"));
        g.filesystems.push(crate::guest::Filesystem {
            device: "/dev/sda1".into(),
            fstype: "ext4".into(),
            uuid: Some("0e3c".into()),
            label: None,
            mountpoint: Some("/".into()),
        });
        g.file("/etc/machine-id", b"0123456789abcdef0123456789abcdef\n")
            .file("/etc/fstab", b"UUID=0e3c / ext4 defaults 0 1\n")
            .file("/etc/hostname", b"used\n")
            .file("/etc/shadow-", b"root:old:::\n")
            .file("/etc/ssh/ssh_host_ed25519_key", b"k")
            .file("/usr/sbin/sshd", b"elf")
            .file("/var/log/syslog", b"log")
            .file("/var/log/cloud-init.log", b"log")
            .file("/var/log/cloud-init.log.1", b"old log")
            .file("/var/log/account/pacct", b"acct")
            .file("/var/log/account/pacct.1", b"old acct")
            .file("/var/tmp/abrt/ccpp-1/coredump", b"core")
            .file("/var/lib/cloud/instances/i-1/user-data.txt", b"#cloud-config")
            .file("/root/.bash_history", b"ls\n")
            .file("/root/.ssh/authorized_keys", b"ssh-ed25519 AAAA");
        g
    }

    #[test]
    fn a_dry_run_of_the_base_recipe_reports_what_the_real_run_does() {
        let base = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("recipes/base.yaml");
        let recipe = crate::recipe::Recipe::load(&base).unwrap();
        let phase = crate::progress::phase("test");
        let mut planned = Vec::new();
        super::apply_steps(&recipe, &used_machine(), true, &phase, &mut planned).unwrap();
        let mut done = Vec::new();
        super::apply_steps(&recipe, &used_machine(), false, &phase, &mut done).unwrap();
        let changes = |reports: &[crate::report::StepReport]| -> Vec<(String, Vec<(crate::report::Action, String)>)> {
            reports
                .iter()
                .map(|r| {
                    (
                        r.step.clone(),
                        r.changes.iter().map(|c| (c.action, c.path.clone())).collect(),
                    )
                })
                .collect()
        };
        assert_eq!(changes(&planned), changes(&done));
    }

    #[test]
    fn stems() {
        assert_eq!(super::stem(std::path::Path::new("/x/debian.qcow2")), "debian");
        assert_eq!(super::stem(std::path::Path::new("ubuntu.img.xz")), "ubuntu");
        assert_eq!(super::stem(std::path::Path::new("disk")), "disk");
    }
}
