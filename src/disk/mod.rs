//! Input and output disks: detection by content, decompression of .gz/.xz inputs into a
//! sparse temporary file, the qcow2 overlay that keeps the source untouched, and the export
//! of the golden disk. Only this module and verify/ start external programs (qemu-img),
//! through `exec`.

pub mod detect;
pub(crate) mod refs;

use crate::error::{Exit, Tag};
use crate::exec;
use anyhow::{anyhow, Context, Result};
use serde::{Deserialize, Serialize};
use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    Qcow2,
    Raw,
    Vmdk,
    Vdi,
}

impl Format {
    pub fn name(self) -> &'static str {
        match self {
            Format::Qcow2 => "qcow2",
            Format::Raw => "raw",
            Format::Vmdk => "vmdk",
            Format::Vdi => "vdi",
        }
    }

    pub fn extension(self) -> &'static str {
        match self {
            Format::Raw => "img",
            f => f.name(),
        }
    }
}

/// The disk goldify works on, with whatever temporary files back it.
pub struct WorkDisk {
    /// What libguestfs opens: the overlay, the decompressed copy, or the input itself.
    pub path: PathBuf,
    pub format: Format,
    /// The input as qemu reads it (canonical: never taken for a protocol name), or its
    /// decompressed copy.
    pub source: PathBuf,
    /// Format of the user's input (for messages and the report).
    pub input_format: detect::Detected,
    _temp: Option<crate::workdir::WorkDir>,
}

/// Open the input for a run. Read-only inputs get an overlay in a temporary directory
/// under `work_parent` ($TMPDIR), never in the output directory, so that even a killed
/// run leaves no partial files there; `in_place` edits the input itself; compressed
/// inputs are decompressed first. Before any qemu process opens it, every file the disk
/// names is refused unless `allow` allows it (see refs/mod.rs).
pub fn prepare(
    input: &Path,
    work_parent: &Path,
    in_place: bool,
    dry_run: bool,
    allow: &refs::Allowed,
) -> Result<WorkDisk> {
    let detected = detect::detect(input).tag(Exit::Input)?;
    let format = match detected {
        detect::Detected::Disk(f) => f,
        detect::Detected::Compressed(c) => {
            if in_place {
                crate::bail_tag!(
                    Exit::Usage,
                    "--in-place cannot edit a {}-compressed input ({})",
                    c.name(),
                    input.display()
                );
            }
            let temp = temp_dir(work_parent)?;
            let raw = temp.path().join("input.raw");
            decompress(input, c, &raw)
                .with_context(|| format!("decompressing {}", input.display()))
                .tag(Exit::Input)?;
            let inner = detect::detect(&raw).tag(Exit::Input)?;
            let detect::Detected::Disk(inner_format) = inner else {
                crate::bail_tag!(
                    Exit::Input,
                    "{} decompresses to another compressed file",
                    input.display()
                );
            };
            let raw = canonical(&raw)?;
            check_disk(input, &raw, inner_format, allow)?;
            // The decompressed copy is ours: work on it directly.
            return Ok(WorkDisk {
                path: raw.clone(),
                format: inner_format,
                source: raw,
                input_format: detected,
                _temp: Some(temp),
            });
        }
    };
    let abs = canonical(input)?;
    check_disk(input, &abs, format, allow)?;
    if in_place || dry_run {
        // Dry runs open the input read-only; nothing needs an overlay.
        return Ok(WorkDisk {
            path: abs.clone(),
            format,
            source: abs,
            input_format: detected,
            _temp: None,
        });
    }
    let temp = temp_dir(work_parent)?;
    let overlay = temp.path().join("overlay.qcow2");
    create_overlay(&abs, format.name(), &overlay)
        .context("creating the overlay over the input")
        .tag(Exit::Output)?;
    Ok(WorkDisk {
        path: overlay,
        format: Format::Qcow2,
        source: abs,
        input_format: detected,
        _temp: Some(temp),
    })
}

/// qemu pauses a VM whose disk hits ENOSPC (werror=enospc, which libguestfs does not let
/// us change), and libguestfs then waits forever. While the appliance runs, this watches
/// the filesystem the work disk lives on and stops the appliance before it fills.
pub struct SpaceWatch {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    exhausted: std::sync::Arc<std::sync::atomic::AtomicBool>,
    dir: PathBuf,
}

/// Below this much free space the run stops (the appliance's writes are small; the margin
/// keeps the filesystem usable for everybody else too).
const MIN_FREE: u64 = 32 << 20;

impl WorkDisk {
    /// What the appliance is given for this disk.
    pub fn drive(&self) -> crate::guest::guestfs::Drive<'_> {
        crate::guest::guestfs::Drive {
            path: &self.path,
            format: self.format.name(),
        }
    }

    pub fn watch_space(&self) -> SpaceWatch {
        use std::sync::atomic::{AtomicBool, Ordering};
        use std::sync::Arc;
        let dir = self.path.parent().unwrap_or(Path::new("/")).to_path_buf();
        let stop = Arc::new(AtomicBool::new(false));
        let exhausted = Arc::new(AtomicBool::new(false));
        let (s, x, d) = (stop.clone(), exhausted.clone(), dir.clone());
        std::thread::spawn(move || {
            while !s.load(Ordering::SeqCst) {
                if let Some(free) = free_bytes(&d) {
                    if free < MIN_FREE {
                        x.store(true, Ordering::SeqCst);
                        crate::interrupt::kill_children();
                        return;
                    }
                }
                std::thread::sleep(std::time::Duration::from_millis(250));
            }
        });
        SpaceWatch { stop, exhausted, dir }
    }
}

/// Bytes available to us on the filesystem holding `dir`.
pub fn free_bytes(dir: &Path) -> Option<u64> {
    let st = nix::sys::statvfs::statvfs(dir).ok()?;
    // The field types differ between platforms (u64 on Linux x86_64).
    #[allow(clippy::unnecessary_cast)]
    Some(st.blocks_available() as u64 * st.fragment_size() as u64)
}

impl SpaceWatch {
    /// Replace an error caused by the watch stopping the appliance with the real reason.
    pub fn explain(&self, e: anyhow::Error) -> anyhow::Error {
        if self.exhausted.load(std::sync::atomic::Ordering::SeqCst) {
            return crate::error::tagged(
                anyhow!(
                    "the filesystem holding {} has less than {} MiB free; goldify stopped before it filled (set TMPDIR to a larger one)",
                    self.dir.display(),
                    MIN_FREE >> 20
                ),
                Exit::Output,
            );
        }
        e
    }
}

impl Drop for SpaceWatch {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

/// A private, locked work directory (0700; see workdir.rs for why and how leftovers of
/// killed runs are found).
fn temp_dir(parent: &Path) -> Result<crate::workdir::WorkDir> {
    crate::workdir::create(parent)
}

/// The absolute path without symlinks: what goldify hands to qemu, where a relative name
/// such as `nbd:x` or `json:{…}` would be taken for a protocol (qemu's `path_has_protocol`).
fn canonical(path: &Path) -> Result<PathBuf> {
    path.canonicalize()
        .with_context(|| format!("resolving {}", path.display()))
        .tag(Exit::Input)
}

/// Every file `path` (canonical; the user's `input`) makes qemu open is allowed: first
/// from the headers, read by goldify (refs/headers.rs), then as `qemu-img info` sees the image,
/// and its whole chain when it has one. `qemu-img info` must also understand the image:
/// corrupt headers fail here, with its message.
fn check_disk(input: &Path, path: &Path, format: Format, allow: &refs::Allowed) -> Result<()> {
    let links = refs::check(input, path, format, allow)?;
    let mut args = vec!["info", "--output=json", "-f", format.name()];
    if links > 0 {
        // The chain was checked link by link; -U (force share) because a backing file in
        // use by a VM is locked, and goldify only reads it.
        args.extend(["--backing-chain", "-U"]);
    }
    let out = exec::run(
        "qemu-img",
        args.iter().map(std::ffi::OsStr::new).chain([path.as_os_str()]),
    )
    .with_context(|| format!("reading {} as {}", input.display(), format.name()))
    .tag(Exit::Input)?;
    let info: serde_json::Value = serde_json::from_slice(&out.stdout)
        .context("parsing qemu-img info")
        .tag(Exit::Input)?;
    refs::confirm(input, &info, allow)?;
    let images = info.as_array().cloned().unwrap_or_else(|| vec![info]);
    if images
        .iter()
        .any(|i| i.get("encrypted").and_then(|e| e.as_bool()) == Some(true))
    {
        crate::bail_tag!(
            Exit::Input,
            "{} is encrypted; goldify needs an unencrypted disk",
            input.display()
        );
    }
    if links > 0 {
        tracing::info!(
            "{} reads {links} other file(s) in the allowed directories; they are read, never written",
            input.display()
        );
    }
    Ok(())
}

/// A qcow2 overlay over `backing`: writes go to the overlay, the backing file is only read.
pub fn create_overlay(backing: &Path, backing_format: &str, overlay: &Path) -> Result<()> {
    exec::run(
        "qemu-img",
        [
            "create".as_ref(),
            "-q".as_ref(),
            "-f".as_ref(),
            "qcow2".as_ref(),
            "-F".as_ref(),
            backing_format.as_ref(),
            "-b".as_ref(),
            backing.as_os_str(),
            overlay.as_os_str(),
        ],
    )
    .map(drop)
    .with_context(|| format!("creating an overlay over {}", backing.display()))
}

/// `--in-place` writes into the input itself: prove that it can be written before the
/// appliance starts (libguestfs only fails to launch, exit 7). By opening it for writing,
/// not by its mode: root bypasses mode bits, but not a read-only mount (EROFS) or the
/// immutable attribute (EPERM), see open(2). Only regular files and block devices are
/// opened, O_NONBLOCK: anything else (a FIFO would block) is for detection to refuse.
pub fn check_writable(input: &Path) -> Result<()> {
    use std::os::unix::fs::FileTypeExt;
    let kind = std::fs::metadata(input)
        .with_context(|| format!("reading {}", input.display()))
        .tag(Exit::Input)?
        .file_type();
    if !kind.is_file() && !kind.is_block_device() {
        return Ok(());
    }
    std::fs::OpenOptions::new()
        .write(true)
        .custom_flags(nix::libc::O_NONBLOCK | nix::libc::O_NOCTTY)
        .open(input)
        .map(drop)
        .with_context(|| format!("--in-place: cannot write {}", input.display()))
        .tag(Exit::Output)
}

/// Virtual size of a disk image in bytes.
pub fn virtual_size(path: &Path, format: Format) -> Result<u64> {
    let out = exec::run(
        "qemu-img",
        [
            "info".as_ref(),
            "--output=json".as_ref(),
            "-f".as_ref(),
            format.name().as_ref(),
            path.as_os_str(),
        ],
    )?;
    let info: serde_json::Value = serde_json::from_slice(&out.stdout).context("parsing qemu-img info")?;
    info.get("virtual-size")
        .and_then(|v| v.as_u64())
        .ok_or_else(|| anyhow!("qemu-img info gave no virtual-size"))
}

const BLOCK: usize = 1 << 20;

/// Stream-decompress into a sparse file: all-zero blocks become holes (seeks), so a 40 GiB
/// image with 1 GiB of data costs 1 GiB of disk.
fn decompress(input: &Path, c: detect::Compression, out: &Path) -> Result<()> {
    let f = crate::hostfile::open(input, crate::hostfile::Accept::RegularOrBlock)
        .with_context(|| format!("opening {}", input.display()))?;
    let f = std::io::BufReader::with_capacity(BLOCK, f);
    let mut reader: Box<dyn Read> = match c {
        detect::Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(f)),
        detect::Compression::Xz => Box::new(liblzma::read::XzDecoder::new_multi_decoder(f)),
    };
    // The uncleaned guest in clear: private to its owner whatever the umask, and a new
    // file, never one that was there (a link planted in the work directory).
    let mut w = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(out)
        .with_context(|| format!("creating {}", out.display()))?;
    let mut buf = vec![0u8; BLOCK];
    let mut len: u64 = 0;
    loop {
        crate::interrupt::check()?;
        let n = read_full(&mut reader, &mut buf)?;
        if n == 0 {
            break;
        }
        if buf[..n].iter().all(|b| *b == 0) {
            w.seek(SeekFrom::Current(n as i64))?;
        } else {
            w.write_all(&buf[..n])
                .with_context(|| format!("writing {}", out.display()))?;
        }
        len += n as u64;
    }
    w.set_len(len)?;
    w.sync_all()?;
    Ok(())
}

fn read_full(r: &mut dyn Read, buf: &mut [u8]) -> Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(n)
}

/// Write the golden disk to `dest` atomically: convert into a temporary name in the same
/// directory, fsync, rename, fsync the directory. Zero and unallocated areas stay sparse.
pub fn export(work: &WorkDisk, format: Format, compress: bool, dest: &Path) -> Result<()> {
    let dir = dest.parent().unwrap_or(Path::new("."));
    let tmp = tempfile::Builder::new()
        .prefix(".goldify-export-")
        .tempfile_in(dir)
        .with_context(|| format!("creating a temporary file in {}", dir.display()))?;
    let tmp_path = tmp.path().to_path_buf();
    // The golden image stands alone: no backing file, no dependency on the overlay.
    let bar = crate::progress::bytes(
        data_size(&work.path, work.format).unwrap_or(0),
        "writing the golden disk",
    );
    convert(&work.path, work.format, &tmp_path, format, compress, &bar)
        .with_context(|| format!("writing {}", dest.display()))?;
    bar.finish_and_clear();
    File::open(&tmp_path)?.sync_all()?;
    // tempfile creates 0600; a golden image is meant to be shared.
    std::fs::set_permissions(&tmp_path, std::os::unix::fs::PermissionsExt::from_mode(0o644))?;
    tmp.persist(dest)
        .map_err(|e| anyhow!("renaming into {}: {}", dest.display(), e.error))?;
    File::open(dir)?.sync_all()?;
    Ok(())
}

/// Bytes of data (not holes, not unallocated clusters) in an image, as `qemu-img map` sees them.
pub fn data_size(path: &Path, format: Format) -> Result<u64> {
    let out = exec::run(
        "qemu-img",
        [
            "map".as_ref(),
            "--output=json".as_ref(),
            "-f".as_ref(),
            format.name().as_ref(),
            path.as_os_str(),
        ],
    )
    .with_context(|| format!("mapping {}", path.display()))?;
    let map: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).context("parsing qemu-img map")?;
    Ok(map
        .iter()
        .filter(|e| {
            e.get("data").and_then(|d| d.as_bool()) == Some(true)
                && e.get("zero").and_then(|z| z.as_bool()) != Some(true)
        })
        .filter_map(|e| e.get("length").and_then(|l| l.as_u64()))
        .sum())
}

/// Convert `src` into `dest` (an existing temporary file the caller renames) with
/// qemu-img. Zeros and unallocated areas stay sparse; `bar` follows the bytes written.
pub fn convert(
    src: &Path,
    src_format: Format,
    dest: &Path,
    format: Format,
    compress: bool,
    bar: &indicatif::ProgressBar,
) -> Result<()> {
    let mut args: Vec<std::ffi::OsString> = vec![
        "convert".into(),
        "-f".into(),
        src_format.name().into(),
        "-O".into(),
        format.name().into(),
    ];
    if compress && format == Format::Qcow2 {
        args.push("-c".into());
    } else if matches!(format, Format::Qcow2 | Format::Raw) {
        // Out-of-order writes: several times faster here (0.3 s instead of 2.1 s for a
        // 900 MiB golden disk). The order of clusters in a qcow2 file does not matter, and
        // a raw file's blocks land where they belong. Compressed qcow2, VMDK and VDI are
        // written in order.
        args.push("-W".into());
    }
    if format == Format::Qcow2 {
        args.push("-o".into());
        args.push("compat=1.1".into());
    }
    args.push(src.into());
    args.push(dest.into());
    let (done, finished) = std::sync::mpsc::channel::<()>();
    std::thread::scope(|s| {
        // qemu-img prints its progress only at the end when not on a terminal; follow the
        // output file's allocated size instead, until `done` is dropped.
        s.spawn(move || {
            use std::os::unix::fs::MetadataExt;
            while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) =
                finished.recv_timeout(std::time::Duration::from_millis(200))
            {
                if let Ok(m) = std::fs::metadata(dest) {
                    bar.set_position((m.blocks() * 512).min(bar.length().unwrap_or(u64::MAX)));
                }
            }
        });
        let r = exec::run("qemu-img", args).with_context(|| format!("converting to {}", dest.display()));
        drop(done);
        r
    })?;
    Ok(())
}

/// Export the golden disk as a sparse raw file (the one pass of publishing reads it).
pub fn export_raw(work: &WorkDisk, dest: &Path, bar: &indicatif::ProgressBar) -> Result<()> {
    convert(&work.path, work.format, dest, Format::Raw, false, bar)
}
