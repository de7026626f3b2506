//! `vmmanager-windows`: a VMmanager Windows template, `<image_name>.tar.gz` holding
//! `metainfo.xml`, the initial setup script (`windows.cmd`, VMmanager's install drive) and
//! the raw disk image, and its entry in the KVM repository's `metadata.json` — the second
//! kind of template VMmanager's guide "Preparing the OS Windows template" describes
//! (<https://docs.ispsystem.com/vmmanager-admin/templates/preparing-the-os-windows-template>).
//!
//! The archive is one streaming pass, as the `.xz` is: the tar headers and small files are
//! written as they are, the disk is read through its data extents only (stream.rs), and a
//! chunk of zeros is compressed once and reused, so a 40 GiB sparse disk costs work in
//! proportion to its data. Every gzip block is its own member; members concatenated are
//! one gzip stream (RFC 1952 §2.2), which `tar xzf` reads as any other.
//!
//! The disk is a plain tar member (not a GNU sparse one): whatever VMmanager unpacks it
//! with gets the image as it is. Its size is written in GNU tar's base-256 form when it
//! does not fit the 11 octal digits of ustar (8 GiB), as GNU tar itself does.

use super::atomic::Staged;
use super::codec::Gzip;
use super::hash::{Algo, HashWriter};
use super::repo::RepoType;
use super::settings::{check_archive_names, image_name, plain_name, publishable, repository_destinations, threads, GzipSettings};
use super::source::{Chunk, ChunkSource, SparseFile};
use super::target::{Destination, RepoClaim, Target, TargetInfo};
use super::vmmanager::{self, default_tags, CpuMode, Vmmanager};
use super::{stream, GuestInfo, Plan, Produce};
use crate::guest::windows::crlf;
use crate::guest::Guest;
use crate::steps::OptionDoc;
use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::VecDeque;
use std::io::Write;
use std::path::{Path, PathBuf};

pub static INFO: TargetInfo = TargetInfo {
    name: "vmmanager-windows",
    summary: "VMmanager Windows template: <image_name>.tar.gz (metainfo.xml, windows.cmd, the raw disk) and its entry in the repository's metadata.json",
    options: &[
        OptionDoc { name: "repo", kind: "path", default: "--publish-dir", help: "the repository directory (a KVM repository)" },
        OptionDoc { name: "name", kind: "string", default: "--name, else windows-<major>", help: "template name (metainfo.xml's osname)" },
        OptionDoc { name: "image_name", kind: "string", default: "the name, file-name safe", help: "base name of the archive, of the disk inside it (.img) and of the published script (.cmd)" },
        OptionDoc { name: "tags", kind: "list", default: "os type, distro+major", help: "the entry's and metainfo.xml's tags" },
        OptionDoc { name: "install_script", kind: "path", default: "goldify's windows.cmd", help: "the initial setup script VMmanager fills with its macros (at most 1 MiB; written with CRLF)" },
        OptionDoc { name: "publish_script", kind: "bool", default: "true", help: "also publish the script beside the archive (<image_name>.cmd) and name it in the entry's install_script" },
        OptionDoc { name: "kms_supported", kind: "bool", default: "false", help: "the entry's kms_supported: the image activates through a KMS server" },
        OptionDoc { name: "limits", kind: "{ipv4, ipv6, mem_mib, disk_mib}", default: "{ipv4: 1, ipv6: 0, mem_mib: 2048, disk_mib: the image's size}", help: "metainfo.xml's limit: addresses, memory and disk a VM needs" },
        OptionDoc { name: "reboot_count", kind: "integer", default: "1", help: "metainfo.xml's rebootcount: reboots the first setup takes" },
        OptionDoc { name: "virtio_disk", kind: "bool", default: "true", help: "metainfo.xml's virtiodisk: the image has the virtio storage driver" },
        OptionDoc { name: "virtio_net", kind: "bool", default: "true", help: "metainfo.xml's virtionet: the image has the virtio network driver" },
        OptionDoc { name: "expand", kind: "string", default: "auto", help: "as for vmmanager" },
        OptionDoc { name: "network_device", kind: "string", default: "from the guest", help: "as for vmmanager" },
        OptionDoc { name: "cpu_mode", kind: "default|host-model|host-passthrough", default: "default", help: "as for vmmanager" },
        OptionDoc { name: "min_size_mib", kind: "integer", default: "the image's virtual size", help: "as for vmmanager" },
        OptionDoc { name: "efi_boot", kind: "bool", default: "whether the disk has an EFI system partition", help: "as for vmmanager" },
        OptionDoc { name: "compression", kind: "{level, threads}", default: "{level: 6}", help: "gzip level 1-9 and threads (0: one per core)" },
    ],
};

/// VMmanager attaches the install drive as a disk of at most 1 MB (VMmanager 5's
/// metainfo.xml reference: "an additional virtual disk (this is a file up to 1 MB in size)").
pub const SCRIPT_LIMIT: u64 = 1 << 20;
/// The script's name inside the archive (metainfo.xml's `installdrive`).
const SCRIPT_IN_ARCHIVE: &str = "windows.cmd";
const DEFAULT_SCRIPT: &str = include_str!("data/windows.cmd");

/// metainfo.xml's `limit`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    #[serde(default = "one")]
    pub ipv4: u32,
    #[serde(default)]
    pub ipv6: u32,
    #[serde(default = "default_mem")]
    pub mem_mib: u64,
    /// Default: the image's virtual size.
    pub disk_mib: Option<u64>,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            ipv4: 1,
            ipv6: 0,
            mem_mib: default_mem(),
            disk_mib: None,
        }
    }
}

fn one() -> u32 {
    1
}
fn default_mem() -> u64 {
    2048
}
fn yes() -> bool {
    true
}

/// `vmmanager-windows`'s settings (and, once the guest was open, its script).
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct VmmanagerWindows {
    pub repo: Option<PathBuf>,
    pub name: Option<String>,
    pub image_name: Option<String>,
    pub tags: Option<Vec<String>>,
    pub install_script: Option<PathBuf>,
    #[serde(default = "yes")]
    pub publish_script: bool,
    #[serde(default)]
    pub kms_supported: bool,
    #[serde(default)]
    pub limits: Limits,
    #[serde(default = "one")]
    pub reboot_count: u32,
    #[serde(default = "yes")]
    pub virtio_disk: bool,
    #[serde(default = "yes")]
    pub virtio_net: bool,
    pub expand: Option<String>,
    pub network_device: Option<String>,
    #[serde(default)]
    pub cpu_mode: CpuMode,
    pub min_size_mib: Option<u64>,
    pub efi_boot: Option<bool>,
    #[serde(default)]
    pub compression: GzipSettings,
    /// The script, read when the run starts (CRLF).
    #[serde(skip)]
    script: Option<Vec<u8>>,
}

impl Default for VmmanagerWindows {
    fn default() -> VmmanagerWindows {
        serde_yaml::from_str("{}").expect("every setting has a default")
    }
}

impl Target for VmmanagerWindows {
    fn validate(&self) -> Result<()> {
        Gzip::new(self.compression.level).context("compression")?;
        check_archive_names(self.name.as_deref(), self.image_name.as_deref(), "tar.gz")?;
        if let Some(image) = image_name(self.image_name.as_deref(), self.name.as_deref()) {
            if self.publish_script {
                publishable("image_name", &format!("{image}.cmd"))?;
            }
            plain_name(&format!("{image}.img"))?;
        }
        vmmanager::check_expand(self.expand.as_deref())?;
        if self.limits.ipv4 == 0 && self.limits.ipv6 == 0 {
            bail!("limits: a VM needs at least one address (ipv4 or ipv6)");
        }
        Ok(())
    }

    fn dir(&self, publish_dir: &Path) -> PathBuf {
        self.repo.clone().unwrap_or_else(|| publish_dir.to_path_buf())
    }

    /// The script must be there, a regular file of at most 1 MiB, before the long work.
    fn check(&self, _plan: &Plan) -> Result<()> {
        if let Some(p) = &self.install_script {
            read_script(p)?;
        }
        Ok(())
    }

    fn destinations(&self, plan: &Plan, info: Option<&GuestInfo>) -> Vec<Destination> {
        let names = (self.name.as_deref(), self.image_name.as_deref());
        let dir = self.dir(&plan.dir);
        let mut v = repository_destinations(plan, &dir, names, "tar.gz", info);
        if let (true, Some(image)) = (self.publish_script, self.known_image_name(plan, info)) {
            v.push(Destination::file(dir.join(format!("{image}.cmd")), "an install script"));
        }
        v
    }

    fn repository(&self, plan: &Plan) -> Option<RepoClaim> {
        Some(RepoClaim {
            dir: self.dir(&plan.dir),
            kind: RepoType::Os,
        })
    }

    /// A Windows template is made of a Windows guest only; the script is read now, once.
    fn guest_open(&mut self, _plan: &Plan, info: &GuestInfo, _guest: &dyn Guest) -> Result<()> {
        if info.os.os_type != "windows" {
            bail!(
                "publishes Windows guests; this one is {} ({}): use vmmanager",
                info.os.os_type,
                info.os.product_name
            );
        }
        let text = match &self.install_script {
            Some(p) => read_script(p)?,
            None => DEFAULT_SCRIPT.to_string(),
        };
        self.script = Some(crlf(&text).into_bytes());
        Ok(())
    }

    fn produce(&mut self, out: &mut Produce) -> Result<()> {
        let name = out.plan.template_name(self.name.as_deref(), out.info);
        let image = image_name(self.image_name.as_deref(), Some(&name)).unwrap_or_default();
        let script = self.script.take().unwrap_or_else(|| crlf(DEFAULT_SCRIPT).into_bytes());
        let dir = self.dir(&out.plan.dir);
        let file_name = format!("{image}.tar.gz");
        let hddimage = format!("{image}.img");
        let raw = out.raw()?;
        let disk = SparseFile::open(&raw)?;
        let size = out.virtual_size();
        let tags = self.tags.clone().unwrap_or_else(|| default_tags(out.info));
        let meta = metainfo(self, &name, &tags, &hddimage, &script, out.info, size);
        let mtime = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let mut src = Package::new(&meta, &script, &hddimage, size, disk, mtime)?;

        let mut staged = Staged::new(&dir.join(&file_name))?;
        let bar = crate::progress::bytes(0, &format!("packing {file_name}"));
        let mut algos = out.plan.algos.clone();
        algos.push(Algo::Sha1);
        let outputs = vec![stream::Output {
            codec: Box::new(Gzip::new(self.compression.level)?),
            sink: &mut staged,
            algos,
            reuse: None,
        }];
        let summary = stream::compress(&mut src, outputs, threads(self.compression.threads), &bar)
            .with_context(|| format!("writing {}", dir.join(&file_name).display()))?;
        bar.finish_and_clear();
        staged.sync()?;
        tracing::info!(
            "{file_name}: {} of {} were zero, compressed once",
            crate::report::human_bytes(summary.zero),
            crate::report::human_bytes(summary.input)
        );
        let written = summary.outputs.into_iter().next().expect("one output");

        let linux_like = Vmmanager {
            tags: Some(tags),
            expand: self.expand.clone(),
            network_device: self.network_device.clone(),
            cpu_mode: self.cpu_mode,
            min_size_mib: self.min_size_mib,
            efi_boot: self.efi_boot,
            ..Default::default()
        };
        let fields = vmmanager::Fields {
            name: &name,
            file_name: &file_name,
            image_name: &image,
            virtual_size: size,
            archive_size: written.size,
            sha1: &written.checksums["sha1"],
            updated_at: &out.updated_at,
        };
        let mut entry = vmmanager::entry(&linux_like, &fields, out.info);
        entry.insert("kms_supported".into(), json!(self.kms_supported));
        let mut files = vec![(staged, written)];
        if self.publish_script {
            let script_name = format!("{image}.cmd");
            let (staged, written) = stage_bytes(&dir.join(&script_name), &script, &out.plan.algos)?;
            entry.insert("install_script".into(), install_script(&script_name, &written.checksums["sha1"], &out.updated_at));
            files.push((staged, written));
        }
        out.repository_files(INFO.name, RepoType::Os, entry, files);
        Ok(())
    }
}

impl VmmanagerWindows {
    fn known_image_name(&self, plan: &Plan, info: Option<&GuestInfo>) -> Option<String> {
        image_name(
            self.image_name.as_deref(),
            plan.known_template_name(self.name.as_deref(), info).as_deref(),
        )
    }
}

/// The recipe's script: a regular file (never a FIFO or a device), at most 1 MiB, text.
fn read_script(path: &Path) -> Result<String> {
    let bytes = crate::hostfile::read_bounded(path, SCRIPT_LIMIT)
        .with_context(|| format!("install_script {}", path.display()))?;
    String::from_utf8(bytes).map_err(|_| anyhow::anyhow!("install_script {}: it is not UTF-8 text", path.display()))
}

/// The entry's `install_script`: the script published beside the archive.
fn install_script(file_name: &str, sha1: &str, updated_at: &str) -> Value {
    json!({"file_name": file_name, "checksum": sha1, "updated_at": updated_at})
}

/// A small file staged in the repository, with its digests.
fn stage_bytes(dest: &Path, bytes: &[u8], algos: &[Algo]) -> Result<(Staged, stream::Written)> {
    let mut algos = algos.to_vec();
    algos.push(Algo::Sha1);
    let staged = Staged::new(dest)?;
    let mut w = HashWriter::new(staged, algos);
    w.write_all(bytes).with_context(|| format!("writing {}", dest.display()))?;
    let (mut staged, size, checksums) = w.finish();
    staged.sync()?;
    Ok((staged, stream::Written { size, checksums }))
}

/// The macros (`($NAME)`) a script uses, in order of first use.
pub fn macros(script: &[u8]) -> Vec<String> {
    let text = String::from_utf8_lossy(script);
    let mut out: Vec<String> = Vec::new();
    let mut rest = text.as_ref();
    while let Some(i) = rest.find("($") {
        rest = &rest[i + 2..];
        let Some(end) = rest.find(')') else { break };
        let name = &rest[..end];
        if !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') && !out.iter().any(|m| m == name) {
            out.push(name.to_string());
        }
    }
    out
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&apos;")
}

/// metainfo.xml: every field of the guide's template description, filled from the image
/// where it can be known (name, version, disk size) and from the settings otherwise.
pub fn metainfo(
    s: &VmmanagerWindows,
    name: &str,
    tags: &[String],
    hddimage: &str,
    script: &[u8],
    info: &GuestInfo,
    virtual_size: u64,
) -> String {
    let yes_no = |b: bool| if b { "yes" } else { "no" };
    let disk_mib = s.limits.disk_mib.unwrap_or_else(|| vmmanager::mib_ceil(virtual_size));
    let el = |k: &str, v: &str| format!("  <{k}>{}</{k}>\n", xml_escape(v));
    let mut x = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<doc>\n");
    x += &el("osname", name);
    x += "  <limit>\n";
    for (k, v) in [
        ("ipv4", u64::from(s.limits.ipv4)),
        ("ipv6", u64::from(s.limits.ipv6)),
        ("mem", s.limits.mem_mib),
        ("disk", disk_mib),
    ] {
        x += &format!("    <{k}>{v}</{k}>\n");
    }
    x += "  </limit>\n  <support>\n    <elem>VMmgr</elem>\n  </support>\n";
    x += &el("tags", &tags.join(","));
    x += &el("version", &info.os.version());
    x += &el("hddimage", hddimage);
    x += &el("rebootcount", &s.reboot_count.to_string());
    x += &el("type", "ostemplate");
    x += &el("installdrive", SCRIPT_IN_ARCHIVE);
    x += &el("virtiodisk", yes_no(s.virtio_disk));
    x += &el("virtionet", yes_no(s.virtio_net));
    x += "  <macro>\n";
    for m in macros(script) {
        x += &format!("    <elem>{}</elem>\n", xml_escape(&m));
    }
    x += "  </macro>\n</doc>\n";
    x
}

/// A tar member's header: GNU format, root-owned, mode 0644.
fn tar_header(path: &str, size: u64, mtime: u64) -> Result<[u8; 512]> {
    let mut h = tar::Header::new_gnu();
    h.set_path(path).with_context(|| format!("naming {path} in the archive"))?;
    h.set_size(size);
    h.set_mode(0o644);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(mtime);
    h.set_entry_type(tar::EntryType::Regular);
    h.set_cksum();
    let mut out = [0u8; 512];
    out.copy_from_slice(h.as_bytes());
    Ok(out)
}

/// A small file as a tar member: header, content, zero padding to 512 bytes.
fn tar_member(path: &str, data: &[u8], mtime: u64) -> Result<Vec<u8>> {
    let mut v = tar_header(path, data.len() as u64, mtime)?.to_vec();
    v.extend_from_slice(data);
    v.resize(v.len().div_ceil(512) * 512, 0);
    Ok(v)
}

enum Piece {
    Bytes(Vec<u8>),
    Disk(SparseFile),
}

/// The archive's bytes in order: metainfo.xml, the script, the disk's header, the disk
/// (through its data extents), padding and the end-of-archive blocks.
struct Package {
    pieces: VecDeque<Piece>,
}

impl Package {
    fn new(meta: &str, script: &[u8], hddimage: &str, size: u64, disk: SparseFile, mtime: u64) -> Result<Package> {
        let mut head = tar_member("metainfo.xml", meta.as_bytes(), mtime)?;
        head.extend(tar_member(SCRIPT_IN_ARCHIVE, script, mtime)?);
        head.extend_from_slice(&tar_header(hddimage, size, mtime)?);
        let pad = (size.div_ceil(512) * 512 - size) as usize;
        let tail = vec![0u8; pad + 1024];
        Ok(Package {
            pieces: VecDeque::from([Piece::Bytes(head), Piece::Disk(disk), Piece::Bytes(tail)]),
        })
    }
}

impl ChunkSource for Package {
    fn next_chunk(&mut self, size: usize) -> Result<Option<Chunk>> {
        loop {
            match self.pieces.front_mut() {
                None => return Ok(None),
                Some(Piece::Bytes(b)) if b.len() > size => {
                    let rest = b.split_off(size);
                    return Ok(Some(Chunk::Data(std::mem::replace(b, rest))));
                }
                Some(Piece::Bytes(_)) => {
                    let Some(Piece::Bytes(b)) = self.pieces.pop_front() else {
                        unreachable!("matched above")
                    };
                    return Ok(Some(Chunk::Data(b)));
                }
                Some(Piece::Disk(d)) => match d.next_chunk(size)? {
                    Some(c) => return Ok(Some(c)),
                    None => {
                        self.pieces.pop_front();
                    }
                },
            }
        }
    }

    fn data_len(&self, size: usize) -> Option<u64> {
        self.pieces
            .iter()
            .map(|p| match p {
                Piece::Bytes(b) => Some(b.len() as u64),
                Piece::Disk(d) => d.data_len(size),
            })
            .sum()
    }
}

#[cfg(test)]
mod tests;
