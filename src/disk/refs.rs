//! The files a disk image makes qemu open besides itself, checked before qemu opens any.
//!
//! A qcow2 header can name a backing file and an external data file; a VMDK descriptor
//! names its extents and its parent (`parentFileNameHint`); any of those names can be a
//! protocol (`nbd://`, `http:`, `file:`) or a `json:{…}` pseudo-filename. qemu follows them
//! when it opens the image (`qemu-img info` too: it opens extents and data files, and the
//! backing chain with `--backing-chain`), and whatever they name is read into the golden
//! disk. So goldify reads those headers itself first, with the layouts qemu's drivers use
//! (docs/interop/qcow2.txt; block/qcow2.c `qcow2_do_open`, `qcow2_read_extensions`;
//! block/vmdk.c `vmdk_open`, `vmdk_open_vmdk4`, `vmdk_parse_extents`, `vmdk_parent_open`),
//! and refuses every reference unless the user allowed a directory for them
//! (`--allow-backing DIR`). Then every link, recursively, must resolve (as qemu resolves
//! it) to a regular file or block device inside an allowed directory. Only after that does
//! qemu-img look, and its own view of the chain must agree ([`confirm`]).
//!
//! Where qemu would fail to open an image anyway, the parsers here may report more than
//! qemu would follow, never less. raw and VDI images name no file (a differencing VDI
//! names its parent by UUID only, which qemu cannot follow); goldify opens unknown formats
//! as raw.

use super::Format;
use crate::error::{Exit, Tag};
use crate::hostfile::{self, Accept};
use anyhow::{anyhow, bail, Context, Result};
use serde_json::Value;
use std::collections::HashSet;
use std::ffi::OsStr;
use std::fs::File;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// Directories the user lets references resolve into (`--allow-backing DIR`), canonical.
#[derive(Debug, Clone, Default)]
pub struct Allowed {
    dirs: Vec<PathBuf>,
}

impl Allowed {
    /// No reference allowed: what goldify does unless told otherwise.
    pub fn none() -> Allowed {
        Allowed::default()
    }

    pub fn new(dirs: &[PathBuf]) -> Result<Allowed> {
        let mut canonical = Vec::new();
        for d in dirs {
            let c = d
                .canonicalize()
                .with_context(|| format!("--allow-backing {}", d.display()))
                .tag(Exit::Usage)?;
            if !c.is_dir() {
                crate::bail_tag!(Exit::Usage, "--allow-backing {}: not a directory", d.display());
            }
            canonical.push(c);
        }
        Ok(Allowed { dirs: canonical })
    }

    fn holds(&self, canonical: &Path) -> bool {
        self.dirs.iter().any(|d| canonical.starts_with(d))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
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
enum Opened {
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
struct Reference {
    kind: Kind,
    /// The name as the image records it (a C string in qemu: up to the first NUL).
    name: Vec<u8>,
    opened: Opened,
}

impl Reference {
    fn shown(&self) -> String {
        // Debug formatting quotes the name and escapes control characters, so a hostile
        // name cannot write to the terminal.
        format!("{} {:?}", self.kind.name(), String::from_utf8_lossy(&self.name))
    }
}

/// Links deeper than this are refused (qemu itself has no small limit).
const MAX_DEPTH: usize = 16;

/// Refuse `path` (canonical: what qemu is given) unless every file its chain names is
/// allowed. `user` is the disk as the user named it, for messages. Returns how many
/// references were followed (0: the image stands alone).
pub fn check(user: &Path, path: &Path, format: Format, allow: &Allowed) -> Result<usize> {
    let mut seen = HashSet::from([path.to_path_buf()]);
    walk(user, path, path, &Opened::Image(format), allow, 0, &mut seen).tag(Exit::Input)
}

fn walk(
    user: &Path,
    qemu_name: &Path,
    canonical: &Path,
    opened: &Opened,
    allow: &Allowed,
    depth: usize,
    seen: &mut HashSet<PathBuf>,
) -> Result<usize> {
    let mut followed = 0;
    for r in references(canonical, opened).with_context(|| format!("reading the header of {}", canonical.display()))? {
        let who = if depth == 0 {
            format!("disk {}", user.display())
        } else {
            format!("disk {}: {}", user.display(), qemu_name.display())
        };
        let (target, link) = resolve(&who, qemu_name, &r, allow)?;
        if depth + 1 >= MAX_DEPTH {
            bail!("{who} names {}, more than {MAX_DEPTH} links deep", r.shown());
        }
        if !seen.insert(link.clone()) {
            bail!("{who} names {}, which loops back into the chain", r.shown());
        }
        followed += 1 + walk(user, &target, &link, &r.opened, allow, depth + 1, seen)?;
    }
    Ok(followed)
}

/// Where qemu looks for a relative name: beside the file that names it, as that file was
/// named (block.c `bdrv_get_full_backing_filename_from_filename` and `path_combine`;
/// vmdk.c joins `bdrv_dirname` and the extent name), not beside its canonical path.
fn beside(referrer: &Path, name: &[u8]) -> PathBuf {
    referrer
        .parent()
        .unwrap_or(Path::new("/"))
        .join(OsStr::from_bytes(name))
}

/// qemu's `path_has_protocol`: a `:` before any `/` makes `nbd://…`, `file:…`,
/// `json:{…}` (and `a:b`) a protocol or pseudo-protocol name instead of a path.
fn has_protocol(name: &[u8]) -> bool {
    name.iter().find(|b| **b == b':' || **b == b'/') == Some(&b':')
}

/// The file a reference leads to, if the user allowed it: the name qemu will open (for
/// the next link's relative names) and its canonical path.
fn resolve(who: &str, referrer: &Path, r: &Reference, allow: &Allowed) -> Result<(PathBuf, PathBuf)> {
    let what = format!("{who} names {}", r.shown());
    if has_protocol(&r.name) {
        bail!("{what}, a network location or json: filename; goldify never lets qemu follow those");
    }
    if allow.dirs.is_empty() {
        bail!("{what}; goldify lets qemu open no other file than the disk unless --allow-backing DIR allows the directory it is in");
    }
    match &r.opened {
        Opened::Probed => bail!(
            "{what} without recording its format, which qemu would guess; record it with `qemu-img rebase -u -F FORMAT`"
        ),
        Opened::Other(f) => bail!("{what} of format {f:?}, which goldify does not read"),
        _ => {}
    }
    let name = Path::new(OsStr::from_bytes(&r.name));
    if r.kind == Kind::DataFile && !name.is_absolute() {
        // qcow2.c opens the data file by the recorded name as is: relative to qemu's own
        // working directory, not to the image.
        bail!("{what}, a relative name that qemu resolves against its working directory");
    }
    let target = if name.is_absolute() {
        name.to_path_buf()
    } else {
        beside(referrer, &r.name)
    };
    let canonical = target
        .canonicalize()
        .with_context(|| format!("{what}: {}", target.display()))?;
    if !allow.holds(&canonical) {
        bail!(
            "{what}, which resolves to {}, outside every --allow-backing directory",
            canonical.display()
        );
    }
    hostfile::open(&canonical, Accept::RegularOrBlock).with_context(|| what.clone())?;
    Ok((target, canonical))
}

/// The references of the file at `path`, read as qemu would read it.
fn references(path: &Path, opened: &Opened) -> Result<Vec<Reference>> {
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

/// qemu-img's own view must agree with what [`check`] found: `infos` is `qemu-img info
/// --output=json` of the image (one object) or, once references are known safe, of its
/// whole chain (`--backing-chain`, an array). Every file it names must be the image
/// itself or inside an allowed directory; with nothing allowed, it must name nothing.
pub fn confirm(user: &Path, infos: &Value, allow: &Allowed) -> Result<()> {
    let list = match infos {
        Value::Array(a) => a.as_slice(),
        one => std::slice::from_ref(one),
    };
    for (i, info) in list.iter().enumerate() {
        let own = info.get("filename").and_then(Value::as_str).unwrap_or_default();
        let mut named: Vec<(&str, &str)> = Vec::new();
        if i > 0 {
            named.push(("backing file", own));
        }
        if let Some(b) = info
            .get("full-backing-filename")
            .or_else(|| info.get("backing-filename"))
        {
            named.push(("backing file", b.as_str().unwrap_or("?")));
        }
        let data = info.pointer("/format-specific/data");
        if let Some(d) = data.and_then(|d| d.get("data-file")) {
            named.push(("data file", d.as_str().unwrap_or("?")));
        }
        for e in data
            .and_then(|d| d.get("extents"))
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or_default()
        {
            match e.get("filename").and_then(Value::as_str) {
                Some(f) if f == own => {}
                f => named.push(("extent", f.unwrap_or("?"))),
            }
        }
        for (kind, name) in named {
            let inside = !has_protocol(name.as_bytes())
                && Path::new(name).is_absolute()
                && Path::new(name).canonicalize().is_ok_and(|c| allow.holds(&c));
            if !inside {
                return Err(anyhow!(
                    "disk {}: qemu-img reports the {kind} {name:?}, which goldify does not allow",
                    user.display()
                ))
                .tag(Exit::Input);
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(refs: &[Reference]) -> Vec<(Kind, String, Opened)> {
        refs.iter()
            .map(|r| (r.kind, String::from_utf8_lossy(&r.name).into_owned(), r.opened.clone()))
            .collect()
    }

    fn qemu_img(dir: &Path, args: &[&str]) {
        let out = std::process::Command::new("qemu-img")
            .args(args)
            .current_dir(dir)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
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

    /// A qcow2 v2 header written by hand, 512-byte clusters: the backing name at the end of
    /// the cluster and no backing format extension (qemu would probe the backing file).
    fn v2_header(backing: &[u8]) -> Vec<u8> {
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

    #[test]
    fn protocols_as_qemu_sees_them() {
        for p in ["nbd://h/x", "json:{}", "file:/etc/shadow", "http://x", "a:b/c"] {
            assert!(has_protocol(p.as_bytes()), "{p}");
        }
        for p in ["/a:b", "./a:b", "dir/a:b", "base.qcow2"] {
            assert!(!has_protocol(p.as_bytes()), "{p}");
        }
    }

    #[test]
    fn refusals_name_the_disk_and_the_reference() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let allowed = d.join("allowed");
        std::fs::create_dir(&allowed).unwrap();
        std::fs::write(d.join("secret"), b"x").unwrap();
        qemu_img(
            d,
            &[
                "create", "-q", "-f", "qcow2", "-b", "secret", "-F", "raw", "-u", "o.qcow2", "1M",
            ],
        );
        let o = d.join("o.qcow2");
        let none = format!(
            "{:#}",
            check(Path::new("user.qcow2"), &o, Format::Qcow2, &Allowed::none()).unwrap_err()
        );
        assert!(
            none.starts_with("disk user.qcow2 names backing file \"secret\"; "),
            "{none}"
        );
        let allow = Allowed::new(std::slice::from_ref(&allowed)).unwrap();
        let out = format!("{:#}", check(&o, &o, Format::Qcow2, &allow).unwrap_err());
        assert!(out.contains("outside every --allow-backing directory"), "{out}");
        std::fs::rename(d.join("secret"), allowed.join("secret")).unwrap();
        qemu_img(
            d,
            &["rebase", "-q", "-u", "-b", "allowed/secret", "-F", "raw", "o.qcow2"],
        );
        assert_eq!(check(&o, &o, Format::Qcow2, &allow).unwrap(), 1);
        // Allowed, but the format is not recorded: qemu would guess it.
        std::fs::write(d.join("v2.qcow2"), v2_header(b"allowed/secret")).unwrap();
        let v2 = d.join("v2.qcow2");
        let p = format!("{:#}", check(&v2, &v2, Format::Qcow2, &allow).unwrap_err());
        assert!(
            p.contains("backing file \"allowed/secret\" without recording its format"),
            "{p}"
        );
        // A loop: the backing file is the image itself.
        qemu_img(d, &["rebase", "-q", "-u", "-b", "o.qcow2", "-F", "qcow2", "o.qcow2"]);
        let allow = Allowed::new(&[d.to_path_buf()]).unwrap();
        let l = format!(
            "{:#}",
            check(&o, &o.canonicalize().unwrap(), Format::Qcow2, &allow).unwrap_err()
        );
        assert!(l.contains("loops back"), "{l}");
    }

    #[test]
    fn qemu_img_must_agree() {
        let allow = Allowed::none();
        let user = Path::new("d.vmdk");
        let alone: Value = serde_json::from_str(
            r#"{"filename": "/x/d.vmdk", "format-specific": {"type": "vmdk", "data": {"extents": [{"filename": "/x/d.vmdk"}]}}}"#,
        )
        .unwrap();
        confirm(user, &alone, &allow).unwrap();
        let extent: Value = serde_json::from_str(
            r#"{"filename": "/x/d.vmdk", "format-specific": {"type": "vmdk", "data": {"extents": [{"filename": "/etc/shadow"}]}}}"#,
        )
        .unwrap();
        let e = format!("{:#}", confirm(user, &extent, &allow).unwrap_err());
        assert_eq!(
            e,
            "disk d.vmdk: qemu-img reports the extent \"/etc/shadow\", which goldify does not allow"
        );
        let backing: Value = serde_json::from_str(r#"{"filename": "/x/o", "backing-filename": "nbd://h/x"}"#).unwrap();
        assert!(confirm(user, &backing, &allow).is_err());
    }
}
