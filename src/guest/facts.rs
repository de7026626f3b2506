//! What inspection tells about the guest OS, in the terms recipes use (`when:`) and steps
//! decide on, and how it is read from the guest's own files (on any [`Guest`], so that
//! it is tested on the in-memory guest).

use super::{Guest, Kind};
use serde::Serialize;
use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Family {
    Debian,
    Rhel,
    Suse,
    Alpine,
    Arch,
    Other,
    Windows,
}

impl Family {
    pub const ALL: [Family; 7] = [
        Family::Debian,
        Family::Rhel,
        Family::Suse,
        Family::Alpine,
        Family::Arch,
        Family::Other,
        Family::Windows,
    ];

    /// Every family but Windows: what a step with no families of its own applies to.
    pub fn is_linux(self) -> bool {
        self != Family::Windows
    }

    /// The family of a libguestfs distro name (`inspect_get_distro`).
    pub fn of_distro(distro: &str) -> Family {
        match distro {
            "debian" | "ubuntu" | "linuxmint" | "kalilinux" | "pardus" => Family::Debian,
            "rhel" | "centos" | "fedora" | "almalinux" | "rocky" | "oraclelinux" | "scientificlinux"
            | "redhat-based" | "circle" | "cloudlinux" | "openeuler" | "amazonlinux" => Family::Rhel,
            "sles" | "opensuse" | "suse-based" => Family::Suse,
            "alpinelinux" => Family::Alpine,
            "archlinux" | "arch" | "manjaro" => Family::Arch,
            "windows" => Family::Windows,
            _ => Family::Other,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Family::Debian => "debian",
            Family::Rhel => "rhel",
            Family::Suse => "suse",
            Family::Alpine => "alpine",
            Family::Arch => "arch",
            Family::Other => "other",
            Family::Windows => "windows",
        }
    }
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Init {
    Systemd,
    Openrc,
    Sysv,
    Unknown,
}

#[derive(Debug, Clone, Serialize)]
pub struct OsFacts {
    /// libguestfs' root device of the OS, e.g. `/dev/sda1`.
    pub root: String,
    pub os_type: String,
    pub distro: String,
    pub family: Family,
    pub major: i32,
    pub minor: i32,
    pub product_name: String,
    pub arch: String,
    pub package_format: String,
    pub package_management: String,
    pub hostname: String,
    pub init: Init,
    /// Mountpoint → device, as inspection found them in the guest's fstab.
    pub mountpoints: Vec<(String, String)>,
    pub cloud_init: bool,
    pub selinux: bool,
    /// Windows: %SystemRoot% as a guest path (`/Windows`); empty for Linux.
    pub systemroot: String,
    /// Windows: the control set `HKLM\SYSTEM\Select\Current` names (`ControlSet001`),
    /// the one `CurrentControlSet` stands for; empty for Linux.
    pub current_control_set: String,
}

impl OsFacts {
    pub fn version(&self) -> String {
        format!("{}.{}", self.major, self.minor)
    }

    /// Facts for tests and the in-memory guest.
    pub fn sample(distro: &str) -> OsFacts {
        OsFacts {
            root: "/dev/sda1".into(),
            os_type: "linux".into(),
            distro: distro.into(),
            family: Family::of_distro(distro),
            major: 12,
            minor: 0,
            product_name: distro.into(),
            arch: "x86_64".into(),
            package_format: "deb".into(),
            package_management: "apt".into(),
            hostname: "sample".into(),
            init: Init::Systemd,
            mountpoints: vec![("/".into(), "/dev/sda1".into())],
            cloud_init: false,
            selinux: false,
            systemroot: String::new(),
            current_control_set: String::new(),
        }
    }
}

/// What libguestfs' own inspection said, where it ran (the fallback for layouts the quick
/// probe does not know). Each answer only fills in what the guest's files do not say.
#[derive(Debug, Default)]
pub(super) struct Inspected {
    pub(super) distro: Option<String>,
    pub(super) product_name: Option<String>,
    pub(super) arch: Option<String>,
    pub(super) major: Option<i32>,
    pub(super) minor: Option<i32>,
}

/// OS facts from the mounted guest itself: os-release (ID, ID_LIKE, VERSION_ID,
/// PRETTY_NAME), the ELF header of its shell for the architecture, its init and
/// hostname. Where libguestfs' own inspection ran (the fallback), its answers fill in
/// what the files do not say. `elf_head` gives the first 20 bytes of a guest file (its
/// ELF header, without reading the whole binary); `root` and `mountpoints` are recorded
/// as they are.
pub(super) fn detect(
    guest: &dyn Guest,
    root: &str,
    mountpoints: Vec<(String, String)>,
    inspected: Option<&Inspected>,
    elf_head: &dyn Fn(&str) -> Option<Vec<u8>>,
) -> OsFacts {
    // Lookups follow the guest's own links (usrmerge: /lib -> usr/lib).
    let exists = |p: &str| matches!(super::resolve(guest, p), Ok(Some(_)));
    let text = |p: &str, limit: u64| -> String {
        super::resolve(guest, p)
            .ok()
            .flatten()
            .and_then(|p| guest.read(&p, limit).ok())
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    };
    let init = if exists("/lib/systemd/systemd") || exists("/usr/lib/systemd/systemd") {
        Init::Systemd
    } else if exists("/sbin/openrc") || exists("/sbin/openrc-run") {
        Init::Openrc
    } else if exists("/etc/inittab") {
        Init::Sysv
    } else {
        Init::Unknown
    };
    let cloud_init = exists("/usr/bin/cloud-init") || exists("/etc/cloud/cloud.cfg");
    let selinux = text("/etc/selinux/config", 64 << 10).lines().any(|l| {
        let l = l.trim();
        l.starts_with("SELINUX=") && !l.ends_with("disabled")
    });
    // Release files and hostname where libguestfs reads them (see `release`), each a
    // regular file (after the guest's own links) of at most 64 KiB.
    let read = |p: &str| -> Option<String> {
        let p = super::resolve(guest, p).ok().flatten()?;
        match guest.lstat(&p) {
            Ok(Some(m)) if m.kind == Kind::File => {}
            _ => return None,
        }
        let b = guest.read(&p, 64 << 10).ok()?;
        Some(String::from_utf8_lossy(&b).into_owned())
    };
    let release = super::release::detect(&read);
    let distro = release
        .distro
        .clone()
        .or_else(|| inspected.and_then(|i| i.distro.clone()))
        .unwrap_or_else(|| "unknown".into());
    let mut family = Family::of_distro(&distro);
    if family == Family::Other {
        let like = release.id_like.clone().unwrap_or_default();
        family = like
            .split_whitespace()
            .map(Family::of_distro)
            .find(|f| *f != Family::Other)
            .unwrap_or(family);
    }
    let major = release.version.map(|v| v.0).or_else(|| inspected.and_then(|i| i.major));
    let minor = release.version.map(|v| v.1).or_else(|| inspected.and_then(|i| i.minor));
    // os-release's PRETTY_NAME where there is one ("Debian GNU/Linux 12 (bookworm)"), where
    // libguestfs says what Debian's version file says ("12.5").
    let pretty = read("/etc/os-release").and_then(|t| {
        t.lines()
            .find_map(|l| l.strip_prefix("PRETTY_NAME="))
            .map(|v| v.trim().trim_matches('"').to_string())
            .filter(|v| !v.is_empty())
    });
    let (package_format, package_management) = match family {
        Family::Debian => ("deb", "apt"),
        Family::Rhel if major.unwrap_or(9) < 8 && distro != "fedora" => ("rpm", "yum"),
        Family::Rhel => ("rpm", "dnf"),
        Family::Suse => ("rpm", "zypper"),
        Family::Alpine => ("apk", "apk"),
        Family::Arch => ("pacman", "pacman"),
        Family::Other | Family::Windows => ("unknown", "unknown"),
    };
    let hostname = super::release::hostname(&read).unwrap_or_default();
    OsFacts {
        root: root.to_string(),
        os_type: "linux".into(),
        family,
        major: major.unwrap_or(0),
        minor: minor.unwrap_or(0),
        product_name: pretty
            .or(release.product_name)
            .or_else(|| inspected.and_then(|i| i.product_name.clone()))
            .unwrap_or_else(|| distro.clone()),
        distro,
        arch: elf_arch(guest, elf_head)
            .or_else(|| inspected.and_then(|i| i.arch.clone()))
            .unwrap_or_else(|| "unknown".into()),
        package_format: package_format.into(),
        package_management: package_management.into(),
        hostname: if hostname.is_empty() {
            "unknown".into()
        } else {
            hostname
        },
        init,
        mountpoints,
        cloud_init,
        selinux,
        systemroot: String::new(),
        current_control_set: String::new(),
    }
}

/// The architecture from the ELF header (e_machine) of the guest's shell or ls.
fn elf_arch(guest: &dyn Guest, elf_head: &dyn Fn(&str) -> Option<Vec<u8>>) -> Option<String> {
    for bin in ["/bin/sh", "/usr/bin/ls", "/bin/ls", "/bin/busybox", "/usr/bin/bash"] {
        let Ok(Some(path)) = super::resolve(guest, bin) else {
            continue;
        };
        let Some(head) = elf_head(&path) else { continue };
        if head.len() < 20 || &head[..4] != b"\x7fELF" {
            continue;
        }
        let little = head[5] == 1;
        let machine = if little {
            u16::from_le_bytes([head[18], head[19]])
        } else {
            u16::from_be_bytes([head[18], head[19]])
        };
        let arch = match (machine, head[4]) {
            (0x3e, _) => "x86_64",
            (0x03, _) => "i386",
            (0xb7, _) => "aarch64",
            (0x28, _) => "arm",
            (0xf3, 2) => "riscv64",
            (0x15, _) if little => "ppc64le",
            (0x15, _) => "ppc64",
            (0x16, _) => "s390x",
            _ => continue,
        };
        return Some(arch.into());
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::guest::memory::MemoryGuest;

    /// The first 20 bytes of a little-endian x86-64 ELF executable.
    const X86_64_ELF: &[u8] = b"\x7fELF\x02\x01\x01\0\0\0\0\0\0\0\0\0\x03\0\x3e\0";

    fn detect_on(g: &MemoryGuest, inspected: Option<&Inspected>) -> OsFacts {
        let head = |p: &str| g.read(p, 1 << 20).ok().map(|b| b[..b.len().min(20)].to_vec());
        detect(g, "/dev/sda1", vec![("/".into(), "/dev/sda1".into())], inspected, &head)
    }

    #[test]
    fn debian_from_its_files() {
        let g = MemoryGuest::new(OsFacts::sample("unknown"));
        g.file(
            "/etc/os-release",
            b"PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nNAME=\"Debian GNU/Linux\"\nVERSION_ID=\"12\"\nID=debian\n",
        )
        .file("/etc/debian_version", b"12.5\n")
        .file("/etc/hostname", b"build-42\n")
        .file("/usr/lib/systemd/systemd", b"")
        .link("/lib", "usr/lib")
        .file("/usr/bin/dash", X86_64_ELF)
        .link("/bin", "usr/bin")
        .link("/usr/bin/sh", "dash");
        let f = detect_on(&g, None);
        assert_eq!(f.distro, "debian");
        assert_eq!(f.family, Family::Debian);
        assert_eq!((f.major, f.minor), (12, 5));
        assert_eq!(f.product_name, "Debian GNU/Linux 12 (bookworm)");
        assert_eq!(f.arch, "x86_64");
        assert_eq!(
            (f.package_format.as_str(), f.package_management.as_str()),
            ("deb", "apt")
        );
        assert_eq!(f.hostname, "build-42");
        assert_eq!(f.init, Init::Systemd);
        assert!(!f.cloud_init && !f.selinux);
        assert_eq!(f.mountpoints, vec![("/".to_string(), "/dev/sda1".to_string())]);
    }

    #[test]
    fn almalinux_from_its_files() {
        let g = MemoryGuest::new(OsFacts::sample("unknown"));
        g.file(
            "/etc/os-release",
            b"NAME=\"AlmaLinux\"\nVERSION=\"9.3 (Shamrock Pampas Cat)\"\nID=\"almalinux\"\nID_LIKE=\"rhel centos fedora\"\nVERSION_ID=\"9.3\"\nPRETTY_NAME=\"AlmaLinux 9.3 (Shamrock Pampas Cat)\"\n",
        )
        .file("/etc/redhat-release", b"AlmaLinux release 9.3 (Shamrock Pampas Cat)\n")
        .file("/etc/selinux/config", b"SELINUX=enforcing\nSELINUXTYPE=targeted\n")
        .file("/etc/cloud/cloud.cfg", b"")
        .file("/usr/lib/systemd/systemd", b"");
        let f = detect_on(&g, None);
        assert_eq!(f.distro, "almalinux");
        assert_eq!(f.family, Family::Rhel);
        assert_eq!((f.major, f.minor), (9, 3));
        assert_eq!(f.product_name, "AlmaLinux 9.3 (Shamrock Pampas Cat)");
        assert_eq!(
            (f.package_format.as_str(), f.package_management.as_str()),
            ("rpm", "dnf")
        );
        assert_eq!(f.init, Init::Systemd);
        assert!(f.cloud_init && f.selinux);
        // No shell to read and no hostname file.
        assert_eq!(f.arch, "unknown");
        assert_eq!(f.hostname, "unknown");
    }

    #[test]
    fn libguestfs_fills_in_only_what_the_files_do_not_say() {
        let g = MemoryGuest::new(OsFacts::sample("unknown"));
        g.file("/etc/os-release", b"ID=rocky\nVERSION_ID=\"8.9\"\n")
            .file("/etc/inittab", b"");
        let inspected = Inspected {
            distro: Some("redhat-based".into()),
            product_name: Some("Rocky Linux 8.9".into()),
            arch: Some("x86_64".into()),
            major: Some(7),
            minor: Some(1),
        };
        let f = detect_on(&g, Some(&inspected));
        assert_eq!(f.distro, "rocky");
        assert_eq!((f.major, f.minor), (8, 9));
        assert_eq!(f.product_name, "Rocky Linux 8.9");
        assert_eq!(f.arch, "x86_64");
        assert_eq!(f.package_management, "dnf");
        assert_eq!(f.init, Init::Sysv);
    }

    #[test]
    fn ubuntu_arch_fedora_and_suse_from_what_libguestfs_reads() {
        let facts = |files: &[(&str, &str)]| {
            let g = MemoryGuest::new(OsFacts::sample("unknown"));
            for (p, t) in files {
                g.file(p, t.as_bytes());
            }
            detect_on(&g, None)
        };
        let f = facts(&[
            (
                "/etc/lsb-release",
                "DISTRIB_ID=Ubuntu\nDISTRIB_RELEASE=20.04\nDISTRIB_DESCRIPTION=\"Ubuntu 20.04.6 LTS\"\n",
            ),
            ("/etc/debian_version", "bullseye/sid\n"),
        ]);
        assert_eq!(
            (f.distro.as_str(), f.family, f.major, f.minor),
            ("ubuntu", Family::Debian, 20, 4)
        );
        assert_eq!(f.product_name, "Ubuntu 20.04.6 LTS");
        let f = facts(&[("/etc/arch-release", ""), ("/etc/hostname", "archie\n")]);
        assert_eq!(
            (f.distro.as_str(), f.family, f.package_management.as_str()),
            ("archlinux", Family::Arch, "pacman")
        );
        assert_eq!(f.hostname, "archie");
        let f = facts(&[(
            "/etc/os-release",
            "ID=arch\nPRETTY_NAME=\"Arch Linux\"\nBUILD_ID=rolling\n",
        )]);
        assert_eq!((f.distro.as_str(), f.family, f.major), ("archlinux", Family::Arch, 0));
        let f = facts(&[
            ("/etc/fedora-release", "Fedora release 38 (Thirty Eight)\n"),
            (
                "/etc/sysconfig/network",
                "NETWORKING=yes\nHOSTNAME=fedora-old.example.com\n",
            ),
        ]);
        assert_eq!(
            (f.distro.as_str(), f.family, f.major, f.minor),
            ("fedora", Family::Rhel, 38, 0)
        );
        assert_eq!(
            (f.hostname.as_str(), f.package_management.as_str()),
            ("fedora-old.example.com", "dnf")
        );
        let f = facts(&[
            (
                "/etc/SuSE-release",
                "SUSE Linux Enterprise Server 12 (x86_64)\nVERSION = 12\nPATCHLEVEL = 5\n",
            ),
            ("/etc/HOSTNAME", "sles-1.example.com\n"),
        ]);
        assert_eq!(
            (f.distro.as_str(), f.family, f.major, f.minor),
            ("sles", Family::Suse, 12, 5)
        );
        assert_eq!(f.hostname, "sles-1.example.com");
        // A hostname "file" that is a directory is no hostname.
        let g = MemoryGuest::new(OsFacts::sample("unknown"));
        g.dir("/etc/hostname");
        assert_eq!(detect_on(&g, None).hostname, "unknown");
    }

    /// The phony guests' own trees (vm-fixtures/phony/, as the images are built from them)
    /// give the distro, version and hostname their manifests' [known] tables promise.
    #[test]
    fn phony_guests_are_what_their_manifests_say() {
        for (name, family) in [
            ("debian", Family::Debian),
            ("ubuntu", Family::Debian),
            ("rhel", Family::Rhel),
        ] {
            let p = crate::guest::fixture::phony(name);
            let f = detect_on(&p.guest, None);
            assert_eq!(f.distro, p.known("distro"), "{name}");
            assert_eq!(format!("{}.{}", f.major, f.minor), p.known("version"), "{name}");
            assert_eq!(f.hostname, p.known("hostname"), "{name}");
            assert_eq!(f.family, family, "{name}");
            assert_eq!(f.init, Init::Systemd, "{name}");
            assert!(f.cloud_init, "{name}");
            assert_eq!(f.selinux, name == "rhel", "{name}");
        }
    }
}
