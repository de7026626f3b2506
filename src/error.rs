//! Exit codes and the error kind that selects them.
//!
//! Errors travel as `anyhow::Error` with context on every fallible call. Where the kind of
//! failure decides the exit code, the error is wrapped once in [`Failure`]; `main` finds it
//! anywhere in the chain with `downcast_ref`.

use std::fmt;

/// The documented exit codes (README, `goldify --help`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// 0: success.
    Success = 0,
    /// 1: a bug or an unexpected failure.
    Internal = 1,
    /// 2: bad command line or bad recipe (clap's own usage errors also exit 2).
    Usage = 2,
    /// 3: the input disk is missing, unreadable, corrupt, encrypted, or has no (or several) OSes.
    Input = 3,
    /// 4: a step failed (including a policy such as `fstab: fail`).
    Step = 4,
    /// 5: the output could not be written (unwritable directory, full disk, publish target).
    Output = 5,
    /// 6: a verification check failed (`goldify verify`).
    Verify = 6,
    /// 7: the host cannot run goldify (libguestfs, qemu or the appliance unusable).
    Environment = 7,
    /// 130: interrupted by a signal (Ctrl-C, SIGTERM).
    Interrupted = 130,
}

impl Exit {
    pub fn code(self) -> i32 {
        self as i32
    }

    /// The line `goldify --help` prints for this code.
    pub(crate) fn describe(self) -> &'static str {
        match self {
            Exit::Success => "success",
            Exit::Internal => "internal error",
            Exit::Usage => "usage or recipe error",
            Exit::Input => "input disk error (missing, corrupt, encrypted, no OS or several OSes)",
            Exit::Step => "a step failed",
            Exit::Output => "output error (unwritable directory, full disk, publish target)",
            Exit::Verify => "verification failed",
            Exit::Environment => "host environment error (libguestfs, qemu or the appliance unusable)",
            Exit::Interrupted => "interrupted",
        }
    }

    /// The stable name of the kind in the `--json` error object (docs/json.md).
    pub fn kind(self) -> &'static str {
        match self {
            Exit::Success => "success",
            Exit::Internal => "internal",
            Exit::Usage => "usage",
            Exit::Input => "input",
            Exit::Step => "step",
            Exit::Output => "output",
            Exit::Verify => "verify",
            Exit::Environment => "environment",
            Exit::Interrupted => "interrupted",
        }
    }

    /// Every code, in the order `goldify --help` lists them.
    pub(crate) const ALL: [Exit; 9] = [
        Exit::Success,
        Exit::Internal,
        Exit::Usage,
        Exit::Input,
        Exit::Step,
        Exit::Output,
        Exit::Verify,
        Exit::Environment,
        Exit::Interrupted,
    ];
}

/// An error tagged with the exit code it maps to. Displays as its inner chain.
#[derive(Debug)]
pub(crate) struct Failure {
    pub exit: Exit,
    pub error: anyhow::Error,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#}", self.error)
    }
}

impl std::error::Error for Failure {}

/// Tag a result's error with an exit code (the innermost tag wins, see [`exit_of`]).
pub(crate) trait Tag<T> {
    fn tag(self, exit: Exit) -> anyhow::Result<T>;
}

impl<T, E: Into<anyhow::Error>> Tag<T> for Result<T, E> {
    fn tag(self, exit: Exit) -> anyhow::Result<T> {
        self.map_err(|e| tagged(e.into(), exit))
    }
}

pub(crate) fn tagged(error: anyhow::Error, exit: Exit) -> anyhow::Error {
    if error.downcast_ref::<Failure>().is_some() {
        return error;
    }
    anyhow::Error::new(Failure { exit, error })
}

/// The exit code an error maps to (main lets an interruption win over it).
pub fn exit_of(error: &anyhow::Error) -> Exit {
    error
        .downcast_ref::<Failure>()
        .map(|f| f.exit)
        .unwrap_or(Exit::Internal)
}

/// What a command given `--json` prints on stdout when it fails (besides the
/// `goldify: error: …` line on stderr): `{"error": {"message", "exit_code", "kind"}}`, the
/// one error shape of every command (docs/json.md).
pub fn json_error(message: &str, exit: Exit) -> String {
    serde_json::json!({
        "error": {"message": message, "exit_code": exit.code(), "kind": exit.kind()}
    })
    .to_string()
}

/// Shorthand: `bail_tag!(Exit::Input, "no operating system found in {}", path)`.
#[macro_export]
macro_rules! bail_tag {
    ($exit:expr, $($arg:tt)*) => {
        return Err($crate::error::tagged(anyhow::anyhow!($($arg)*), $exit))
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context;

    #[test]
    fn innermost_tag_survives_context() {
        let e: anyhow::Result<()> = Err(anyhow::anyhow!("bad magic")).tag(Exit::Input);
        let e = e.context("opening disk x.img").unwrap_err();
        assert_eq!(exit_of(&e), Exit::Input);
        assert_eq!(format!("{e:#}"), "opening disk x.img: bad magic");
        let e = Err::<(), _>(e).tag(Exit::Output).unwrap_err();
        assert_eq!(exit_of(&e), Exit::Input);
    }

    #[test]
    fn json_error_shape() {
        let v: serde_json::Value = serde_json::from_str(&json_error("x.yaml: bad", Exit::Usage)).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"error": {"message": "x.yaml: bad", "exit_code": 2, "kind": "usage"}})
        );
        let kinds: std::collections::HashSet<&str> = Exit::ALL.iter().map(|e| e.kind()).collect();
        assert_eq!(kinds.len(), Exit::ALL.len(), "kinds are distinct");
    }

    #[test]
    fn untagged_is_internal() {
        assert_eq!(exit_of(&anyhow::anyhow!("x")), Exit::Internal);
    }
}
