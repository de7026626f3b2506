//! A containerDisk as an OCI image, built without a container daemon: one layer holding
//! `/disk/<name>.qcow2` owned by 107:107 (the qemu user KubeVirt runs as; see the KubeVirt
//! user guide, "containerDisk": `ADD --chown=107:107 image.qcow2 /disk/`), written as an
//! image layout directory and as an `oci-archive` tar of that directory
//! (<https://github.com/opencontainers/image-spec/blob/main/image-layout.md>).
//!
//! The layer is an uncompressed tar (media type `application/vnd.oci.image.layer.v1.tar`):
//! qcow2 data gains little from gzip, and an uncompressed layer's digest is its diff_id.

use super::atomic::{Staged, StagedDir};
use super::hash::{Algo, HashWriter, Hashes};
use anyhow::{Context, Result};
use serde_json::json;
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{Read, Write};
use std::path::Path;

/// The qemu user and group in KubeVirt's virt-launcher.
const QEMU_ID: u64 = 107;
const MEDIA_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const MEDIA_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
const MEDIA_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";
const MEDIA_INDEX: &str = "application/vnd.oci.image.index.v1+json";

pub struct Built {
    pub layout: StagedDir,
    pub archive: Staged,
    pub archive_size: u64,
    pub archive_checksums: BTreeMap<String, String>,
    /// Checksums of the qcow2 itself, computed while it was packed into the layer.
    pub disk_checksums: BTreeMap<String, String>,
    pub manifest_digest: String,
}

/// Pack `disk` (a finished qcow2) into `<layout_dest>` (a directory) and `<archive_dest>`.
/// The qcow2 is read once; its checksums (`disk_algos`) come out of that same read.
pub fn build(
    disk: &Path,
    disk_name: &str,
    tag: &str,
    layout_dest: &Path,
    archive_dest: &Path,
    disk_algos: &[Algo],
    archive_algos: &[Algo],
) -> Result<Built> {
    let mut layout = StagedDir::new(layout_dest)?;
    let blobs = layout.path().join("blobs/sha256");
    std::fs::create_dir_all(&blobs).with_context(|| format!("creating {}", blobs.display()))?;

    // The layer: tar headers, the qcow2, padding, end-of-archive; hashed while written.
    let layer_tmp = blobs.join("layer.partial");
    let size = std::fs::metadata(disk)
        .with_context(|| format!("reading {}", disk.display()))?
        .len();
    let f = File::create(&layer_tmp).with_context(|| format!("creating {}", layer_tmp.display()))?;
    let mut layer = HashWriter::new(std::io::BufWriter::with_capacity(1 << 20, f), [Algo::Sha256]);
    let mut dir = tar::Header::new_ustar();
    dir.set_path("disk/")?;
    dir.set_entry_type(tar::EntryType::Directory);
    set_owner(&mut dir, 0o555, 0);
    layer.write_all(dir.as_bytes())?;
    let mut file = tar::Header::new_ustar();
    file.set_path(format!("disk/{disk_name}.qcow2"))?;
    file.set_entry_type(tar::EntryType::Regular);
    set_owner(&mut file, 0o440, size);
    layer.write_all(file.as_bytes())?;
    let mut disk_hashes = Hashes::new(disk_algos.iter().copied());
    let mut src = File::open(disk).with_context(|| format!("opening {}", disk.display()))?;
    let mut buf = vec![0u8; 1 << 20];
    let mut copied = 0u64;
    loop {
        crate::interrupt::check()?;
        let n = src
            .read(&mut buf)
            .with_context(|| format!("reading {}", disk.display()))?;
        if n == 0 {
            break;
        }
        disk_hashes.update(&buf[..n]);
        layer
            .write_all(&buf[..n])
            .with_context(|| format!("writing {}", layer_tmp.display()))?;
        copied += n as u64;
    }
    anyhow::ensure!(copied == size, "{} changed size while being packed", disk.display());
    let pad = (512 - size % 512) % 512;
    layer.write_all(&vec![0u8; pad as usize + 1024])?;
    let (w, layer_size, sums) = layer.finish();
    w.into_inner()
        .map_err(|e| e.into_error())
        .and_then(|f| f.sync_all())
        .context("writing the layer")?;
    let layer_digest = sums["sha256"].clone();
    std::fs::rename(&layer_tmp, blobs.join(&layer_digest)).context("naming the layer blob")?;

    let created = "1970-01-01T00:00:00Z";
    let config = json!({
        "created": created,
        "architecture": "amd64",
        "os": "linux",
        "config": {},
        "rootfs": {"type": "layers", "diff_ids": [format!("sha256:{layer_digest}")]},
        "history": [{"created": created, "created_by": concat!("goldify ", env!("CARGO_PKG_VERSION"))}],
    });
    let (config_digest, config_size) = put_blob(&blobs, &serde_json::to_vec(&config)?)?;
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": MEDIA_MANIFEST,
        "config": {"mediaType": MEDIA_CONFIG, "digest": format!("sha256:{config_digest}"), "size": config_size},
        "layers": [{"mediaType": MEDIA_LAYER, "digest": format!("sha256:{layer_digest}"), "size": layer_size}],
    });
    let (manifest_digest, manifest_size) = put_blob(&blobs, &serde_json::to_vec(&manifest)?)?;
    let index = json!({
        "schemaVersion": 2,
        "mediaType": MEDIA_INDEX,
        "manifests": [{
            "mediaType": MEDIA_MANIFEST,
            "digest": format!("sha256:{manifest_digest}"),
            "size": manifest_size,
            "annotations": {"org.opencontainers.image.ref.name": tag},
        }],
    });
    std::fs::write(layout.path().join("index.json"), serde_json::to_vec_pretty(&index)?)?;
    std::fs::write(layout.path().join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#)?;
    layout.sync()?;

    // The oci-archive: the layout as a tar, hashed while written.
    let mut archive = Staged::new(archive_dest)?;
    let (archive_size, archive_checksums) = {
        let mut w = HashWriter::new(
            std::io::BufWriter::with_capacity(1 << 20, &mut archive),
            archive_algos.iter().copied(),
        );
        {
            let mut tar = tar::Builder::new(&mut w);
            tar.mode(tar::HeaderMode::Deterministic);
            let root = layout.path().to_path_buf();
            for name in ["oci-layout", "index.json"] {
                tar.append_path_with_name(root.join(name), name)?;
            }
            tar.append_dir("blobs", root.join("blobs"))?;
            tar.append_dir("blobs/sha256", &blobs)?;
            let mut names: Vec<String> = std::fs::read_dir(&blobs)?
                .filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect();
            names.sort();
            for n in names {
                crate::interrupt::check()?;
                tar.append_path_with_name(blobs.join(&n), format!("blobs/sha256/{n}"))?;
            }
            tar.finish().context("writing the oci-archive")?;
        }
        w.flush()
            .with_context(|| format!("writing {}", archive_dest.display()))?;
        let (_, n, sums) = w.finish();
        (n, sums)
    };
    archive.sync()?;
    Ok(Built {
        layout,
        archive,
        archive_size,
        archive_checksums,
        disk_checksums: disk_hashes.finish(),
        manifest_digest,
    })
}

fn set_owner(h: &mut tar::Header, mode: u32, size: u64) {
    h.set_mode(mode);
    h.set_uid(QEMU_ID);
    h.set_gid(QEMU_ID);
    h.set_mtime(0);
    h.set_size(size);
    h.set_cksum();
}

fn put_blob(blobs: &Path, data: &[u8]) -> Result<(String, u64)> {
    let mut h = Hashes::new([Algo::Sha256]);
    h.update(data);
    let digest = h.finish()["sha256"].clone();
    std::fs::write(blobs.join(&digest), data).with_context(|| format!("writing blob {digest}"))?;
    Ok((digest, data.len() as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_and_archive_hold_the_disk_owned_by_qemu() {
        let dir = tempfile::tempdir().unwrap();
        let disk = dir.path().join("x.qcow2");
        std::fs::write(&disk, vec![3u8; 1000]).unwrap();
        let b = build(
            &disk,
            "img",
            "latest",
            &dir.path().join("img.oci"),
            &dir.path().join("img.oci.tar"),
            &[Algo::Sha256, Algo::Md5],
            &[Algo::Sha256],
        )
        .unwrap();
        let layout = b.layout.path().to_path_buf();
        let index: serde_json::Value =
            serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
        let mdigest = index["manifests"][0]["digest"]
            .as_str()
            .unwrap()
            .trim_start_matches("sha256:")
            .to_string();
        assert_eq!(mdigest, b.manifest_digest);
        let manifest: serde_json::Value =
            serde_json::from_slice(&std::fs::read(layout.join("blobs/sha256").join(&mdigest)).unwrap()).unwrap();
        let ldigest = manifest["layers"][0]["digest"]
            .as_str()
            .unwrap()
            .trim_start_matches("sha256:");
        let layer = std::fs::read(layout.join("blobs/sha256").join(ldigest)).unwrap();
        let mut tar = tar::Archive::new(layer.as_slice());
        let entries: Vec<(String, u64, u64, u32)> = tar
            .entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                let h = e.header();
                (
                    e.path().unwrap().display().to_string(),
                    h.uid().unwrap(),
                    h.size().unwrap(),
                    h.mode().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            entries,
            [
                ("disk/".into(), 107, 0, 0o555),
                ("disk/img.qcow2".into(), 107, 1000, 0o440)
            ]
        );
        assert_eq!(b.disk_checksums["md5"].len(), 32);
        assert_eq!(b.archive_size, std::fs::metadata(b.archive.temp_path()).unwrap().len());
    }
}
