//! Checksums computed while bytes flow to their destination: a [`Hashes`] set fed by
//! [`HashWriter`], so no artifact is ever read back to hash it.

use serde::{Deserialize, Serialize};
use sha2::digest::DynDigest;
use std::collections::BTreeMap;
use std::io::{self, Write};

/// The checksum algorithms goldify computes. `md5` exists because Deckhouse's
/// ClusterVirtualImage accepts it next to sha256; sha1 because VMmanager's `checksum` is one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Algo {
    Md5,
    Sha1,
    Sha256,
    Sha512,
}

impl Algo {
    pub const ALL: [Algo; 4] = [Algo::Md5, Algo::Sha1, Algo::Sha256, Algo::Sha512];

    pub fn name(self) -> &'static str {
        match self {
            Algo::Md5 => "md5",
            Algo::Sha1 => "sha1",
            Algo::Sha256 => "sha256",
            Algo::Sha512 => "sha512",
        }
    }

    /// The file `sha256sum -c` and friends read: SHA256SUMS, SHA1SUMS, …
    pub fn sums_file(self) -> String {
        format!("{}SUMS", self.name().to_uppercase())
    }

    fn hasher(self) -> Box<dyn DynDigest + Send> {
        match self {
            Algo::Md5 => Box::new(md5::Md5::default()),
            Algo::Sha1 => Box::new(sha1::Sha1::default()),
            Algo::Sha256 => Box::new(sha2::Sha256::default()),
            Algo::Sha512 => Box::new(sha2::Sha512::default()),
        }
    }
}

/// Several digests over the same bytes.
pub struct Hashes {
    digests: Vec<(Algo, Box<dyn DynDigest + Send>)>,
}

impl Hashes {
    pub fn new(algos: impl IntoIterator<Item = Algo>) -> Hashes {
        let mut list: Vec<Algo> = algos.into_iter().collect();
        list.sort();
        list.dedup();
        Hashes {
            digests: list.into_iter().map(|a| (a, a.hasher())).collect(),
        }
    }

    pub fn update(&mut self, data: &[u8]) {
        for (_, d) in &mut self.digests {
            d.update(data);
        }
    }

    /// Lowercase hex digests by algorithm name, as `sha256sum` prints them.
    pub fn finish(self) -> BTreeMap<String, String> {
        self.digests
            .into_iter()
            .map(|(a, d)| (a.name().to_string(), hex::encode(d.finalize())))
            .collect()
    }
}

/// Forwards every byte to `inner` and hashes and counts it on the way.
pub struct HashWriter<W> {
    inner: W,
    hashes: Hashes,
    count: u64,
}

impl<W: Write> HashWriter<W> {
    pub fn new(inner: W, algos: impl IntoIterator<Item = Algo>) -> HashWriter<W> {
        HashWriter {
            inner,
            hashes: Hashes::new(algos),
            count: 0,
        }
    }

    /// The inner writer, the bytes written, and their digests.
    pub fn finish(self) -> (W, u64, BTreeMap<String, String>) {
        (self.inner, self.count, self.hashes.finish())
    }
}

impl<W: Write> Write for HashWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hashes.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_digests_of_abc() {
        let mut w = HashWriter::new(Vec::new(), Algo::ALL);
        w.write_all(b"ab").unwrap();
        w.write_all(b"c").unwrap();
        let (out, n, sums) = w.finish();
        assert_eq!(out, b"abc");
        assert_eq!(n, 3);
        assert_eq!(sums["md5"], "900150983cd24fb0d6963f7d28e17f72");
        assert_eq!(sums["sha1"], "a9993e364706816aba3e25717850c26c9cd0d89d");
        assert_eq!(
            sums["sha256"],
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert!(sums["sha512"].starts_with("ddaf35a193617aba"));
    }

    #[test]
    fn duplicate_algorithms_hash_once() {
        let h = Hashes::new([Algo::Sha1, Algo::Sha1]);
        assert_eq!(h.finish().len(), 1);
    }
}
