//! Progress on stderr for the long phases: a spinner with the phase name and elapsed time
//! on a terminal; nothing when stderr is not a terminal (CI logs, pipes) or with --quiet.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

static QUIET: AtomicBool = AtomicBool::new(false);

pub fn set_quiet(q: bool) {
    QUIET.store(q, Ordering::SeqCst);
}

pub fn quiet() -> bool {
    QUIET.load(Ordering::SeqCst)
}

/// The spinners drawing now: a line printed while one draws is printed above it (the
/// spinner is cleared and redrawn), never over it.
static ACTIVE: std::sync::Mutex<Vec<(u64, ProgressBar)>> = std::sync::Mutex::new(Vec::new());
static NEXT_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Run `f` (which prints a line on stderr) with every spinner out of its way.
pub fn above<R>(f: impl FnOnce() -> R) -> R {
    let active = ACTIVE
        .lock()
        .map(|a| a.last().map(|(_, pb)| pb.clone()))
        .unwrap_or(None);
    match active {
        Some(pb) => pb.suspend(f),
        None => f(),
    }
}

pub fn target() -> ProgressDrawTarget {
    if QUIET.load(Ordering::SeqCst) {
        ProgressDrawTarget::hidden()
    } else {
        // indicatif draws nothing when stderr is not a terminal.
        ProgressDrawTarget::stderr()
    }
}

pub struct Phase(ProgressBar, u64);

/// A spinner for one phase; finished (and erased) on drop.
pub fn phase(msg: impl Into<String>) -> Phase {
    let msg = msg.into();
    tracing::info!("{msg}");
    let pb = ProgressBar::with_draw_target(None, target());
    pb.set_style(ProgressStyle::with_template("{spinner} {msg} ({elapsed})").expect("static template"));
    pb.set_message(msg);
    pb.enable_steady_tick(Duration::from_millis(120));
    let id = NEXT_ID.fetch_add(1, Ordering::SeqCst);
    if let Ok(mut a) = ACTIVE.lock() {
        a.push((id, pb.clone()));
    }
    Phase(pb, id)
}

impl Phase {
    /// Hide the spinner while `f` draws its own progress.
    pub fn suspend<R>(&self, f: impl FnOnce() -> R) -> R {
        self.0.suspend(f)
    }

    pub fn set(&self, msg: impl Into<String>) {
        let msg = msg.into();
        tracing::debug!("{msg}");
        self.0.set_message(msg);
    }
}

impl Drop for Phase {
    fn drop(&mut self) {
        if let Ok(mut a) = ACTIVE.lock() {
            a.retain(|(id, _)| *id != self.1);
        }
        self.0.finish_and_clear();
    }
}

/// A byte-counting bar (rate and ETA) for conversions and compression.
pub fn bytes(total: u64, msg: &str) -> ProgressBar {
    let pb = ProgressBar::with_draw_target(Some(total), target());
    pb.set_style(
        ProgressStyle::with_template("{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} ETA {eta}")
            .expect("static template")
            .progress_chars("=> "),
    );
    pb.set_message(msg.to_string());
    pb
}

/// A byte-counting spinner (rate, no ETA) for streams of unknown length.
pub fn bytes_unknown(msg: &str) -> ProgressBar {
    let pb = ProgressBar::with_draw_target(None, target());
    pb.set_style(
        ProgressStyle::with_template("{spinner} {msg} {bytes} {bytes_per_sec} ({elapsed})").expect("static template"),
    );
    pb.set_message(msg.to_string());
    pb.enable_steady_tick(Duration::from_millis(120));
    pb
}
