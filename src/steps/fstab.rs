//! /etc/fstab must name block devices stably: UUID=, LABEL=, PARTUUID=, PARTLABEL= (or
//! device-mapper, LVM and /dev/disk/by-uuid|by-label|by-partuuid|by-partlabel paths). A
//! clone may see its disk as vda instead of sda; an entry for /dev/sda1 then fails to mount.
//! Policy `fail` stops the run, `warn` reports, `fix` rewrites the device field to UUID= of
//! the filesystem actually on that device, leaving comments and spacing as they were.

use super::{Ctx, OptionDoc, Phase, Step, StepInfo};
use anyhow::{bail, Result};
use regex::Regex;
use serde::{Deserialize, Serialize};
use std::sync::LazyLock;

pub(crate) static INFO: StepInfo = StepInfo {
    name: "fstab",
    summary: "require fstab to use UUID=/LABEL=/PARTUUID=/PARTLABEL= (policy fail, warn, or fix to UUID=)",
    families: &[],
    options: &[OptionDoc { name: "policy", kind: "fail|warn|fix", default: "fail", help: "what to do with unstable device names" }],
    phase: Phase::Main,
    repeatable: false,
};

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Policy {
    #[default]
    Fail,
    Warn,
    Fix,
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct Fstab {
    pub policy: Policy,
}

/// Whether an fstab device field is stable across clones (or not a block device at all).
pub(crate) fn is_stable(spec: &str) -> bool {
    const TAGS: [&str; 4] = ["UUID=", "LABEL=", "PARTUUID=", "PARTLABEL="];
    const STABLE_DIRS: [&str; 5] =
        ["/dev/mapper/", "/dev/disk/by-uuid/", "/dev/disk/by-label/", "/dev/disk/by-partuuid/", "/dev/disk/by-partlabel/"];
    if TAGS.iter().any(|t| spec.starts_with(t)) || STABLE_DIRS.iter().any(|d| spec.starts_with(d)) {
        return true;
    }
    if !spec.starts_with("/dev/") {
        // proc, tmpfs, none, host:/export, //server/share, a bind-mounted directory…
        return true;
    }
    // /dev/<vg>/<lv> (LVM) and /dev/md/<name> are named, not numbered by discovery order.
    let rest = &spec[5..];
    !(crate::guest::devices::is_numbered_disk(rest) || UNSTABLE.is_match(rest))
}

/// Kernel names numbered by discovery order (besides the disks `guest::devices` parses),
/// and by-path/by-id links that change with the bus or the serial number: what a clone on
/// other hardware may not have.
static UNSTABLE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^(mmcblk\d+(p\d+)?|disk/by-(path|id)/.*|sr\d+|md\d+(p\d+)?)$").expect("static regex")
});

pub(crate) struct Entry {
    pub line: usize,
    pub spec: String,
    pub mountpoint: String,
}

pub(crate) fn unstable_entries(text: &str) -> Vec<Entry> {
    text.lines()
        .enumerate()
        .filter_map(|(i, l)| {
            let t = l.trim_start();
            if t.is_empty() || t.starts_with('#') {
                return None;
            }
            let mut f = t.split_whitespace();
            let spec = f.next()?.to_string();
            let mountpoint = f.next().unwrap_or("").to_string();
            (!is_stable(&spec)).then_some(Entry { line: i + 1, spec, mountpoint })
        })
        .collect()
}

/// Replace the device field on 1-based line `line`, keeping everything around it.
pub(crate) fn replace_spec(text: &str, line: usize, new_spec: &str) -> String {
    let mut out = String::with_capacity(text.len() + 64);
    for (i, l) in text.split_inclusive('\n').enumerate() {
        if i + 1 == line {
            let indent = l.len() - l.trim_start().len();
            let spec_len = l[indent..].find(char::is_whitespace).unwrap_or(l.len() - indent);
            out.push_str(&l[..indent]);
            out.push_str(new_spec);
            out.push_str(&l[indent + spec_len..]);
        } else {
            out.push_str(l);
        }
    }
    out
}

impl Step for Fstab {
    fn info(&self) -> &'static StepInfo {
        &INFO
    }

    fn apply(&self, ctx: &mut Ctx) -> Result<()> {
        let path = "/etc/fstab";
        let Some(mut text) = ctx.read_text(path)? else { return Ok(()) };
        let bad = unstable_entries(&text);
        if bad.is_empty() {
            return Ok(());
        }
        let describe = |e: &Entry| format!("{path}:{}: {} ({}) is not a stable device name", e.line, e.spec, e.mountpoint);
        match self.policy {
            Policy::Fail => {
                let first = describe(&bad[0]);
                let more = if bad.len() > 1 { format!(" (and {} more)", bad.len() - 1) } else { String::new() };
                bail!("{first}{more}; use UUID= or set `fstab: {{policy: fix}}`");
            }
            Policy::Warn => {
                for e in &bad {
                    let msg = describe(e);
                    ctx.warn(msg);
                }
            }
            Policy::Fix => {
                for e in &bad {
                    let fs = ctx.guest.resolve_device(&e.spec)?;
                    let Some(uuid) = fs.as_ref().and_then(|f| f.uuid.clone()) else {
                        bail!("{}; no filesystem with a UUID found on it to rewrite it to", describe(e));
                    };
                    text = replace_spec(&text, e.line, &format!("UUID={uuid}"));
                }
                ctx.edit(path, text.as_bytes())?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::guest::memory::MemoryGuest;
    use crate::guest::{Filesystem, OsFacts};

    #[test]
    fn stable_names() {
        for s in ["UUID=ab", "LABEL=root", "PARTUUID=x", "PARTLABEL=y", "/dev/mapper/vg0-root", "/dev/vg0/root", "proc", "tmpfs", "srv:/export", "/dev/disk/by-uuid/ab", "/dev/md/data"] {
            assert!(is_stable(s), "{s}");
        }
        for s in ["/dev/sda1", "/dev/vda", "/dev/xvdb2", "/dev/nvme0n1p1", "/dev/disk/by-path/pci-0000:00:05.0", "/dev/hda3", "/dev/md0"] {
            assert!(!is_stable(s), "{s}");
        }
    }

    #[test]
    fn fix_keeps_layout() {
        let t = "# /etc/fstab\n/dev/sda1   /      ext4  errors=remount-ro 0 1\nproc /proc proc defaults 0 0\n";
        let out = replace_spec(t, 2, "UUID=1234");
        assert_eq!(out, "# /etc/fstab\nUUID=1234   /      ext4  errors=remount-ro 0 1\nproc /proc proc defaults 0 0\n");
    }

    fn guest() -> MemoryGuest {
        let mut g = MemoryGuest::new(OsFacts::sample("debian"));
        g.filesystems.push(Filesystem {
            device: "/dev/sda1".into(),
            fstype: "ext4".into(),
            uuid: Some("0e3c-uuid".into()),
            label: None,
            mountpoint: Some("/".into()),
        });
        g.file("/etc/fstab", b"/dev/vda1 / ext4 defaults 0 1\n");
        g
    }

    #[test]
    fn policies() {
        let g = guest();
        let mut ctx = Ctx::new(&g, false, "fstab");
        let err = Fstab { policy: Policy::Fail }.apply(&mut ctx).unwrap_err();
        assert!(err.to_string().contains("/etc/fstab:1: /dev/vda1"), "{err}");
        let mut ctx = Ctx::new(&g, false, "fstab");
        Fstab { policy: Policy::Warn }.apply(&mut ctx).unwrap();
        assert_eq!(ctx.report.warnings.len(), 1);
        let mut ctx = Ctx::new(&g, false, "fstab");
        Fstab { policy: Policy::Fix }.apply(&mut ctx).unwrap();
        assert_eq!(g.content("/etc/fstab").unwrap(), b"UUID=0e3c-uuid / ext4 defaults 0 1\n");
    }
}
