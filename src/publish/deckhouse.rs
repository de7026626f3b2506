//! `deckhouse`: a ClusterVirtualImage (or a namespaced VirtualImage) that Deckhouse
//! Virtualization imports over HTTP, with the checksums its CRD accepts (`md5`, `sha256`;
//! crds/clustervirtualimages.yaml in github.com/deckhouse/virtualization), and the same
//! qcow2 as a containerDisk OCI image (see oci.rs).

use super::settings::{Deckhouse, DeckhouseKind};
use anyhow::{Context, Result};
use serde_json::json;
use std::collections::BTreeMap;

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
