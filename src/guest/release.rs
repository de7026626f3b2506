//! Which distribution and version a Linux guest is, and its hostname, read from the files
//! libguestfs reads, in the order it reads them (libguestfs 1.48,
//! daemon/inspect_fs_unix.ml `linux_root_tests` and `check_hostname_linux`): os-release
//! first, then lsb-release, then each distribution's own release file. goldify differs
//! on purpose in two places, both named where they happen: an os-release ID libguestfs
//! 1.48 does not know (almalinux, ol…) is taken as it is rather than skipped, and
//! /etc/fedora-release is read (libguestfs only reads Fedora's /etc/redhat-release link).

use regex::Regex;
use std::sync::LazyLock;

/// What the release files say. `version` is (major, minor); `None` where no file named it.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(super) struct Release {
    pub(super) distro: Option<String>,
    pub(super) version: Option<(i32, i32)>,
    pub(super) product_name: Option<String>,
    /// os-release's ID_LIKE, for the family of a distribution goldify does not know.
    pub(super) id_like: Option<String>,
}

/// `KEY=value` lines (shell-style quotes removed), as os-release(5) and lsb-release have.
fn key_values(text: &str) -> Vec<(&str, String)> {
    text.lines()
        .filter_map(|l| {
            let (k, v) = l.trim().split_once('=')?;
            let v = v.trim();
            let v = v
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .or_else(|| v.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')))
                .unwrap_or(v);
            Some((k.trim(), v.to_string()))
        })
        .collect()
}

/// The first "N.M" (or lone "N") anywhere in `s`: libguestfs'
/// `parse_version_from_major_minor` (daemon/inspect_utils.ml).
fn major_minor(s: &str) -> Option<(i32, i32)> {
    static MM: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"(\d+)\.(\d+)").expect("static regex"));
    static M: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"(\d+)").expect("static regex"));
    if let Some(c) = MM.captures(s) {
        return Some((c[1].parse().ok()?, c[2].parse().ok()?));
    }
    M.captures(s).and_then(|c| Some((c[1].parse().ok()?, 0)))
}

/// libguestfs' distro name for an os-release ID (`distro_of_os_release_id`); IDs it does
/// not know are kept as they are (libguestfs 1.48 skips them and ends up at
/// /etc/redhat-release, "redhat-based", for AlmaLinux).
fn distro_of_os_release_id(id: &str) -> String {
    match id {
        "alpine" => "alpinelinux",
        "arch" => "archlinux",
        "kali" => "kalilinux",
        "pld" => "pldlinux",
        "void" => "voidlinux",
        "sled" => "sles",
        "ol" => "oraclelinux",
        s if s.starts_with("opensuse-") => "opensuse",
        s => s,
    }
    .to_string()
}

/// Rolling distributions have no VERSION_ID; libguestfs says 0.0 for them.
const ROLLING: [&str; 3] = ["archlinux", "gentoo", "voidlinux"];

/// os-release, accepted as libguestfs accepts it (`parse_os_release`): it must name the
/// distribution and a product name, and a version unless the distribution is rolling; for
/// Debian, CentOS and Rocky a VERSION_ID without minor sends the reader on to the
/// release files, which have the point release.
fn os_release(text: &str) -> Option<Release> {
    let mut r = Release::default();
    for (k, v) in key_values(text) {
        match k {
            "ID" if !v.is_empty() => r.distro = Some(distro_of_os_release_id(&v)),
            "PRETTY_NAME" if !v.is_empty() => r.product_name = Some(v),
            "VERSION_ID" => r.version = major_minor(&v),
            "ID_LIKE" => r.id_like = Some(v),
            _ => {}
        }
    }
    let distro = r.distro.clone()?;
    r.product_name.as_ref()?;
    match r.version {
        Some((_, 0)) if ["debian", "centos", "rocky"].contains(&distro.as_str()) => None,
        None if ROLLING.contains(&distro.as_str()) => {
            r.version = Some((0, 0));
            Some(r)
        }
        None => None,
        Some(_) => Some(r),
    }
}

/// lsb-release (`parse_lsb_release`): the distributions that name themselves there.
fn lsb_release(text: &str) -> Option<Release> {
    let mut r = Release::default();
    for (k, v) in key_values(text) {
        match k {
            "DISTRIB_ID" => {
                r.distro = match v.as_str() {
                    "Ubuntu" => Some("ubuntu".into()),
                    "LinuxMint" => Some("linuxmint".into()),
                    "Mageia" => Some("mageia".into()),
                    "CoreOS" => Some("coreos".into()),
                    _ => None,
                }
            }
            "DISTRIB_RELEASE" => r.version = major_minor(&v),
            "DISTRIB_DESCRIPTION" => r.product_name = Some(v),
            _ => {}
        }
    }
    // libguestfs also stops at a file with only a description; a file that names no
    // distribution it knows leaves goldify to the release files instead.
    r.distro.is_some().then_some(r)
}

/// (release file, pattern with major and optional minor, distro): the release files in
/// libguestfs' order. A pattern that does not match moves on to the next line.
static RELEASE_FILES: LazyLock<Vec<(&str, Option<Regex>, &str)>> = LazyLock::new(|| {
    let re = |s: &str| Some(Regex::new(s).expect("static regex"));
    let update = |name: &str| re(&format!(r"{name}.*release (\d+).*Update (\d+)"));
    let release = |name: &str| re(&format!(r"{name}.*release (\d+)(?:\.(\d+))?"));
    vec![
        ("/etc/oracle-release", update("Oracle Linux"), "oraclelinux"),
        ("/etc/oracle-release", release("Oracle Linux"), "oraclelinux"),
        ("/etc/centos-release", update("CentOS"), "centos"),
        ("/etc/centos-release", release("CentOS"), "centos"),
        ("/etc/rocky-release", release("Rocky Linux"), "rocky"),
        ("/etc/altlinux-release", None, "altlinux"),
        // Not in libguestfs 1.48: Fedora ships /etc/redhat-release as a link to this
        // file, so a guest without the link is still Fedora.
        ("/etc/fedora-release", re(r"Fedora release (\d+)"), "fedora"),
        ("/etc/redhat-release", re(r"Fedora release (\d+)"), "fedora"),
        ("/etc/redhat-release", update("Red Hat"), "rhel"),
        ("/etc/redhat-release", release("Red Hat"), "rhel"),
        ("/etc/redhat-release", update("CentOS"), "centos"),
        ("/etc/redhat-release", release("CentOS"), "centos"),
        ("/etc/redhat-release", release("Rocky Linux"), "rocky"),
        ("/etc/redhat-release", update("Scientific Linux"), "scientificlinux"),
        ("/etc/redhat-release", release("Scientific Linux"), "scientificlinux"),
        ("/etc/redhat-release", None, "redhat-based"),
        ("/etc/debian_version", None, "debian"),
        ("/etc/pardus-release", None, "pardus"),
        ("/etc/arch-release", None, "archlinux"),
        ("/etc/gentoo-release", None, "gentoo"),
        ("/etc/SuSE-release", None, "suse-based"),
        ("/etc/alpine-release", None, "alpinelinux"),
    ]
});

/// A release file's first line read as libguestfs' `parse_generic` reads it.
fn generic(first_line: &str, pattern: Option<&Regex>, distro: &str) -> Option<Release> {
    let version = match pattern {
        Some(re) => {
            let c = re.captures(first_line)?;
            let major = c.get(1).and_then(|m| m.as_str().parse().ok());
            let minor = c.get(2).and_then(|m| m.as_str().parse().ok());
            major.map(|m| (m, minor.unwrap_or(0)))
        }
        None => major_minor(first_line),
    };
    Some(Release {
        distro: Some(distro.into()),
        version,
        product_name: (!first_line.is_empty()).then(|| first_line.to_string()),
        id_like: None,
    })
}

/// SUSE's own release file (`parse_suse_release`): SLES or openSUSE by the first line,
/// the version on the second (and SLES' patch level on the third).
fn suse_release(text: &str) -> Option<Release> {
    let lines: Vec<&str> = text.lines().collect();
    let first = *lines.first()?;
    let value = |i: usize, key: &str| {
        lines
            .get(i)
            .and_then(|l| l.strip_prefix(key))
            .and_then(|v| v.trim().parse::<i32>().ok())
    };
    let (distro, version) = if first.starts_with("SUSE Linux Enterprise ")
        || first.starts_with("SUSE LINUX Enterprise ")
        || first.starts_with("Novell Linux Desktop ")
    {
        let major = value(1, "VERSION = ");
        ("sles", major.map(|m| (m, value(2, "PATCHLEVEL = ").unwrap_or(0))))
    } else if ["openSUSE ", "SuSE Linux ", "SUSE LINUX "]
        .iter()
        .any(|p| first.starts_with(p))
    {
        ("opensuse", lines.get(1).and_then(|l| major_minor(l)))
    } else {
        ("suse-based", None)
    };
    Some(Release {
        distro: Some(distro.into()),
        version,
        product_name: Some(first.to_string()),
        id_like: None,
    })
}

/// The distribution as libguestfs would name it, from whatever of its files `read`
/// finds (`read` gives a file's text, `None` when it is not a regular file).
pub(super) fn detect(read: &dyn Fn(&str) -> Option<String>) -> Release {
    if let Some(r) = read("/etc/os-release").and_then(|t| os_release(&t)) {
        return r;
    }
    if let Some(r) = read("/etc/lsb-release").and_then(|t| lsb_release(&t)) {
        return r;
    }
    // ID_LIKE still tells the family of an os-release the tests above passed over.
    let id_like = read("/etc/os-release").and_then(|t| {
        key_values(&t)
            .into_iter()
            .find(|(k, _)| *k == "ID_LIKE")
            .map(|(_, v)| v)
    });
    let mut texts: Vec<(&str, Option<String>)> = Vec::new();
    for (file, pattern, distro) in RELEASE_FILES.iter() {
        let text = match texts.iter().find(|(f, _)| f == file) {
            Some((_, t)) => t.clone(),
            None => {
                let t = read(file);
                texts.push((file, t.clone()));
                t
            }
        };
        let Some(text) = text else { continue };
        let found = if *file == "/etc/SuSE-release" {
            suse_release(&text)
        } else {
            generic(text.lines().next().unwrap_or("").trim(), pattern.as_ref(), distro)
        };
        if let Some(r) = found {
            return Release { id_like, ..r };
        }
    }
    // Nothing libguestfs would accept: what os-release says, however little (an ID
    // without PRETTY_NAME is still the guest's own word), before "unknown".
    let mut r = Release {
        id_like,
        ..Release::default()
    };
    for (k, v) in read("/etc/os-release").as_deref().map(key_values).unwrap_or_default() {
        match k {
            "ID" if !v.is_empty() => r.distro = Some(distro_of_os_release_id(&v)),
            "VERSION_ID" => r.version = major_minor(&v),
            _ => {}
        }
    }
    r
}

/// The hostname where libguestfs looks (`check_hostname_linux`): the first line of
/// /etc/HOSTNAME (old Debian, SUSE) or /etc/hostname that is neither empty nor a comment,
/// else `HOSTNAME=` in /etc/sysconfig/network (Red Hat before RHEL 7 / Fedora 18).
pub(super) fn hostname(read: &dyn Fn(&str) -> Option<String>) -> Option<String> {
    for file in ["/etc/HOSTNAME", "/etc/hostname"] {
        let first = read(file).and_then(|t| {
            t.lines()
                .map(str::trim)
                .find(|l| !l.is_empty() && !l.starts_with('#'))
                .map(str::to_string)
        });
        if first.is_some() {
            return first;
        }
    }
    read("/etc/sysconfig/network").and_then(|t| {
        key_values(&t)
            .into_iter()
            .find(|(k, v)| *k == "HOSTNAME" && !v.is_empty())
            .map(|(_, v)| v)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(files: &[(&str, &str)]) -> Release {
        detect(&|p| files.iter().find(|(f, _)| *f == p).map(|(_, t)| t.to_string()))
    }

    fn is(r: &Release, distro: &str, version: (i32, i32)) {
        assert_eq!((r.distro.as_deref(), r.version), (Some(distro), Some(version)), "{r:?}");
    }

    #[test]
    fn ubuntu_from_lsb_release_when_os_release_is_missing() {
        let lsb = "DISTRIB_ID=Ubuntu\nDISTRIB_RELEASE=20.04\nDISTRIB_CODENAME=focal\nDISTRIB_DESCRIPTION=\"Ubuntu 20.04.6 LTS\"\n";
        let r = with(&[("/etc/lsb-release", lsb), ("/etc/debian_version", "bullseye/sid\n")]);
        is(&r, "ubuntu", (20, 4));
        assert_eq!(r.product_name.as_deref(), Some("Ubuntu 20.04.6 LTS"));
        // os-release first, lsb-release second.
        let os = "ID=linuxmint\nPRETTY_NAME=\"Linux Mint 21\"\nVERSION_ID=\"21\"\n";
        is(
            &with(&[("/etc/os-release", os), ("/etc/lsb-release", lsb)]),
            "linuxmint",
            (21, 0),
        );
        // An lsb-release naming a distribution libguestfs does not know: the release files.
        let r = with(&[
            ("/etc/lsb-release", "DISTRIB_ID=Debian\n"),
            ("/etc/debian_version", "11.9\n"),
        ]);
        is(&r, "debian", (11, 9));
    }

    #[test]
    fn debian_point_release_from_debian_version() {
        let os = "ID=debian\nVERSION_ID=\"12\"\nPRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\n";
        let r = with(&[("/etc/os-release", os), ("/etc/debian_version", "12.5\n")]);
        is(&r, "debian", (12, 5));
        assert_eq!(r.product_name.as_deref(), Some("12.5"));
        // A testing Debian's version file names no number.
        let r = with(&[("/etc/debian_version", "trixie/sid\n")]);
        assert_eq!((r.distro.as_deref(), r.version), (Some("debian"), None));
    }

    #[test]
    fn arch_from_os_release_or_its_empty_release_file() {
        let os = "NAME=\"Arch Linux\"\nPRETTY_NAME=\"Arch Linux\"\nID=arch\nBUILD_ID=rolling\n";
        is(&with(&[("/etc/os-release", os)]), "archlinux", (0, 0));
        let r = with(&[("/etc/arch-release", "")]);
        assert_eq!((r.distro.as_deref(), r.version), (Some("archlinux"), None));
    }

    #[test]
    fn red_hat_family_release_files() {
        let r = with(&[("/etc/fedora-release", "Fedora release 38 (Thirty Eight)\n")]);
        is(&r, "fedora", (38, 0));
        assert_eq!(r.product_name.as_deref(), Some("Fedora release 38 (Thirty Eight)"));
        let rh = |t: &str| with(&[("/etc/redhat-release", t)]);
        is(&rh("Fedora release 33 (Thirty Three)"), "fedora", (33, 0));
        is(&rh("Red Hat Enterprise Linux release 8.9 (Ootpa)"), "rhel", (8, 9));
        is(&rh("Red Hat Enterprise Linux Server release 7 (Maipo)"), "rhel", (7, 0));
        is(
            &rh("Red Hat Enterprise Linux AS release 4 (Nahant Update 8)"),
            "rhel",
            (4, 8),
        );
        is(&rh("CentOS Linux release 7.9.2009 (Core)"), "centos", (7, 9));
        is(&rh("Rocky Linux release 9.3 (Blue Onyx)"), "rocky", (9, 3));
        is(
            &rh("Scientific Linux release 6.10 (Carbon)"),
            "scientificlinux",
            (6, 10),
        );
        // libguestfs 1.48 does not know AlmaLinux's release file: redhat-based.
        is(&rh("AlmaLinux release 9.4 (Seafoam Ocelot)"), "redhat-based", (9, 4));
        // CentOS' os-release has the major only: its release file has the minor.
        let os = "ID=\"centos\"\nVERSION_ID=\"7\"\nPRETTY_NAME=\"CentOS Linux 7 (Core)\"\n";
        let r = with(&[
            ("/etc/os-release", os),
            ("/etc/centos-release", "CentOS Linux release 7.9.2009 (Core)"),
        ]);
        is(&r, "centos", (7, 9));
    }

    #[test]
    fn suse_release_file() {
        let sles = "SUSE Linux Enterprise Server 11 (x86_64)\nVERSION = 11\nPATCHLEVEL = 4\n";
        is(&with(&[("/etc/SuSE-release", sles)]), "sles", (11, 4));
        let os = "openSUSE 13.1 (x86_64)\nVERSION = 13.1\n";
        is(&with(&[("/etc/SuSE-release", os)]), "opensuse", (13, 1));
    }

    #[test]
    fn os_release_ids_in_libguestfs_terms_and_beyond() {
        let os = |id: &str| format!("ID={id}\nPRETTY_NAME=x\nVERSION_ID=1.2\n");
        for (id, distro) in [
            ("alpine", "alpinelinux"),
            ("opensuse-leap", "opensuse"),
            ("sled", "sles"),
            ("almalinux", "almalinux"),
        ] {
            is(&with(&[("/etc/os-release", &os(id))]), distro, (1, 2));
        }
        // No PRETTY_NAME: libguestfs does not trust the file and reads on.
        let r = with(&[
            ("/etc/os-release", "ID=rhel\nVERSION_ID=9.1\n"),
            ("/etc/redhat-release", "Red Hat Enterprise Linux release 9.1 (Plow)"),
        ]);
        is(&r, "rhel", (9, 1));
        assert_eq!(
            r.product_name.as_deref(),
            Some("Red Hat Enterprise Linux release 9.1 (Plow)")
        );
    }

    #[test]
    fn hostname_where_libguestfs_reads_it() {
        let h = |files: &[(&str, &str)]| hostname(&|p| files.iter().find(|(f, _)| *f == p).map(|(_, t)| t.to_string()));
        assert_eq!(
            h(&[("/etc/hostname", "# set by cloud-init\n\nweb-1\n")]).as_deref(),
            Some("web-1")
        );
        // SUSE's /etc/HOSTNAME comes first.
        assert_eq!(
            h(&[("/etc/HOSTNAME", "suse-1\n"), ("/etc/hostname", "other\n")]).as_deref(),
            Some("suse-1")
        );
        let net = "NETWORKING=yes\nHOSTNAME=\"old.example.com\"\n";
        assert_eq!(
            h(&[("/etc/hostname", "\n"), ("/etc/sysconfig/network", net)]).as_deref(),
            Some("old.example.com")
        );
        assert_eq!(h(&[("/etc/sysconfig/network", "NETWORKING=yes\n")]), None);
    }
}
