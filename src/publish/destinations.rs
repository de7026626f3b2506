//! Every file a publish plan writes, listed before anything starts so that outputs.rs
//! can check them all in one place (against the run's inputs and each other). `produce`
//! names its artifacts through the same helpers.

use super::disk::{dedup, Request};
use super::settings::{dns_safe, file_safe};
use super::{deckhouse, repo, GuestInfo, Plan};
use crate::error::{Exit, Tag};
use crate::outputs::Output;
use anyhow::Result;

impl Plan {
    /// The template name: the target's setting, else `--name`, else the guest's
    /// `<distro>-<major>` (`None` while the guest is not known).
    fn known_template_name(&self, setting: Option<&str>, info: Option<&GuestInfo>) -> Option<String> {
        match (setting.or(self.run_name.as_deref()), info) {
            (Some(n), _) => Some(n.to_string()),
            (None, Some(info)) => Some(self.template_name(None, info)),
            (None, None) => None,
        }
    }

    /// The base name deckhouse and vcluster give their files and resources: the setting,
    /// else the template name made a DNS label.
    pub(super) fn k8s_name(&self, setting: Option<&str>, info: Option<&GuestInfo>) -> Option<String> {
        match setting {
            Some(n) => Some(n.to_string()),
            None => self.known_template_name(None, info).map(|n| dns_safe(&n)),
        }
    }

    /// The `disk` target's image.
    pub(super) fn disk_request(&self) -> Option<Request> {
        let s = self.targets.disk.as_ref()?;
        let format = s.format.or(self.output.format).unwrap_or(crate::disk::Format::Qcow2);
        let compress = s.compress.or(self.output.compress).unwrap_or(false) && format == crate::disk::Format::Qcow2;
        let name = s.name.clone().unwrap_or_else(|| self.disk_name.clone());
        let dest = self.dir_of(&s.dir).join(format!("{name}.{}", format.extension()));
        Some(Request { dest, format, compress })
    }

    /// Every destination of every target, the run manifest included. Names that come from
    /// the guest (no `--name`, no name setting) are known only once it is open: without
    /// `info` they are left out, and the caller checks again with it.
    pub fn destinations(&self, info: Option<&GuestInfo>) -> Result<Vec<Output>> {
        let t = &self.targets;
        let mut out = Vec::new();
        let by = |target: &str| format!("the `{target}` target");
        if let Some(s) = &t.vmmanager {
            let repo = self.dir_of(&s.repo);
            let image = s
                .image_name
                .clone()
                .or_else(|| self.known_template_name(s.name.as_deref(), info).map(|n| file_safe(&n)));
            if let Some(image) = image {
                out.push(Output::file(by("vmmanager"), repo.join(format!("{image}.xz"))));
            }
            out.push(Output::file(by("vmmanager"), repo.join(repo::METADATA)));
        }
        if let Some(s) = &t.lxd {
            let repo = self.dir_of(&s.repo);
            let image = s
                .image_name
                .clone()
                .or_else(|| self.known_template_name(s.name.as_deref(), info).map(|n| file_safe(&n)));
            if let Some(image) = image {
                out.push(Output::file(by("vmmanager-lxd"), repo.join(format!("{image}.tar.gz"))));
            }
            out.push(Output::file(by("vmmanager-lxd"), repo.join(repo::METADATA)));
        }
        // Disk images: several targets may want the same file, if they want it alike; it
        // is then made once, and is one output.
        let mut images = Vec::new();
        if let Some(r) = self.disk_request() {
            images.push(("disk".to_string(), r));
        }
        if let Some(s) = &t.deckhouse {
            if let Some(name) = self.k8s_name(s.name.as_deref(), info) {
                let dir = self.dir_of(&s.dir);
                images.push((
                    "deckhouse".into(),
                    Request {
                        dest: dir.join(format!("{name}.qcow2")),
                        format: crate::disk::Format::Qcow2,
                        compress: s.compress,
                    },
                ));
                if s.container_disk {
                    out.push(Output {
                        dir: true,
                        ..Output::file(by("deckhouse"), dir.join(format!("{name}.oci")))
                    });
                    out.push(Output::file(by("deckhouse"), dir.join(format!("{name}.oci.tar"))));
                }
                out.push(Output::file(
                    by("deckhouse"),
                    dir.join(deckhouse::manifest_file(s, &name)),
                ));
            }
        }
        if let Some(s) = &t.vcluster {
            if let Some(name) = self.k8s_name(s.name.as_deref(), info) {
                let dir = self.dir_of(&s.dir);
                images.push((
                    "vcluster".into(),
                    Request {
                        dest: dir.join(format!("{name}.qcow2")),
                        format: crate::disk::Format::Qcow2,
                        compress: false,
                    },
                ));
                out.push(Output::file(by("vcluster"), dir.join(format!("{name}.osimage.yaml"))));
            }
        }
        for (who, r) in dedup(images).tag(Exit::Usage)? {
            let who: Vec<String> = who.iter().map(|w| by(w)).collect();
            out.push(Output::file(who.join(" and "), r.dest));
        }
        if let Some(c) = &t.checksums {
            let dir = self.dir_of(&c.dir);
            for a in &c.algorithms {
                out.push(Output::file(by("checksums"), dir.join(a.sums_file())));
            }
        }
        out.push(Output::file(by("manifest"), self.manifest_path()));
        Ok(out)
    }
}
