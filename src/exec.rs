//! The one way goldify starts external programs (qemu-img, qemu, xz for tests…): the command
//! is logged, stdin is closed, stdout and stderr are captured, the child is stopped on Ctrl-C,
//! and a failure carries the command line and the tail of stderr. Long-running children (a
//! booting clone) go through [`run_limited`], which also stops them at a time limit.

use anyhow::{bail, Context, Result};
use std::ffi::OsString;

#[derive(Debug)]
pub struct Output {
    pub stdout: Vec<u8>,
}

/// Run `program args…` to completion; fail unless it exits 0.
pub fn run<I, S>(program: &str, args: I) -> Result<Output>
where
    I: IntoIterator<Item = S>,
    S: Into<OsString>,
{
    let child = start(program, args)?;
    tracing::debug!("running {}", child.line);
    let out = child
        .handle
        .into_output()
        .with_context(|| format!("waiting for {}", child.line))?;
    finish(&child.line, out)
}

/// A started child, registered so that Ctrl-C stops it.
struct Child {
    line: String,
    handle: duct::Handle,
    _guards: Vec<crate::interrupt::ChildGuard>,
}

fn start<I, S>(program: &str, args: I) -> Result<Child>
where
    I: IntoIterator<Item = S>,
    S: Into<OsString>,
{
    let args: Vec<OsString> = args.into_iter().map(Into::into).collect();
    let line = command_line(program, &args);
    let handle = duct::cmd(program, &args)
        .stdin_null()
        .stdout_capture()
        .stderr_capture()
        .unchecked()
        .start()
        .with_context(|| format!("starting {program} (is it installed?)"))?;
    let guards = handle
        .pids()
        .into_iter()
        .map(|p| crate::interrupt::register_child(p as i32))
        .collect();
    Ok(Child {
        line,
        handle,
        _guards: guards,
    })
}

/// The child's output, or an error with its command line and the tail of its stderr.
fn finish(line: &str, out: std::process::Output) -> Result<Output> {
    crate::interrupt::check()?;
    if !out.status.success() {
        bail!(
            "{line} failed ({}): {}",
            out.status,
            tail(&out.stderr, 3).unwrap_or_else(|| "no error output".into())
        );
    }
    Ok(Output { stdout: out.stdout })
}

/// Raised by [`run_limited`] when the child ran past its time limit and was stopped.
#[derive(Debug, thiserror::Error)]
#[error("{line} was still running after {seconds} s and was stopped")]
pub struct TimedOut {
    pub line: String,
    pub seconds: u64,
}

/// Like [`run`], for long-running children (a booting VM): the child is killed once
/// `limit` has passed, and the error is then a [`TimedOut`]. Ctrl-C stops it as well.
pub fn run_limited<I, S>(program: &str, args: I, limit: std::time::Duration) -> Result<Output>
where
    I: IntoIterator<Item = S>,
    S: Into<OsString>,
{
    let Child { line, handle, _guards } = start(program, args)?;
    tracing::debug!("running {line} (time limit {} s)", limit.as_secs());
    let started = std::time::Instant::now();
    loop {
        if handle
            .try_wait()
            .with_context(|| format!("waiting for {line}"))?
            .is_some()
        {
            break;
        }
        if started.elapsed() >= limit || crate::interrupt::interrupted() {
            let _ = handle.kill();
            crate::interrupt::check()?;
            return Err(TimedOut {
                line,
                seconds: limit.as_secs(),
            }
            .into());
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let out = handle.into_output().with_context(|| format!("waiting for {line}"))?;
    finish(&line, out)
}

fn command_line(program: &str, args: &[OsString]) -> String {
    let mut s = program.to_string();
    for a in args {
        s.push(' ');
        let a = a.to_string_lossy();
        if a.contains(|c: char| c.is_whitespace()) || a.is_empty() {
            s.push_str(&format!("{a:?}"));
        } else {
            s.push_str(&a);
        }
    }
    s
}

/// The last `lines` non-empty lines of a program's output, joined on one line.
pub fn tail(bytes: &[u8], lines: usize) -> Option<String> {
    let text = String::from_utf8_lossy(bytes);
    let kept: Vec<&str> = text.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
    if kept.is_empty() {
        return None;
    }
    Some(kept[kept.len().saturating_sub(lines)..].join(" / "))
}

/// Whether a program is on PATH.
pub fn which(program: &str) -> Option<std::path::PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(program))
        .find(|p| p.is_file())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failure_names_command_and_stderr() {
        let err = run("sh", ["-c", "echo first >&2; echo 'bad thing' >&2; exit 3"]).unwrap_err();
        let msg = format!("{err:#}");
        assert!(msg.contains("sh -c"), "{msg}");
        assert!(msg.contains("first / bad thing"), "{msg}");
    }

    #[test]
    fn limited_run_stops_a_child_that_overruns() {
        let t = std::time::Instant::now();
        let err = run_limited("sleep", ["30"], std::time::Duration::from_millis(300)).unwrap_err();
        assert!(err.downcast_ref::<TimedOut>().is_some(), "{err:#}");
        assert!(t.elapsed() < std::time::Duration::from_secs(10));
        let out = run_limited("sh", ["-c", "printf ok"], std::time::Duration::from_secs(10)).unwrap();
        assert_eq!(out.stdout, b"ok");
        assert!(run_limited("sh", ["-c", "exit 2"], std::time::Duration::from_secs(10)).is_err());
    }

    #[test]
    fn success_captures_stdout() {
        let out = run("sh", ["-c", "printf hi"]).unwrap();
        assert_eq!(out.stdout, b"hi");
    }
}
