//! Keys for encrypted (LUKS) devices, given the way the virt tools take them
//! (`--key SELECTOR`, libguestfs-common options/keys.c): `DEVICE:file:PATH` reads the
//! first line of a file, `DEVICE:env:VAR` an environment variable. The virt tools'
//! `DEVICE:key:PASSPHRASE` is refused: a passphrase on the command line is readable by
//! every user of the host (ps, /proc/PID/cmdline) and stays in shell histories.
//! DEVICE is the device as the appliance names it (`/dev/sda2`, `/dev/vg0/root`) or the
//! UUID of the LUKS header, as for the virt tools.

use anyhow::{bail, Context, Result};
use std::path::Path;

/// Longest key file read (cryptsetup's own default limit for a key file is 8 MiB; a
/// passphrase is one short line).
const KEY_FILE_LIMIT: u64 = 64 << 10;

/// A key for one encrypted device.
#[derive(Clone)]
pub struct Key {
    /// Device name or LUKS UUID, as given.
    pub selector: String,
    pub(crate) passphrase: String,
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Key({}:…)", self.selector)
    }
}

impl Key {
    /// Parse a `--key` value, reading the key from its file or variable now.
    pub fn parse(spec: &str) -> Result<Key> {
        let env = |var: &str| std::env::var(var).ok();
        Key::parse_with(spec, &env)
    }

    fn parse_with(spec: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<Key> {
        // Device names and UUIDs hold no colon; a file name may.
        let mut parts = spec.splitn(3, ':');
        let (selector, kind, value) = match (parts.next(), parts.next(), parts.next()) {
            (Some(s), Some(k), Some(v)) => (s, k, v),
            _ => bail!("--key {}: expected DEVICE:file:PATH or DEVICE:env:VAR", shown(spec)),
        };
        if selector.is_empty() || value.is_empty() {
            bail!("--key {}: expected DEVICE:file:PATH or DEVICE:env:VAR", shown(spec));
        }
        let passphrase = match kind {
            "file" => {
                let bytes = crate::hostfile::read_bounded(Path::new(value), KEY_FILE_LIMIT)
                    .with_context(|| format!("--key {selector}:file:{value}: reading the key file"))?;
                // The first line, as the virt tools read a key file.
                let text = String::from_utf8(bytes)
                    .with_context(|| format!("--key {selector}:file:{value}: the key is not UTF-8 text"))?;
                text.lines().next().unwrap_or("").to_string()
            }
            "env" => env(value).with_context(|| format!("--key {selector}:env:{value}: ${value} is not set"))?,
            "key" => bail!(
                "--key {selector}:key:…: a key on the command line is visible to every user of this host \
                 (ps, /proc) and stays in shell histories; put it in a file (DEVICE:file:PATH) or a \
                 variable (DEVICE:env:VAR)"
            ),
            other => bail!("--key {selector}:{other}:…: unknown key source `{other}` (file or env)"),
        };
        if passphrase.is_empty() {
            bail!("--key {selector}:{kind}:{value}: the key is empty");
        }
        Ok(Key {
            selector: selector.to_string(),
            passphrase,
        })
    }
}

/// A `--key` value for messages: never the part after `:key:`.
fn shown(spec: &str) -> String {
    match spec.find(":key:") {
        Some(i) => format!("{}:key:…", &spec[..i]),
        None => spec.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(spec: &str) -> Result<Key> {
        Key::parse_with(spec, &|v| (v == "GOLDIFY_K").then(|| "from-env".to_string()))
    }

    fn message(r: Result<Key>) -> String {
        format!("{:#}", r.unwrap_err())
    }

    #[test]
    fn keys_from_files_and_the_environment() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("k");
        std::fs::write(&f, "s3cret\nsecond line ignored\n").unwrap();
        let k = parse(&format!("/dev/sda2:file:{}", f.display())).unwrap();
        assert_eq!((k.selector.as_str(), k.passphrase.as_str()), ("/dev/sda2", "s3cret"));
        let k = parse("/dev/vg0/root:env:GOLDIFY_K").unwrap();
        assert_eq!(
            (k.selector.as_str(), k.passphrase.as_str()),
            ("/dev/vg0/root", "from-env")
        );
        let k = parse("9b1f6c2e-1111-4222-8333-444455556666:env:GOLDIFY_K").unwrap();
        assert_eq!(k.selector, "9b1f6c2e-1111-4222-8333-444455556666");
        // The passphrase never shows in debug output.
        assert!(!format!("{k:?}").contains("from-env"));
    }

    #[test]
    fn a_key_in_clear_is_refused_without_repeating_it() {
        let m = message(parse("/dev/sda2:key:hunter2"));
        assert!(m.contains("visible to every user"), "{m}");
        assert!(!m.contains("hunter2"), "{m}");
        let m = message(parse("/dev/sda2:key:a:b"));
        assert!(!m.contains("a:b") && !m.contains(":b"), "{m}");
    }

    #[test]
    fn malformed_and_missing_keys_are_refused() {
        assert!(message(parse("/dev/sda2")).contains("expected DEVICE:file:PATH"));
        assert!(message(parse(":env:GOLDIFY_K")).contains("expected DEVICE"));
        assert!(message(parse("/dev/sda2:env:")).contains("expected DEVICE"));
        assert!(message(parse("/dev/sda2:env:UNSET_VAR")).contains("$UNSET_VAR is not set"));
        assert!(message(parse("/dev/sda2:clevis:x")).contains("unknown key source `clevis`"));
        assert!(message(parse("/dev/sda2:file:/nonexistent/k")).contains("reading the key file"));
        // A FIFO would block; hostfile refuses it before opening.
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        let m = message(parse(&format!("/dev/sda2:file:{}", fifo.display())));
        assert!(m.contains("FIFO"), "{m}");
        let big = dir.path().join("big");
        std::fs::write(&big, vec![b'x'; (KEY_FILE_LIMIT + 1) as usize]).unwrap();
        assert!(message(parse(&format!("/dev/sda2:file:{}", big.display()))).contains("larger than"));
        let empty = dir.path().join("empty");
        std::fs::write(&empty, "\n").unwrap();
        assert!(message(parse(&format!("/dev/sda2:file:{}", empty.display()))).contains("the key is empty"));
    }
}
