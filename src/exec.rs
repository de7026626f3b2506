//! The one way goldify starts external programs (qemu-img, qemu, xz for tests…): the command
//! is logged, stdin is closed, stdout and stderr are captured, the child is stopped on Ctrl-C,
//! and a failure carries the command line and the tail of stderr.

use anyhow::{bail, Context, Result};
use std::ffi::OsString;

#[derive(Debug)]
pub struct Output {
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

/// Run `program args…` to completion; fail unless it exits 0.
pub fn run<I, S>(program: &str, args: I) -> Result<Output>
where
    I: IntoIterator<Item = S>,
    S: Into<OsString>,
{
    let args: Vec<OsString> = args.into_iter().map(Into::into).collect();
    let line = command_line(program, &args);
    tracing::debug!("running {line}");
    let handle = duct::cmd(program, &args)
        .stdin_null()
        .stdout_capture()
        .stderr_capture()
        .unchecked()
        .start()
        .with_context(|| format!("starting {program} (is it installed?)"))?;
    let _guards: Vec<_> = handle
        .pids()
        .into_iter()
        .map(|p| crate::interrupt::register_child(p as i32))
        .collect();
    let out = handle.into_output().with_context(|| format!("waiting for {line}"))?;
    crate::interrupt::check()?;
    if !out.status.success() {
        bail!(
            "{line} failed ({}): {}",
            out.status,
            tail(&out.stderr, 3).unwrap_or_else(|| "no error output".into())
        );
    }
    Ok(Output {
        stdout: out.stdout,
        stderr: out.stderr,
    })
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
    fn success_captures_stdout() {
        let out = run("sh", ["-c", "printf hi"]).unwrap();
        assert_eq!(out.stdout, b"hi");
    }
}
