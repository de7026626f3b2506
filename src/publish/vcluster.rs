//! `vcluster`: an OSImage (`management.loft.sh/v1`) for vCluster Platform's Metal3 node
//! provider, pointing at the published qcow2 with its checksum
//! (<https://vcluster.com/docs/platform/next/use-platform/machines/os-images>).

use super::settings::Vcluster;
use anyhow::{Context, Result};
use serde_json::json;

pub fn manifest(s: &Vcluster, name: &str, display: &str, url: &str, checksum: &str) -> Result<String> {
    let mut spec = json!({"displayName": s.display_name.clone().unwrap_or_else(|| display.to_string())});
    if let Some(d) = &s.description {
        spec["description"] = json!(d);
    }
    spec["properties"] = json!({
        "metal3.vcluster.com/image-url": url,
        "metal3.vcluster.com/image-checksum": checksum,
        "metal3.vcluster.com/image-checksum-type": s.checksum_type.name(),
    });
    let doc =
        json!({"apiVersion": "management.loft.sh/v1", "kind": "OSImage", "metadata": {"name": name}, "spec": spec});
    serde_yaml::to_string(&doc).context("writing the OSImage manifest")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn osimage_properties() {
        let s: Vcluster = serde_yaml::from_str("{base_url: 'http://x', description: Golden Debian}").unwrap();
        let y = manifest(&s, "debian-12", "debian 12.0", "http://x/debian-12.qcow2", "ab").unwrap();
        let v: serde_yaml::Value = serde_yaml::from_str(&y).unwrap();
        assert_eq!(v["apiVersion"].as_str(), Some("management.loft.sh/v1"));
        assert_eq!(v["kind"].as_str(), Some("OSImage"));
        assert_eq!(v["spec"]["displayName"].as_str(), Some("debian 12.0"));
        assert_eq!(v["spec"]["description"].as_str(), Some("Golden Debian"));
        let p = &v["spec"]["properties"];
        assert_eq!(
            p["metal3.vcluster.com/image-url"].as_str(),
            Some("http://x/debian-12.qcow2")
        );
        assert_eq!(p["metal3.vcluster.com/image-checksum-type"].as_str(), Some("sha256"));
    }
}
