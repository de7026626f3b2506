//! `goldify run`: recipe + disk → one appliance launch → steps → trim → golden disk.

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
    pub disk: PathBuf,
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

/// What the run reads and must never overwrite: the disk, the recipe and every recipe
/// it extends.
fn inputs(disk: Option<&Path>, recipe: &Recipe) -> Vec<Input> {
    let mut v: Vec<Input> = disk
        .map(|d| Input {
            what: "input disk",
            path: d.to_path_buf(),
        })
        .into_iter()
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
    /// The input disk; `None` for `check`, where the golden disk's default name is not known.
    pub disk: Option<&'a Path>,
    pub outdir: &'a Path,
    pub name: Option<&'a str>,
    pub format: Option<Format>,
    pub dry_run: bool,
    /// `--in-place`: the input is the output; no golden disk is written besides it.
    pub in_place: bool,
    pub publish: &'a crate::publish::Request,
}

/// What `run` and `check` decide before anything long starts: the golden disk's name and
/// format, and the publish session with every setting and every destination the recipe
/// and the command line decide checked (reading only).
pub struct Planned {
    pub disk_name: String,
    pub format: Format,
    pub inputs: Vec<Input>,
    pub publish: Option<crate::publish::Session>,
}

pub fn plan(recipe: &mut Recipe, s: &Settings) -> Result<Planned> {
    if let Some(name) = s.name.filter(|n| !crate::outputs::is_plain_name(n)) {
        crate::bail_tag!(Exit::Usage, "--name {name:?} must be a plain file name");
    }
    let disk_name = s.name.map(str::to_string).unwrap_or_else(|| match s.disk {
        Some(d) => format!("{}-golden", stem(d)),
        None => "<disk>-golden".into(),
    });
    let inputs = inputs(s.disk, recipe);
    let publish = crate::publish::Session::new(
        std::mem::take(&mut recipe.publish),
        s.publish,
        crate::publish::RunFacts {
            outdir: s.outdir.to_path_buf(),
            run_name: s.name.map(str::to_string),
            disk_name: disk_name.clone(),
            format: s.format.or(recipe.output.format),
            compress: recipe.output.compress,
            recipe_name: recipe.name.clone(),
            dry_run: s.dry_run,
            inputs: inputs.clone(),
            golden: !s.publish.no_golden && !s.in_place,
        },
    )?;
    Ok(Planned {
        disk_name,
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
    // Everything that will be written is checked now, before anything is created or
    // anything long starts: outputs never replace inputs, publish settings are sound.
    let Planned {
        disk_name,
        format,
        inputs,
        mut publish,
    } = plan(
        &mut recipe,
        &Settings {
            disk: Some(&opts.disk),
            outdir: &opts.outdir,
            name: opts.name.as_deref(),
            format: opts.format,
            dry_run: opts.dry_run,
            in_place: opts.in_place,
            publish: &opts.publish,
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

    // The input stays unchanged under the overlay while the appliance works: publishing
    // may start on it (the vmmanager head start).
    if let (Some(p), disk::detect::Detected::Disk(f), true) = (&mut publish, work.input_format, writes_output) {
        p.input_known(&crate::publish::Input {
            path: &work.source,
            format: f,
            scratch_parent: &work_parent,
        })?;
    }

    timings.prepare = clock.lap();

    let watch = work.watch_space();
    let (facts, reports, notices) = guest_phase(
        opts,
        &recipe,
        publish.as_mut(),
        &work,
        &phase,
        (&mut clock, &mut timings),
    )
    .map_err(|e| watch.explain(e))?;
    drop(watch);

    let mut artifacts = Vec::new();
    if let Some(dest) = &dest {
        phase.set(format!("writing {}", dest.display()));
        let compress = recipe.output.compress.unwrap_or(false);
        disk::export(&work, format, compress, dest).tag(Exit::Output)?;
        timings.export = clock.lap();
        let size = std::fs::metadata(dest)?.len();
        artifacts.push(Artifact {
            kind: format!("disk-{}", format.name()),
            path: dest.display().to_string(),
            size,
            checksums: Default::default(),
        });
    }
    drop(phase);
    let mut updated = Vec::new();
    if let Some(p) = &mut publish {
        let (written, changed) = p.guest_closed(&work, &work_parent)?;
        artifacts.extend(written);
        updated = changed;
    }
    timings.publish = clock.lap();
    timings.total = clock.total();
    let mut report = RunReport {
        goldify_version: env!("CARGO_PKG_VERSION"),
        input: opts.disk.display().to_string(),
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
    work: &disk::WorkDisk,
    phase: &crate::progress::Phase,
    (clock, timings): (&mut Clock, &mut Timings),
) -> Result<(crate::guest::OsFacts, Vec<StepReport>, Vec<String>)> {
    phase.set("launching the libguestfs appliance");
    let guest = GuestfsGuest::open(
        &work.path,
        &OpenOptions {
            format: work.format.name(),
            readonly: opts.dry_run,
            in_place: opts.in_place,
            verbose: opts.verbose >= 2,
            shown: &opts.disk,
            remove_hiberfile: opts.remove_hiberfile,
            keys: &opts.keys,
        },
    )
    .with_context(|| format!("opening {}", opts.disk.display()))?;
    timings.launch = clock.lap();
    let facts = guest.facts().clone();
    refuse_unsupported_os(recipe, &facts, &opts.disk)?;
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
fn refuse_unsupported_os(recipe: &Recipe, facts: &crate::guest::OsFacts, disk: &std::path::Path) -> Result<()> {
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
        "{} is {os} ({}); {} has {what}",
        disk.display(),
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

    fn windows_facts() -> OsFacts {
        crate::guest::windows::facts(
            "/dev/sda1",
            vec![("/".into(), "/dev/sda1".into())],
            crate::guest::windows::Inspected {
                product_name: Some("Windows Server 2022 Standard".into()),
                major: Some(10),
                ..Default::default()
            },
        )
    }

    fn load(dir: &std::path::Path, name: &str, text: &str) -> crate::recipe::Recipe {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        crate::recipe::Recipe::load(&path).unwrap()
    }

    #[test]
    fn a_recipe_of_linux_steps_refuses_windows_and_names_the_os() {
        let dir = tempfile::tempdir().unwrap();
        let disk = std::path::Path::new("/images/used-windows.qcow2");
        let linux = load(dir.path(), "generic.yaml", "steps:\n  - machine-id: {}\n  - logs: {}\n");
        let e = super::refuse_unsupported_os(&linux, &windows_facts(), disk).unwrap_err();
        assert_eq!(crate::error::exit_of(&e), crate::error::Exit::Input);
        let msg = format!("{e:#}");
        assert!(
            msg.starts_with("/images/used-windows.qcow2 is Windows (Windows Server 2022 Standard); "),
            "{msg}"
        );
        assert!(msg.ends_with("generic.yaml has only Linux steps"), "{msg}");
        // The same recipe on Linux, and a recipe with a step for every OS on Windows, run.
        super::refuse_unsupported_os(&linux, &OsFacts::sample("debian"), disk).unwrap();
        let mixed = load(
            dir.path(),
            "mixed.yaml",
            "steps:\n  - machine-id: {}\n  - delete: {paths: [/x]}\n",
        );
        super::refuse_unsupported_os(&mixed, &windows_facts(), disk).unwrap();
        // fstrim runs on every OS, but a Linux recipe that ends with it is still one.
        let trimmed = load(dir.path(), "base.yaml", "steps:\n  - machine-id: {}\n  - fstrim: {}\n");
        let e = super::refuse_unsupported_os(&trimmed, &windows_facts(), disk).unwrap_err();
        assert!(format!("{e:#}").ends_with("base.yaml has only Linux steps"), "{e:#}");
        let windows = load(
            dir.path(),
            "windows.yaml",
            "steps:\n  - windows-caches: {}\n  - fstrim: {}\n",
        );
        let e = super::refuse_unsupported_os(&windows, &OsFacts::sample("debian"), disk).unwrap_err();
        assert!(
            format!("{e:#}").ends_with("windows.yaml has no step for the debian family"),
            "{e:#}"
        );
        super::refuse_unsupported_os(&windows, &windows_facts(), disk).unwrap();
    }

    #[test]
    fn on_windows_linux_steps_are_skipped_and_when_family_windows_holds() {
        let dir = tempfile::tempdir().unwrap();
        let recipe = load(
            dir.path(),
            "w.yaml",
            "steps:\n  - machine-id: {}\n  - delete: {paths: [\"/windows/TEMP/*.LOG\"]}\n    when: {family: windows}\n  - delete: {paths: [/pagefile.sys]}\n    when: {family: debian}\n",
        );
        let g = MemoryGuest::new(windows_facts());
        g.file("/Windows/Temp/setup.log", b"x")
            .file("/Windows/Temp/keep.txt", b"x")
            .file("/pagefile.sys", b"x");
        let phase = crate::progress::phase("test");
        let mut reports = Vec::new();
        super::apply_steps(&recipe, &g, false, &phase, &mut reports).unwrap();
        // Directories and the glob match without regard to case on Windows.
        assert!(!g.exists("/Windows/Temp/setup.log") && g.exists("/Windows/Temp/keep.txt"));
        assert_eq!(reports[0].changes[0].path, "/windows/TEMP/setup.log");
        assert!(g.exists("/pagefile.sys"));
        let skipped: Vec<Option<&str>> = reports.iter().map(|r| r.skipped.as_deref()).collect();
        assert_eq!(skipped[0], None);
        assert!(skipped[1].unwrap().contains("debian"), "{skipped:?}");
        assert_eq!(skipped[2], Some("does not apply to the windows family"));
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
    fn steps_left_out_by_operations_are_reported_and_added_ones_run() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.yaml");
        std::fs::write(&path, "steps: [tmp-files, machine-id]\n").unwrap();
        let mut recipe = crate::recipe::Recipe::load(&path).unwrap();
        crate::recipe::operations::select(&mut recipe, &["defaults,-tmp-files,shell-history".into()]).unwrap();
        let g = MemoryGuest::new(OsFacts::sample("debian"));
        g.file("/tmp/x", b"x")
            .file("/root/.bash_history", b"ls\n")
            .file("/etc/machine-id", b"0123456789abcdef0123456789abcdef\n");
        let phase = crate::progress::phase("test");
        let mut reports = Vec::new();
        super::apply_steps(&recipe, &g, false, &phase, &mut reports).unwrap();
        let seen: Vec<(&str, Option<&str>)> = reports
            .iter()
            .map(|r| (r.step.as_str(), r.skipped.as_deref()))
            .collect();
        assert_eq!(
            seen,
            [
                ("tmp-files", Some("left out by --operations")),
                ("shell-history", None),
                ("machine-id", None)
            ]
        );
        assert!(g.exists("/tmp/x") && !g.exists("/root/.bash_history"));
    }

    #[test]
    fn stems() {
        assert_eq!(super::stem(std::path::Path::new("/x/debian.qcow2")), "debian");
        assert_eq!(super::stem(std::path::Path::new("ubuntu.img.xz")), "ubuntu");
        assert_eq!(super::stem(std::path::Path::new("disk")), "disk");
    }
}
