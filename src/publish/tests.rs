//! The publish section, target selection and the session's checks, without an appliance.

use super::*;

fn recipe(publish: &str) -> Result<crate::recipe::Recipe> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("r.yaml");
    std::fs::write(&path, format!("steps: []\npublish:\n{publish}")).unwrap();
    crate::recipe::Recipe::load(&path)
}

fn err(publish: &str) -> String {
    let e = format!("{:#}", recipe(publish).unwrap_err());
    assert!(!e.contains('\n'), "one line: {e}");
    e.split_once("r.yaml").map(|(_, rest)| rest.to_string()).unwrap_or(e)
}

fn names(items: &[Item]) -> Vec<&str> {
    items.iter().map(|i| i.name.as_str()).collect()
}

#[test]
fn full_example_parses_in_registry_order() {
    let r = recipe(
        r#"  checksums: {algorithms: [sha256, sha1, sha512]}
  vmmanager: {repo: /srv/repo, name: debian-12, tags: [debian], cpu_mode: host-passthrough, expand: /dev/vda1,
          compression: {preset: 9, threads: 2}}
  vmmanager-lxd: {repo: /srv/lxd}
  disk: {format: qcow2, compress: true}
  deckhouse: {base_url: "https://img.example.com/golden", kind: VirtualImage, namespace: vms}
  vcluster: {base_url: "http://img.example.com", display_name: Debian 12, checksum_type: sha512}
"#,
    )
    .unwrap();
    assert_eq!(
        r.publish.names(),
        [
            "checksums",
            "vmmanager",
            "vmmanager-lxd",
            "disk",
            "deckhouse",
            "vcluster"
        ],
        "as written"
    );
    let items = select(r.publish, &[], &[]).unwrap();
    assert_eq!(
        names(&items),
        [
            "vmmanager",
            "vmmanager-lxd",
            "disk",
            "deckhouse",
            "vcluster",
            "checksums"
        ],
        "run in registry order"
    );
    assert!(format!("{:?}", items[0].target).contains("preset: 9"));
}

#[test]
fn command_line_selects_and_defaults() {
    let r = recipe("  vmmanager: {name: x}\n  disk: {}\n").unwrap();
    let sel = ["checksums".to_string(), "disk".to_string()];
    let items = select(r.publish, &sel, &[]).unwrap();
    assert_eq!(names(&items), ["disk", "checksums"]);
    assert_eq!(items[1].target.digests(), [Algo::Sha256]);
    let e = format!(
        "{:#}",
        select(Section::default(), &["deckhouse".into()], &[]).unwrap_err()
    );
    assert!(
        e.starts_with("--publish deckhouse: publish target `deckhouse`: missing setting `base_url`")
            && e.contains("under `publish: deckhouse:` in the recipe, or pass --set deckhouse.base_url=…"),
        "{e}"
    );
    let e = format!(
        "{:#}",
        select(Section::default(), &["vcluser".into()], &[]).unwrap_err()
    );
    assert!(
        e.starts_with("--publish: unknown publish target `vcluser`, did you mean `vcluster`?"),
        "{e}"
    );
}

#[test]
fn bad_settings_are_one_line_errors_with_position() {
    assert_eq!(
        err("  vmmanger: {}\n"),
        ":3:3: unknown publish target `vmmanger`, did you mean `vmmanager`?"
    );
    assert!(
        err("  deckhouse: {}\n").starts_with(":3:14: "),
        "{}",
        err("  deckhouse: {}\n")
    );
    assert!(err("  deckhouse: {}\n").contains("missing setting `base_url`"));
    assert!(err("  deckhouse:\n").contains("missing field `base_url`"));
    assert!(err("  vmmanager: {compresion: {}}\n").contains("unknown field `compresion`"));
    assert!(err("  vmmanager: {compresion: {}}\n").contains("did you mean `compression`"));
    assert!(err("  vmmanager: {compression: {preset: 12}}\n").contains("out of range"));
    assert!(err("  vmmanager: {cpu_mode: fast}\n").contains("unknown variant `fast`"));
    assert!(err("  deckhouse: {base_url: ftp://x}\n").contains("http:// or https://"));
    assert!(err("  deckhouse: {base_url: 'http://x', kind: VirtualImage}\n").contains("needs `namespace`"));
    assert!(err("  vcluster: {base_url: 'http://x', checksum_type: sha1}\n").contains("md5, sha256 or sha512"));
    assert!(err("  disk: {format: raw, compress: true}\n").contains("qcow2 only"));
    assert!(err("  checksums: {algorithms: [crc]}\n").contains("unknown variant `crc`"));
    assert!(err("  disk: {name: ../x}\n").contains("plain file name"));
    for e in [
        err("  deckhouse: {}\n"),
        err("  vmmanger: {}\n"),
        err("  disk: {name: ../x}\n"),
    ] {
        assert!(e.starts_with(":3:"), "file:line:col: {e}");
    }
}

#[test]
fn children_replace_their_parents_targets() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("base.yaml"),
        "publish:\n  disk: {format: raw}\n  checksums: {}\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("child.yaml"),
        "extends: base.yaml\npublish:\n  disk: {format: vmdk}\n",
    )
    .unwrap();
    let r = crate::recipe::Recipe::load(&dir.path().join("child.yaml")).unwrap();
    assert_eq!(r.publish.names(), ["disk", "checksums"]);
    assert!(format!("{:?}", r.publish.0[0].target).contains("Vmdk"));
    assert!(r.publish.0[0].origin.ends_with("child.yaml"));
}

fn facts(dir: &Path) -> RunFacts {
    RunFacts {
        outdir: dir.to_path_buf(),
        run_name: Some("vm".into()),
        disk_name: "vm".into(),
        disks: Vec::new(),
        format: None,
        compress: None,
        recipe_name: "r".into(),
        dry_run: true,
        inputs: Vec::new(),
        golden: false,
    }
}

/// Publishing adds to the golden disk: it is written into OUTDIR (an implicit `disk`),
/// unless the `disk` target is published or --no-golden; a conflict with it names it.
#[test]
fn publishing_adds_to_the_golden_disk() {
    let d = tempfile::tempdir().unwrap();
    let golden = RunFacts {
        golden: true,
        ..facts(d.path())
    };
    let r = recipe(
        "  vcluster: {base_url: 'http://x'}
",
    )
    .unwrap();
    let s = Session::new(r.publish, &Request::default(), golden.clone())
        .unwrap()
        .unwrap();
    assert_eq!(s.describe(), "vcluster");
    assert_eq!(names(&s.items), ["disk", "vcluster", "manifest"]);
    let dests: Vec<_> = s.items[0]
        .target
        .destinations(&s.plan, None)
        .into_iter()
        .map(|d| d.path)
        .collect();
    assert_eq!(dests, [d.path().join("vm.qcow2")]);
    // The `disk` target published: it is the golden disk, where its settings say.
    let r = recipe(
        "  disk: {name: other}
",
    )
    .unwrap();
    let s = Session::new(r.publish, &Request::default(), golden.clone())
        .unwrap()
        .unwrap();
    assert_eq!(names(&s.items), ["disk", "manifest"]);
    // --no-golden: only the targets.
    let r = recipe(
        "  vcluster: {base_url: 'http://x'}
",
    )
    .unwrap();
    let s = Session::new(r.publish, &Request::default(), facts(d.path()))
        .unwrap()
        .unwrap();
    assert_eq!(names(&s.items), ["vcluster", "manifest"]);
    // A target that wants the golden disk's file otherwise.
    let r = recipe(
        "  deckhouse: {base_url: 'http://x', name: vm, compress: true}
",
    )
    .unwrap();
    let e = format!(
        "{:#}",
        Session::new(r.publish, &Request::default(), golden).err().unwrap()
    );
    assert!(
        e.contains("vm.qcow2 is wanted as qcow2 by the golden disk (--no-golden leaves it out) and as qcow2 (compressed) by the `deckhouse` target"),
        "{e}"
    );
}

#[test]
fn colliding_destinations_are_found_before_the_run() {
    let d = tempfile::tempdir().unwrap();
    let r = recipe("  disk: {compress: true}\n  deckhouse: {base_url: 'http://x', name: vm}\n").unwrap();
    let e = Session::new(r.publish, &Request::default(), facts(d.path()))
        .err()
        .unwrap();
    assert_eq!(crate::error::exit_of(&e), Exit::Usage);
    let e = format!("{e:#}");
    assert!(
        e.contains(
            "vm.qcow2 is wanted as qcow2 (compressed) by the `disk` target and as qcow2 by the `deckhouse` target"
        ),
        "{e}"
    );
    let r = recipe("  disk: {}\n  vcluster: {base_url: 'http://x', name: vm}\n").unwrap();
    let s = Session::new(r.publish, &Request::default(), facts(d.path()))
        .unwrap()
        .unwrap();
    assert_eq!(s.describe(), "disk, vcluster", "the same qcow2 is shared");
    let r = recipe("  manifest: {file: vm.qcow2}\n  disk: {}\n").unwrap();
    let e = format!(
        "{:#}",
        Session::new(r.publish, &Request::default(), facts(d.path()))
            .err()
            .unwrap()
    );
    assert!(
        e.contains("vm.qcow2 is wanted as qcow2 by the `disk` target and as the run manifest by the `manifest` target"),
        "{e}"
    );
    let e = format!("{:#}", recipe("  manifest: {file: SHA256SUMS}\n").unwrap_err());
    assert!(
        e.contains("r.yaml:3:") && e.contains("a name reserved for the repository's own files"),
        "{e}"
    );
}

#[test]
fn every_target_is_listed_once_with_its_options() {
    let mut seen = std::collections::HashSet::new();
    for t in REGISTRY {
        assert!(seen.insert(t.name), "{} twice", t.name);
        assert!(!t.summary.is_empty());
        // Null settings build every target without required fields.
        let built = build(t.name, serde_yaml::Value::Null);
        match t.name {
            "deckhouse" | "vcluster" => assert!(built.is_err()),
            _ => assert!(built.is_ok(), "{}", t.name),
        }
    }
}

/// A guest on several disks: targets that make a template of one disk image are refused
/// before anything starts, naming the target and the disks; a root tree, checksum lists
/// and the run manifest take the whole guest.
#[test]
fn several_disks_refuse_one_disk_targets() {
    let d = tempfile::tempdir().unwrap();
    let two = RunFacts {
        disks: vec!["os.qcow2".into(), "var.qcow2".into()],
        ..facts(d.path())
    };
    for (target, settings) in [
        ("vmmanager", "{}"),
        ("vmmanager-windows", "{}"),
        ("disk", "{}"),
        ("deckhouse", "{base_url: 'http://x'}"),
        ("vcluster", "{base_url: 'http://x'}"),
    ] {
        let r = recipe(&format!("  {target}: {settings}\n")).unwrap();
        let e = Session::new(r.publish, &Request::default(), two.clone()).err().unwrap();
        assert_eq!(crate::error::exit_of(&e), Exit::Usage, "{target}");
        assert_eq!(
            format!("{e:#}"),
            format!("publish target `{target}` makes a template of one disk, and this guest is on 2 (os.qcow2 and var.qcow2); publish it without `{target}` (the golden disks, one per input, are written to OUTDIR)")
        );
    }
    let r = recipe("  vmmanager-lxd: {}\n  checksums: {}\n").unwrap();
    let s = Session::new(r.publish, &Request::default(), two).unwrap().unwrap();
    assert_eq!(names(&s.items), ["vmmanager-lxd", "checksums", "manifest"]);
}
