//! What each command does with its parsed arguments: the command layer's dispatch (it
//! alone prints), kept apart from the argument definitions in cli.rs.

use super::*;

fn print_json<T: serde::Serialize>(v: &T) -> Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

impl Cli {
    /// The command was given `--json`: its failure is also a JSON object on stdout.
    pub fn json(&self) -> bool {
        match &self.command {
            Command::Run(a) => a.json,
            Command::Check(a) => a.json,
            Command::Steps(a) => a.json,
            Command::Targets(a) => a.json,
            Command::Inspect(a) => a.json,
            Command::Doctor(a) => a.json,
            Command::Verify(a) => a.json,
            Command::Repo(a) => match a.action {
                RepoAction::List { json, .. } | RepoAction::Verify { json, .. } => json,
                RepoAction::Rm { .. } | RepoAction::Gc { .. } => false,
            },
            Command::Recipes(a) => a.json,
            Command::Completions(_) | Command::Manpages(_) => false,
        }
    }

    pub fn run(self) -> Result<Exit> {
        crate::progress::set_quiet(self.quiet);
        match self.command {
            Command::Run(a) if a.list_operations => {
                let mut recipe = crate::recipe::Recipe::load(&a.recipe)?;
                crate::recipe::operations::select(&mut recipe, &a.operations).tag(Exit::Usage)?;
                print!("{}", crate::recipe::operations::listing(&recipe));
                Ok(success())
            }
            Command::Run(a) => {
                let allow = a.refs.allowed()?;
                let mut disks = a.disks;
                disks.extend(a.add);
                let disks = crate::packer::input_disks(disks, a.packer_manifest.as_deref(), a.packer_build.as_deref())?;
                let report = crate::run::run(&crate::run::RunOptions {
                    recipe: a.recipe,
                    disks,
                    outdir: a.outdir,
                    in_place: a.in_place,
                    dry_run: a.dry_run,
                    remove_hiberfile: a.remove_hiberfile,
                    format: a.format,
                    name: a.name,
                    verbose: self.verbose,
                    allow,
                    keys: a.keys.parsed()?,
                    publish: a.publishing.request(),
                    operations: a.operations,
                })?;
                if a.json {
                    print_json(&report)?;
                } else {
                    report.print_human(&mut std::io::stdout().lock())?;
                }
                Ok(success())
            }
            Command::Check(a) => {
                let report = crate::check::check(&crate::check::CheckOptions {
                    recipe: &a.recipe,
                    outdir: &a.outdir,
                    name: a.name.as_deref(),
                    format: a.format,
                    publish: &a.publishing.request(),
                })?;
                if a.json {
                    print_json(&report)?;
                } else {
                    report.print_human(&mut std::io::stdout().lock())?;
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
                let report = crate::inspect::inspect(&a.disks, &a.refs.allowed()?, &a.keys.parsed()?)?;
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
            Command::Recipes(a) => {
                let found = crate::recipe::search::listing();
                if a.json {
                    print_json(&found)?;
                } else {
                    print!("{}", found.human());
                }
                Ok(success())
            }
            Command::Completions(a) => {
                use clap::CommandFactory;
                crate::manual::completions(Cli::command(), a.shell, &mut std::io::stdout().lock());
                Ok(success())
            }
            Command::Manpages(a) => {
                use clap::CommandFactory;
                for page in crate::manual::manpages(Cli::command(), &a.dir).tag(Exit::Output)? {
                    println!("{}", page.display());
                }
                Ok(success())
            }
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
