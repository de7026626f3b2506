//! `disk`: the golden disk as qcow2 (optionally compressed), raw, vmdk or vdi, written into
//! the publish directory beside the other artifacts.

use super::images::Request;
use super::settings::{plain_name, publishable};
use super::target::{Destination, Target, TargetInfo};
use super::{GuestInfo, Plan, Produce};
use crate::disk::Format;
use crate::steps::OptionDoc;
use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

pub static INFO: TargetInfo = TargetInfo {
    name: "disk",
    summary: "the golden disk as qcow2 (optionally compressed), raw, vmdk or vdi",
    options: &[
        OptionDoc {
            name: "dir",
            kind: "path",
            default: "--publish-dir",
            help: "where the file goes",
        },
        OptionDoc {
            name: "format",
            kind: "qcow2|raw|vmdk|vdi",
            default: "--format, else the recipe's output.format, else qcow2",
            help: "the image format",
        },
        OptionDoc {
            name: "compress",
            kind: "bool",
            default: "the recipe's output.compress",
            help: "compressed qcow2 clusters (qcow2 only)",
        },
        OptionDoc {
            name: "name",
            kind: "string",
            default: "--name, else the input's name + -golden",
            help: "base file name",
        },
    ],
};

/// `disk`'s settings.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Disk {
    pub dir: Option<PathBuf>,
    /// Default: --format, else the recipe's `output.format`, else qcow2.
    pub format: Option<Format>,
    /// Compressed qcow2 clusters (qcow2 only). Default: the recipe's `output.compress`.
    pub compress: Option<bool>,
    /// Base file name. Default: --name, else the input's name + "-golden".
    pub name: Option<String>,
}

impl Disk {
    fn request(&self, plan: &Plan) -> Request {
        let format = self.format.or(plan.format).unwrap_or(Format::Qcow2);
        let compress = self.compress.or(plan.compress).unwrap_or(false) && format == Format::Qcow2;
        let name = self.name.clone().unwrap_or_else(|| plan.disk_name.clone());
        Request {
            dest: self.dir(&plan.dir).join(format!("{name}.{}", format.extension())),
            format,
            compress,
        }
    }
}

impl Target for Disk {
    fn validate(&self) -> Result<()> {
        if self.compress == Some(true) && self.format.is_some_and(|f| f != Format::Qcow2) {
            bail!("compress applies to qcow2 only");
        }
        if let Some(n) = &self.name {
            plain_name(n)?;
            for f in [Format::Qcow2, Format::Raw, Format::Vmdk, Format::Vdi] {
                publishable("name", &format!("{n}.{}", f.extension()))?;
            }
        }
        Ok(())
    }

    fn dir(&self, publish_dir: &Path) -> PathBuf {
        self.dir.clone().unwrap_or_else(|| publish_dir.to_path_buf())
    }

    fn destinations(&self, plan: &Plan, _info: Option<&GuestInfo>) -> Vec<Destination> {
        let r = self.request(plan);
        let what = r.describe();
        vec![Destination::file(r.dest, what)]
    }

    fn produce(&mut self, out: &mut Produce) -> Result<()> {
        let r = self.request(out.plan);
        out.image(INFO.name, r)?;
        Ok(())
    }
}
