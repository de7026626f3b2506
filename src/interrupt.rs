//! Ctrl-C and SIGTERM always end goldify, promptly.
//!
//! The first signal sets a flag, stops our children (those registered by `exec` and the
//! libguestfs appliance, and any other child process: an appliance still launching is not
//! registered yet), so that the blocking call returns, and lets the normal error path
//! unwind: temporary files are removed by their guards on the way out, exit code 130.
//!
//! The main thread may be blocked where no child can release it: in flock(2) waiting for
//! another run's repository lock, or in a library call that does not return. So if it has
//! not ended [`GRACE`] after the signal, or as soon as a second signal arrives, the signal
//! thread ends the process itself: it stops the children for good, removes the work files
//! registered with [`remove_on_forced_exit`], prints the one error line and exits with 130
//! through `_exit(2)`, which runs no atexit handler (libguestfs' would close a handle the
//! main thread may be using; its recovery process stops an orphaned appliance).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

static INTERRUPTED: AtomicBool = AtomicBool::new(false);
static CHILDREN: Mutex<Vec<i32>> = Mutex::new(Vec::new());
static FORCED_EXIT_REMOVES: Mutex<Vec<(u64, PathBuf)>> = Mutex::new(Vec::new());
static NEXT_ID: AtomicU64 = AtomicU64::new(0);
/// Held by whoever ends the process, so that one error line is printed, not two.
static EXITING: Mutex<()> = Mutex::new(());

/// How long the main thread may take to unwind after a signal before the process ends
/// without it. Unwinding normally takes well under a second (children stopped, temporary
/// files removed).
pub(crate) const GRACE: Duration = Duration::from_secs(5);

pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

/// The flag itself, for long computations that poll it as they go (a compressor working
/// on one large block must stop well within the grace period a signal gives).
pub fn flag() -> &'static AtomicBool {
    &INTERRUPTED
}

/// Fail with an interruption error if a signal arrived.
pub(crate) fn check() -> anyhow::Result<()> {
    if interrupted() {
        return Err(crate::error::tagged(
            anyhow::anyhow!("interrupted"),
            crate::error::Exit::Interrupted,
        ));
    }
    Ok(())
}

/// A child process to terminate when a signal arrives; removed again by the guard.
pub(crate) struct ChildGuard(i32);

pub(crate) fn register_child(pid: i32) -> ChildGuard {
    lock(&CHILDREN).push(pid);
    if interrupted() {
        kill(pid, nix::sys::signal::Signal::SIGTERM);
    }
    ChildGuard(pid)
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        lock(&CHILDREN).retain(|p| *p != self.0);
    }
}

/// A path (file or directory) the signal thread removes if it has to end the process
/// while the main thread still owns it; forgotten again when dropped (the owner's own
/// guard removes it on the normal path).
pub(crate) struct Cleanup(u64);

pub(crate) fn remove_on_forced_exit(path: &Path) -> Cleanup {
    let id = NEXT_ID.fetch_add(1, Ordering::SeqCst);
    lock(&FORCED_EXIT_REMOVES).push((id, path.to_path_buf()));
    Cleanup(id)
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        lock(&FORCED_EXIT_REMOVES).retain(|(id, _)| *id != self.0);
    }
}

/// Taken by `main` before it prints its error and exits: a forced exit then waits for it
/// (and never comes), instead of printing a second error line.
pub fn exiting() -> MutexGuard<'static, ()> {
    lock(&EXITING)
}

fn lock<T>(m: &'static Mutex<T>) -> MutexGuard<'static, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Stop every registered child (the appliance, qemu-img…) without marking an interruption.
pub(crate) fn kill_children() {
    let children = lock(&CHILDREN).clone();
    children
        .into_iter()
        .for_each(|p| kill(p, nix::sys::signal::Signal::SIGTERM));
}

fn kill(pid: i32, signal: nix::sys::signal::Signal) {
    let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), signal);
}

/// Our child processes, registered or not (/proc/PID/stat: the parent is the second field
/// after the command name, which is in parentheses and may itself contain any character).
fn direct_children() -> Vec<i32> {
    let me = std::process::id() as i32;
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|s| Some(parent_in_stat(&s)? == me))
                .unwrap_or(false)
        })
        .collect()
}

fn parent_in_stat(stat: &str) -> Option<i32> {
    stat.get(stat.rfind(')')? + 1..)?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

fn stop_children(signal: nix::sys::signal::Signal) {
    let mut pids = lock(&CHILDREN).clone();
    pids.extend(direct_children());
    pids.sort_unstable();
    pids.dedup();
    pids.into_iter().for_each(|p| kill(p, signal));
}

/// End the process now, from the signal thread: the main thread did not unwind in time.
fn forced_exit(why: &str) -> ! {
    // Once main has started to exit, it finishes the job.
    let _exiting = exiting();
    stop_children(nix::sys::signal::Signal::SIGKILL);
    let paths: Vec<PathBuf> = lock(&FORCED_EXIT_REMOVES).iter().map(|(_, p)| p.clone()).collect();
    for p in paths {
        // symlink_metadata: a link is removed, never followed.
        let _ = match std::fs::symlink_metadata(&p) {
            Ok(m) if m.is_dir() => std::fs::remove_dir_all(&p),
            Ok(_) => std::fs::remove_file(&p),
            Err(_) => Ok(()),
        };
    }
    eprintln!("goldify: error: interrupted ({why})");
    // SAFETY: _exit(2) ends the process at once; nothing runs after it.
    unsafe { nix::libc::_exit(crate::error::Exit::Interrupted.code()) }
}

/// Install the handlers once, at start-up.
pub fn install() -> anyhow::Result<()> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    use signal_hook::iterator::Signals;
    let mut signals = Signals::new([SIGINT, SIGTERM])?;
    std::thread::Builder::new().name("signals".into()).spawn(move || {
        if signals.forever().next().is_none() {
            return;
        }
        INTERRUPTED.store(true, Ordering::SeqCst);
        eprintln!("goldify: interrupted, cleaning up");
        stop_children(nix::sys::signal::Signal::SIGTERM);
        let since = Instant::now();
        while since.elapsed() < GRACE {
            if signals.pending().next().is_some() {
                forced_exit("a second signal");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        forced_exit(&format!("still blocked {} s after the signal", GRACE.as_secs()));
    })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn parent_from_proc_stat() {
        assert_eq!(super::parent_in_stat("42 (qemu) S 7 42 42 0"), Some(7));
        // A command name with spaces and parentheses cannot fool the parser.
        assert_eq!(super::parent_in_stat("42 (a) S 1 (b)) R 9 1 1"), Some(9));
        assert_eq!(super::parent_in_stat("garbage"), None);
    }

    #[test]
    fn cleanups_are_forgotten_when_dropped() {
        let a = super::remove_on_forced_exit(std::path::Path::new("/nonexistent/a"));
        let b = super::remove_on_forced_exit(std::path::Path::new("/nonexistent/b"));
        drop(a);
        let left: Vec<_> = super::lock(&super::FORCED_EXIT_REMOVES)
            .iter()
            .map(|(_, p)| p.clone())
            .filter(|p| p.starts_with("/nonexistent"))
            .collect();
        assert_eq!(left, [std::path::PathBuf::from("/nonexistent/b")]);
        drop(b);
    }
}
