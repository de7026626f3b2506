//! Man pages and shell completions, generated from the clap definitions so they cannot
//! drift from `--help` (clap_mangen, clap_complete). cli.rs hands in its `Command`:
//! only main.rs and cli.rs may use the command line's types.

use anyhow::{Context, Result};
use std::path::{Path, PathBuf};

/// `goldify completions SHELL`: the completion script on `out`.
pub fn completions(mut cmd: clap::Command, shell: clap_complete::Shell, out: &mut dyn std::io::Write) {
    clap_complete::generate(shell, &mut cmd, "goldify", out);
}

/// `goldify manpages DIR`: goldify.1 and one page per visible subcommand
/// (goldify-run.1, goldify-repo-list.1, …), in DIR (created if missing). Returns the
/// pages written, sorted.
pub fn manpages(cmd: clap::Command, dir: &Path) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    clap_mangen::generate_to(cmd, dir).with_context(|| format!("writing man pages into {}", dir.display()))?;
    let mut pages: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("listing {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("goldify") && n.ends_with(".1"))
        })
        .collect();
    pages.sort();
    Ok(pages)
}
