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

mod headers;

use super::Format;
use crate::error::{Exit, Tag};
use crate::hostfile::{self, Accept};
use anyhow::{anyhow, bail, Context, Result};
use serde_json::Value;
use std::collections::HashSet;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use headers::{references, Kind, Opened, Reference};

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
    use super::headers::{qemu_img, v2_header};
    use super::*;

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
