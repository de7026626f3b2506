//! Ctrl-C and SIGTERM: remember that we were interrupted, stop the children we started
//! (the libguestfs appliance, qemu-img, qemu) so the blocking call returns, and let the
//! normal error path unwind: temporary files are removed by their guards on the way out.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

static INTERRUPTED: AtomicBool = AtomicBool::new(false);
static CHILDREN: Mutex<Vec<i32>> = Mutex::new(Vec::new());

pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

/// Fail with an interruption error if a signal arrived.
pub fn check() -> anyhow::Result<()> {
    if interrupted() {
        return Err(crate::error::tagged(
            anyhow::anyhow!("interrupted"),
            crate::error::Exit::Interrupted,
        ));
    }
    Ok(())
}

/// A child process to terminate when a signal arrives; removed again by the guard.
pub struct ChildGuard(i32);

pub fn register_child(pid: i32) -> ChildGuard {
    CHILDREN.lock().unwrap_or_else(|e| e.into_inner()).push(pid);
    if interrupted() {
        kill(pid);
    }
    ChildGuard(pid)
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let mut children = CHILDREN.lock().unwrap_or_else(|e| e.into_inner());
        children.retain(|p| *p != self.0);
    }
}

/// Stop every registered child (the appliance, qemu-img…) without marking an interruption.
pub fn kill_children() {
    let children = CHILDREN.lock().unwrap_or_else(|e| e.into_inner()).clone();
    children.into_iter().for_each(kill);
}

fn kill(pid: i32) {
    use nix::sys::signal::{kill, Signal};
    let _ = kill(nix::unistd::Pid::from_raw(pid), Signal::SIGTERM);
}

/// Install the handlers once, at start-up.
pub fn install() -> anyhow::Result<()> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    use signal_hook::iterator::Signals;
    let mut signals = Signals::new([SIGINT, SIGTERM])?;
    std::thread::Builder::new().name("signals".into()).spawn(move || {
        for _ in signals.forever() {
            INTERRUPTED.store(true, Ordering::SeqCst);
            eprintln!("goldify: interrupted, cleaning up");
            let children = CHILDREN.lock().unwrap_or_else(|e| e.into_inner()).clone();
            children.into_iter().for_each(kill);
        }
    })?;
    Ok(())
}
