//! `deckhouse`: a ClusterVirtualImage (or a namespaced VirtualImage) that Deckhouse
//! Virtualization imports over HTTP, with the checksums its CRD accepts (`md5`, `sha256`;
//! crds/clustervirtualimages.yaml in github.com/deckhouse/virtualization), and the same
//! qcow2 as a containerDisk OCI image (see oci.rs).

use super::images::Request;
use super::settings::{dns_label, http_url, publishable};
use super::target::{Destination, Target, TargetInfo};
use super::{oci, GuestInfo, Plan, Produce};
use crate::disk::Format;
use crate::steps::OptionDoc;
use anyhow::{bail, Context, Result};
use regex::Regex;
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::LazyLock;

pub static INFO: TargetInfo = TargetInfo {
    name: "deckhouse",
    summary: "Deckhouse Virtualization: <name>.qcow2, a ClusterVirtualImage/VirtualImage manifest importing it over HTTP, and the same disk as a containerDisk OCI image",
    options: &[
        OptionDoc { name: "dir", kind: "path", default: "--publish-dir", help: "where the files go" },
        OptionDoc { name: "base_url", kind: "URL", default: "required", help: "where the directory is served over HTTP(S)" },
        OptionDoc { name: "kind", kind: "ClusterVirtualImage|VirtualImage", default: "ClusterVirtualImage", help: "the resource kind" },
        OptionDoc { name: "namespace", kind: "string", default: "none", help: "required for a VirtualImage" },
        OptionDoc { name: "name", kind: "string", default: "the template name, lowercased", help: "resource and file name (RFC 1123 label)" },
        OptionDoc { name: "container_disk", kind: "bool", default: "true", help: "also build the containerDisk (OCI layout and oci-archive)" },
        OptionDoc { name: "compress", kind: "bool", default: "false", help: "compressed qcow2 clusters for the HTTP image" },
        OptionDoc { name: "tag", kind: "string", default: "latest", help: "the OCI image's tag" },
    ],
};

fn default_true() -> bool {
    true
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
pub enum DeckhouseKind {
    #[default]
    ClusterVirtualImage,
    VirtualImage,
}

/// `deckhouse`'s settings.
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

impl Deckhouse {
    fn request(&self, plan: &Plan, name: &str) -> Request {
        Request {
            dest: self.dir(&plan.dir).join(format!("{name}.qcow2")),
            format: Format::Qcow2,
            compress: self.compress,
        }
    }
}

impl Target for Deckhouse {
    fn validate(&self) -> Result<()> {
        http_url(&self.base_url)?;
        match (self.kind, &self.namespace) {
            (DeckhouseKind::VirtualImage, None) => bail!("a VirtualImage needs `namespace`"),
            (DeckhouseKind::ClusterVirtualImage, Some(_)) => {
                bail!("a ClusterVirtualImage is cluster-wide; drop `namespace` or use kind: VirtualImage")
            }
            _ => {}
        }
        if let Some(ns) = &self.namespace {
            dns_label("namespace", ns, 63)?;
        }
        if let Some(n) = &self.name {
            dns_label("name", n, 63)?;
            for f in [
                format!("{n}.qcow2"),
                format!("{n}.oci"),
                format!("{n}.oci.tar"),
                manifest_file(self, n),
            ] {
                publishable("name", &f)?;
            }
        }
        if let Some(tag) = &self.tag {
            static TAG: LazyLock<Regex> =
                LazyLock::new(|| Regex::new(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$").expect("static regex"));
            if !TAG.is_match(tag) {
                bail!("tag {tag:?} is not a valid image tag");
            }
        }
        Ok(())
    }

    fn dir(&self, publish_dir: &Path) -> PathBuf {
        self.dir.clone().unwrap_or_else(|| publish_dir.to_path_buf())
    }

    fn destinations(&self, plan: &Plan, info: Option<&GuestInfo>) -> Vec<Destination> {
        let Some(name) = plan.known_object_name(self.name.as_deref(), info) else {
            return Vec::new();
        };
        let r = self.request(plan, &name);
        let dir = self.dir(&plan.dir);
        let what = r.describe();
        let mut v = vec![
            Destination::file(r.dest, what),
            Destination::file(dir.join(manifest_file(self, &name)), "a Deckhouse manifest"),
        ];
        if self.container_disk {
            v.push(Destination {
                dir: true,
                ..Destination::file(dir.join(format!("{name}.oci")), "an OCI layout")
            });
            v.push(Destination::file(dir.join(format!("{name}.oci.tar")), "an OCI archive"));
        }
        v
    }

    fn produce(&mut self, out: &mut Produce) -> Result<()> {
        let name = out.plan.object_name(self.name.as_deref(), out.info);
        let dir = self.dir(&out.plan.dir);
        let file = format!("{name}.qcow2");
        let image = out.image(INFO.name, self.request(out.plan, &name))?;
        if self.container_disk {
            let tag = self.tag.as_deref().unwrap_or("latest");
            let bar = crate::progress::phase(format!("packing the containerDisk {name}.oci"));
            // The qcow2 is read once: packed into the layer and hashed in the same read.
            let built = oci::build(
                out.image_path(image),
                &name,
                tag,
                &dir.join(format!("{name}.oci")),
                &dir.join(format!("{name}.oci.tar")),
                &out.image_algos(),
                &out.plan.algos,
            )?;
            drop(bar);
            out.set_image_sums(image, built.disk_checksums);
            let manifest_sum = [("manifest-sha256".to_string(), built.manifest_digest.clone())];
            out.file(
                "deckhouse-oci-archive",
                built.archive,
                built.archive_size,
                built.archive_checksums,
            );
            out.dir("deckhouse-oci-layout", built.layout, manifest_sum.into_iter().collect());
        }
        let sums = out.image_sums(image)?;
        let text = manifest(self, &name, &file, &sums)?;
        out.text(INFO.name, &dir.join(manifest_file(self, &name)), &text)
    }
}

pub const API_VERSION: &str = "virtualization.deckhouse.io/v1alpha2";

pub fn url(base_url: &str, file: &str) -> String {
    format!("{}/{file}", base_url.trim_end_matches('/'))
}

/// The manifest as YAML.
pub fn manifest(s: &Deckhouse, name: &str, file: &str, checksums: &BTreeMap<String, String>) -> Result<String> {
    let mut checksum = serde_json::Map::new();
    for k in ["md5", "sha256"] {
        if let Some(v) = checksums.get(k) {
            checksum.insert(k.into(), json!(v));
        }
    }
    let mut metadata = json!({"name": name});
    let mut spec = json!({
        "dataSource": {"type": "HTTP", "http": {"url": url(&s.base_url, file), "checksum": checksum}},
    });
    let kind = match s.kind {
        DeckhouseKind::ClusterVirtualImage => "ClusterVirtualImage",
        DeckhouseKind::VirtualImage => {
            metadata["namespace"] = json!(s.namespace.clone().unwrap_or_default());
            // Required by the VirtualImage CRD (its default is ContainerRegistry, i.e. DVCR).
            spec["storage"] = json!("ContainerRegistry");
            "VirtualImage"
        }
    };
    let doc = json!({"apiVersion": API_VERSION, "kind": kind, "metadata": metadata, "spec": spec});
    serde_yaml::to_string(&doc).context("writing the Deckhouse manifest")
}

pub fn manifest_file(s: &Deckhouse, name: &str) -> String {
    match s.kind {
        DeckhouseKind::ClusterVirtualImage => format!("{name}.clustervirtualimage.yaml"),
        DeckhouseKind::VirtualImage => format!("{name}.virtualimage.yaml"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_and_namespaced_images() {
        let sums: BTreeMap<String, String> = [
            ("md5", "a".repeat(32)),
            ("sha256", "b".repeat(64)),
            ("sha1", "c".repeat(40)),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        let s: Deckhouse = serde_yaml::from_str("base_url: https://img.example.com/golden/").unwrap();
        let y = manifest(&s, "debian-12", "debian-12.qcow2", &sums).unwrap();
        let v: serde_yaml::Value = serde_yaml::from_str(&y).unwrap();
        assert_eq!(v["kind"].as_str(), Some("ClusterVirtualImage"));
        assert_eq!(v["apiVersion"].as_str(), Some(API_VERSION));
        assert_eq!(v["spec"]["dataSource"]["type"].as_str(), Some("HTTP"));
        assert_eq!(
            v["spec"]["dataSource"]["http"]["url"].as_str(),
            Some("https://img.example.com/golden/debian-12.qcow2")
        );
        assert_eq!(
            v["spec"]["dataSource"]["http"]["checksum"]["sha256"]
                .as_str()
                .map(str::len),
            Some(64)
        );
        assert!(
            v["spec"]["dataSource"]["http"]["checksum"].get("sha1").is_none(),
            "the CRD knows md5 and sha256 only"
        );
        assert!(v["metadata"].get("namespace").is_none());
        let s: Deckhouse = serde_yaml::from_str("{base_url: 'http://x', kind: VirtualImage, namespace: vms}").unwrap();
        let v: serde_yaml::Value = serde_yaml::from_str(&manifest(&s, "d", "d.qcow2", &sums).unwrap()).unwrap();
        assert_eq!(v["metadata"]["namespace"].as_str(), Some("vms"));
        assert_eq!(v["spec"]["storage"].as_str(), Some("ContainerRegistry"));
        assert_eq!(manifest_file(&s, "d"), "d.virtualimage.yaml");
    }
}
