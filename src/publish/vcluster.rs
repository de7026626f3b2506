//! `vcluster`: an OSImage (`management.loft.sh/v1`) for vCluster Platform's Metal3 node
//! provider, pointing at the published qcow2 with its checksum
//! (<https://vcluster.com/docs/platform/next/use-platform/machines/os-images>).

use super::hash::Algo;
use super::images::Request;
use super::settings::{dns_label, http_url, publishable};
use super::target::{Destination, Target, TargetInfo};
use super::{GuestInfo, Plan, Produce};
use crate::disk::Format;
use crate::steps::OptionDoc;
use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::path::{Path, PathBuf};

pub static INFO: TargetInfo = TargetInfo {
    name: "vcluster",
    summary: "vCluster Platform: <name>.qcow2 and an OSImage manifest pointing at it with its checksum",
    options: &[
        OptionDoc {
            name: "dir",
            kind: "path",
            default: "--publish-dir",
            help: "where the files go",
        },
        OptionDoc {
            name: "base_url",
            kind: "URL",
            default: "required",
            help: "where the directory is served over HTTP(S)",
        },
        OptionDoc {
            name: "name",
            kind: "string",
            default: "the template name, lowercased",
            help: "object and file name (RFC 1123 label)",
        },
        OptionDoc {
            name: "display_name",
            kind: "string",
            default: "the OS's product name",
            help: "spec.displayName",
        },
        OptionDoc {
            name: "description",
            kind: "string",
            default: "none",
            help: "spec.description",
        },
        OptionDoc {
            name: "checksum_type",
            kind: "md5|sha256|sha512",
            default: "sha256",
            help: "what Metal3's image-checksum-type accepts",
        },
    ],
};

/// `vcluster`'s settings.
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

impl Vcluster {
    fn request(&self, plan: &Plan, name: &str) -> Request {
        Request {
            dest: self.dir(&plan.dir).join(format!("{name}.qcow2")),
            format: Format::Qcow2,
            compress: false,
        }
    }
}

impl Target for Vcluster {
    fn validate(&self) -> Result<()> {
        http_url(&self.base_url)?;
        if self.checksum_type == Algo::Sha1 {
            bail!("checksum_type must be md5, sha256 or sha512 (what Metal3 accepts)");
        }
        if let Some(n) = &self.name {
            dns_label("name", n, 63)?;
            for f in [format!("{n}.qcow2"), format!("{n}.osimage.yaml")] {
                publishable("name", &f)?;
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
        let what = r.describe();
        vec![
            Destination::file(r.dest, what),
            Destination::file(
                self.dir(&plan.dir).join(format!("{name}.osimage.yaml")),
                "an OSImage manifest",
            ),
        ]
    }

    fn produce(&mut self, out: &mut Produce) -> Result<()> {
        let name = out.plan.object_name(self.name.as_deref(), out.info);
        let dir = self.dir(&out.plan.dir);
        let file = format!("{name}.qcow2");
        let image = out.image(INFO.name, self.request(out.plan, &name))?;
        let sum = out
            .image_sums(image)?
            .get(self.checksum_type.name())
            .cloned()
            .unwrap_or_default();
        let display = super::display_name(&out.info.os);
        let url = super::deckhouse::url(&self.base_url, &file);
        let text = manifest(self, &name, &display, &url, &sum)?;
        out.text(INFO.name, &dir.join(format!("{name}.osimage.yaml")), &text)
    }
}

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
