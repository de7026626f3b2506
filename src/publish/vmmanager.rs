//! `vmmanager`: the golden disk as a raw image compressed with xz (`<image_name>.xz`) and
//! its entry in the repository's `metadata.json`. Field meanings follow VMmanager's
//! documentation of OS template repositories
//! (<https://docs.ispsystem.com/vmmanager-admin/templates/os-templates-repositories>).
//! Facts about the guest (root partition, EFI, network device) were gathered while the
//! guest was open; this module never reopens it.
//!
//! The archive is one streaming pass over the raw export (stream.rs): zero blocks are
//! compressed once, and blocks whose bytes the steps left unchanged take what the head
//! start (headstart.rs) compressed while the appliance ran.

use super::codec::Xz;
use super::hash::Algo;
use super::headstart::HeadStart;
use super::repo::RepoType;
use super::settings::{check_archive_names, image_name, repository_destinations, XzSettings};
use super::target::{Destination, RepoClaim, Target, TargetInfo};
use super::{atomic, stream, GuestInfo, Plan, Produce};
use crate::steps::OptionDoc;
use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use std::path::{Path, PathBuf};

pub static INFO: TargetInfo = TargetInfo {
    name: "vmmanager",
    summary: "VMmanager KVM template: <image_name>.xz (raw image, xz) and its entry in the repository's metadata.json",
    options: &[
        OptionDoc { name: "repo", kind: "path", default: "--publish-dir", help: "the repository directory" },
        OptionDoc { name: "name", kind: "string", default: "--name, else <distro>-<major>", help: "template name; VMmanager picks the IP model from it (debian, ubuntu, alma…)" },
        OptionDoc { name: "image_name", kind: "string", default: "the name, file-name safe", help: "base name of the archive" },
        OptionDoc { name: "tags", kind: "list", default: "os type, distro, distro+major", help: "the entry's tags" },
        OptionDoc { name: "expand", kind: "string", default: "auto", help: "partition VMmanager grows: auto (the one holding root, as a virtio disk names it) or a device such as /dev/vda2" },
        OptionDoc { name: "network_device", kind: "string", default: "from the guest", help: "used when the guest's own network configuration names no interface" },
        OptionDoc { name: "cpu_mode", kind: "default|host-model|host-passthrough", default: "default", help: "VMmanager's CPU emulation mode" },
        OptionDoc { name: "min_size_mib", kind: "integer", default: "the image's virtual size", help: "raised to the virtual size when smaller" },
        OptionDoc { name: "efi_boot", kind: "bool", default: "whether the disk has an EFI system partition", help: "boot with UEFI" },
        OptionDoc { name: "compression", kind: "{preset, extreme, threads}", default: "{preset: 6}", help: "xz settings: preset 0-9, --extreme, threads (0: one per core)" },
    ],
};

/// VMmanager's CPU emulation modes for a template.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum CpuMode {
    #[default]
    Default,
    HostModel,
    HostPassthrough,
}

/// `vmmanager`'s settings (and, once the run starts, its head start).
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Vmmanager {
    /// The repository directory (default: --publish-dir).
    pub repo: Option<PathBuf>,
    /// Template name; VMmanager picks the IP model from it (`debian`, `ubuntu`, `alma`…).
    /// Default: --name, else `<distro>-<major>`.
    pub name: Option<String>,
    /// Default: the name, made file-name safe.
    pub image_name: Option<String>,
    /// Default: the OS type, the distro, and distro+major (`linux`, `debian`, `debian12`).
    pub tags: Option<Vec<String>>,
    /// The partition VMmanager grows to the VM's disk size: `auto` (the one holding root,
    /// named as the guest sees a virtio disk, `/dev/vdaN`) or a device name.
    #[serde(default)]
    pub expand: Option<String>,
    /// Used when the guest's own network configuration names no interface.
    pub network_device: Option<String>,
    #[serde(default)]
    pub cpu_mode: CpuMode,
    /// Raised to the image's virtual size when smaller.
    pub min_size_mib: Option<u64>,
    /// Default: whether the disk has an EFI system partition.
    pub efi_boot: Option<bool>,
    #[serde(default)]
    pub compression: XzSettings,
    #[serde(skip)]
    pub(super) head_start: Option<HeadStart>,
}

impl Target for Vmmanager {
    fn validate(&self) -> Result<()> {
        Xz::new(self.compression.preset, self.compression.extreme).context("compression")?;
        check_expand(self.expand.as_deref())?;
        check_archive_names(self.name.as_deref(), self.image_name.as_deref(), "xz")?;
        Ok(())
    }

    fn dir(&self, publish_dir: &Path) -> PathBuf {
        self.repo.clone().unwrap_or_else(|| publish_dir.to_path_buf())
    }

    fn destinations(&self, plan: &Plan, info: Option<&GuestInfo>) -> Vec<Destination> {
        let names = (self.name.as_deref(), self.image_name.as_deref());
        repository_destinations(plan, &self.dir(&plan.dir), names, "xz", info)
    }

    fn repository(&self, plan: &Plan) -> Option<RepoClaim> {
        Some(RepoClaim {
            dir: self.dir(&plan.dir),
            kind: RepoType::Os,
        })
    }

    /// Compress the input's chunks while the appliance works on the overlay over it.
    fn input_known(&mut self, _plan: &Plan, input: &super::Input) -> Result<()> {
        self.head_start = HeadStart::begin(&self.compression, input)?;
        Ok(())
    }

    fn produce(&mut self, out: &mut Produce) -> Result<()> {
        let name = out.plan.template_name(self.name.as_deref(), out.info);
        let image_name = image_name(self.image_name.as_deref(), Some(&name)).unwrap_or_default();
        let file_name = format!("{image_name}.xz");
        let dest = self.dir(&out.plan.dir).join(&file_name);
        let raw = out.raw()?;
        let pre = self.head_start.take().and_then(HeadStart::finish);
        let mut staged = atomic::Staged::new(&dest)?;
        let mut src = stream::SparseFile::open(&raw)?;
        let bar = crate::progress::bytes(0, &format!("compressing {file_name}"));
        let mut algos = out.plan.algos.clone();
        algos.push(Algo::Sha1);
        let outputs = vec![stream::Output {
            codec: Box::new(Xz::new(self.compression.preset, self.compression.extreme)?),
            sink: &mut staged,
            algos,
            reuse: pre.as_ref(),
        }];
        let summary = stream::compress(
            &mut src,
            outputs,
            super::settings::threads(self.compression.threads),
            &bar,
        )
        .with_context(|| format!("writing {}", dest.display()))?;
        bar.finish_and_clear();
        staged.sync()?;
        tracing::info!(
            "{file_name}: {} of {} were zero, compressed once; {} compressed ahead, during the appliance run",
            crate::report::human_bytes(summary.zero),
            crate::report::human_bytes(summary.input),
            crate::report::human_bytes(summary.reused)
        );
        let written = summary.outputs.into_iter().next().expect("one output");
        let fields = Fields {
            name: &name,
            file_name: &file_name,
            image_name: &image_name,
            virtual_size: out.virtual_size(),
            archive_size: written.size,
            sha1: &written.checksums["sha1"],
            updated_at: &out.updated_at,
        };
        let e = entry(self, &fields, out.info);
        out.repository_entry(INFO.name, RepoType::Os, e, staged, &written);
        Ok(())
    }
}

const MIB: u64 = 1 << 20;

pub fn mib_ceil(bytes: u64) -> u64 {
    bytes.div_ceil(MIB)
}

/// Default tags: OS type, distro, distro+major (`linux`, `debian`, `debian12`).
pub fn default_tags(info: &GuestInfo) -> Vec<String> {
    let mut tags = vec![
        info.os.os_type.clone(),
        info.os.distro.clone(),
        format!("{}{}", info.os.distro, info.os.major),
    ];
    tags.retain(|t| t != "unknown" && !t.is_empty());
    tags.dedup();
    tags
}

/// The `expand` setting: `auto` or a device name.
pub fn check_expand(expand: Option<&str>) -> Result<()> {
    match expand {
        Some(e) if e != "auto" && !e.starts_with("/dev/") => {
            anyhow::bail!("expand must be `auto` or a device such as /dev/vda2, not {e:?}")
        }
        _ => Ok(()),
    }
}

/// The partition to grow, as the deployed guest will name it: the guest's own disk
/// naming (`vd`, `sd`, `xvd`) and the number of the partition holding root.
pub fn expand(setting: Option<&str>, info: &GuestInfo) -> Option<String> {
    match setting {
        Some(s) if s != "auto" => return Some(s.to_string()),
        _ => {}
    }
    let root = info.layout.root_partition.as_ref()?;
    let part = info.layout.partitions.iter().find(|p| &p.device == root)?;
    Some(format!("/dev/{}a{}", info.disk_prefix, part.number))
}

/// What the run knows of the archive, for its entry.
pub struct Fields<'a> {
    pub name: &'a str,
    pub file_name: &'a str,
    pub image_name: &'a str,
    pub virtual_size: u64,
    pub archive_size: u64,
    pub sha1: &'a str,
    pub updated_at: &'a str,
}

/// The entry for `metadata.json`, in the order VMmanager's documentation lists the fields.
pub fn entry(s: &Vmmanager, f: &Fields, info: &GuestInfo) -> Map<String, Value> {
    let image_size_mib = mib_ceil(f.virtual_size);
    let mut m = Map::new();
    m.insert("name".into(), json!(f.name));
    m.insert(
        "tags".into(),
        json!(s.tags.clone().unwrap_or_else(|| default_tags(info))),
    );
    m.insert("file_name".into(), json!(f.file_name));
    m.insert("image_name".into(), json!(f.image_name));
    match expand(s.expand.as_deref(), info) {
        Some(e) => {
            m.insert("expand".into(), json!(e));
        }
        None => tracing::warn!("vmmanager: root is not on a partition; `expand` left out (set it in the recipe)"),
    }
    match info.network_device.clone().or_else(|| s.network_device.clone()) {
        Some(d) => {
            m.insert("network_device".into(), json!(d));
        }
        None => {
            tracing::warn!("vmmanager: no network device found in the guest or the recipe; `network_device` left out")
        }
    }
    m.insert("archive_size_mib".into(), json!(mib_ceil(f.archive_size)));
    m.insert(
        "cpu_mode".into(),
        serde_json::to_value(s.cpu_mode).unwrap_or(json!("default")),
    );
    m.insert("image_size_mib".into(), json!(image_size_mib));
    m.insert(
        "min_size_mib".into(),
        json!(s.min_size_mib.unwrap_or(0).max(image_size_mib)),
    );
    m.insert("updated_at".into(), json!(f.updated_at));
    m.insert("checksum".into(), json!(f.sha1));
    m.insert(
        "efi_boot".into(),
        json!(s
            .efi_boot
            .unwrap_or_else(|| info.layout.partitions.iter().any(|p| p.esp))),
    );
    m
}

/// UTC now as `YYYY-MM-DD HH:MM:SS` (VMmanager's `updated_at`).
pub fn utc_now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    utc(secs)
}

pub fn utc(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Civil date from days since 1970-01-01 (Howard Hinnant's days_from_civil, inverted).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::guest::{Layout, OsFacts, Partition};

    fn info() -> GuestInfo {
        GuestInfo {
            os: OsFacts::sample("debian"),
            layout: Layout {
                table: Some("gpt".into()),
                partitions: vec![
                    Partition {
                        device: "/dev/sda1".into(),
                        number: 1,
                        size: 1 << 20,
                        fstype: None,
                        esp: false,
                    },
                    Partition {
                        device: "/dev/sda15".into(),
                        number: 15,
                        size: 100 << 20,
                        fstype: Some("vfat".into()),
                        esp: true,
                    },
                    Partition {
                        device: "/dev/sda2".into(),
                        number: 2,
                        size: 3 << 30,
                        fstype: Some("ext4".into()),
                        esp: false,
                    },
                ],
                root_partition: Some("/dev/sda2".into()),
            },
            network_device: Some("ens3".into()),
            disk_prefix: "vd".into(),
        }
    }

    #[test]
    fn entry_fills_what_the_image_tells() {
        let s = Vmmanager {
            min_size_mib: Some(1000),
            ..Default::default()
        };
        let f = Fields {
            name: "debian-12",
            file_name: "debian-12.xz",
            image_name: "debian-12",
            virtual_size: 4 << 30,
            archive_size: 300 * MIB + 1,
            sha1: "ab",
            updated_at: "2024-01-02 03:04:05",
        };
        let e = entry(&s, &f, &info());
        let keys: Vec<&str> = e.keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                "name",
                "tags",
                "file_name",
                "image_name",
                "expand",
                "network_device",
                "archive_size_mib",
                "cpu_mode",
                "image_size_mib",
                "min_size_mib",
                "updated_at",
                "checksum",
                "efi_boot"
            ]
        );
        assert_eq!(e["expand"], "/dev/vda2");
        assert_eq!(e["network_device"], "ens3");
        assert_eq!(e["archive_size_mib"], 301);
        assert_eq!(e["image_size_mib"], 4096);
        assert_eq!(e["min_size_mib"], 4096, "never less than the image");
        assert_eq!(e["efi_boot"], true);
        assert_eq!(e["cpu_mode"], "default");
        assert_eq!(e["tags"], json!(["linux", "debian", "debian12"]));
        let s = Vmmanager {
            expand: Some("/dev/sda1".into()),
            efi_boot: Some(false),
            min_size_mib: Some(10_000),
            ..Default::default()
        };
        let f = Fields {
            name: "d",
            file_name: "d.xz",
            image_name: "d",
            virtual_size: 4 << 30,
            archive_size: 1,
            sha1: "ab",
            updated_at: "x",
        };
        let e = entry(&s, &f, &info());
        assert_eq!(
            (
                e["expand"].as_str(),
                e["efi_boot"].as_bool(),
                e["min_size_mib"].as_u64()
            ),
            (Some("/dev/sda1"), Some(false), Some(10_000))
        );
    }

    #[test]
    fn utc_format() {
        assert_eq!(utc(0), "1970-01-01 00:00:00");
        assert_eq!(utc(951_782_400), "2000-02-29 00:00:00");
        assert_eq!(utc(1_704_164_645), "2024-01-02 03:04:05");
    }
}
