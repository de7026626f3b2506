//! goldify: turn a used virtual machine disk into a golden template, offline.
//!
//! The data flows one way: recipe + disk → guest session → steps → golden disk.

pub(crate) mod check;
pub mod cli;
pub mod disk;
pub(crate) mod doctor;
pub mod error;
pub(crate) mod exec;
pub mod guest;
pub(crate) mod hostfile;
pub(crate) mod inspect;
pub mod interrupt;
pub(crate) mod manual;
pub(crate) mod outputs;
pub(crate) mod packer;
pub(crate) mod progress;
pub(crate) mod publish;
pub(crate) mod recipe;
pub(crate) mod report;
pub(crate) mod run;
pub mod steps;
pub(crate) mod suggest;
pub(crate) mod verify;
pub mod workdir;

/// Log lines on stderr: warnings by default, more with -v / -vv. RUST_LOG overrides.
pub fn init_logging(verbose: u8) {
    let level = match verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(format!("goldify={level}")));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .without_time()
        .try_init();
}
