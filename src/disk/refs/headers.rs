//! The references a disk image records, read the way qemu's drivers read them: a qcow2
//! header's backing file and external data file (docs/interop/qcow2.txt; block/qcow2.c
//! `qcow2_do_open`, `qcow2_read_extensions`), a VMDK descriptor's extents and parent
//! (block/vmdk.c `vmdk_open`, `vmdk_open_vmdk4`, `vmdk_parse_extents`, `vmdk_parent_open`).
//! What may be followed is decided by the chain check (mod.rs).

use crate::disk::Format;
use crate::hostfile::{self, Accept};
use anyhow::Result;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    Backing,
    DataFile,
    Extent,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Backing => "backing file",
            Kind::DataFile => "data file",
            Kind::Extent => "extent",
        }
    }
}

/// How qemu reads the file a reference names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Opened {
    /// As an image of this format, whose own references are followed too.
    Image(Format),
    /// As a VMDK sparse extent (SPARSE, VMFSSPARSE), which can embed a descriptor with
    /// extents of its own (`vmdk_open_vmdk4`, capacity 0).
    Sparse,
    /// As bytes (FLAT and VMFS extents, SESPARSE, data files).
    Bytes,
    /// A backing file whose format the image does not record: qemu would guess it.
    Probed,
    /// A backing format goldify does not read (or a protocol driver named as a format).
    Other(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Reference {
    pub(super) kind: Kind,
    /// The name as the image records it (a C string in qemu: up to the first NUL).
    pub(super) name: Vec<u8>,
    pub(super) opened: Opened,
}

impl Reference {
    pub(super) fn shown(&self) -> String {
        // Debug formatting quotes the name and escapes control characters, so a hostile
        // name cannot write to the terminal.
        format!("{} {:?}", self.kind.name(), String::from_utf8_lossy(&self.name))
    }
}

/// The references of the file at `path`, read as qemu would read it.
pub(super) fn references(path: &Path, opened: &Opened) -> Result<Vec<Reference>> {
    let format = match opened {
        Opened::Image(Format::Qcow2) => Format::Qcow2,
        Opened::Image(Format::Vmdk) | Opened::Sparse => Format::Vmdk,
        _ => return Ok(Vec::new()),
    };
    let file = hostfile::open(path, Accept::RegularOrBlock)?;
    let size = std::fs::metadata(path)
        .map(|m| m.len())
        .ok()
        .filter(|l| *l > 0)
        .unwrap_or(u64::MAX);
    let read = |offset: u64, len: usize| read_at(&file, offset, len);
    match format {
        // The header, its extensions and the backing name all lie in the first cluster,
        // which is at most 2 MiB (qcow2.c MAX_CLUSTER_BITS).
        Format::Qcow2 => Ok(qcow2(&read(0, 2 << 20)?)),
        _ => vmdk(&read, size),
    }
}

/// Up to `len` bytes at `offset` (fewer at the end of the file: qemu reads zeros there).
fn read_at(file: &File, offset: u64, len: usize) -> Result<Vec<u8>> {
    let mut buf = vec![0u8; len];
    let mut n = 0;
    while n < len {
        match file.read_at(&mut buf[n..], offset + n as u64) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e.into()),
        }
    }
    buf.truncate(n);
    Ok(buf)
}

fn be32(b: &[u8], at: usize) -> u32 {
    b.get(at..at + 4)
        .map_or(0, |s| u32::from_be_bytes(s.try_into().unwrap()))
}

fn be64(b: &[u8], at: usize) -> u64 {
    b.get(at..at + 8)
        .map_or(0, |s| u64::from_be_bytes(s.try_into().unwrap()))
}

fn le64(b: &[u8], at: usize) -> u64 {
    b.get(at..at + 8)
        .map_or(0, |s| u64::from_le_bytes(s.try_into().unwrap()))
}

/// `b[at..at+len]` as qemu's C string: cut at the first NUL.
fn c_string(b: &[u8], at: usize, len: usize) -> Vec<u8> {
    let s = b.get(at..).unwrap_or_default();
    let s = &s[..len.min(s.len())];
    s.split(|c| *c == 0).next().unwrap_or_default().to_vec()
}

const QCOW2_EXT_END: u32 = 0;
const QCOW2_EXT_BACKING_FORMAT: u32 = 0xe279_2aca;
const QCOW2_EXT_DATA_FILE: u32 = 0x4441_5441;

/// References in a qcow2 header (`head`: the first cluster). Layout: docs/interop/qcow2.txt.
fn qcow2(head: &[u8]) -> Vec<Reference> {
    let version = be32(head, 4);
    let cluster_bits = be32(head, 20);
    // qemu refuses other versions and cluster sizes: nothing is opened.
    if !(2..=3).contains(&version) || !(9..=21).contains(&cluster_bits) {
        return Vec::new();
    }
    let cluster = 1u64 << cluster_bits;
    let backing_offset = be64(head, 8);
    let backing_len = u64::from(be32(head, 16));
    let header_len = if version == 2 { 72 } else { u64::from(be32(head, 100)) };
    if backing_offset > cluster {
        return Vec::new();
    }
    // Header extensions lie between the header and the backing name (or the cluster's end).
    let ext_end = if backing_offset != 0 { backing_offset } else { cluster };
    let mut backing_format: Option<Vec<u8>> = None;
    let mut refs = Vec::new();
    let mut at = header_len;
    while at < ext_end {
        let (magic, len) = (be32(head, at as usize), u64::from(be32(head, at as usize + 4)));
        at += 8;
        if at > ext_end || len > ext_end - at {
            // "Header extension too large": qemu stops here and refuses the image.
            break;
        }
        match magic {
            QCOW2_EXT_END => break,
            QCOW2_EXT_BACKING_FORMAT => backing_format = Some(c_string(head, at as usize, len as usize)),
            // Listed whether or not incompatible feature bit 2 (external data file) asks
            // qemu to open it: more than qemu follows, never less.
            QCOW2_EXT_DATA_FILE => refs.push(Reference {
                kind: Kind::DataFile,
                name: c_string(head, at as usize, len as usize),
                opened: Opened::Bytes,
            }),
            _ => {}
        }
        at += (len + 7) & !7;
    }
    refs.retain(|r| !r.name.is_empty());
    // qemu reads the name only if it fits before the cluster's end and in 1023 bytes.
    if backing_offset != 0 && backing_len <= 1023.min(cluster - backing_offset) {
        let name = c_string(head, backing_offset as usize, backing_len as usize);
        if !name.is_empty() {
            let opened = match backing_format.as_deref() {
                None | Some(b"") => Opened::Probed,
                Some(b"qcow2") => Opened::Image(Format::Qcow2),
                Some(b"raw") => Opened::Image(Format::Raw),
                Some(b"vmdk") => Opened::Image(Format::Vmdk),
                Some(b"vdi") => Opened::Image(Format::Vdi),
                Some(other) => Opened::Other(String::from_utf8_lossy(other).into_owned()),
            };
            refs.insert(
                0,
                Reference {
                    kind: Kind::Backing,
                    name,
                    opened,
                },
            );
        }
    }
    refs
}

/// vmdk.c reads descriptors as at most 1 MiB - 1 (`vmdk_read_desc`) and looks for the
/// parent in a window of 20 sectors (`DESC_SIZE`).
const VMDK_DESC_MAX: u64 = (1 << 20) - 1;
const VMDK_HINT_WINDOW: usize = 20 * 512;

/// References of a VMDK: a text descriptor, a sparse file (KDMV, whose header may point to
/// a descriptor with extents), or an ESX COWD file.
fn vmdk(read: &dyn Fn(u64, usize) -> Result<Vec<u8>>, size: u64) -> Result<Vec<Reference>> {
    let desc_len = size.min(VMDK_DESC_MAX) as usize;
    let head = read(0, desc_len)?;
    let mut refs = Vec::new();
    let hint_at = match head.get(..4) {
        Some(b"COWD") => 0x200,
        Some(b"KDMV") => {
            // VMDK4Header after the magic: version u32, flags u32, capacity u64,
            // granularity u64, desc_offset u64 (sectors), little-endian. A capacity of 0
            // with a descriptor offset makes qemu parse that descriptor's extents.
            let (capacity, desc_offset) = (le64(&head, 12), le64(&head, 28));
            if capacity == 0 && desc_offset != 0 {
                if let Some(at) = desc_offset.checked_mul(512) {
                    refs.extend(vmdk_extents(&read(at, desc_len)?));
                }
            }
            0x200
        }
        _ => {
            refs.extend(vmdk_extents(&head));
            0
        }
    };
    if let Some(parent) = vmdk_parent(&read(hint_at, VMDK_HINT_WINDOW)?) {
        refs.insert(
            0,
            Reference {
                kind: Kind::Backing,
                name: parent,
                opened: Opened::Image(Format::Vmdk),
            },
        );
    }
    Ok(refs)
}

/// `vmdk_parent_open`: the name after `parentFileNameHint="`, up to the next `"`.
fn vmdk_parent(window: &[u8]) -> Option<Vec<u8>> {
    const KEY: &[u8] = b"parentFileNameHint";
    let text = c_string(window, 0, window.len());
    let at = text.windows(KEY.len()).position(|w| w == KEY)?;
    // qemu skips the key and two more characters (`="`), whatever they are.
    let rest = text.get(at + KEY.len() + 2..)?;
    let end = rest.iter().position(|c| *c == b'"')?;
    // Longer names make qemu refuse the image (bs->auto_backing_file is 1024 bytes).
    (end > 0 && end <= 1023).then(|| rest[..end].to_vec())
}

fn is_c_space(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c)
}

/// `vmdk_parse_extents`: from every line start, qemu runs
/// `sscanf(p, "%10s %ld %10s \"%511[^\n\r\"]\" %ld", access, sectors, type, fname, offset)`
/// and opens `fname` when access is `RW`. sscanf skips whitespace newlines included, so one
/// extent may spread over several lines; the emulation below follows it. Every type is
/// listed, also those qemu skips.
fn vmdk_extents(desc: &[u8]) -> Vec<Reference> {
    let desc = c_string(desc, 0, desc.len());
    let starts = std::iter::once(0).chain(
        desc.iter()
            .enumerate()
            .filter(|(_, c)| **c == b'\n')
            .map(|(i, _)| i + 1),
    );
    starts.filter_map(|p| vmdk_extent_at(&desc[p..])).collect()
}

fn vmdk_extent_at(s: &[u8]) -> Option<Reference> {
    let mut i = 0;
    let skip = |i: &mut usize| {
        while *i < s.len() && is_c_space(s[*i]) {
            *i += 1
        }
    };
    let word = |i: &mut usize| {
        let start = *i;
        while *i < s.len() && !is_c_space(s[*i]) && *i - start < 10 {
            *i += 1
        }
        &s[start..*i]
    };
    skip(&mut i);
    if word(&mut i) != b"RW" {
        return None;
    }
    skip(&mut i);
    if matches!(s.get(i), Some(b'+' | b'-')) {
        i += 1;
    }
    let digits = i;
    while s.get(i).is_some_and(u8::is_ascii_digit) {
        i += 1;
    }
    if i == digits {
        return None;
    }
    skip(&mut i);
    let kind = word(&mut i);
    if kind.is_empty() {
        return None;
    }
    skip(&mut i);
    if s.get(i) != Some(&b'"') {
        return None;
    }
    i += 1;
    let start = i;
    while i < s.len() && !matches!(s[i], b'\n' | b'\r' | b'"') && i - start < 511 {
        i += 1;
    }
    if i == start {
        return None;
    }
    let opened = match kind {
        b"SPARSE" | b"VMFSSPARSE" => Opened::Sparse,
        _ => Opened::Bytes,
    };
    Some(Reference {
        kind: Kind::Extent,
        name: s[start..i].to_vec(),
        opened,
    })
}

/// Runs qemu-img in `dir`; the test fails with its stderr.
#[cfg(test)]
pub(super) fn qemu_img(dir: &Path, args: &[&str]) {
    let out = std::process::Command::new("qemu-img")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

#[cfg(test)]
/// A qcow2 v2 header written by hand, 512-byte clusters: the backing name at the end of
/// the cluster and no backing format extension (qemu would probe the backing file).
pub(super) fn v2_header(backing: &[u8]) -> Vec<u8> {
    let at = 512 - backing.len();
    let mut h = vec![0u8; 512];
    h[..4].copy_from_slice(b"QFI\xfb");
    h[4..8].copy_from_slice(&2u32.to_be_bytes());
    h[8..16].copy_from_slice(&(at as u64).to_be_bytes());
    h[16..20].copy_from_slice(&(backing.len() as u32).to_be_bytes());
    h[20..24].copy_from_slice(&9u32.to_be_bytes());
    h[at..].copy_from_slice(backing);
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(refs: &[Reference]) -> Vec<(Kind, String, Opened)> {
        refs.iter()
            .map(|r| (r.kind, String::from_utf8_lossy(&r.name).into_owned(), r.opened.clone()))
            .collect()
    }

    fn read_refs(path: &Path, opened: Opened) -> Vec<(Kind, String, Opened)> {
        names(&references(path, &opened).unwrap())
    }

    #[test]
    fn qcow2_backing_and_data_file_as_qemu_writes_them() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        qemu_img(d, &["create", "-q", "-f", "qcow2", "plain.qcow2", "1M"]);
        assert!(read_refs(&d.join("plain.qcow2"), Opened::Image(Format::Qcow2)).is_empty());
        qemu_img(d, &["create", "-q", "-f", "raw", "base.raw", "1M"]);
        qemu_img(
            d,
            &["create", "-q", "-f", "qcow2", "-b", "base.raw", "-F", "raw", "o.qcow2"],
        );
        assert_eq!(
            read_refs(&d.join("o.qcow2"), Opened::Image(Format::Qcow2)),
            [(Kind::Backing, "base.raw".into(), Opened::Image(Format::Raw))]
        );
        // qemu-img rebase -u writes any name, protocols included, without opening it.
        qemu_img(
            d,
            &[
                "rebase",
                "-q",
                "-u",
                "-b",
                "nbd://127.0.0.1:1/x",
                "-F",
                "nbd",
                "o.qcow2",
            ],
        );
        assert_eq!(
            read_refs(&d.join("o.qcow2"), Opened::Image(Format::Qcow2)),
            [(Kind::Backing, "nbd://127.0.0.1:1/x".into(), Opened::Other("nbd".into()))]
        );
        let data = d.join("base.raw");
        let opt = format!("data_file={},data_file_raw=on", data.display());
        qemu_img(d, &["create", "-q", "-f", "qcow2", "-o", &opt, "data.qcow2", "1M"]);
        assert_eq!(
            read_refs(&d.join("data.qcow2"), Opened::Image(Format::Qcow2)),
            [(Kind::DataFile, data.display().to_string(), Opened::Bytes)]
        );
    }

    #[test]
    fn qcow2_backing_without_a_format_is_probed() {
        let mut h = v2_header(b"/x\0yzw");
        // The name is a C string for qemu: "/x".
        assert_eq!(names(&qcow2(&h)), [(Kind::Backing, "/x".into(), Opened::Probed)]);
        // A name longer than the cluster leaves: qemu refuses the image, opens nothing.
        h[16..20].copy_from_slice(&(7u32 + 7).to_be_bytes());
        assert!(qcow2(&h).is_empty());
        // Version 1 (qcow) is not opened as qcow2 at all.
        h[4..8].copy_from_slice(&1u32.to_be_bytes());
        assert!(qcow2(&h).is_empty());
    }

    #[test]
    fn vmdk_extents_the_way_sscanf_reads_them() {
        let desc = b"# Disk DescriptorFile\nversion=1\ncreateType=\"monolithicFlat\"\n\
            RW 2048 FLAT \"a-flat.vmdk\" 0\n  RW 10 SPARSE \"/abs/s.vmdk\"\n\
            RDONLY 10 FLAT \"ro.vmdk\" 0\nRW 10 ZERO\nRW\n 4\n VMFSSPARSE\n\"split\nRW 10 FLAT \"a\0hidden\"\n";
        assert_eq!(
            names(&vmdk_extents(desc)),
            [
                (Kind::Extent, "a-flat.vmdk".into(), Opened::Bytes),
                (Kind::Extent, "/abs/s.vmdk".into(), Opened::Sparse),
                (Kind::Extent, "split".into(), Opened::Sparse),
                (Kind::Extent, "a".into(), Opened::Bytes),
            ]
        );
    }

    #[test]
    fn vmdk_parent_hint() {
        assert_eq!(
            vmdk_parent(b"CID=1\nparentCID=2\nparentFileNameHint=\"base.vmdk\"\n").as_deref(),
            Some(&b"base.vmdk"[..])
        );
        assert_eq!(vmdk_parent(b"parentFileNameHint=\"\"\n"), None);
        assert_eq!(vmdk_parent(b"\0parentFileNameHint=\"x\"\n"), None);
    }

    #[test]
    fn vmdk_files_as_qemu_writes_them() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        qemu_img(d, &["create", "-q", "-f", "vmdk", "sparse.vmdk", "1M"]);
        assert!(read_refs(&d.join("sparse.vmdk"), Opened::Image(Format::Vmdk)).is_empty());
        qemu_img(
            d,
            &[
                "create",
                "-q",
                "-f",
                "vmdk",
                "-b",
                "sparse.vmdk",
                "-F",
                "vmdk",
                "child.vmdk",
            ],
        );
        assert_eq!(
            read_refs(&d.join("child.vmdk"), Opened::Image(Format::Vmdk)),
            [(Kind::Backing, "sparse.vmdk".into(), Opened::Image(Format::Vmdk))]
        );
        qemu_img(
            d,
            &[
                "create",
                "-q",
                "-f",
                "vmdk",
                "-o",
                "subformat=monolithicFlat",
                "flat.vmdk",
                "1M",
            ],
        );
        assert_eq!(
            read_refs(&d.join("flat.vmdk"), Opened::Image(Format::Vmdk)),
            [(Kind::Extent, "flat-flat.vmdk".into(), Opened::Bytes)]
        );
    }

    /// A sparse VMDK with capacity 0 and a descriptor offset: qemu parses the embedded
    /// descriptor's extents.
    #[test]
    fn vmdk_sparse_with_an_embedded_descriptor() {
        let mut f = vec![0u8; 2048];
        f[..4].copy_from_slice(b"KDMV");
        f[28..36].copy_from_slice(&2u64.to_le_bytes());
        f[1024..1024 + 30].copy_from_slice(b"RW 8 FLAT \"/etc/shadow\" 0\n\0\0\0\0");
        let read = |at: u64, len: usize| -> Result<Vec<u8>> {
            Ok(f.get(at as usize..)
                .unwrap_or_default()
                .iter()
                .take(len)
                .copied()
                .collect())
        };
        assert_eq!(
            names(&vmdk(&read, f.len() as u64).unwrap()),
            [(Kind::Extent, "/etc/shadow".into(), Opened::Bytes)]
        );
        // With a capacity, the embedded descriptor is only read for the parent.
        f[12..20].copy_from_slice(&8u64.to_le_bytes());
        let read = |at: u64, len: usize| -> Result<Vec<u8>> {
            Ok(f.get(at as usize..)
                .unwrap_or_default()
                .iter()
                .take(len)
                .copied()
                .collect())
        };
        assert!(vmdk(&read, f.len() as u64).unwrap().is_empty());
    }
}
