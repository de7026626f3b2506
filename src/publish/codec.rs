//! Block compressors whose blocks are independent, so that blocks can be compressed on
//! several threads and an all-zero block compressed once and reused:
//! - xz: one .xz stream of LZMA2 blocks; goldify writes the stream header, block headers,
//!   index and footer itself (the format: <https://tukaani.org/xz/xz-file-format.txt>) and
//!   gets each block's payload from liblzma's raw LZMA2 encoder;
//! - gzip: one gzip member per block (RFC 1952 §2.2: a file is a series of members);
//! - zstd: one frame per block (RFC 8878 §3: concatenated frames decode as one stream).
//!
//! Stock `xz -d`, `gzip -d` and `zstd -d` decode the result to exactly the input.

use anyhow::{bail, Context, Result};
use liblzma::stream::{Action, Filters, LzmaOptions, Status, Stream};
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};

const MIB: usize = 1 << 20;

/// One compressed block (or several, when the codec's block size is smaller than the
/// chunk): the bytes to write and, for container formats with an index, one record per block.
#[derive(Debug, Clone)]
pub struct Encoded {
    pub bytes: Vec<u8>,
    pub records: Vec<Record>,
}

/// What the xz index records per block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record {
    pub unpadded: u64,
    pub uncompressed: u64,
}

pub trait BlockCodec: Send + Sync {
    /// The largest input one block takes.
    fn block_size(&self) -> usize;
    fn header(&self) -> Vec<u8>;
    /// Compress one block's worth of input (at most `block_size`).
    fn encode_block(&self, data: &[u8]) -> Result<Encoded>;
    fn trailer(&self, records: &[Record]) -> Vec<u8>;

    /// As [`BlockCodec::encode`], abandoned (`None`) when `stop` is set: for speculative work.
    fn encode_until(&self, data: &[u8], stop: &AtomicBool) -> Result<Option<Encoded>> {
        if stop.load(Ordering::Relaxed) {
            return Ok(None);
        }
        self.encode(data).map(Some)
    }

    /// Compress `data` of any length as consecutive blocks.
    fn encode(&self, data: &[u8]) -> Result<Encoded> {
        let mut out = Encoded {
            bytes: Vec::new(),
            records: Vec::new(),
        };
        for piece in data.chunks(self.block_size().max(1)) {
            let e = self.encode_block(piece)?;
            out.bytes.extend_from_slice(&e.bytes);
            out.records.extend(e.records);
        }
        Ok(out)
    }
}

// ---------------------------------------------------------------------------------------
// xz

const XZ_MAGIC: [u8; 6] = [0xFD, b'7', b'z', b'X', b'Z', 0x00];
const XZ_FOOTER_MAGIC: [u8; 2] = [b'Y', b'Z'];
/// Stream flags: no reserved bits, check type CRC64 (0x04), as `xz` writes by default.
const XZ_FLAGS: [u8; 2] = [0x00, 0x04];
const LZMA2_FILTER_ID: u8 = 0x21;

pub struct Xz {
    preset: u32,
    dict_prop: u8,
    block_size: usize,
}

impl Xz {
    pub fn new(preset: u32, extreme: bool) -> Result<Xz> {
        if preset > 9 {
            bail!("xz preset {preset} is out of range 0-9");
        }
        let preset = preset | if extreme { liblzma::stream::PRESET_EXTREME } else { 0 };
        let dict_size = preset_dict_size(preset)?;
        Ok(Xz {
            preset,
            dict_prop: lzma2_dict_prop(dict_size),
            // What `xz -T` uses: three times the dictionary, at least 1 MiB (xz(1), --block-size).
            block_size: (3 * dict_size as usize).max(MIB),
        })
    }
}

fn preset_dict_size(preset: u32) -> Result<u32> {
    // SAFETY: lzma_lzma_preset only fills the plain-data struct it is given.
    let mut opts: liblzma_sys::lzma_options_lzma = unsafe { std::mem::zeroed() };
    if unsafe { liblzma_sys::lzma_lzma_preset(&mut opts, preset) } != 0 {
        bail!("liblzma does not know xz preset {preset}");
    }
    Ok(opts.dict_size)
}

/// The LZMA2 properties byte: the smallest encoded dictionary size (2 or 3 times a power
/// of two, xz-file-format.txt §5.3.1) that is at least `dict`.
fn lzma2_dict_prop(dict: u32) -> u8 {
    for p in 0u8..40 {
        let size = (2u64 | (p as u64 & 1)) << (p / 2 + 11);
        if size >= dict as u64 {
            return p;
        }
    }
    40
}

fn crc32(data: &[u8]) -> u32 {
    // SAFETY: reads exactly data.len() bytes from a valid slice.
    unsafe { liblzma_sys::lzma_crc32(data.as_ptr(), data.len(), 0) }
}

fn crc64(data: &[u8]) -> u64 {
    // SAFETY: as above.
    unsafe { liblzma_sys::lzma_crc64(data.as_ptr(), data.len(), 0) }
}

/// xz's variable-length integers: 7 bits per byte, least significant first.
fn put_varint(out: &mut Vec<u8>, mut n: u64) {
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

fn pad4(out: &mut Vec<u8>, from: usize) {
    while (out.len() - from) % 4 != 0 {
        out.push(0);
    }
}

impl Xz {
    /// The LZMA2 payload of one block, from liblzma's raw encoder. With `stop`, the
    /// input is fed in 1 MiB slices and the work abandoned (`None`) once `stop` is set.
    fn lzma2(&self, data: &[u8], stop: Option<&AtomicBool>) -> Result<Option<Vec<u8>>> {
        let opts = LzmaOptions::new_preset(self.preset).context("setting up the LZMA2 encoder")?;
        let mut filters = Filters::new();
        filters.lzma2(&opts);
        let mut stream = Stream::new_raw_encoder(&filters).context("setting up the LZMA2 encoder")?;
        let mut out = Vec::with_capacity(data.len() / 3 + 4096);
        let slice = if stop.is_some() { MIB } else { data.len() };
        loop {
            let consumed = stream.total_in() as usize;
            if stop.is_some_and(|s| s.load(Ordering::Relaxed)) {
                return Ok(None);
            }
            if out.capacity() - out.len() < 4096 {
                out.reserve(out.capacity().max(64 << 10));
            }
            let end = (consumed + slice).min(data.len());
            let action = if end == data.len() { Action::Finish } else { Action::Run };
            match stream
                .process_vec(&data[consumed..end], &mut out, action)
                .context("compressing with LZMA2")?
            {
                Status::StreamEnd => return Ok(Some(out)),
                _ => continue,
            }
        }
    }

    fn block(&self, data: &[u8], payload: Vec<u8>) -> Encoded {
        // Block header (§3.1): size, flags (one filter; compressed and uncompressed sizes
        // present, as xz's threaded encoder writes them), sizes, filter flags, padding, CRC32.
        let mut block = vec![0u8, 0xC0];
        put_varint(&mut block, payload.len() as u64);
        put_varint(&mut block, data.len() as u64);
        block.extend_from_slice(&[LZMA2_FILTER_ID, 1, self.dict_prop]);
        while (block.len() + 4) % 4 != 0 {
            block.push(0);
        }
        let header_len = block.len() + 4;
        block[0] = (header_len / 4 - 1) as u8;
        let crc = crc32(&block);
        block.extend_from_slice(&crc.to_le_bytes());
        block.extend_from_slice(&payload);
        pad4(&mut block, 0);
        block.extend_from_slice(&crc64(data).to_le_bytes());
        let unpadded = (header_len + payload.len() + 8) as u64;
        Encoded {
            bytes: block,
            records: vec![Record {
                unpadded,
                uncompressed: data.len() as u64,
            }],
        }
    }
}

impl BlockCodec for Xz {
    fn block_size(&self) -> usize {
        self.block_size
    }

    fn header(&self) -> Vec<u8> {
        let mut h = XZ_MAGIC.to_vec();
        h.extend_from_slice(&XZ_FLAGS);
        h.extend_from_slice(&crc32(&XZ_FLAGS).to_le_bytes());
        h
    }

    fn encode_block(&self, data: &[u8]) -> Result<Encoded> {
        let payload = self.lzma2(data, None)?.expect("not cancellable");
        Ok(self.block(data, payload))
    }

    fn encode_until(&self, data: &[u8], stop: &AtomicBool) -> Result<Option<Encoded>> {
        let mut out = Encoded {
            bytes: Vec::new(),
            records: Vec::new(),
        };
        for piece in data.chunks(self.block_size) {
            let Some(payload) = self.lzma2(piece, Some(stop))? else {
                return Ok(None);
            };
            let e = self.block(piece, payload);
            out.bytes.extend_from_slice(&e.bytes);
            out.records.extend(e.records);
        }
        Ok(Some(out))
    }

    fn trailer(&self, records: &[Record]) -> Vec<u8> {
        // Index (§4): indicator, count, records, padding, CRC32.
        let mut index = vec![0u8];
        put_varint(&mut index, records.len() as u64);
        for r in records {
            put_varint(&mut index, r.unpadded);
            put_varint(&mut index, r.uncompressed);
        }
        pad4(&mut index, 0);
        let crc = crc32(&index);
        index.extend_from_slice(&crc.to_le_bytes());
        // Stream footer (§2.1.2): CRC32, backward size, flags, magic.
        let mut tail = ((index.len() / 4 - 1) as u32).to_le_bytes().to_vec();
        tail.extend_from_slice(&XZ_FLAGS);
        let mut out = index;
        out.extend_from_slice(&crc32(&tail).to_le_bytes());
        out.extend_from_slice(&tail);
        out.extend_from_slice(&XZ_FOOTER_MAGIC);
        out
    }
}

// ---------------------------------------------------------------------------------------
// gzip and zstd

pub struct Gzip {
    level: u32,
}

impl Gzip {
    pub fn new(level: u32) -> Result<Gzip> {
        if !(1..=9).contains(&level) {
            bail!("gzip level {level} is out of range 1-9");
        }
        Ok(Gzip { level })
    }
}

impl BlockCodec for Gzip {
    fn block_size(&self) -> usize {
        4 * MIB
    }
    fn header(&self) -> Vec<u8> {
        Vec::new()
    }
    fn encode_block(&self, data: &[u8]) -> Result<Encoded> {
        let mut e = flate2::write::GzEncoder::new(
            Vec::with_capacity(data.len() / 3 + 64),
            flate2::Compression::new(self.level),
        );
        e.write_all(data).context("compressing with gzip")?;
        let bytes = e.finish().context("compressing with gzip")?;
        Ok(Encoded {
            bytes,
            records: Vec::new(),
        })
    }
    fn trailer(&self, _: &[Record]) -> Vec<u8> {
        Vec::new()
    }
}

/// No target publishes zstd yet: the codec is built for the tests of the block framing.
#[cfg(test)]
pub struct Zstd {
    level: i32,
}

#[cfg(test)]
impl Zstd {
    pub fn new(level: i32) -> Result<Zstd> {
        if !(1..=19).contains(&level) {
            bail!("zstd level {level} is out of range 1-19");
        }
        Ok(Zstd { level })
    }
}

#[cfg(test)]
impl BlockCodec for Zstd {
    fn block_size(&self) -> usize {
        8 * MIB
    }
    fn header(&self) -> Vec<u8> {
        Vec::new()
    }
    fn encode_block(&self, data: &[u8]) -> Result<Encoded> {
        let mut c = zstd::bulk::Compressor::new(self.level).context("setting up zstd")?;
        c.include_checksum(true).context("setting up zstd")?;
        c.include_contentsize(true).context("setting up zstd")?;
        let bytes = c.compress(data).context("compressing with zstd")?;
        Ok(Encoded {
            bytes,
            records: Vec::new(),
        })
    }
    fn trailer(&self, _: &[Record]) -> Vec<u8> {
        Vec::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Header, blocks (an all-zero one reused twice), trailer: as the stream pipeline does.
    pub(crate) fn assemble(codec: &dyn BlockCodec, pieces: &[&[u8]]) -> Vec<u8> {
        let mut out = codec.header();
        let mut records = Vec::new();
        for p in pieces {
            let e = codec.encode(p).unwrap();
            out.extend_from_slice(&e.bytes);
            records.extend(e.records);
        }
        out.extend(codec.trailer(&records));
        out
    }

    fn decode_with(tool: &str, data: &[u8]) -> Vec<u8> {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("x");
        std::fs::write(&f, data).unwrap();
        let out = std::process::Command::new(tool)
            .arg("-dc")
            .arg(&f)
            .output()
            .expect("decompressor installed");
        assert!(
            out.status.success(),
            "{tool} -d failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    }

    fn sample() -> (Vec<Vec<u8>>, Vec<u8>) {
        let text: Vec<u8> = (0..300_000u32)
            .flat_map(|i| format!("line {i} of a log file\n").into_bytes())
            .collect();
        let zeros = vec![0u8; 2 * MIB + 123];
        let noise: Vec<u8> = (0..100_000u32)
            .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
            .collect();
        let pieces = vec![text, zeros.clone(), noise, zeros, vec![7u8; 1]];
        let whole = pieces.concat();
        (pieces, whole)
    }

    #[test]
    fn xz_stream_decodes_with_stock_xz() {
        let (pieces, whole) = sample();
        let xz = Xz::new(1, false).unwrap();
        let refs: Vec<&[u8]> = pieces.iter().map(|p| p.as_slice()).collect();
        let file = assemble(&xz, &refs);
        assert_eq!(decode_with("xz", &file), whole);
        // And xz's own integrity test (index, footer, checks).
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("t.xz");
        std::fs::write(&f, &file).unwrap();
        assert!(std::process::Command::new("xz")
            .arg("-t")
            .arg(&f)
            .status()
            .unwrap()
            .success());
        // The Rust-side decoder agrees too.
        let mut d = liblzma::read::XzDecoder::new(file.as_slice());
        let mut back = Vec::new();
        std::io::Read::read_to_end(&mut d, &mut back).unwrap();
        assert_eq!(back, whole);
    }

    #[test]
    fn cancellable_encoding_matches_and_stops() {
        let (pieces, _) = sample();
        let xz = Xz::new(1, false).unwrap();
        let go = AtomicBool::new(false);
        let a = xz.encode(&pieces[0]).unwrap();
        let b = xz.encode_until(&pieces[0], &go).unwrap().unwrap();
        assert_eq!(a.bytes, b.bytes, "fed in slices, the same block");
        assert!(xz.encode_until(&pieces[0], &AtomicBool::new(true)).unwrap().is_none());
    }

    #[test]
    fn empty_xz_stream_is_valid() {
        let xz = Xz::new(6, false).unwrap();
        assert_eq!(decode_with("xz", &assemble(&xz, &[])), b"");
    }

    #[test]
    fn gzip_members_and_zstd_frames_decode() {
        let (pieces, whole) = sample();
        let refs: Vec<&[u8]> = pieces.iter().map(|p| p.as_slice()).collect();
        assert_eq!(decode_with("gzip", &assemble(&Gzip::new(6).unwrap(), &refs)), whole);
        assert_eq!(decode_with("zstd", &assemble(&Zstd::new(3).unwrap(), &refs)), whole);
    }

    #[test]
    fn dictionary_property_byte() {
        assert_eq!(lzma2_dict_prop(8 << 20), 22);
        assert_eq!(lzma2_dict_prop(64 << 20), 28);
        assert_eq!(lzma2_dict_prop(3 << 20), 19);
        assert_eq!(lzma2_dict_prop(4096), 0);
        assert_eq!(Xz::new(6, false).unwrap().block_size(), 24 * MIB);
    }

    #[test]
    fn varints() {
        let mut v = Vec::new();
        put_varint(&mut v, 0x7F);
        put_varint(&mut v, 0x80);
        put_varint(&mut v, 300);
        assert_eq!(v, [0x7F, 0x80, 0x01, 0xAC, 0x02]);
    }

    #[test]
    fn bad_levels_are_refused() {
        assert!(Xz::new(10, false).is_err());
        assert!(Gzip::new(0).is_err());
        assert!(Zstd::new(40).is_err());
    }
}
