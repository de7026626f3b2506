//! The names in a repository: its own files (bookkeeping, which no target writes and no
//! entry names as its archive), which archive names are safe to use, and how names are
//! shown to humans with control and bidi characters escaped (JSON keeps them exact).

use crate::publish::atomic;
use crate::publish::hash::Algo;
use std::borrow::Cow;
use std::path::Path;

pub const METADATA: &str = "metadata.json";
/// The run manifest's default name: a run publishing into the repository writes it there.
pub const MANIFEST_FILE: &str = "goldify-manifest.json";
pub(super) const LOCK: &str = ".metadata.json.lock";

/// The repository's own files: the index, the run manifest, checksum lists, and the lock
/// of each (`.NAME.lock`).
pub fn is_bookkeeping(name: &str) -> bool {
    let base = name
        .strip_prefix('.')
        .and_then(|n| n.strip_suffix(".lock"))
        .unwrap_or(name);
    base == METADATA || base == MANIFEST_FILE || Algo::ALL.iter().any(|a| a.sums_file() == base)
}

/// Names no publish target may write and no entry may name as its archive: bookkeeping
/// and goldify's work files.
pub fn is_reserved(name: &str) -> bool {
    is_bookkeeping(name) || atomic::is_work_file(name)
}

/// Why `name` cannot be an entry's archive, if it cannot.
pub fn unsafe_archive_name(name: &str) -> Option<&'static str> {
    if name.is_empty() || name == "." || name == ".." || name.contains(['/', '\0']) {
        Some("not a plain file name")
    } else if name.chars().any(unprintable) {
        Some("a name with control characters")
    } else if is_reserved(name) {
        Some("a name reserved for the repository's own files")
    } else if name.starts_with('.') {
        Some("a hidden name")
    } else {
        None
    }
}

/// Characters a terminal acts on or that disguise a name: C0 and C1 controls (ESC starts
/// escape sequences, CSI is one in a single character), DEL, and the invisible formatting
/// characters that reorder or hide text (bidi embeddings, overrides and isolates,
/// zero-width marks: the "Trojan Source" set, CVE-2021-42574).
fn unprintable(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{061c}' | '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2060}'..='\u{2064}' | '\u{2066}'..='\u{2069}' | '\u{feff}'
        )
}

/// `s` as it may be printed for humans: unprintable characters as `\u{…}`, backslashes
/// doubled so that the escape cannot be forged.
pub fn shown(s: &str) -> Cow<'_, str> {
    if !s.chars().any(|c| c == '\\' || unprintable(c)) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 16);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            c if unprintable(c) => out.push_str(&format!("\\u{{{:x}}}", u32::from(c))),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// A path as it may be printed for humans (see [`shown`]).
pub fn shown_path(p: &Path) -> String {
    shown(&p.to_string_lossy()).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserved_and_unsafe_names() {
        for n in [
            "metadata.json",
            ".metadata.json.lock",
            "goldify-manifest.json",
            ".goldify-manifest.json.lock",
            "SHA256SUMS",
            "MD5SUMS",
            ".goldify-tmp-x",
            ".goldify-publish-x",
            ".goldify-run-0123456789ab.lock",
        ] {
            assert!(is_reserved(n), "{n}");
            assert!(unsafe_archive_name(n).is_some(), "{n}");
        }
        for n in [
            "",
            ".",
            "..",
            "a/b",
            "../x",
            ".hidden",
            "a\u{1b}b",
            "a\nb",
            "a\u{202e}b",
        ] {
            assert!(unsafe_archive_name(n).is_some(), "{n:?}");
        }
        for n in ["debian-12.xz", "metadata.json.xz", "SHA256SUMS.txt", "a b.tar.gz"] {
            assert_eq!(unsafe_archive_name(n), None, "{n}");
        }
    }

    #[test]
    fn names_are_escaped_for_terminals() {
        assert_eq!(shown("debian-12.xz"), "debian-12.xz");
        assert_eq!(shown("a\u{1b}[2Jb"), "a\\u{1b}[2Jb");
        assert_eq!(shown("x\u{202e}gpj.exe"), "x\\u{202e}gpj.exe");
        assert_eq!(shown("\u{9b}\u{7}\u{7f}\n"), "\\u{9b}\\u{7}\\u{7f}\\u{a}");
        assert_eq!(shown("a\\u{1b}"), "a\\\\u{1b}", "a literal escape is told apart");
        assert_eq!(shown("é ü 日本"), "é ü 日本");
    }
}
