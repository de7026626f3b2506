//! The command line: one struct per subcommand; `///` docs become `--help`.

use crate::disk::Format;
use crate::error::{Exit, Tag};
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
    /// No progress display, and no notice that the appliance runs without KVM.
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
    Recipes(RecipesArgs),
    Completions(CompletionsArgs),
    Manpages(ManpagesArgs),
}

/// List the recipes found along the recipe search path, and where.
///
/// `extends: NAME` and a plain recipe name on the command line are looked up, first
/// match wins: beside the extending recipe (the current directory on the command line),
/// then each directory of $GOLDIFY_RECIPE_PATH (colon-separated), then the installed
/// recipes (<prefix>/share/goldify/recipes beside <prefix>/bin/goldify), then the
/// checkout's recipes/ when goldify runs from a source tree. Only plain relative names
/// are searched: an absolute name or one with `..` means that file and no other.
#[derive(Debug, Args)]
pub(crate) struct RecipesArgs {
    /// Print the list as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Print a shell completion script (bash, zsh, fish, elvish, powershell) on stdout.
///
/// scripts/install.sh installs them; by hand, e.g.
/// `goldify completions bash > ~/.local/share/bash-completion/completions/goldify`.
#[derive(Debug, Args)]
pub(crate) struct CompletionsArgs {
    /// The shell: bash, zsh, fish, elvish or powershell.
    pub shell: clap_complete::Shell,
}

/// Write goldify's man pages (goldify.1, goldify-run.1, …) into DIR, created if missing.
///
/// scripts/install.sh writes them to <prefix>/share/man/man1. (A visible command: clap's
/// completions would offer a hidden one anyway.)
#[derive(Debug, Args)]
pub(crate) struct ManpagesArgs {
    /// Where goldify.1 and one page per command are written (created if missing).
    pub dir: PathBuf,
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
/// Publishing adds to the golden disk: it is still written to OUTDIR, unless the `disk`
/// target is published (it then says where and how) or --no-golden is given. The summary
/// lists every file written and every repository index updated.
/// Settings are checked before the appliance starts; nothing is renamed into place
/// until everything is written.
#[derive(Debug, Args)]
pub(crate) struct RunArgs {
    /// The recipe (YAML).
    pub recipe: PathBuf,
    /// The used disk: qcow2, raw, vmdk or vdi, optionally gzip- or xz-compressed
    /// (detected from content). A guest on several disks (an MD array or a volume group
    /// over them, /var on a second disk) is given all of them, in its order: one golden
    /// disk is written per input. Not with --packer-manifest.
    #[arg(
        value_name = "DISK",
        required_unless_present_any = ["packer_manifest", "list_operations", "add"],
        conflicts_with = "packer_manifest"
    )]
    pub disks: Vec<PathBuf>,
    /// Another disk of the guest, after the positional ones (repeatable; virt-sysprep's
    /// `-a`).
    #[arg(short = 'a', long = "add", value_name = "DISK", conflicts_with = "packer_manifest")]
    pub add: Vec<PathBuf>,
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
    /// Base name of the golden disk (default: the input's name + "-golden"); with several
    /// disks, NAME-1, NAME-2, … in their order.
    #[arg(long)]
    pub name: Option<String>,
    /// Edit DISK itself instead of writing a new disk (what a Packer pipeline wants).
    #[arg(long, conflicts_with = "dry_run")]
    pub in_place: bool,
    /// Print every path each step would change; write nothing.
    #[arg(short = 'n', long)]
    pub dry_run: bool,
    /// Pick the steps that run, as virt-sysprep's --operations does: a comma-separated
    /// list of step names (enable) and -names (disable), starting from none; `defaults`
    /// stands for the recipe's steps, `all` adds every step that needs no options. E.g.
    /// `defaults,-logs` or `machine-id,ssh-host-keys`. Repeatable: a later list changes
    /// the earlier ones' result. A step the recipe lacks is added with its defaults.
    #[arg(long, visible_alias = "enable", value_name = "STEPS", allow_hyphen_values = true)]
    pub operations: Vec<String>,
    /// List every step, marking with `*` those this run would apply (the recipe's, or
    /// what --operations picks), and exit; no disk needed.
    #[arg(long)]
    pub list_operations: bool,
    /// A hibernated Windows volume (hiberfil.sys from a hibernation or a Fast Startup
    /// shutdown) is refused; with this, its saved session is discarded instead (ntfs-3g's
    /// remove_hiberfile) and the report says so.
    #[arg(long)]
    pub remove_hiberfile: bool,
    /// Print the report as JSON on stdout (docs/json.md); a failure is one
    /// `{"error": …}` object there too.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub publishing: PublishArgs,
    #[command(flatten)]
    pub refs: DiskRefs,
    #[command(flatten)]
    pub keys: DiskKeys,
}

/// What a run publishes (`run` and `check` take the same options, so that `check` finds
/// every conflict the recipe and the command line decide).
#[derive(Debug, Args)]
pub(crate) struct PublishArgs {
    /// Publish to TARGET (repeatable; `goldify targets` lists them). Settings come from the
    /// recipe's `publish:` section and --set, defaults otherwise. Without --publish, every
    /// target the recipe lists is published.
    // Checked against the registry by the publish session, which suggests the nearest name
    // in goldify's own one-line error.
    #[arg(long = "publish", value_name = "TARGET")]
    pub publish: Vec<String>,
    /// Where targets without a directory of their own (`repo:`/`dir:`) write
    /// (default: OUTDIR).
    #[arg(long, value_name = "DIR")]
    pub publish_dir: Option<PathBuf>,
    /// Publish nothing, whatever the recipe lists.
    #[arg(long, conflicts_with_all = ["publish", "publish_dir", "set"])]
    pub no_publish: bool,
    /// A publish target's setting (repeatable), on top of the recipe's `publish:` section:
    /// `--set deckhouse.base_url=https://img.example.com/golden`. VALUE is read as YAML
    /// (`--set vmmanager.compression.preset=1`); a dotted KEY reaches a nested setting.
    #[arg(long, value_name = "TARGET.KEY=VALUE", value_parser = crate::publish::overrides::parse)]
    pub set: Vec<crate::publish::overrides::Override>,
    /// When publishing, leave the golden disk out of OUTDIR: only the targets' artifacts
    /// are written (by default publishing adds to the golden disk).
    #[arg(long, conflicts_with = "no_publish")]
    pub no_golden: bool,
}

impl PublishArgs {
    fn request(self) -> crate::publish::Request {
        crate::publish::Request {
            targets: self.publish,
            dir: self.publish_dir,
            none: self.no_publish,
            set: self.set,
            no_golden: self.no_golden,
        }
    }
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
        /// The repository: a directory holding metadata.json.
        dir: PathBuf,
        /// Print the result as JSON on stdout (docs/json.md).
        #[arg(long)]
        json: bool,
        /// Fail (exit 6) on files no entry references and on leftovers too.
        #[arg(long)]
        strict: bool,
    },
    /// Check every archive's size and checksum against metadata.json.
    Verify {
        /// The repository: a directory holding metadata.json.
        dir: PathBuf,
        /// Print the result as JSON on stdout (docs/json.md).
        #[arg(long)]
        json: bool,
        /// Fail (exit 6) on files no entry references and on leftovers too.
        #[arg(long)]
        strict: bool,
    },
    /// Remove an entry from metadata.json, then its archive (all or nothing).
    Rm {
        /// The repository: a directory holding metadata.json.
        dir: PathBuf,
        /// The entry's `name` in metadata.json.
        name: String,
    },
    /// Remove files no entry references and leftovers of ended runs (never what a
    /// running goldify is writing).
    Gc {
        /// The repository: a directory holding metadata.json.
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
    /// Print the report as JSON on stdout (docs/json.md); a failure is one
    /// `{"error": …}` object there too.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub refs: DiskRefs,
}

/// Validate a recipe (and what it extends) without touching any disk.
///
/// Given the options `run` would be given (--name, --outdir, --format, --publish, --set…),
/// also checks what publishing would write: settings, names, and files two targets would
/// both write, or that would replace an input. Reads only; creates nothing.
#[derive(Debug, Args)]
pub(crate) struct CheckArgs {
    /// The recipe (YAML).
    pub recipe: PathBuf,
    /// Print the resolved recipe as JSON (docs/json.md).
    #[arg(long)]
    pub json: bool,
    /// As `run -o`: where the golden disk (and publishing, without --publish-dir) goes.
    #[arg(short, long, default_value = ".")]
    pub outdir: PathBuf,
    /// As `run --format`.
    #[arg(short, long, value_enum)]
    pub format: Option<Format>,
    /// As `run --name`.
    #[arg(long)]
    pub name: Option<String>,
    #[command(flatten)]
    pub publishing: PublishArgs,
}

/// List every step with its summary, options, defaults and the OS families it applies to.
#[derive(Debug, Args)]
pub(crate) struct StepsArgs {
    /// Print the list as JSON (docs/json.md).
    #[arg(long)]
    pub json: bool,
}

/// List every publish target with its summary and settings (`publish:` in a recipe,
/// `--publish` on `run`).
#[derive(Debug, Args)]
pub(crate) struct TargetsArgs {
    /// Print the list as JSON (docs/json.md).
    #[arg(long)]
    pub json: bool,
}

/// Show what libguestfs finds on a disk (read-only).
#[derive(Debug, Args)]
pub(crate) struct InspectArgs {
    /// The disk: qcow2, raw, vmdk or vdi, optionally gzip- or xz-compressed; a guest on
    /// several disks is given all of them, in its order.
    #[arg(value_name = "DISK", required = true)]
    pub disks: Vec<PathBuf>,
    /// Print the report as JSON (docs/json.md).
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
    /// Print the report as JSON (docs/json.md).
    #[arg(long)]
    pub json: bool,
    /// Skip the appliance launch test (quick).
    #[arg(long)]
    pub no_launch: bool,
}

mod dispatch;

#[cfg(test)]
mod tests;
