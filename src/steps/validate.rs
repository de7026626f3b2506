//! Option values checked as the recipe is read (serde `deserialize_with`), so that
//! `goldify check` refuses them, and `goldify run` stops before the appliance starts, with
//! the recipe's file:line:col. Each step's `apply` checks again (defence in depth: a
//! variable's value may spell `${` literally).
//!
//! Guest paths are taken literally, never resolved: they must be absolute, with no `.`,
//! `..` or empty component and no NUL byte (guest::components). A part written as a
//! variable (`${dir}/x`) is checked once the recipe's variables are expanded: the recipe
//! module rebuilds the step from the expanded options, which runs these checks again.

use serde::de::{self, Deserializer, SeqAccess, Visitor};
use std::fmt;

/// A check of one option value; the message becomes the recipe error.
pub(crate) type Check = fn(&str) -> Result<(), String>;

/// One literal guest path naming a file or a link: `/` itself is refused.
pub(crate) fn file_path<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    string(d, |p| {
        check_path(p)?;
        if p == "/" {
            return Err("path \"/\" is the guest's root directory".into());
        }
        Ok(())
    })
}

/// A directory to create: trailing slashes are allowed; `/` itself is refused.
pub(crate) fn dir_path<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    string(d, |p| {
        let trimmed = p.trim_end_matches('/');
        if trimmed.is_empty() && !p.is_empty() {
            return Err("path \"/\" is the guest's root directory, which exists".into());
        }
        check_path(trimmed)
    })
}

/// A glob (`*`, `?`, `[..]` per component, `**` for any depth) over guest paths.
pub(crate) fn glob<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    string(d, check_glob)
}

/// Globs over guest paths.
pub(crate) fn globs<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    strings(d, check_glob)
}

/// Globs of paths to delete: besides [`globs`], none may if the root or every entry
/// at some depth (`/`, `/*`, `/**`, `/*/*`): that is the whole guest, never a cleanup.
pub(crate) fn deletable_globs<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    strings(d, |p| {
        check_glob(p)?;
        let literal = p
            .split('/')
            .any(|c| c.contains("${") || c.chars().any(|ch| ch != '*' && ch != '?'));
        if !literal {
            return Err(format!("path {p:?} would delete the whole guest; name what to delete"));
        }
        Ok(())
    })
}

/// Globs matched against guest paths (logs' `keep`): only their syntax is checked.
pub(crate) fn patterns<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    strings(d, |p| {
        if !p.contains("${") {
            glob::Pattern::new(p).map_err(|e| format!("bad glob {p:?}: {e}"))?;
        }
        Ok(())
    })
}

/// A shell command or script: something besides blanks.
pub(crate) fn not_blank<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    string(d, |s| {
        if s.trim().is_empty() {
            return Err("this option is empty".into());
        }
        Ok(())
    })
}

/// A symlink's target: stored as given (goldify never follows it), but not empty and
/// without a NUL byte, which symlink(2) cannot store.
pub(crate) fn link_target<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    string(d, |s| {
        if s.is_empty() || s.contains('\0') {
            return Err("a symlink target must be a non-empty path without NUL bytes".into());
        }
        Ok(())
    })
}

/// A Rust regex, compiled once here to report its syntax error with the recipe's position.
pub(crate) fn regex<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    string(d, |s| {
        if !s.contains("${") {
            regex::Regex::new(s).map_err(|e| format!("bad regex {s:?}: {e}"))?;
        }
        Ok(())
    })
}

/// A file name made only of letters, digits, `.`, `_` and `-`, not starting with a dot:
/// it becomes one path component, never a way out of its directory.
pub(crate) fn is_plain_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
}

pub(crate) fn plain_name<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    d.deserialize_option(Optional(|n| {
        if n.contains("${") || is_plain_name(n) {
            return Ok(());
        }
        Err(format!(
            "name {n:?}: use letters, digits, . _ - only (at most 64, not starting with a dot)"
        ))
    }))
}

/// A string option passed through `check`. The check runs inside the deserializer's own
/// string call, so the error carries the value's line and column, not its step's.
pub(crate) fn string<'de, D: Deserializer<'de>>(d: D, check: Check) -> Result<String, D::Error> {
    d.deserialize_string(Checked(check))
}

/// A list of strings, each passed through `check` (each error at its own element).
pub(crate) fn strings<'de, D: Deserializer<'de>>(d: D, check: Check) -> Result<Vec<String>, D::Error> {
    d.deserialize_seq(CheckedList(check))
}

struct Checked(Check);

impl Visitor<'_> for Checked {
    type Value = String;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a string")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<String, E> {
        (self.0)(v).map_err(E::custom)?;
        Ok(v.to_string())
    }
}

impl<'de> de::DeserializeSeed<'de> for Checked {
    type Value = String;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<String, D::Error> {
        d.deserialize_string(self)
    }
}

struct CheckedList(Check);

impl<'de> Visitor<'de> for CheckedList {
    type Value = Vec<String>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a list of strings")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<String>, A::Error> {
        let mut out = Vec::new();
        while let Some(s) = seq.next_element_seed(Checked(self.0))? {
            out.push(s);
        }
        Ok(out)
    }
}

struct Optional(Check);

impl<'de> Visitor<'de> for Optional {
    type Value = Option<String>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a string")
    }

    fn visit_none<E: de::Error>(self) -> Result<Option<String>, E> {
        Ok(None)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Option<String>, E> {
        Ok(None)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Option<String>, D::Error> {
        d.deserialize_string(Checked(self.0)).map(Some)
    }
}

/// Absolute and normalized; parts naming a variable wait for its expansion.
fn check_path(p: &str) -> Result<(), String> {
    if p.contains('\0') {
        return Err(format!("path {p:?} contains a NUL byte"));
    }
    if !p.starts_with('/') && !p.starts_with("${") {
        return Err(format!("path {p:?} is not absolute (guest paths start with /)"));
    }
    if p == "/" {
        return Ok(());
    }
    for c in p.split('/').skip(1).filter(|c| !c.contains("${")) {
        match c {
            "" => return Err(format!("path {p:?} has an empty component (// or a trailing /)")),
            "." | ".." => {
                return Err(format!(
                    "path {p:?} has a {c:?} component: guest paths are taken literally, never resolved"
                ))
            }
            _ => {}
        }
    }
    Ok(())
}

/// [`check_path`], and each wildcard component is a valid glob.
fn check_glob(p: &str) -> Result<(), String> {
    check_path(p)?;
    for c in p
        .split('/')
        .filter(|c| !c.contains("${") && *c != "**" && c.contains(['*', '?', '[']))
    {
        glob::Pattern::new(c).map_err(|e| format!("path {p:?}: bad glob {c:?}: {e}"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        assert!(check_path("/etc/shadow").is_ok());
        assert!(check_path("/").is_ok());
        assert!(check_path("${root}/x/${name}").is_ok());
        assert!(check_path("/${a}/../x").is_err());
        assert!(check_path("/etc/..").is_err());
        assert!(check_path("").is_err());
        assert!(check_path("/a\0b").is_err());
        assert!(check_glob("/var/log/**/*.gz").is_ok());
        assert!(check_glob("/var/log/[").is_err());
        assert!(is_plain_name("10-resize.sh") && !is_plain_name("..") && !is_plain_name("a/b"));
    }
}
