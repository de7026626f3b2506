//! What inspection tells about the guest OS, in the terms recipes use (`when:`) and steps
//! decide on.

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
}

impl Family {
    pub const ALL: [Family; 6] = [
        Family::Debian,
        Family::Rhel,
        Family::Suse,
        Family::Alpine,
        Family::Arch,
        Family::Other,
    ];

    /// The family of a libguestfs distro name (`inspect_get_distro`).
    pub fn of_distro(distro: &str) -> Family {
        match distro {
            "debian" | "ubuntu" | "linuxmint" | "kalilinux" | "pardus" => Family::Debian,
            "rhel" | "centos" | "fedora" | "almalinux" | "rocky" | "oraclelinux" | "scientificlinux"
            | "redhat-based" | "circle" | "cloudlinux" | "openeuler" | "amazonlinux" => Family::Rhel,
            "sles" | "opensuse" | "suse-based" => Family::Suse,
            "alpinelinux" => Family::Alpine,
            "archlinux" | "manjaro" => Family::Arch,
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
        }
    }
}
