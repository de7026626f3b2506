//! The command line: one struct per subcommand; `///` docs become `--help`.

use crate::disk::Format;
use crate::error::Exit;
use anyhow::Result;
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

/// `--help`'s exit-code table, from the one list in error.rs.
fn exit_codes() -> String {
    let mut s = String::from("Exit codes:");
    for exit in Exit::ALL {
        s.push_str(&format!("\n  {:<5}{}", exit.code(), exit.describe()));
    }
    s
}

/// Turn a used virtual machine disk into a golden template, offline, through libguestfs.
#[derive(Debug, Parser)]
#[command(name = "goldify", version, after_help = exit_codes(), max_term_width = 100)]
pub struct Cli {
    /// More log output on stderr (-v: info, -vv: debug and libguestfs' own output).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    /// No progress display.
    #[arg(short, long, global = true)]
    pub(crate) quiet: bool,
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    Run(RunArgs),
    Check(CheckArgs),
    Steps(StepsArgs),
    Targets(TargetsArgs),
    Inspect(InspectArgs),
    Doctor(DoctorArgs),
    Verify(VerifyArgs),
    Repo(RepoArgs),
}

/// Apply a recipe to a disk in one appliance launch, trim it, and write the golden disk.
///
/// The input is opened read-only and never modified: goldify works on a qcow2 overlay in a
/// private temporary directory in $TMPDIR and writes OUTDIR/<name>-golden.<format>. A
/// failed or interrupted run leaves no partial files.
///
/// Publishing: the targets in the recipe's `publish:` section (or those given with
/// --publish) are produced in the same run — vmmanager (<image_name>.xz + metadata.json),
/// vmmanager-lxd (root tree .tar.gz), disk (qcow2/raw/vmdk/vdi), deckhouse
/// (ClusterVirtualImage/VirtualImage YAML + containerDisk OCI image), vcluster (OSImage
/// YAML), checksums (SHA256SUMS…), and a JSON manifest of the run (goldify-manifest.json).
/// When publishing, the golden disk file itself is written only by the `disk` target.
/// Settings are checked before the appliance starts; nothing is renamed into place
/// until everything is written.
#[derive(Debug, Args)]
pub(crate) struct RunArgs {
    /// The recipe (YAML).
    pub recipe: PathBuf,
    /// The used disk: qcow2, raw, vmdk or vdi, optionally gzip- or xz-compressed
    /// (detected from content). Not with --packer-manifest.
    #[arg(required_unless_present = "packer_manifest", conflicts_with = "packer_manifest")]
    pub disk: Option<PathBuf>,
    /// Take the disk from a Packer manifest (the `manifest` post-processor's output):
    /// the files of the last run's build. Relative names are taken from the current
    /// directory (where Packer and `shell-local` run), then beside the manifest.
    #[arg(long, value_name = "FILE")]
    pub packer_manifest: Option<PathBuf>,
    /// The build to take from the manifest (default: $PACKER_BUILD_NAME inside Packer,
    /// else the last run's only build).
    #[arg(long, value_name = "NAME", requires = "packer_manifest")]
    pub packer_build: Option<String>,
    /// Where the golden disk is written.
    #[arg(short, long, default_value = ".")]
    pub outdir: PathBuf,
    /// Format of the golden disk (default: the recipe's `output.format`, else qcow2).
    #[arg(short, long, value_enum)]
    pub format: Option<Format>,
    /// Base name of the golden disk (default: the input's name + "-golden").
    #[arg(long)]
    pub name: Option<String>,
    /// Edit DISK itself instead of writing a new disk (what a Packer pipeline wants).
    #[arg(long, conflicts_with = "dry_run")]
    pub in_place: bool,
    /// Print every path each step would change; write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Print the report as JSON on stdout.
    #[arg(long)]
    pub json: bool,
    /// Publish to TARGET (repeatable; `goldify targets` lists them). Settings come from the
    /// recipe's `publish:` section, defaults otherwise. Without --publish, every target the
    /// recipe lists is published.
    // Checked against the registry by the publish session, which suggests the nearest name
    // in goldify's own one-line error.
    #[arg(long = "publish", value_name = "TARGET")]
    pub publish: Vec<String>,
    /// Where targets without a directory of their own (`repo:`/`dir:`) write
    /// (default: OUTDIR).
    #[arg(long, value_name = "DIR")]
    pub publish_dir: Option<PathBuf>,
    /// Publish nothing, whatever the recipe lists.
    #[arg(long, conflicts_with_all = ["publish", "publish_dir"])]
    pub no_publish: bool,
    #[command(flatten)]
    pub refs: DiskRefs,
    #[command(flatten)]
    pub keys: DiskKeys,
}

/// What the disks goldify opens may make qemu read besides themselves.
#[derive(Debug, Args)]
pub(crate) struct DiskRefs {
    /// Let the disk's backing files, VMDK extents and parent, and qcow2 data file be read
    /// from DIR (repeatable). Without it, a disk that names any other file is refused;
    /// with it, every file of the chain, link by link, must resolve inside a DIR. Network
    /// locations (nbd://, http:…) and json: filenames are always refused.
    #[arg(long = "allow-backing", value_name = "DIR")]
    pub allow_backing: Vec<PathBuf>,
}

impl DiskRefs {
    fn allowed(&self) -> Result<crate::disk::refs::Allowed> {
        crate::disk::refs::Allowed::new(&self.allow_backing)
    }
}

/// Keys for the guest's encrypted (LUKS) devices.
#[derive(Debug, Args)]
pub(crate) struct DiskKeys {
    /// Open the encrypted (LUKS) device DEVICE (as libguestfs names it, /dev/sda2 or
    /// /dev/vg0/root, or the UUID of its LUKS header) with the key in the first line of
    /// PATH, or in the environment variable VAR (repeatable, one per device). A key given
    /// in clear (DEVICE:key:…, as the virt tools allow) is refused. The golden disk stays
    /// encrypted with the same key.
    #[arg(long = "key", value_name = "DEVICE:file:PATH|DEVICE:env:VAR")]
    pub keys: Vec<String>,
}

impl DiskKeys {
    fn parsed(&self) -> Result<Vec<crate::guest::keys::Key>> {
        use crate::error::Tag;
        self.keys
            .iter()
            .map(|k| crate::guest::keys::Key::parse(k).tag(Exit::Usage))
            .collect()
    }
}

/// Inspect and tidy a VMmanager template repository: metadata.json and the archives
/// beside it.
///
/// Statuses: available, file missing, checksum mismatch (verify only), size mismatch, not a
/// regular file (a link, FIFO or directory: never followed), unsafe file name (not a plain
/// name, or one of the repository's own files: never opened or removed), unreferenced file,
/// leftover of an ended run, in use by a running goldify.
///
/// Exit codes: 2 when DIR is not a repository (missing, or without metadata.json); 5 when
/// the repository cannot be read or changed; 6 when `list` or `verify` find an entry that
/// is not available (with --strict, also unreferenced files and leftovers, otherwise only a
/// warning).
#[derive(Debug, Args)]
pub(crate) struct RepoArgs {
    #[command(subcommand)]
    pub action: RepoAction,
}

#[derive(Debug, Subcommand)]
pub(crate) enum RepoAction {
    /// List entries and files with their status (sizes only: quick).
    List {
        dir: PathBuf,
        #[arg(long)]
        json: bool,
        /// Fail (exit 6) on files no entry references and on leftovers too.
        #[arg(long)]
        strict: bool,
    },
    /// Check every archive's size and checksum against metadata.json.
    Verify {
        dir: PathBuf,
        #[arg(long)]
        json: bool,
        /// Fail (exit 6) on files no entry references and on leftovers too.
        #[arg(long)]
        strict: bool,
    },
    /// Remove an entry from metadata.json, then its archive (all or nothing).
    Rm { dir: PathBuf, name: String },
    /// Remove files no entry references and leftovers of ended runs (never what a
    /// running goldify is writing).
    Gc {
        dir: PathBuf,
        /// Only print what would be removed.
        #[arg(long)]
        dry_run: bool,
    },
}

/// Boot clones of a golden template under QEMU and check that they come up as distinct,
/// healthy machines.
///
/// Each clone is a qcow2 overlay (the template is only read) holding a one-shot unit that
/// prints the clone's machine-id, SSH host keys, sshd state, DHCP address, failed units and
/// cloud-init state on the serial console once the system is up, then powers it off.
/// Checks: machine-ids and host keys differ between clones and from the source's, sshd is
/// active, the first NIC has an IPv4 address by DHCP, no unit failed, cloud-init (where
/// installed) ran a new instance and is done. Exits 6 when a check fails; the serial
/// console log of a failed clone is kept and its path printed.
#[derive(Debug, Args)]
pub(crate) struct VerifyArgs {
    /// Boot clones (the verification this command does; required).
    #[arg(long, required = true)]
    pub boot: bool,
    /// The golden template: qcow2, raw, vmdk or vdi, optionally gzip- or xz-compressed.
    pub template: PathBuf,
    /// The used disk the template was made from: its machine-id, host keys and cloud-init
    /// instance are read offline, and no clone may carry them.
    #[arg(long, value_name = "DISK")]
    pub source: Option<PathBuf>,
    /// Stop a clone that has not reported and powered off after this many seconds.
    #[arg(long, value_name = "SECS", default_value_t = 600, value_parser = clap::value_parser!(u64).range(30..))]
    pub timeout: u64,
    /// How many clones to boot (side by side, one per host core).
    #[arg(long, value_name = "N", default_value_t = 2, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub clones: u16,
    /// Memory of each clone.
    #[arg(long, value_name = "MIB", default_value_t = 1024, value_parser = clap::value_parser!(u32).range(128..))]
    pub memory: u32,
    /// Keep every clone's serial console log in DIR (a failed clone's is always kept).
    #[arg(long, value_name = "DIR")]
    pub keep_logs: Option<PathBuf>,
    /// Print the report as JSON on stdout.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub refs: DiskRefs,
}

/// Validate a recipe (and what it extends) without touching any disk.
#[derive(Debug, Args)]
pub(crate) struct CheckArgs {
    pub recipe: PathBuf,
    /// Print the resolved recipe as JSON.
    #[arg(long)]
    pub json: bool,
}

/// List every step with its summary, options, defaults and the OS families it applies to.
#[derive(Debug, Args)]
pub(crate) struct StepsArgs {
    #[arg(long)]
    pub json: bool,
}

/// List every publish target with its summary and settings (`publish:` in a recipe,
/// `--publish` on `run`).
#[derive(Debug, Args)]
pub(crate) struct TargetsArgs {
    /// Print the list as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Show what libguestfs finds on a disk (read-only).
#[derive(Debug, Args)]
pub(crate) struct InspectArgs {
    pub disk: PathBuf,
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub refs: DiskRefs,
    #[command(flatten)]
    pub keys: DiskKeys,
}

/// Check libguestfs, the appliance, qemu and KVM; print what goldify will use.
#[derive(Debug, Args)]
pub(crate) struct DoctorArgs {
    #[arg(long)]
    pub json: bool,
    /// Skip the appliance launch test (quick).
    #[arg(long)]
    pub no_launch: bool,
}

fn print_json<T: serde::Serialize>(v: &T) -> Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

impl Cli {
    pub fn run(self) -> Result<Exit> {
        crate::progress::set_quiet(self.quiet);
        match self.command {
            Command::Run(a) => {
                let allow = a.refs.allowed()?;
                let disk = crate::packer::input_disk(
                    a.disk.as_deref(),
                    a.packer_manifest.as_deref(),
                    a.packer_build.as_deref(),
                )?;
                let report = crate::run::run(&crate::run::RunOptions {
                    recipe: a.recipe,
                    disk,
                    outdir: a.outdir,
                    in_place: a.in_place,
                    dry_run: a.dry_run,
                    format: a.format,
                    name: a.name,
                    verbose: self.verbose,
                    allow,
                    keys: a.keys.parsed()?,
                    publish: crate::publish::Request {
                        targets: a.publish,
                        dir: a.publish_dir,
                        none: a.no_publish,
                    },
                })?;
                if a.json {
                    print_json(&report)?;
                } else {
                    report.print_human(&mut std::io::stdout().lock())?;
                }
                Ok(success())
            }
            Command::Check(a) => {
                let recipe = crate::recipe::Recipe::load(&a.recipe)?;
                let publish = recipe.publish.names();
                let steps: Vec<serde_json::Value> = recipe
                    .ordered()
                    .iter()
                    .map(|s| {
                        serde_json::json!({
                            "step": s.name,
                            "options": s.step.to_yaml(),
                            "when": s.when,
                            "from": s.origin.display().to_string(),
                        })
                    })
                    .collect();
                if a.json {
                    print_json(&serde_json::json!({"name": recipe.name, "steps": steps, "publish": publish}))?;
                } else {
                    println!(
                        "{}: recipe `{}` is valid, {} steps:",
                        a.recipe.display(),
                        recipe.name,
                        steps.len()
                    );
                    for s in recipe.ordered() {
                        let when = s
                            .when
                            .as_ref()
                            .map(|w| format!("  (when {})", w.describe()))
                            .unwrap_or_default();
                        println!("  {}{when}", s.name);
                    }
                    if !publish.is_empty() {
                        println!("publishes to: {}", publish.join(", "));
                    }
                }
                Ok(success())
            }
            Command::Steps(a) => {
                if a.json {
                    print_json(&crate::steps::REGISTRY)?;
                } else {
                    print!("{}", crate::steps::describe_all());
                }
                Ok(success())
            }
            Command::Targets(a) => {
                if a.json {
                    print_json(&crate::publish::REGISTRY)?;
                } else {
                    print!(
                        "{}",
                        crate::steps::describe_records(
                            crate::publish::REGISTRY
                                .iter()
                                .map(|t| (t.name, t.summary, "", t.options))
                        )
                    );
                }
                Ok(success())
            }
            Command::Inspect(a) => {
                let report = crate::inspect::inspect(&a.disk, &a.refs.allowed()?, &a.keys.parsed()?)?;
                if a.json {
                    print_json(&report)?;
                } else {
                    report.print_human(&mut std::io::stdout().lock())?;
                }
                Ok(success())
            }
            Command::Doctor(a) => {
                let report = crate::doctor::doctor(!a.no_launch);
                if a.json {
                    print_json(&report)?;
                } else {
                    report.print_human(&mut std::io::stdout().lock())?;
                }
                Ok(if report.ok { success() } else { Exit::Environment })
            }
            Command::Verify(a) => {
                let report = crate::verify::verify(&crate::verify::VerifyOptions {
                    template: a.template,
                    source: a.source,
                    clones: a.clones.into(),
                    timeout: std::time::Duration::from_secs(a.timeout),
                    keep_logs: a.keep_logs,
                    memory_mib: a.memory,
                    verbose: self.verbose,
                    allow: a.refs.allowed()?,
                })?;
                if a.json {
                    print_json(&report)?;
                } else {
                    report.print_human(&mut std::io::stdout().lock())?;
                }
                Ok(if report.ok { success() } else { Exit::Verify })
            }
            Command::Repo(a) => repo(a.action),
        }
    }
}

/// `goldify repo …`: run the action and print its result (names escaped for humans,
/// exact in JSON).
fn repo(action: RepoAction) -> Result<Exit> {
    use crate::publish::repo::{self, shown, shown_path};
    use crate::report::human_bytes;
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match action {
        RepoAction::List { dir, json, strict } => repo_listing(&mut out, &repo::list(&dir, false)?, json, strict),
        RepoAction::Verify { dir, json, strict } => repo_listing(&mut out, &repo::list(&dir, true)?, json, strict),
        RepoAction::Rm { dir, name } => {
            let r = repo::remove(&dir, &name)?;
            for (file, why) in &r.kept {
                tracing::warn!(
                    "entry `{}` named {}, {why}: the entry is removed, the file kept",
                    shown(&name),
                    shown(file)
                );
            }
            writeln!(
                out,
                "removed entry {} from {}",
                shown(&name),
                shown_path(&dir.join(repo::METADATA))
            )?;
            for p in r.removed {
                writeln!(out, "removed {}", shown_path(&p))?;
            }
            Ok(success())
        }
        RepoAction::Gc { dir, dry_run } => {
            let c = repo::gc(&dir, dry_run)?;
            let verb = if dry_run { "would remove" } else { "removed" };
            for (p, size, status) in &c.removed {
                writeln!(
                    out,
                    "{verb} {} ({}, {})",
                    shown_path(p),
                    human_bytes(*size),
                    status.describe()
                )?;
            }
            for (p, size) in &c.in_use {
                writeln!(
                    out,
                    "kept {} ({}, in use by a running goldify)",
                    shown_path(p),
                    human_bytes(*size)
                )?;
            }
            let total: u64 = c.removed.iter().map(|f| f.1).sum();
            writeln!(
                out,
                "{verb} {} unreferenced file(s) and leftover(s), {}",
                c.removed.len(),
                human_bytes(total)
            )?;
            Ok(success())
        }
    }
}

fn repo_listing(
    out: &mut dyn std::io::Write,
    l: &crate::publish::repo::Listing,
    json: bool,
    strict: bool,
) -> Result<Exit> {
    use crate::publish::repo::shown;
    if json {
        writeln!(out, "{}", serde_json::to_string_pretty(l)?)?;
    } else {
        l.print_human(out)?;
    }
    let strays = l.strays();
    if !strict && !strays.is_empty() {
        let names: Vec<_> = strays.iter().map(|r| shown(&r.file)).collect();
        tracing::warn!(
            "{}: {} file(s) no entry references: {} (`goldify repo gc` removes them; --strict fails on them)",
            shown(&l.dir),
            names.len(),
            names.join(", ")
        );
    }
    Ok(if l.ok(strict) { success() } else { Exit::Verify })
}

/// Exit code 0 is not an [`Exit`] variant; `main` maps `None`-like success through this.
fn success() -> Exit {
    Exit::Success
}

#[cfg(test)]
mod tests {
    #[test]
    fn cli_is_well_formed() {
        use clap::CommandFactory;
        super::Cli::command().debug_assert();
    }
}
