//! What a file is, from its first bytes, never from its name.

use anyhow::{bail, Context, Result};
use std::io::Read;
use std::path::Path;

use super::Format;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    Gzip,
    Xz,
}

impl Compression {
    pub fn name(self) -> &'static str {
        match self {
            Compression::Gzip => "gzip",
            Compression::Xz => "xz",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Detected {
    Disk(Format),
    Compressed(Compression),
}

impl std::fmt::Display for Detected {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Detected::Disk(d) => f.write_str(d.name()),
            Detected::Compressed(c) => write!(f, "{}-compressed", c.name()),
        }
    }
}

/// Classify a header. LUKS and empty files are refused here with a clear reason.
pub fn classify(head: &[u8]) -> Result<Detected> {
    if head.starts_with(b"QFI\xfb") {
        return Ok(Detected::Disk(Format::Qcow2));
    }
    if head.starts_with(b"KDMV") || head.starts_with(b"# Disk DescriptorFile") || head.starts_with(b"COWD") {
        return Ok(Detected::Disk(Format::Vmdk));
    }
    if head.len() >= 0x44 && head[0x40..0x44] == [0x7f, 0x10, 0xda, 0xbe] {
        return Ok(Detected::Disk(Format::Vdi));
    }
    if head.starts_with(&[0x1f, 0x8b]) {
        return Ok(Detected::Compressed(Compression::Gzip));
    }
    if head.starts_with(b"\xfd7zXZ\x00") {
        return Ok(Detected::Compressed(Compression::Xz));
    }
    if head.starts_with(b"LUKS\xba\xbe") {
        bail!("it is a LUKS-encrypted volume; goldify needs an unencrypted disk");
    }
    if head.is_empty() {
        bail!("it is empty");
    }
    Ok(Detected::Disk(Format::Raw))
}

/// Classify the disk at `path`. Only regular files and block devices are opened at all: a
/// FIFO would block the open, a character device (/dev/zero) would never end.
pub fn detect(path: &Path) -> Result<Detected> {
    let mut head = Vec::with_capacity(512);
    crate::hostfile::open(path, crate::hostfile::Accept::RegularOrBlock)
        .with_context(|| format!("opening disk {}", path.display()))?
        .take(512)
        .read_to_end(&mut head)
        .with_context(|| format!("reading disk {}", path.display()))?;
    classify(&head).with_context(|| format!("disk {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn magic() {
        assert_eq!(classify(b"QFI\xfb\0\0\0\x03").unwrap(), Detected::Disk(Format::Qcow2));
        assert_eq!(classify(b"KDMV\x01").unwrap(), Detected::Disk(Format::Vmdk));
        let mut vdi = vec![0u8; 0x50];
        vdi[0x40..0x44].copy_from_slice(&[0x7f, 0x10, 0xda, 0xbe]);
        assert_eq!(classify(&vdi).unwrap(), Detected::Disk(Format::Vdi));
        assert_eq!(
            classify(&[0x1f, 0x8b, 8]).unwrap(),
            Detected::Compressed(Compression::Gzip)
        );
        assert_eq!(
            classify(b"\xfd7zXZ\x00\x00").unwrap(),
            Detected::Compressed(Compression::Xz)
        );
        assert_eq!(classify(&[0u8; 512]).unwrap(), Detected::Disk(Format::Raw));
        assert!(classify(b"LUKS\xba\xbe\x00\x01").is_err());
        assert!(classify(b"").is_err());
    }
}
