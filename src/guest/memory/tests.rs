use super::*;

/// /etc/shadow (0640 root:42) with a second name under /var/log, as a hostile guest
/// makes it with ln(1).
fn linked() -> MemoryGuest {
    let g = MemoryGuest::new(OsFacts::sample("debian"));
    g.file("/etc/shadow", b"root:$6$secret:19844::::::\n")
        .own("/etc/shadow", 0, 42, 0o640)
        .hardlink("/etc/shadow", "/var/log/x.log");
    g
}

fn shadow_untouched(g: &MemoryGuest) {
    assert_eq!(g.content("/etc/shadow").unwrap(), b"root:$6$secret:19844::::::\n");
    let m = g.lstat("/etc/shadow").unwrap().unwrap();
    assert_eq!((m.mode, m.uid, m.gid, m.nlink), (0o640, 0, 42, 1));
    assert!(!g.same_inode("/etc/shadow", "/var/log/x.log"));
}

#[test]
fn hard_links_share_an_inode() {
    let g = linked();
    assert!(g.same_inode("/etc/shadow", "/var/log/x.log"));
    assert_eq!(g.lstat("/var/log/x.log").unwrap().unwrap().nlink, 2);
    assert_eq!(g.lstat("/etc").unwrap().unwrap().nlink, 2);
    assert_eq!(g.lstat("/").unwrap().unwrap().nlink, 4);
}

#[test]
fn truncate_replaces_a_hard_link() {
    let g = linked();
    g.truncate("/var/log/x.log").unwrap();
    shadow_untouched(&g);
    let m = g.lstat("/var/log/x.log").unwrap().unwrap();
    assert_eq!((m.size, m.mode, m.uid, m.gid, m.nlink), (0, 0o640, 0, 42, 1));
}

#[test]
fn write_replaces_a_hard_link() {
    let g = linked();
    g.write("/var/log/x.log", b"new\n").unwrap();
    shadow_untouched(&g);
    assert_eq!(g.content("/var/log/x.log").unwrap(), b"new\n");
    let m = g.lstat("/var/log/x.log").unwrap().unwrap();
    assert_eq!((m.mode, m.uid, m.gid, m.nlink), (0o640, 0, 42, 1));
    // A file with one name is still written in place.
    g.write("/var/log/x.log", b"again\n").unwrap();
    assert_eq!(g.content("/var/log/x.log").unwrap(), b"again\n");
}

#[test]
fn chmod_and_chown_replace_a_hard_link() {
    let g = linked();
    g.chmod(0o644, "/var/log/x.log").unwrap();
    shadow_untouched(&g);
    let m = g.lstat("/var/log/x.log").unwrap().unwrap();
    assert_eq!((m.mode, m.gid, m.nlink), (0o644, 42, 1));
    assert_eq!(g.content("/var/log/x.log").unwrap(), g.content("/etc/shadow").unwrap());

    let g = linked();
    g.chown(1000, 1000, "/var/log/x.log").unwrap();
    shadow_untouched(&g);
    let m = g.lstat("/var/log/x.log").unwrap().unwrap();
    assert_eq!((m.mode, m.uid, m.gid, m.nlink), (0o640, 1000, 1000, 1));
}

#[test]
fn hard_linked_symlinks_keep_mode_and_owner() {
    let g = MemoryGuest::new(OsFacts::sample("debian"));
    g.link("/etc/a", "/etc/shadow").hardlink("/etc/a", "/etc/b");
    let e = g.chown(1000, 1000, "/etc/a").unwrap_err().to_string();
    assert!(e.contains("hard links"), "{e}");
    assert_eq!(g.lstat("/etc/b").unwrap().unwrap().uid, 0);
    assert!(
        g.chmod(0o600, "/etc/a").is_err(),
        "chmod(2) of a symlink would follow it"
    );
}

#[test]
fn remove_unlinks_one_name() {
    let g = linked();
    g.remove("/var/log/x.log").unwrap();
    assert!(!g.exists("/var/log/x.log"));
    shadow_untouched(&g);
    assert!(g.remove("/").is_err() && g.exists("/etc/shadow"));
}
