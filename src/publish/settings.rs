//! The recipe's `publish:` section: one mapping per target, strict (unknown fields and
//! targets are errors naming the recipe and the target), validated before the long work.

use super::hash::Algo;
use crate::disk::Format;
use anyhow::{anyhow, bail, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub const TARGETS: [&str; 7] = [
    "vmmanager",
    "vmmanager-lxd",
    "disk",
    "deckhouse",
    "vcluster",
    "checksums",
    "manifest",
];

fn default_xz_preset() -> u32 {
    6
}
fn default_gzip_level() -> u32 {
    6
}
fn default_true() -> bool {
    true
}

/// xz settings for the VMmanager archive.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct XzSettings {
    /// 0-9, as `xz -0` … `xz -9`.
    #[serde(default = "default_xz_preset")]
    pub preset: u32,
    /// As `xz --extreme`.
    #[serde(default)]
    pub extreme: bool,
    /// Compression threads; 0 = one per CPU core.
    #[serde(default)]
    pub threads: usize,
}

impl Default for XzSettings {
    fn default() -> Self {
        XzSettings {
            preset: default_xz_preset(),
            extreme: false,
            threads: 0,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct GzipSettings {
    #[serde(default = "default_gzip_level")]
    pub level: u32,
    #[serde(default)]
    pub threads: usize,
}

impl Default for GzipSettings {
    fn default() -> Self {
        GzipSettings {
            level: default_gzip_level(),
            threads: 0,
        }
    }
}

/// VMmanager's CPU emulation modes for a template.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum CpuMode {
    #[default]
    Default,
    HostModel,
    HostPassthrough,
}

/// `vmmanager`: `<image_name>.xz` (raw image, xz) plus its entry in `metadata.json`.
/// Fields follow VMmanager's documentation of OS template repositories
/// (<https://docs.ispsystem.com/vmmanager-admin/templates/os-templates-repositories>).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
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
}

/// `vmmanager-lxd`: the root filesystem as `<image_name>.tar.gz` in an LXD repository.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Lxd {
    pub repo: Option<PathBuf>,
    pub name: Option<String>,
    pub image_name: Option<String>,
    pub tags: Option<Vec<String>>,
    pub min_size_mib: Option<u64>,
    #[serde(default)]
    pub compression: GzipSettings,
}

/// `disk`: the golden disk as qcow2 (optionally compressed), raw, vmdk or vdi.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Disk {
    pub dir: Option<PathBuf>,
    /// Default: the recipe's `output.format`, else qcow2.
    pub format: Option<Format>,
    /// Compressed qcow2 clusters (qcow2 only). Default: the recipe's `output.compress`.
    pub compress: Option<bool>,
    /// Base file name. Default: --name, else the input's name + "-golden".
    pub name: Option<String>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
pub enum DeckhouseKind {
    #[default]
    ClusterVirtualImage,
    VirtualImage,
}

/// `deckhouse`: a ClusterVirtualImage / VirtualImage manifest whose `dataSource.http.url`
/// points at `<base_url>/<name>.qcow2`, and a containerDisk OCI image.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Deckhouse {
    pub dir: Option<PathBuf>,
    /// Where the published directory is served over HTTP(S).
    pub base_url: String,
    #[serde(default)]
    pub kind: DeckhouseKind,
    /// Required for VirtualImage.
    pub namespace: Option<String>,
    /// Resource and file name (DNS-1123). Default: the template name, lowercased.
    pub name: Option<String>,
    /// Also build the containerDisk OCI image (layout directory and oci-archive).
    #[serde(default = "default_true")]
    pub container_disk: bool,
    /// Compressed qcow2 clusters for the HTTP image.
    #[serde(default)]
    pub compress: bool,
    /// Tag of the OCI image. Default: `latest`.
    pub tag: Option<String>,
}

/// `vcluster`: an OSImage manifest for vCluster Platform's Metal3 provider.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Vcluster {
    pub dir: Option<PathBuf>,
    pub base_url: String,
    pub name: Option<String>,
    pub display_name: Option<String>,
    pub description: Option<String>,
    /// md5, sha256 (default) or sha512: what Metal3's image-checksum-type accepts.
    #[serde(default = "default_sha256")]
    pub checksum_type: Algo,
}

fn default_sha256() -> Algo {
    Algo::Sha256
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Checksums {
    pub dir: Option<PathBuf>,
    #[serde(default = "default_algorithms")]
    pub algorithms: Vec<Algo>,
}

fn default_algorithms() -> Vec<Algo> {
    vec![Algo::Sha256]
}

impl Default for Checksums {
    fn default() -> Self {
        Checksums {
            dir: None,
            algorithms: default_algorithms(),
        }
    }
}

/// The run's JSON manifest (always written when anything is published).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub dir: Option<PathBuf>,
    /// Default: goldify-manifest.json.
    pub file: Option<String>,
}

/// Every target's settings, as parsed.
#[derive(Debug, Clone, Default)]
pub struct Targets {
    pub vmmanager: Option<Vmmanager>,
    pub lxd: Option<Lxd>,
    pub disk: Option<Disk>,
    pub deckhouse: Option<Deckhouse>,
    pub vcluster: Option<Vcluster>,
    pub checksums: Option<Checksums>,
    pub manifest: Option<Manifest>,
}

impl Targets {
    pub fn is_empty(&self) -> bool {
        self.names().is_empty()
    }

    pub fn names(&self) -> Vec<&'static str> {
        let mut v = Vec::new();
        if self.vmmanager.is_some() {
            v.push("vmmanager");
        }
        if self.lxd.is_some() {
            v.push("vmmanager-lxd");
        }
        if self.disk.is_some() {
            v.push("disk");
        }
        if self.deckhouse.is_some() {
            v.push("deckhouse");
        }
        if self.vcluster.is_some() {
            v.push("vcluster");
        }
        if self.checksums.is_some() {
            v.push("checksums");
        }
        if self.manifest.is_some() {
            v.push("manifest");
        }
        v
    }
}

/// Parse the recipe's `publish:` value and select targets: those named on the command
/// line (`--publish`), else every target the recipe lists.
pub fn parse(recipe: &Path, value: Option<&serde_yaml::Value>, selected: &[String]) -> Result<Targets> {
    let where_ = recipe.display();
    let mut map: BTreeMap<String, serde_yaml::Value> = BTreeMap::new();
    match value {
        None | Some(serde_yaml::Value::Null) => {}
        Some(serde_yaml::Value::Mapping(m)) => {
            for (k, v) in m {
                let k = k
                    .as_str()
                    .ok_or_else(|| anyhow!("{where_}: publish: target names must be strings"))?;
                check_name(k).map_err(|e| anyhow!("{where_}: publish: {e}"))?;
                map.insert(k.to_string(), v.clone());
            }
        }
        Some(_) => bail!("{where_}: publish: expected a mapping of target name to settings"),
    }
    for s in selected {
        check_name(s).map_err(|e| anyhow!("--publish: {e}"))?;
    }
    let wanted: Vec<String> = if selected.is_empty() {
        map.keys().cloned().collect()
    } else {
        selected.to_vec()
    };
    let mut t = Targets::default();
    for name in wanted {
        let v = match map.get(&name) {
            None | Some(serde_yaml::Value::Null) => serde_yaml::Value::Mapping(Default::default()),
            Some(v) => v.clone(),
        };
        let err = |e: serde_yaml::Error| anyhow!("{where_}: publish target `{name}`: {}", tidy(&e));
        match name.as_str() {
            "vmmanager" => t.vmmanager = Some(serde_yaml::from_value(v).map_err(err)?),
            "vmmanager-lxd" => t.lxd = Some(serde_yaml::from_value(v).map_err(err)?),
            "disk" => t.disk = Some(serde_yaml::from_value(v).map_err(err)?),
            "deckhouse" => t.deckhouse = Some(serde_yaml::from_value(v).map_err(err)?),
            "vcluster" => t.vcluster = Some(serde_yaml::from_value(v).map_err(err)?),
            "checksums" => t.checksums = Some(serde_yaml::from_value(v).map_err(err)?),
            "manifest" => t.manifest = Some(serde_yaml::from_value(v).map_err(err)?),
            _ => unreachable!("names are checked above"),
        }
    }
    validate(&t).map_err(|e| anyhow!("{where_}: {e}"))?;
    Ok(t)
}

fn check_name(name: &str) -> Result<()> {
    if TARGETS.contains(&name) {
        return Ok(());
    }
    match crate::recipe::nearest(name, &TARGETS) {
        Some(n) => bail!("unknown publish target `{name}`, did you mean `{n}`?"),
        None => bail!("unknown publish target `{name}` (known: {})", TARGETS.join(", ")),
    }
}

/// serde_yaml's message without its position (the value came out of a merged mapping,
/// so a line number would point nowhere useful).
fn tidy(e: &serde_yaml::Error) -> String {
    let re = regex::Regex::new(r" at line \d+ column \d+$").expect("static regex");
    re.replace(&e.to_string(), "").into_owned()
}

fn validate(t: &Targets) -> Result<()> {
    if let Some(v) = &t.vmmanager {
        super::codec::Xz::new(v.compression.preset, v.compression.extreme)
            .map_err(|e| anyhow!("publish target `vmmanager`: compression: {e}"))?;
        if let Some(e) = v.expand.as_deref() {
            if e != "auto" && !e.starts_with("/dev/") {
                bail!("publish target `vmmanager`: expand must be `auto` or a device such as /dev/vda2, not {e:?}");
            }
        }
        for n in [&v.name, &v.image_name].into_iter().flatten() {
            plain_name("vmmanager", n)?;
        }
    }
    if let Some(l) = &t.lxd {
        super::codec::Gzip::new(l.compression.level)
            .map_err(|e| anyhow!("publish target `vmmanager-lxd`: compression: {e}"))?;
        for n in [&l.name, &l.image_name].into_iter().flatten() {
            plain_name("vmmanager-lxd", n)?;
        }
    }
    if let Some(d) = &t.disk {
        if d.compress == Some(true) && d.format.is_some_and(|f| f != Format::Qcow2) {
            bail!("publish target `disk`: compress applies to qcow2 only");
        }
        if let Some(n) = &d.name {
            plain_name("disk", n)?;
        }
    }
    if let Some(d) = &t.deckhouse {
        http_url("deckhouse", &d.base_url)?;
        match (d.kind, &d.namespace) {
            (DeckhouseKind::VirtualImage, None) => {
                bail!("publish target `deckhouse`: a VirtualImage needs `namespace`")
            }
            (DeckhouseKind::ClusterVirtualImage, Some(_)) => {
                bail!("publish target `deckhouse`: a ClusterVirtualImage is cluster-wide; drop `namespace` or use kind: VirtualImage")
            }
            _ => {}
        }
        if let Some(ns) = &d.namespace {
            dns_label("deckhouse", "namespace", ns, 63)?;
        }
        if let Some(n) = &d.name {
            dns_label("deckhouse", "name", n, 63)?;
        }
        if let Some(tag) = &d.tag {
            let re = regex::Regex::new(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$").expect("static regex");
            if !re.is_match(tag) {
                bail!("publish target `deckhouse`: tag {tag:?} is not a valid image tag");
            }
        }
    }
    if let Some(v) = &t.vcluster {
        http_url("vcluster", &v.base_url)?;
        if v.checksum_type == Algo::Sha1 {
            bail!("publish target `vcluster`: checksum_type must be md5, sha256 or sha512 (what Metal3 accepts)");
        }
        if let Some(n) = &v.name {
            dns_label("vcluster", "name", n, 63)?;
        }
    }
    if let Some(c) = &t.checksums {
        if c.algorithms.is_empty() {
            bail!("publish target `checksums`: algorithms is empty");
        }
    }
    if let Some(m) = &t.manifest {
        if let Some(f) = &m.file {
            plain_name("manifest", f)?;
        }
    }
    Ok(())
}

fn http_url(target: &str, url: &str) -> Result<()> {
    let re = regex::Regex::new(r"^https?://[^\s/?#]+(/[^\s?#]*)?$").expect("static regex");
    if !re.is_match(url) {
        bail!("publish target `{target}`: base_url must be an http:// or https:// URL without query, not {url:?}");
    }
    Ok(())
}

fn plain_name(target: &str, name: &str) -> Result<()> {
    if !crate::outputs::is_plain_name(name) {
        bail!("publish target `{target}`: {name:?} must be a plain file name");
    }
    Ok(())
}

/// Kubernetes object names (RFC 1123 labels).
fn dns_label(target: &str, what: &str, v: &str, max: usize) -> Result<()> {
    let re = regex::Regex::new(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$").expect("static regex");
    if v.len() > max || !re.is_match(v) {
        bail!("publish target `{target}`: {what} {v:?} must be lowercase letters, digits and '-' (at most {max})");
    }
    Ok(())
}

/// A name made safe for a file name: letters, digits, `.`, `_`, `-`.
pub fn file_safe(name: &str) -> String {
    let s: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-".contains(c) {
                c
            } else {
                '-'
            }
        })
        .collect();
    let s = s.trim_matches(|c| c == '-' || c == '.').to_string();
    if s.is_empty() {
        "template".into()
    } else {
        s
    }
}

/// A name made into an RFC 1123 label.
pub fn dns_safe(name: &str) -> String {
    let s: String = name
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    let mut s = s.trim_matches('-').to_string();
    while s.contains("--") {
        s = s.replace("--", "-");
    }
    s.truncate(63);
    let s = s.trim_end_matches('-').to_string();
    if s.is_empty() {
        "template".into()
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_str(yaml: &str, selected: &[&str]) -> Result<Targets> {
        let v: serde_yaml::Value = serde_yaml::from_str(yaml).unwrap();
        let sel: Vec<String> = selected.iter().map(|s| s.to_string()).collect();
        parse(Path::new("r.yaml"), Some(&v), &sel)
    }

    fn err(yaml: &str, selected: &[&str]) -> String {
        format!("{:#}", parse_str(yaml, selected).unwrap_err())
    }

    #[test]
    fn full_example_parses() {
        let t = parse_str(
            r#"
vmmanager: {repo: /srv/repo, name: debian-12, tags: [debian], cpu_mode: host-passthrough, expand: /dev/vda1,
            compression: {preset: 9, threads: 2}}
vmmanager-lxd: {repo: /srv/lxd}
disk: {format: qcow2, compress: true}
deckhouse: {base_url: "https://img.example.com/golden", kind: VirtualImage, namespace: vms}
vcluster: {base_url: "http://img.example.com", display_name: Debian 12, checksum_type: sha512}
checksums: {algorithms: [sha256, sha1, sha512]}
"#,
            &[],
        )
        .unwrap();
        assert_eq!(
            t.names(),
            [
                "vmmanager",
                "vmmanager-lxd",
                "disk",
                "deckhouse",
                "vcluster",
                "checksums"
            ]
        );
        assert_eq!(t.vmmanager.unwrap().compression.preset, 9);
        assert_eq!(t.deckhouse.unwrap().kind, DeckhouseKind::VirtualImage);
    }

    #[test]
    fn command_line_selects_and_defaults() {
        let t = parse_str("vmmanager: {name: x}\ndisk: {}", &["disk", "checksums"]).unwrap();
        assert_eq!(t.names(), ["disk", "checksums"]);
        assert_eq!(t.checksums.unwrap().algorithms, [Algo::Sha256]);
    }

    #[test]
    fn bad_settings_are_one_line_errors() {
        assert_eq!(
            err("vmmanger: {}", &[]),
            "r.yaml: publish: unknown publish target `vmmanger`, did you mean `vmmanager`?"
        );
        assert!(err("deckhouse: {}", &[]).contains("publish target `deckhouse`: missing field `base_url`"));
        assert!(err("{}", &["deckhouse"]).contains("missing field `base_url`"));
        assert!(err("vmmanager: {compresion: {}}", &[]).contains("unknown field `compresion`"));
        assert!(err("vmmanager: {compression: {preset: 12}}", &[]).contains("out of range"));
        assert!(err("vmmanager: {cpu_mode: fast}", &[]).contains("unknown variant `fast`"));
        assert!(err("deckhouse: {base_url: ftp://x}", &[]).contains("http:// or https://"));
        assert!(err("deckhouse: {base_url: 'http://x', kind: VirtualImage}", &[]).contains("needs `namespace`"));
        assert!(err("vcluster: {base_url: 'http://x', checksum_type: sha1}", &[]).contains("md5, sha256 or sha512"));
        assert!(err("disk: {format: raw, compress: true}", &[]).contains("qcow2 only"));
        assert!(err("checksums: {algorithms: [crc]}", &[]).contains("unknown variant `crc`"));
        assert!(err("{}", &["vcluser"])
            .starts_with("--publish: unknown publish target `vcluser`, did you mean `vcluster`?"));
        for e in [err("deckhouse: {}", &[]), err("vmmanger: {}", &[])] {
            assert!(!e.contains('\n'), "{e}");
        }
    }

    #[test]
    fn names_are_made_safe() {
        assert_eq!(file_safe("Debian 12 (amd64)"), "Debian-12--amd64");
        assert_eq!(dns_safe("Debian 12 (amd64)"), "debian-12-amd64");
        assert_eq!(dns_safe("///"), "template");
    }
}
