//! The phony guests of vm-fixtures/phony/ in a [`MemoryGuest`] (tests only): the same
//! manifests and layer files vm-fixtures/phony.py builds the appliance images from, so a
//! unit test sees the tree an image test sees, and asserts the manifest's `[known]` values.
//!
//! Composition follows vm-fixtures/README.md: `extends`, then each layer in order, then
//! `omit`, then the image's own entries; `${name}` comes from `[known]` and `[vars]`.
//! Of the generated files only `text`, `repeat` and `host_binary` are made; the others
//! (random bytes, utmp records, rpmdb, ...) are left out: no step reads them as text.

use super::memory::MemoryGuest;
use super::OsFacts;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// A loaded phony guest and its `[known]` table.
pub(crate) struct Phony {
    pub guest: MemoryGuest,
    pub known: BTreeMap<String, String>,
}

impl Phony {
    pub fn known(&self, key: &str) -> &str {
        self.known
            .get(key)
            .unwrap_or_else(|| panic!("no [known] {key} in the phony manifest"))
    }
}

enum Source {
    File(PathBuf),
    Generated(toml::Table),
}

#[derive(Default)]
struct Tree {
    content: BTreeMap<String, Source>,
    dirs: BTreeMap<String, String>,
    attrs: BTreeMap<String, String>,
    symlinks: BTreeMap<String, String>,
    hardlinks: BTreeMap<String, String>,
    known: BTreeMap<String, String>,
    vars: BTreeMap<String, String>,
}

fn data() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("vm-fixtures/phony")
}

fn read(path: &Path) -> toml::Table {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.parse().unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn strings(t: &toml::Table, key: &str) -> BTreeMap<String, String> {
    let Some(table) = t.get(key).and_then(|v| v.as_table()) else {
        return BTreeMap::new();
    };
    table
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().map_or_else(|| v.to_string(), String::from)))
        .collect()
}

fn list(t: &toml::Table, key: &str) -> Vec<String> {
    t.get(key)
        .and_then(|v| v.as_array())
        .map(|a| a.iter().filter_map(|v| v.as_str().map(String::from)).collect())
        .unwrap_or_default()
}

fn compose(name: &str) -> Tree {
    let m = read(&data().join("images").join(format!("{name}.toml")));
    let mut t = match m.get("extends").and_then(|v| v.as_str()) {
        Some(base) => compose(base),
        None => Tree::default(),
    };
    t.known.extend(strings(&m, "known"));
    t.vars.extend(strings(&m, "vars"));
    for layer in list(&m, "layers") {
        let dir = data().join("layers");
        merge(&mut t, &read(&dir.join(format!("{layer}.toml"))), &dir.join(layer));
    }
    for path in list(&m, "omit") {
        let hit = |p: &String| p == &path || p.starts_with(&format!("{}/", path.trim_end_matches('/')));
        t.content.retain(|p, _| !hit(p));
        for table in [&mut t.dirs, &mut t.attrs, &mut t.symlinks, &mut t.hardlinks] {
            table.retain(|p, _| !hit(p));
        }
    }
    merge(&mut t, &m, &data().join("images").join(name));
    t
}

fn merge(t: &mut Tree, table: &toml::Table, dir: &Path) {
    if dir.is_dir() {
        for e in walkdir::WalkDir::new(dir)
            .into_iter()
            .map(|e| e.expect("walking phony data"))
        {
            if e.file_type().is_file() {
                let rel = e.path().strip_prefix(dir).expect("under the layer");
                t.content
                    .insert(format!("/{}", rel.display()), Source::File(e.path().into()));
            }
        }
    }
    t.dirs.extend(strings(table, "dirs"));
    t.attrs.extend(strings(table, "attrs"));
    t.symlinks.extend(strings(table, "symlinks"));
    t.hardlinks.extend(strings(table, "hardlinks"));
    for g in table.get("generate").and_then(|v| v.as_array()).into_iter().flatten() {
        let g = g.as_table().expect("[[generate]] is a table").clone();
        let path = g["path"].as_str().expect("[[generate]] path").to_string();
        t.content.insert(path, Source::Generated(g));
    }
}

impl Tree {
    /// `${name}` from `[known]` and `[vars]`, as phony_data.py does; unknown names panic.
    fn sub(&self, s: &str) -> String {
        let mut out = String::new();
        let mut rest = s;
        while let Some(i) = rest.find("${") {
            out.push_str(&rest[..i]);
            let tail = &rest[i + 2..];
            let end = tail.find('}').unwrap_or(0);
            let name = &tail[..end];
            let ok = name.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
                && name
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
            if end == 0 || !ok {
                out.push_str("${");
                rest = tail;
                continue;
            }
            let value = self.known.get(name).or_else(|| self.vars.get(name));
            out.push_str(value.unwrap_or_else(|| panic!("unknown variable ${{{name}}} in {s:?}")));
            rest = &tail[end + 1..];
        }
        out + rest
    }

    fn bytes(&self, source: &Source) -> Option<Vec<u8>> {
        match source {
            Source::File(host) => {
                let data = std::fs::read(host).unwrap_or_else(|e| panic!("{}: {e}", host.display()));
                Some(match String::from_utf8(data) {
                    Ok(text) => self.sub(&text).into_bytes(),
                    Err(e) => e.into_bytes(),
                })
            }
            Source::Generated(g) => {
                let s = |k: &str| self.sub(g.get(k).and_then(|v| v.as_str()).unwrap_or(""));
                match g.get("kind").and_then(|v| v.as_str()) {
                    Some("text") => Some(s("text").into_bytes()),
                    Some("repeat") => {
                        let count = g["count"].as_integer().expect("repeat count") as usize;
                        Some(format!("{}{}{}", s("head"), s("char").repeat(count), s("tail")).into_bytes())
                    }
                    Some("host_binary") => std::fs::read(s("source")).ok(),
                    _ => None,
                }
            }
        }
    }
}

/// "MODE [UID:GID]" as the manifests write it.
fn attrs(spec: &str) -> Option<(u32, u32, u32)> {
    let mut it = spec.split(' ');
    let mode = u32::from_str_radix(it.next().filter(|m| !m.is_empty())?, 8).expect("octal mode");
    let (uid, gid) = it.next().map_or((0, 0), |o| {
        let (u, g) = o.split_once(':').expect("UID:GID");
        (u.parse().expect("uid"), g.parse().expect("gid"))
    });
    Some((mode, uid, gid))
}

/// The phony guest NAME (`debian`, `ubuntu`, `rhel`, `lvm`, `hostile`, `hardlinks`).
pub(crate) fn phony(name: &str) -> Phony {
    let t = compose(name);
    let g = MemoryGuest::new(OsFacts::sample("unknown"));
    for path in t.dirs.keys() {
        g.dir(&t.sub(path));
    }
    for (path, source) in &t.content {
        if let Some(data) = t.bytes(source) {
            g.file(&t.sub(path), &data);
        }
    }
    for (path, spec) in t.dirs.iter().chain(&t.attrs) {
        let path = t.sub(path);
        if let (Some((mode, uid, gid)), true) = (attrs(&t.sub(spec)), g.exists(&path)) {
            g.own(&path, uid, gid, mode);
        }
    }
    for (path, target) in &t.symlinks {
        g.link(&t.sub(path), &t.sub(target));
    }
    for (path, existing) in &t.hardlinks {
        g.hardlink(&t.sub(existing), &t.sub(path));
    }
    let known = t.known.iter().map(|(k, v)| (k.clone(), t.sub(v))).collect();
    Phony { guest: g, known }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::guest::{Guest, Kind};

    #[test]
    fn every_phony_guest_loads_with_its_known_identity() {
        for name in ["debian", "ubuntu", "rhel", "lvm", "hostile", "hardlinks"] {
            let p = phony(name);
            let g = &p.guest;
            let hostname = String::from_utf8(g.content("/etc/hostname").unwrap()).unwrap();
            match name {
                // /etc/hostname is a hard link to /etc/group there.
                "hardlinks" => assert!(g.same_inode("/etc/hostname", "/etc/group")),
                _ => assert_eq!(hostname.lines().next(), Some(p.known("hostname")), "{name}"),
            }
            match name {
                "hostile" => assert_eq!(g.readlink("/etc/machine-id").unwrap(), "/etc/shadow"),
                "hardlinks" => assert!(g.same_inode("/etc/machine-id", "/etc/gshadow")),
                _ => assert_eq!(
                    g.content("/etc/machine-id").unwrap(),
                    format!("{}\n", p.known("machine_id")).as_bytes(),
                    "{name}"
                ),
            }
        }
    }

    #[test]
    fn owners_modes_and_links_come_from_the_manifests() {
        let p = phony("debian");
        let g = &p.guest;
        let shadow = g.lstat("/etc/shadow").unwrap().unwrap();
        assert_eq!((shadow.mode & 0o7777, shadow.uid, shadow.gid), (0o640, 0, 42));
        let home = g.lstat("/home/alice").unwrap().unwrap();
        assert_eq!((home.kind, home.mode & 0o7777, home.uid), (Kind::Dir, 0o750, 1000));
        assert_eq!(g.readlink("/bin").unwrap(), "usr/bin");
        assert_eq!(g.readlink("/var/lib/dbus/machine-id").unwrap(), "/etc/machine-id");
        let journal = format!("/var/log/journal/{}", p.known("machine_id"));
        assert_eq!(g.lstat(&journal).unwrap().unwrap().mode & 0o7777, 0o2755);
        // ${mac} in a layer file: the known MAC, not the placeholder.
        let udev = g.content("/etc/udev/rules.d/70-persistent-net.rules").unwrap();
        assert!(String::from_utf8(udev).unwrap().contains(p.known("mac")));
        // hostile: the traps are links, and what they replace is gone.
        let h = phony("hostile");
        assert_eq!(h.guest.readlink("/var/log").unwrap(), "/etc");
        assert_eq!(
            h.guest.lstat("/etc/ssh/ssh_host_rsa_key").unwrap().unwrap().kind,
            Kind::Dir
        );
        assert!(h.guest.content("/etc/hostname").unwrap().len() > 10 << 20);
    }
}
