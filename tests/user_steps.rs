//! The user steps (delete, truncate, write, edit, mkdir, chmod, symlink, run, firstboot)
//! inside a real Debian 12 image, where `run` can execute the guest's own shell (in the
//! appliance, chrooted into the guest — never on the host).

mod common;
use common::*;
use goldify::guest::Kind;

const RECIPE: &str = r#"
name: user-steps
vars: {greeting: hello, owner: alice}
steps:
  - delete: {paths: ["/home/*/.bash_history", /var/cache/apt/*.bin], required: true}
  - truncate: {paths: ["/var/log/cloud-init*.log"]}
  - write: {path: /etc/motd, content: "${greeting} from goldify\n", mode: "0600", owner: "${owner}:sudo"}
  - edit: {path: /etc/hosts, regex: "(?m)^127\\.0\\.0\\.1\\s+localhost$", replace: "127.0.0.1 localhost template"}
  - mkdir: {path: /srv/app/data, mode: "0750", owner: alice}
  - chmod: {path: "/srv/app", mode: "0711"}
  - symlink: {target: /srv/app/data, link: /data}
  - run: {command: "echo ran-by-goldify > /root/run-marker; id -u >> /root/run-marker"}
  - firstboot: {name: hello, script: "echo first boot > /var/tmp/fb"}
"#;

#[test]
fn user_steps_in_a_real_image() {
    let used = fixture("debian12.sh", &[]);
    let dir = tempfile::tempdir().unwrap();
    let recipe = dir.path().join("user.yaml");
    std::fs::write(&recipe, RECIPE).unwrap();
    let out = dir.path().join("out");
    run(&[&"run", &recipe, &used, &"-o", &out, &"--name", &"u"]).ok();
    let img = open(&out.join("u.qcow2"));

    assert!(!img.exists("/home/alice/.bash_history"));
    assert!(!img.exists("/var/cache/apt/pkgcache.bin"));
    assert_eq!(img.meta("/var/log/cloud-init.log").size, 0);
    assert_eq!(img.meta("/var/log/cloud-init-output.log").size, 0);
    assert_eq!(img.text("/etc/motd"), "hello from goldify\n");
    let motd = img.meta("/etc/motd");
    let passwd = img.text("/etc/passwd");
    let alice_uid: u32 = passwd
        .lines()
        .find(|l| l.starts_with("alice:"))
        .unwrap()
        .split(':')
        .nth(2)
        .unwrap()
        .parse()
        .unwrap();
    let group = img.text("/etc/group");
    let sudo_gid: u32 = group
        .lines()
        .find(|l| l.starts_with("sudo:"))
        .unwrap()
        .split(':')
        .nth(2)
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!((motd.mode, motd.uid, motd.gid), (0o600, alice_uid, sudo_gid));
    assert!(img.text("/etc/hosts").contains("127.0.0.1 localhost template"));
    let data = img.meta("/srv/app/data");
    assert_eq!((data.kind, data.mode, data.uid), (Kind::Dir, 0o750, alice_uid));
    assert_eq!(img.meta("/srv/app").mode, 0o711);
    assert_eq!(img.link("/data"), "/srv/app/data");
    assert_eq!(img.text("/root/run-marker"), "ran-by-goldify\n0\n");
    let scripts = img.list("/usr/lib/goldify/firstboot");
    assert_eq!(scripts, ["00-hello"]);
    assert!(img
        .text("/usr/lib/goldify/firstboot/00-hello")
        .contains("echo first boot"));
    assert_eq!(img.meta("/usr/lib/goldify/firstboot/00-hello").mode, 0o755);
    assert!(img.exists("/etc/systemd/system/multi-user.target.wants/goldify-firstboot.service"));
    // No `machine-id` step in this recipe: the image keeps its ID (the step is opt-in).
    assert_eq!(img.text("/etc/machine-id").trim().len(), 32);
}

#[test]
fn failing_user_steps_exit_4_and_write_nothing() {
    let image = phony("debian");
    let dir = tempfile::tempdir().unwrap();
    for (name, body) in [
        (
            "edit",
            "steps:\n  - edit: {path: /etc/hosts, regex: 'no-such-text', replace: x}\n",
        ),
        (
            "delete",
            "steps:\n  - delete: {paths: [/nonexistent/*], required: true}\n",
        ),
        (
            "owner",
            "steps:\n  - write: {path: /etc/x, content: y, owner: nobody-here}\n",
        ),
    ] {
        let recipe = dir.path().join(format!("{name}.yaml"));
        std::fs::write(&recipe, body).unwrap();
        let out = dir.path().join(format!("out-{name}"));
        let r = run(&[&"run", &recipe, &image, &"-o", &out]);
        assert_eq!(r.code, 4, "{name}: {}", r.stderr);
        assert!(r.error_line().contains("step `"), "{}", r.stderr);
        assert!(entries(&out).is_empty(), "{name}: {:?}", entries(&out));
    }
}
