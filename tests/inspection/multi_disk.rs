//! Guests on several disks (issue 11 item 8): a two-disk MD RAID1 and a volume group
//! over two disks, inspected together, cleaned, and refused with the reason when a disk
//! is missing.

use super::*;

/// `len` bytes at `offset` of two files are equal (read in 1 MiB chunks).
fn same_bytes(a: &Path, b: &Path, offset: u64, len: u64) -> bool {
    use std::io::{Read, Seek, SeekFrom};
    let open = |p: &Path| {
        let mut f = std::fs::File::open(p).unwrap();
        f.seek(SeekFrom::Start(offset)).unwrap();
        f.take(len)
    };
    let (mut x, mut y) = (open(a), open(b));
    let (mut bx, mut by) = (vec![0u8; 1 << 20], vec![0u8; 1 << 20]);
    loop {
        let n = x.read(&mut bx).unwrap();
        y.read_exact(&mut by[..n]).unwrap();
        if n == 0 {
            return true;
        }
        if bx[..n] != by[..n] {
            return false;
        }
    }
}

/// Where the array's data lies on a raw disk whose first MBR partition is an MD member
/// (v1.2 superblock 4 KiB into the member: magic a92b4efc, data_offset and data_size in
/// sectors at bytes 128 and 136; linux/raid/md_p.h, struct mdp_superblock_1).
fn md_data_range(raw: &Path) -> (u64, u64) {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = std::fs::File::open(raw).unwrap();
    let mut mbr = [0u8; 512];
    f.read_exact(&mut mbr).unwrap();
    let start = u32::from_le_bytes(mbr[454..458].try_into().unwrap()) as u64 * 512;
    let mut sb = [0u8; 256];
    f.seek(SeekFrom::Start(start + 4096)).unwrap();
    f.read_exact(&mut sb).unwrap();
    assert_eq!(
        u32::from_le_bytes(sb[0..4].try_into().unwrap()),
        0xa92b4efc,
        "no md superblock"
    );
    let le64 = |at: usize| u64::from_le_bytes(sb[at..at + 8].try_into().unwrap());
    (start + le64(128) * 512, le64(136) * 512)
}

/// A guest on a two-disk MD RAID1 (issue 11 item 8): inspected on both disks, libguestfs
/// agreeing; one half alone is refused naming the member; a run writes one golden disk
/// per input, and both halves of the mirror hold the same cleaned filesystem.
#[test]
fn md_raid1_on_two_disks() {
    let disks = fixture_disks("layouts.sh", "md-raid1");
    let d: Vec<&Path> = disks.iter().map(PathBuf::as_path).collect();
    let r = inspect_all(&d, &[]);
    assert_eq!(facts(&r), (s("debian"), s("debian"), 12, 5, s("mirror01")));
    assert_eq!(r["disks"].as_array().unwrap().len(), 2);
    assert!(seen_by_goldify(&r).root.starts_with("/dev/md"), "{r}");
    differential("md-raid1", &d, &r, &[], &[]);
    // One half alone: the appliance does not start a mirror missing a member.
    let res = run(&[&"inspect", &d[0]]);
    assert_eq!(res.code, 3, "{}", res.stderr);
    let line = res.error_line();
    assert!(
        line.contains("no operating system found") && line.contains("/dev/sda1 is a member of an MD array"),
        "{line}"
    );

    let out = tempfile::tempdir().unwrap();
    let before: Vec<String> = d.iter().map(|p| sha256(p)).collect();
    let res = run(&[
        &"run",
        &"--json",
        &"-o",
        &out.path(),
        &"--name",
        &"mirror",
        &recipe("debian"),
        &d[0],
        &d[1],
    ]);
    res.ok();
    assert_eq!(
        before,
        d.iter().map(|p| sha256(p)).collect::<Vec<_>>(),
        "an input changed"
    );
    let report: serde_json::Value = serde_json::from_str(&res.stdout).unwrap();
    assert_eq!(report["inputs"], serde_json::json!([d[0], d[1]]));
    let golden = [out.path().join("mirror-1.qcow2"), out.path().join("mirror-2.qcow2")];
    let img = open_all(&[&golden[0], &golden[1]]);
    assert!(!img.exists("/root/.bash_history") && !img.exists("/home/bob/.bash_history"));
    assert!(!img.exists("/etc/ssh/ssh_host_ed25519_key"));
    assert!(img.exists("/etc/passwd") && img.exists("/home/bob"));
    drop(img);
    // Both members hold the cleaned filesystem, byte for byte: the second golden disk is
    // the other half of the mirror, not a copy of its input.
    let raw = |p: &Path, n: &str| {
        let r = out.path().join(n);
        sh(
            &format!("qemu-img convert -O raw '{}' '{}'", p.display(), r.display()),
            out.path(),
        );
        r
    };
    let (g1, g2, i1) = (raw(&golden[0], "g1"), raw(&golden[1], "g2"), raw(d[0], "i1"));
    let (at, len) = md_data_range(&g1);
    assert_eq!(md_data_range(&g2), (at, len));
    assert!(same_bytes(&g1, &g2, at, len), "the mirror's halves differ");
    assert!(!same_bytes(&g1, &i1, at, len), "the array was not written");
}

/// A guest whose /var is a logical volume of a volume group over two disks: /var found on
/// both, libguestfs agreeing; the first disk alone is refused naming the fstab line (its
/// /var would be left as it was); a run in place on both, given with -a, cleans /var and
/// publishes the root tree; a target of one disk image is refused before the work.
#[test]
fn volume_group_over_two_disks() {
    let disks = fixture_disks("layouts.sh", "vg-two-disks");
    let d: Vec<&Path> = disks.iter().map(PathBuf::as_path).collect();
    let r = inspect_all(&d, &[]);
    assert_eq!(facts(&r), (s("ubuntu"), s("debian"), 22, 4, s("spread01")));
    assert!(seen_by_goldify(&r).mountpoints["/var"].contains("vgdata"), "{r}");
    differential("vg-two-disks", &d, &r, &[], &[]);
    let res = run(&[&"inspect", &d[0]]);
    assert_eq!(res.code, 3, "{}", res.stderr);
    let line = res.error_line();
    assert!(
        line.contains("/etc/fstab line 2 (`/dev/mapper/vgdata-var /var ext4 defaults 0 2`): no such filesystem")
            && line.contains("give every disk of the guest"),
        "{line}"
    );

    let w = tempfile::tempdir().unwrap();
    let (os, var) = (w.path().join("os.qcow2"), w.path().join("var.qcow2"));
    std::fs::copy(d[0], &os).unwrap();
    std::fs::copy(d[1], &var).unwrap();
    // Refused before anything starts: a one-disk target, a disk given twice.
    let res = run(&[
        &"run",
        &"-o",
        &w.path().join("o"),
        &recipe("ubuntu"),
        &os,
        &var,
        &"--publish",
        &"vmmanager",
    ]);
    assert_eq!(res.code, 2, "{}", res.stderr);
    assert!(res
        .error_line()
        .contains("publish target `vmmanager` makes a template of one disk"));
    let res = run(&[&"run", &"-n", &recipe("ubuntu"), &os, &"-a", &os]);
    assert_eq!(res.code, 2, "{}", res.stderr);
    assert!(res.error_line().contains("is given twice"), "{}", res.error_line());
    assert!(!w.path().join("o").exists());

    let repo = w.path().join("repo");
    let res = run(&[
        &"run",
        &"--in-place",
        &recipe("ubuntu"),
        &os,
        &"-a",
        &var,
        &"--publish",
        &"vmmanager-lxd",
        &"--publish-dir",
        &repo,
    ]);
    res.ok();
    let img = open_all(&[&os, &var]);
    assert_eq!(
        img.meta("/var/log/messages").size,
        0,
        "/var/log/messages on the volume group kept"
    );
    assert_eq!(
        img.text("/var/lib/app/state"),
        "kept: application state under /var on the volume group\n"
    );
    assert!(!img.exists("/root/.bash_history"));
    drop(img);
    let listing = sh("tar -tzvf repo/ubuntu-22.tar.gz", w.path());
    assert!(listing.contains("./var/lib/app/state"), "{listing}");
}
