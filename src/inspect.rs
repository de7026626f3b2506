//! `goldify inspect`: what libguestfs finds on a disk, read-only.

use crate::disk;
use crate::error::{Exit, Tag};
use crate::guest::guestfs::{GuestfsGuest, OpenOptions};
use crate::guest::{Filesystem, Guest, OsFacts};
use anyhow::{Context, Result};
use serde::Serialize;
use std::path::PathBuf;

#[derive(Debug, Serialize)]
pub struct FstabEntry {
    pub line: usize,
    pub device: String,
    pub mountpoint: String,
    pub fstype: String,
    pub options: String,
    pub stable: bool,
}

/// One of the guest's disks.
#[derive(Debug, Serialize)]
pub struct DiskInfo {
    pub path: String,
    pub format: String,
    pub virtual_size: u64,
}

#[derive(Debug, Serialize)]
pub struct InspectReport {
    /// The first (usually the only) disk, with its format and size.
    pub disk: String,
    pub format: String,
    pub virtual_size: u64,
    /// Every disk of the guest, in its order.
    pub disks: Vec<DiskInfo>,
    pub os: OsFacts,
    /// What a run would have to know (a hibernated Windows volume).
    pub notices: Vec<String>,
    pub filesystems: Vec<Filesystem>,
    pub fstab: Vec<FstabEntry>,
}

pub fn parse_fstab(text: &str) -> Vec<FstabEntry> {
    text.lines()
        .enumerate()
        .filter_map(|(i, l)| {
            let t = l.trim();
            if t.is_empty() || t.starts_with('#') {
                return None;
            }
            let f: Vec<&str> = t.split_whitespace().collect();
            Some(FstabEntry {
                line: i + 1,
                device: f.first()?.to_string(),
                mountpoint: f.get(1).unwrap_or(&"").to_string(),
                fstype: f.get(2).unwrap_or(&"").to_string(),
                options: f.get(3).unwrap_or(&"").to_string(),
                stable: crate::steps::fstab::is_stable(f[0]),
            })
        })
        .collect()
}

pub fn inspect(
    paths: &[PathBuf],
    allow: &disk::refs::Allowed,
    keys: &[crate::guest::keys::Key],
) -> Result<InspectReport> {
    let named = crate::guest::guestfs::shown(paths);
    let phase = crate::progress::phase(format!("inspecting {named}"));
    let mut works = Vec::new();
    let mut disks = Vec::new();
    for path in paths {
        if !path.exists() {
            crate::bail_tag!(Exit::Input, "disk {} does not exist", path.display());
        }
        let work = disk::prepare(path, &std::env::temp_dir(), false, true, allow)?;
        disks.push(DiskInfo {
            path: path.display().to_string(),
            format: work.input_format.to_string(),
            virtual_size: disk::virtual_size(&work.path, work.format).tag(Exit::Input)?,
        });
        works.push(work);
    }
    let drives: Vec<_> = works.iter().map(disk::WorkDisk::drive).collect();
    let guest = GuestfsGuest::open(
        &drives,
        &OpenOptions {
            readonly: true,
            in_place: false,
            verbose: false,
            shown: &named,
            remove_hiberfile: false,
            keys,
        },
    )
    .with_context(|| format!("opening {named}"))?;
    let fstab = match guest.lstat("/etc/fstab") {
        Ok(Some(m)) if m.kind == crate::guest::Kind::File => {
            let bytes = guest.read("/etc/fstab", crate::steps::READ_LIMIT)?;
            parse_fstab(&String::from_utf8_lossy(&bytes))
        }
        _ => Vec::new(),
    };
    let report = InspectReport {
        disk: disks[0].path.clone(),
        format: disks[0].format.clone(),
        virtual_size: disks[0].virtual_size,
        disks,
        os: guest.facts().clone(),
        notices: guest.notices().to_vec(),
        filesystems: guest.filesystems()?,
        fstab,
    };
    guest.close()?;
    drop(phase);
    Ok(report)
}

impl InspectReport {
    pub fn print_human(&self, out: &mut dyn std::io::Write) -> std::io::Result<()> {
        let os = &self.os;
        for d in &self.disks {
            writeln!(
                out,
                "disk:        {} ({}, {} virtual)",
                d.path,
                d.format,
                crate::report::human_bytes(d.virtual_size)
            )?;
        }
        writeln!(
            out,
            "os:          {} ({} {}, family {})",
            os.product_name,
            os.distro,
            os.version(),
            os.family
        )?;
        writeln!(out, "arch:        {}", os.arch)?;
        if os.family == crate::guest::Family::Windows {
            writeln!(out, "systemroot:  {}", os.systemroot)?;
            writeln!(out, "control set: {}", os.current_control_set)?;
            writeln!(out, "hostname:    {}", os.hostname)?;
            return self.print_storage(out);
        }
        writeln!(out, "packages:    {} ({})", os.package_management, os.package_format)?;
        writeln!(out, "init:        {:?}", os.init)?;
        writeln!(out, "hostname:    {}", os.hostname)?;
        writeln!(
            out,
            "cloud-init:  {}",
            if os.cloud_init { "installed" } else { "not installed" }
        )?;
        writeln!(
            out,
            "selinux:     {}",
            if os.selinux { "configured" } else { "not configured" }
        )?;
        self.print_storage(out)
    }

    /// Root, filesystems and fstab: the same for every OS.
    fn print_storage(&self, out: &mut dyn std::io::Write) -> std::io::Result<()> {
        for n in &self.notices {
            writeln!(out, "note:        {n}")?;
        }
        writeln!(out, "root:        {}", self.os.root)?;
        writeln!(out, "filesystems:")?;
        for f in &self.filesystems {
            writeln!(
                out,
                "  {:<20} {:<6} uuid={} label={} {}",
                f.device,
                f.fstype,
                f.uuid.as_deref().unwrap_or("-"),
                f.label.as_deref().unwrap_or("-"),
                f.mountpoint
                    .as_deref()
                    .map(|m| format!("mounted on {m}"))
                    .unwrap_or_default()
            )?;
        }
        writeln!(out, "fstab:")?;
        for e in &self.fstab {
            writeln!(
                out,
                "  {:>3}: {:<45} {:<12} {:<6} {}",
                e.line,
                e.device,
                e.mountpoint,
                e.fstype,
                if e.stable { "" } else { "NOT STABLE" }
            )?;
        }
        Ok(())
    }
}
