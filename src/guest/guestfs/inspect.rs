//! The guest's OS facts, read from its mounted files once the filesystems are mounted.

use super::GuestfsGuest;
use crate::guest::facts::{Family, Init, OsFacts};
use crate::guest::{Guest, Kind};

impl GuestfsGuest {
    /// OS facts from the mounted guest itself: os-release (ID, ID_LIKE, VERSION_ID,
    /// PRETTY_NAME), the ELF header of its shell for the architecture, its init and
    /// hostname. Where libguestfs' own inspection ran (the fallback), its answers fill in
    /// what the files do not say.
    pub(super) fn inspect(&self, root: &str, by_libguestfs: bool) -> OsFacts {
        let g = &self.g;
        let lg = |r: std::result::Result<String, guestfs::Error>| r.ok().filter(|v| by_libguestfs && v != "unknown");
        // Lookups follow the guest's own links (usrmerge: /lib -> usr/lib).
        let exists = |p: &str| matches!(crate::guest::resolve(self, p), Ok(Some(_)));
        let text = |p: &str, limit: u64| -> String {
            crate::guest::resolve(self, p)
                .ok()
                .flatten()
                .and_then(|p| self.read(&p, limit).ok())
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
        let mut os_release = text("/etc/os-release", 64 << 10);
        if os_release.is_empty() {
            os_release = text("/usr/lib/os-release", 64 << 10);
        }
        let field = |k: &str| {
            os_release
                .lines()
                .find_map(|l| {
                    l.strip_prefix(&format!("{k}="))
                        .map(|v| v.trim().trim_matches('"').to_string())
                })
                .filter(|v| !v.is_empty())
        };
        // libguestfs 1.48 says "redhat-based" for AlmaLinux and Rocky; os-release knows.
        let release_file = |p: &str, d: &str| exists(p).then(|| d.to_string());
        let distro = field("ID")
            .or_else(|| lg(g.inspect_get_distro(root)))
            .or_else(|| release_file("/etc/debian_version", "debian"))
            .or_else(|| release_file("/etc/alpine-release", "alpinelinux"))
            .or_else(|| release_file("/etc/redhat-release", "redhat-based"))
            .unwrap_or_else(|| "unknown".into());
        // os-release says "alpine"; libguestfs and goldify's families say "alpinelinux".
        let distro = if distro == "alpine" {
            "alpinelinux".to_string()
        } else {
            distro
        };
        let mut family = Family::of_distro(&distro);
        if family == Family::Other {
            let like = field("ID_LIKE").unwrap_or_default();
            family = like
                .split_whitespace()
                .map(Family::of_distro)
                .find(|f| *f != Family::Other)
                .unwrap_or(family);
        }
        // Debian's VERSION_ID is the major only; /etc/debian_version has the point release.
        let mut version = field("VERSION_ID").unwrap_or_default();
        if distro == "debian" {
            let dv = text("/etc/debian_version", 4096);
            if dv.trim().starts_with(|c: char| c.is_ascii_digit()) {
                version = dv.trim().to_string();
            }
        }
        let mut nums = version.split('.').map(|n| n.parse::<i32>().ok());
        let major = nums
            .next()
            .flatten()
            .or_else(|| g.inspect_get_major_version(root).ok().filter(|_| by_libguestfs));
        let minor = nums
            .next()
            .flatten()
            .or_else(|| g.inspect_get_minor_version(root).ok().filter(|_| by_libguestfs));
        let (package_format, package_management) = match family {
            Family::Debian => ("deb", "apt"),
            Family::Rhel if major.unwrap_or(9) < 8 && distro != "fedora" => ("rpm", "yum"),
            Family::Rhel => ("rpm", "dnf"),
            Family::Suse => ("rpm", "zypper"),
            Family::Alpine => ("apk", "apk"),
            Family::Arch => ("pacman", "pacman"),
            Family::Other => ("unknown", "unknown"),
        };
        let hostname = match self.lstat("/etc/hostname") {
            Ok(Some(m)) if m.kind == Kind::File && m.size <= 4096 => text("/etc/hostname", 4096)
                .lines()
                .next()
                .unwrap_or("")
                .trim()
                .to_string(),
            _ => String::new(),
        };
        OsFacts {
            root: root.to_string(),
            os_type: "linux".into(),
            family,
            major: major.unwrap_or(0),
            minor: minor.unwrap_or(0),
            product_name: field("PRETTY_NAME")
                .or_else(|| lg(g.inspect_get_product_name(root)))
                .unwrap_or_else(|| distro.clone()),
            distro,
            arch: self
                .elf_arch()
                .or_else(|| lg(g.inspect_get_arch(root)))
                .unwrap_or_else(|| "unknown".into()),
            package_format: package_format.into(),
            package_management: package_management.into(),
            hostname: if hostname.is_empty() {
                "unknown".into()
            } else {
                hostname
            },
            init,
            mountpoints: self.mounted.clone(),
            cloud_init,
            selinux,
        }
    }

    /// The architecture from the ELF header (e_machine) of the guest's shell or ls.
    fn elf_arch(&self) -> Option<String> {
        for bin in ["/bin/sh", "/usr/bin/ls", "/bin/ls", "/bin/busybox", "/usr/bin/bash"] {
            let Ok(Some(path)) = crate::guest::resolve(self, bin) else {
                continue;
            };
            let Ok(head) = self.g.pread(&path, 20, 0) else { continue };
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
}
