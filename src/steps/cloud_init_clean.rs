//! What `cloud-init clean --logs [--seed] [--configs …]` does, offline, following
//! cloudinit/cmd/clean.py: remove the logs, every entry of the cloud dir (by default
//! /var/lib/cloud, or `cloud_dir` from /etc/cloud/cloud.cfg) except `seed/` unless asked,
//! and the generated network / sshd configs on request. Symlinks in the cloud dir (such
//! as `instance`) are removed as links, never followed. clean.py then runs the scripts in
//! /etc/cloud/clean.d; goldify runs no guest script on the host, so those are reported.
//! The machine-id part of `clean --machine-id` is the machine-id step's job.

use super::{Ctx, OptionDoc, Phase, Step, StepInfo};
use anyhow::Result;
use regex::Regex;
use serde::{Deserialize, Serialize};
use std::sync::LazyLock;

pub(crate) static INFO: StepInfo = StepInfo {
    name: "cloud-init-clean",
    summary: "offline `cloud-init clean --logs --seed`: instance state, logs, optionally generated configs",
    families: &[],
    options: &[
        OptionDoc { name: "logs", kind: "bool", default: "true", help: "remove cloud-init's logs" },
        OptionDoc { name: "seed", kind: "bool", default: "true", help: "remove the seed directory too" },
        OptionDoc { name: "configs", kind: "list of network|ssh_config|all", default: "[]", help: "generated configs to remove" },
    ],
    phase: Phase::Main,
    repeatable: false,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum ConfigKind {
    Network,
    SshConfig,
    All,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct CloudInitClean {
    pub logs: bool,
    pub seed: bool,
    pub configs: Vec<ConfigKind>,
}

impl Default for CloudInitClean {
    fn default() -> Self {
        CloudInitClean { logs: true, seed: true, configs: Vec::new() }
    }
}

/// cloud-init's GEN_NET_CONFIG_FILES.
const NET_CONFIGS: &[&str] = &[
    "/etc/netplan/50-cloud-init.yaml",
    "/etc/NetworkManager/conf.d/99-cloud-init.conf",
    "/etc/NetworkManager/conf.d/30-cloud-init-ip6-addr-gen-mode.conf",
    "/etc/NetworkManager/system-connections/cloud-init-*.nmconnection",
    "/etc/systemd/network/10-cloud-init-*.network",
    "/etc/network/interfaces.d/50-cloud-init.cfg",
];
/// cloud-init's GEN_SSH_CONFIG_FILES.
const SSH_CONFIGS: &[&str] = &["/etc/ssh/sshd_config.d/50-cloud-init.conf"];
/// The default def_log_file and output log, with their rotated copies.
const LOGS: &[&str] = &["/var/log/cloud-init.log", "/var/log/cloud-init-output.log", "/var/log/cloud-init.log.*", "/var/log/cloud-init-output.log.*"];

static CLOUD_DIR: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r#"(?m)^\s+cloud_dir:\s*['"]?(/[^'"\s#]+?)/?['"]?\s*(#.*)?$"#).expect("static regex"));

/// `cloud_dir:` from cloud.cfg's system_info.paths, if set to a plain absolute path.
fn cloud_dir(cfg: &str) -> Option<String> {
    let dir = CLOUD_DIR.captures(cfg)?.get(1)?.as_str().to_string();
    let ok = crate::guest::components(&dir).is_ok();
    ok.then_some(dir)
}

impl Step for CloudInitClean {
    fn info(&self) -> &'static StepInfo {
        &INFO
    }

    fn apply(&self, ctx: &mut Ctx) -> Result<()> {
        if self.logs {
            ctx.remove_globs(LOGS)?;
        }
        let all = self.configs.contains(&ConfigKind::All);
        if all || self.configs.contains(&ConfigKind::Network) {
            ctx.remove_globs(NET_CONFIGS)?;
        }
        if all || self.configs.contains(&ConfigKind::SshConfig) {
            ctx.remove_globs(SSH_CONFIGS)?;
        }
        let dir = ctx
            .read_text("/etc/cloud/cloud.cfg")?
            .and_then(|c| cloud_dir(&c))
            .unwrap_or_else(|| "/var/lib/cloud".into());
        let seed = format!("{dir}/seed");
        for path in ctx.glob(&format!("{dir}/*"))? {
            if path == seed && !self.seed {
                continue;
            }
            ctx.remove(&path)?;
        }
        // run-parts runs only executable regular files.
        let mut scripts = Vec::new();
        for p in ctx.glob("/etc/cloud/clean.d/*")? {
            if matches!(ctx.lstat(&p)?, Some(m) if m.kind == crate::guest::Kind::File && m.mode & 0o111 != 0) {
                scripts.push(p);
            }
        }
        if !scripts.is_empty() {
            ctx.warn(format!("not running /etc/cloud/clean.d scripts offline: {}", scripts.join(", ")));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::guest::memory::MemoryGuest;
    use crate::guest::OsFacts;

    #[test]
    fn cleans_like_cloud_init() {
        let g = MemoryGuest::new(OsFacts::sample("ubuntu"));
        g.file("/var/lib/cloud/instances/iid-1/user-data.txt", b"x");
        g.link("/var/lib/cloud/instance", "/var/lib/cloud/instances/iid-1");
        g.file("/var/lib/cloud/data/instance-id", b"iid-1");
        g.file("/var/lib/cloud/seed/nocloud/user-data", b"#cloud-config");
        g.file("/var/log/cloud-init.log", b"log");
        g.file("/etc/netplan/50-cloud-init.yaml", b"network: {}");
        let mut ctx = Ctx::new(&g, false, "cloud-init-clean");
        CloudInitClean { seed: false, ..Default::default() }.apply(&mut ctx).unwrap();
        assert!(!g.exists("/var/lib/cloud/instances"));
        assert!(!g.exists("/var/lib/cloud/instance"));
        assert!(!g.exists("/var/lib/cloud/data"));
        assert!(g.exists("/var/lib/cloud/seed/nocloud/user-data"));
        assert!(!g.exists("/var/log/cloud-init.log"));
        assert!(g.exists("/etc/netplan/50-cloud-init.yaml"));

        let mut ctx = Ctx::new(&g, false, "cloud-init-clean");
        CloudInitClean { configs: vec![ConfigKind::Network], ..Default::default() }.apply(&mut ctx).unwrap();
        assert!(!g.exists("/var/lib/cloud/seed"));
        assert!(!g.exists("/etc/netplan/50-cloud-init.yaml"));
    }

    #[test]
    fn reads_cloud_dir() {
        assert_eq!(cloud_dir("system_info:\n  paths:\n    cloud_dir: /srv/cloud/\n").as_deref(), Some("/srv/cloud"));
        assert_eq!(cloud_dir("system_info:\n  paths:\n    cloud_dir: ../x\n"), None);
    }
}
