use super::*;
use crate::guest::{Layout, OsFacts, Partition};
use std::io::Read;
use std::os::unix::fs::FileExt;

fn windows_info() -> GuestInfo {
    let mut os = OsFacts::sample("windows");
    os.os_type = "windows".into();
    os.major = 10;
    os.minor = 0;
    os.product_name = "Windows Server 2022 Standard".into();
    GuestInfo {
        os,
        layout: Layout {
            table: Some("gpt".into()),
            partitions: vec![Partition {
                device: "/dev/sda2".into(),
                number: 2,
                size: 3 << 30,
                fstype: Some("ntfs".into()),
                esp: false,
            }],
            root_partition: Some("/dev/sda2".into()),
        },
        network_device: None,
        disk_prefix: "vd".into(),
    }
}

fn settings(yaml: &str) -> Result<VmmanagerWindows> {
    let t: VmmanagerWindows = serde_yaml::from_str(yaml)?;
    t.validate()?;
    Ok(t)
}

#[test]
fn the_default_script_is_windows_text() {
    let s = crlf(DEFAULT_SCRIPT);
    assert!(s.ends_with("\r\n"));
    assert_eq!(s.matches('\n').count(), s.matches("\r\n").count(), "no bare LF");
}

#[test]
fn the_default_script_uses_every_macro_vmmanager_fills() {
    let m = macros(DEFAULT_SCRIPT.as_bytes());
    assert_eq!(
        m,
        ["PASS", "IP", "NETMASK", "GATEWAY", "NAMESERVER", "NAMESERVERS", "NEXTHOPIPv4", "PRODUCTKEY"]
    );
    assert_eq!(macros(b"($A) ($) ($b-c) ($A) ($C"), ["A"], "names only, once, closed");
}

#[test]
fn metainfo_has_every_field_read_by_an_xml_parser() {
    let s = settings("{limits: {mem_mib: 4096}, reboot_count: 2, virtio_net: false}").unwrap();
    let script = crlf("net user x \"($PASS)\" & echo ($IP) <&>\n");
    let tags = vec!["windows".to_string(), "windows10".into()];
    let x = metainfo(&s, "Win <2022> & co", &tags, "w.img", script.as_bytes(), &windows_info(), (40 << 30) + 1);
    let doc = roxmltree::Document::parse(&x).expect("well-formed XML");
    let root = doc.root_element();
    assert_eq!(root.tag_name().name(), "doc");
    let text = |path: &[&str]| -> String {
        let mut n = root;
        for p in path {
            n = n.children().find(|c| c.has_tag_name(*p)).unwrap_or_else(|| panic!("{path:?} in {x}"));
        }
        n.text().unwrap_or("").to_string()
    };
    assert_eq!(text(&["osname"]), "Win <2022> & co", "escaped and read back");
    assert_eq!(text(&["limit", "ipv4"]), "1");
    assert_eq!(text(&["limit", "ipv6"]), "0");
    assert_eq!(text(&["limit", "mem"]), "4096");
    assert_eq!(text(&["limit", "disk"]), "40961", "the image's size, MiB rounded up");
    assert_eq!(text(&["support", "elem"]), "VMmgr");
    assert_eq!(text(&["tags"]), "windows,windows10");
    assert_eq!(text(&["version"]), "10.0");
    assert_eq!(text(&["hddimage"]), "w.img");
    assert_eq!(text(&["rebootcount"]), "2");
    assert_eq!(text(&["type"]), "ostemplate");
    assert_eq!(text(&["installdrive"]), "windows.cmd");
    assert_eq!(text(&["virtiodisk"]), "yes");
    assert_eq!(text(&["virtionet"]), "no");
    let macros: Vec<&str> = root
        .children()
        .find(|c| c.has_tag_name("macro"))
        .unwrap()
        .children()
        .filter(|c| c.is_element())
        .map(|c| c.text().unwrap())
        .collect();
    assert_eq!(macros, ["PASS", "IP"]);
}

#[test]
fn settings_are_checked() {
    let err = |y: &str| format!("{:#}", settings(y).unwrap_err());
    assert!(err("{limits: {ipv4: 0}}").contains("at least one address"));
    assert!(err("{image_name: ../x}").contains("must be a plain file name"));
    assert!(err("{name: .goldify-run}").contains("must be a plain file name"));
    assert!(err("{expand: sda2}").contains("expand"));
    assert!(err("{compression: {level: 10}}").contains("out of range"));
    assert!(err("{kms: true}").contains("unknown field"));
    assert!(settings("{}").unwrap().publish_script);
}

#[test]
fn the_install_script_is_a_bounded_regular_text_file() {
    let dir = tempfile::tempdir().unwrap();
    let ok = dir.path().join("ok.cmd");
    std::fs::write(&ok, "echo ($IP)\n").unwrap();
    assert_eq!(read_script(&ok).unwrap(), "echo ($IP)\n");
    let big = dir.path().join("big.cmd");
    std::fs::write(&big, vec![b'a'; SCRIPT_LIMIT as usize + 1]).unwrap();
    let fifo = dir.path().join("fifo.cmd");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).unwrap();
    let bin = dir.path().join("bin.cmd");
    std::fs::write(&bin, [0xff, 0xfe, 0]).unwrap();
    for (p, why) in [
        (&big, "larger than"),
        (&fifo, "FIFO"),
        (&bin, "not UTF-8"),
        (&dir.path().join("none.cmd"), "No such file"),
    ] {
        let e = format!("{:#}", read_script(p).unwrap_err());
        assert!(e.starts_with(&format!("install_script {}", p.display())), "{e}");
        assert!(e.contains(why), "{e}");
    }
}

#[test]
fn a_disk_over_8_gib_gets_its_size_in_base_256() {
    let h = tar_header("w.img", 40 << 30, 0).unwrap();
    let back = tar::Header::from_byte_slice(&h);
    assert_eq!(back.size().unwrap(), 40 << 30);
    assert_eq!(back.path().unwrap().to_str(), Some("w.img"));
    assert!(h[124] & 0x80 != 0, "GNU base-256 marker");
}

/// The archive through the real one-pass machinery, unpacked with flate2 and tar: three
/// members in order, each byte-exact, and the holes cost no reading.
#[test]
fn the_package_is_a_tar_gz_of_metainfo_script_and_disk() {
    let dir = tempfile::tempdir().unwrap();
    let raw = dir.path().join("disk.raw");
    let f = std::fs::File::create(&raw).unwrap();
    let len: u64 = (24 << 20) + 512;
    f.set_len(len).unwrap();
    f.write_all_at(b"MBR!", 0).unwrap();
    f.write_all_at(b"NTFS data", 17 << 20).unwrap();
    drop(f);
    let script = crlf("echo ($IP)\n").into_bytes();
    let meta = "<doc/>\n";
    let mut src = Package::new(meta, &script, "w.img", len, SparseFile::open(&raw).unwrap(), 1_700_000_000).unwrap();
    assert!(src.data_len(4 << 20).unwrap() < 10 << 20, "holes are not data");
    let mut gz = Vec::new();
    let out = vec![stream::Output {
        codec: Box::new(Gzip::new(1).unwrap()),
        sink: &mut gz,
        algos: vec![Algo::Sha1],
        reuse: None,
    }];
    let summary = stream::compress(&mut src, out, 2, &indicatif::ProgressBar::hidden()).unwrap();
    assert!(summary.zero >= 16 << 20, "zero chunks compressed once: {}", summary.zero);
    let mut tar_bytes = Vec::new();
    flate2::read::MultiGzDecoder::new(&gz[..]).read_to_end(&mut tar_bytes).unwrap();
    assert_eq!(tar_bytes.len() % 512, 0);
    let mut a = tar::Archive::new(&tar_bytes[..]);
    let mut seen = Vec::new();
    for e in a.entries().unwrap() {
        let mut e = e.unwrap();
        let name = e.path().unwrap().display().to_string();
        assert_eq!(e.header().mode().unwrap(), 0o644);
        assert_eq!(e.header().uid().unwrap(), 0);
        let mut data = Vec::new();
        e.read_to_end(&mut data).unwrap();
        seen.push((name, data));
    }
    let names: Vec<&str> = seen.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["metainfo.xml", "windows.cmd", "w.img"]);
    assert_eq!(seen[0].1, meta.as_bytes());
    assert_eq!(seen[1].1, script);
    assert_eq!(seen[2].1, std::fs::read(&raw).unwrap(), "the disk byte for byte");
}
