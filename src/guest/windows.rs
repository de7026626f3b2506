//! Windows guests: their OS facts (what libguestfs' inspection reads from the registry,
//! turned into goldify's terms) and Windows text (CRLF line ends).
//!
//! libguestfs finds a Windows root by its %SystemRoot% (`/Windows` with `System32`,
//! `System32/config` and `System32/cmd.exe`), the architecture from cmd.exe's PE header,
//! the product name and version from `HKLM\SOFTWARE\Microsoft\Windows NT\CurrentVersion`
//! and the hostname from `HKLM\SYSTEM\<current control set>\Services\Tcpip\Parameters`
//! (daemon/inspect_fs_windows.ml). goldify's quick probe knows only Linux roots, so a
//! Windows guest is always found by that fallback.

use super::facts::{Family, Init, OsFacts};

/// libguestfs' answers for a Windows root (`inspect_get_*`); `None` where it had none.
#[derive(Debug, Default)]
pub(crate) struct Inspected {
    pub(crate) product_name: Option<String>,
    pub(crate) major: Option<i32>,
    pub(crate) minor: Option<i32>,
    pub(crate) arch: Option<String>,
    pub(crate) hostname: Option<String>,
    pub(crate) systemroot: Option<String>,
    pub(crate) current_control_set: Option<String>,
}

/// The OS facts of a Windows root from libguestfs' inspection.
pub(crate) fn facts(root: &str, mountpoints: Vec<(String, String)>, i: Inspected) -> OsFacts {
    let known = |v: Option<String>| v.filter(|v| !v.is_empty() && v != "unknown");
    OsFacts {
        root: root.to_string(),
        os_type: "windows".into(),
        distro: "windows".into(),
        family: Family::Windows,
        major: i.major.unwrap_or(0),
        minor: i.minor.unwrap_or(0),
        product_name: known(i.product_name).unwrap_or_else(|| "Windows".into()),
        arch: known(i.arch).unwrap_or_else(|| "unknown".into()),
        package_format: "unknown".into(),
        package_management: "unknown".into(),
        hostname: known(i.hostname).unwrap_or_else(|| "unknown".into()),
        init: Init::Unknown,
        mountpoints,
        cloud_init: false,
        selinux: false,
        systemroot: known(i.systemroot).unwrap_or_default(),
        current_control_set: known(i.current_control_set).unwrap_or_default(),
    }
}

/// `text` with every line ending as Windows expects it in its text files (`.cmd`, `.ps1`,
/// `.ini`): CRLF. Lone LFs and lone CRs become CRLF, existing CRLFs stay as they are, so
/// the result is the same whatever line ends the source had (a recipe file checked out
/// with either).
pub fn crlf(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + text.len() / 16);
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\r' => {
                if chars.peek() == Some(&'\n') {
                    chars.next();
                }
                out.push_str("\r\n");
            }
            '\n' => out.push_str("\r\n"),
            c => out.push(c),
        }
    }
    out
}

/// `path` as the guest spells it, each component matched without regard to (ASCII) case
/// among the names `list` gives for its directory, as libguestfs' `case_sensitive_path`
/// matches them; an exact match wins over another spelling. From the first component
/// that matches nothing on, the rest is kept as given (it does not exist yet).
pub(crate) fn case_fold_path(path: &str, list: &dyn Fn(&str) -> Vec<String>) -> String {
    let mut out = String::new();
    let mut found = true;
    for c in path.split('/').filter(|c| !c.is_empty()) {
        let dir = if out.is_empty() { "/" } else { out.as_str() };
        let name = if found {
            let names = list(dir);
            names
                .iter()
                .find(|n| n.as_str() == c)
                .or_else(|| names.iter().find(|n| n.eq_ignore_ascii_case(c)))
                .cloned()
        } else {
            None
        };
        found = name.is_some();
        out.push('/');
        out.push_str(name.as_deref().unwrap_or(c));
    }
    if out.is_empty() {
        out.push('/');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn case_fold_matches_each_existing_component() {
        let list = |dir: &str| -> Vec<String> {
            match dir {
                "/" => vec!["Windows".into(), "Users".into()],
                "/Windows" => vec!["Temp".into(), "temp".into(), "System32".into()],
                "/Windows/System32" => vec!["config".into()],
                _ => vec![],
            }
        };
        assert_eq!(
            case_fold_path("/windows/system32/CONFIG", &list),
            "/Windows/System32/config"
        );
        // An exact spelling wins where two names differ only in case.
        assert_eq!(case_fold_path("/WINDOWS/temp", &list), "/Windows/temp");
        assert_eq!(case_fold_path("/WINDOWS/TEMP", &list), "/Windows/Temp");
        // What does not exist keeps the caller's spelling from there on.
        assert_eq!(case_fold_path("/users/NEW/System32", &list), "/Users/NEW/System32");
        assert_eq!(case_fold_path("/", &list), "/");
    }

    #[test]
    fn crlf_normalizes_every_line_end() {
        assert_eq!(crlf("a\nb\n"), "a\r\nb\r\n");
        assert_eq!(crlf("a\r\nb\r\n"), "a\r\nb\r\n");
        assert_eq!(crlf("a\rb"), "a\r\nb");
        assert_eq!(
            crlf("mixed\r\nlf\nlone cr\r\r\nend"),
            "mixed\r\nlf\r\nlone cr\r\n\r\nend"
        );
        assert_eq!(crlf("no newline"), "no newline");
        assert_eq!(crlf(""), "");
        assert_eq!(crlf("\n\n"), "\r\n\r\n");
        // Idempotent, and not confused by text that is not ASCII.
        let once = crlf("échec\nüber\r\n");
        assert_eq!(crlf(&once), once);
        assert_eq!(once, "échec\r\nüber\r\n");
    }

    #[test]
    fn facts_from_libguestfs_answers() {
        let f = facts(
            "/dev/sda2",
            vec![("/".into(), "/dev/sda2".into())],
            Inspected {
                product_name: Some("Windows Server 2022 Standard".into()),
                major: Some(10),
                minor: Some(0),
                arch: Some("x86_64".into()),
                hostname: Some("WIN-1".into()),
                systemroot: Some("/Windows".into()),
                current_control_set: Some("ControlSet002".into()),
            },
        );
        assert_eq!((f.os_type.as_str(), f.distro.as_str()), ("windows", "windows"));
        assert_eq!(f.family, Family::Windows);
        assert!(!f.family.is_linux());
        assert_eq!((f.major, f.minor), (10, 0));
        assert_eq!(f.product_name, "Windows Server 2022 Standard");
        assert_eq!((f.arch.as_str(), f.hostname.as_str()), ("x86_64", "WIN-1"));
        assert_eq!(f.systemroot, "/Windows");
        assert_eq!(f.current_control_set, "ControlSet002");
        assert_eq!(f.init, Init::Unknown);
        assert_eq!(f.root, "/dev/sda2");
    }

    #[test]
    fn facts_when_the_registry_said_nothing() {
        let f = facts("/dev/sda1", vec![], Inspected::default());
        assert_eq!(f.product_name, "Windows");
        assert_eq!((f.arch.as_str(), f.hostname.as_str()), ("unknown", "unknown"));
        assert_eq!((f.major, f.minor), (0, 0));
        assert!(f.current_control_set.is_empty() && f.systemroot.is_empty());
    }
}
