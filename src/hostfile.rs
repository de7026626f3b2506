//! Files on the host that the user names (disks, Packer manifests): opened without ever
//! blocking and read with a bound.
//!
//! `open(2)` on a FIFO blocks until a writer appears, and opening a device can have side
//! effects (a watchdog arms itself, a tape rewinds), so the type is checked with `stat(2)`
//! before anything is opened. The open itself uses `O_NONBLOCK` and the descriptor is
//! checked again with `fstat(2)`, so a file swapped in between is still refused.

use anyhow::{bail, Context, Result};
use std::fs::File;
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;

/// Which kinds of file a caller accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accept {
    Regular,
    /// Disks may also be block devices (virt-sysprep takes them too).
    RegularOrBlock,
}

/// What a file is, in words, for "it is …, not a regular file" messages.
fn describe(t: std::fs::FileType) -> &'static str {
    if t.is_dir() {
        "a directory"
    } else if t.is_fifo() {
        "a FIFO (named pipe)"
    } else if t.is_char_device() {
        "a character device"
    } else if t.is_block_device() {
        "a block device"
    } else if t.is_socket() {
        "a socket"
    } else {
        "not a regular file"
    }
}

fn acceptable(t: std::fs::FileType, accept: Accept) -> Result<()> {
    let ok = t.is_file() || (accept == Accept::RegularOrBlock && t.is_block_device());
    if !ok {
        match (describe(t), accept) {
            ("not a regular file", _) => bail!("it is not a regular file"),
            (what, Accept::Regular) => bail!("it is {what}, not a regular file"),
            (what, Accept::RegularOrBlock) => bail!("it is {what}, not a regular file or a block device"),
        }
    }
    Ok(())
}

/// Open `path` read-only if it is a file of a kind `accept` takes. Errors do not repeat
/// the path: callers say what the file is ("opening disk x.qcow2: it is a FIFO …").
pub fn open(path: &Path, accept: Accept) -> Result<File> {
    let meta = std::fs::metadata(path)?;
    acceptable(meta.file_type(), accept)?;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NONBLOCK | nix::libc::O_NOCTTY)
        .open(path)?;
    acceptable(file.metadata()?.file_type(), accept)?;
    Ok(file)
}

/// The whole content of a regular file of at most `limit` bytes.
pub fn read_bounded(path: &Path, limit: u64) -> Result<Vec<u8>> {
    let file = open(path, Accept::Regular)?;
    let mut bytes = Vec::new();
    // One byte more than allowed tells "exactly at the limit" from "over it", whatever the
    // size stat(2) reported (a file may grow while it is read).
    file.take(limit + 1).read_to_end(&mut bytes).context("reading")?;
    if bytes.len() as u64 > limit {
        bail!("it is larger than {limit} bytes");
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(r: Result<impl std::fmt::Debug>) -> String {
        format!("{:#}", r.unwrap_err())
    }

    #[test]
    fn refuses_what_could_block_or_never_end() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        // Would block forever in open(2) if the type were not checked first.
        assert_eq!(
            message(open(&fifo, Accept::RegularOrBlock)),
            "it is a FIFO (named pipe), not a regular file or a block device"
        );
        assert_eq!(
            message(read_bounded(Path::new("/dev/zero"), 10)),
            "it is a character device, not a regular file"
        );
        assert_eq!(
            message(read_bounded(dir.path(), 10)),
            "it is a directory, not a regular file"
        );
    }

    #[test]
    fn reads_up_to_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("f");
        std::fs::write(&f, b"0123456789").unwrap();
        assert_eq!(read_bounded(&f, 10).unwrap(), b"0123456789");
        assert_eq!(message(read_bounded(&f, 9)), "it is larger than 9 bytes");
        assert!(open(&f, Accept::Regular).is_ok());
    }
}
