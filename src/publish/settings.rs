//! What several publish targets' settings share: compression settings, checks of names,
//! URLs and Kubernetes labels, and the names made safe for files and objects. Each
//! target's own settings live in its file.

use anyhow::{bail, Result};
use regex::Regex;
use serde::{Deserialize, Serialize};
use std::sync::LazyLock;

fn default_xz_preset() -> u32 {
    6
}
fn default_gzip_level() -> u32 {
    6
}

/// xz settings for the VMmanager archive.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct XzSettings {
    /// 0-9, as `xz -0` … `xz -9`.
    #[serde(default = "default_xz_preset")]
    pub preset: u32,
    /// As `xz --extreme`.
    #[serde(default)]
    pub extreme: bool,
    /// Compression threads; 0 = one per CPU core.
    #[serde(default)]
    pub threads: usize,
}

impl Default for XzSettings {
    fn default() -> Self {
        XzSettings {
            preset: default_xz_preset(),
            extreme: false,
            threads: 0,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct GzipSettings {
    #[serde(default = "default_gzip_level")]
    pub level: u32,
    #[serde(default)]
    pub threads: usize,
}

impl Default for GzipSettings {
    fn default() -> Self {
        GzipSettings {
            level: default_gzip_level(),
            threads: 0,
        }
    }
}

/// Compression threads: the setting, else one per CPU core.
pub fn threads(setting: usize) -> usize {
    if setting > 0 {
        setting
    } else {
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
    }
}

/// A base URL the published directory is served at.
pub fn http_url(url: &str) -> Result<()> {
    static URL: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(r"^https?://[^\s/?#]+(/[^\s?#]*)?$").expect("static regex"));
    if !URL.is_match(url) {
        bail!("base_url must be an http:// or https:// URL without query, not {url:?}");
    }
    Ok(())
}

/// A name that becomes a file name in a publish directory.
pub fn plain_name(name: &str) -> Result<()> {
    if name.is_empty() || name.contains('/') || name.starts_with('.') || name.chars().any(char::is_control) {
        bail!("{name:?} must be a plain file name");
    }
    Ok(())
}

/// A file a target writes into a publish directory: never one of the repository's own
/// files (metadata.json, the run manifest, checksum lists, their locks, goldify's work
/// files), which publishing it would replace.
pub fn publishable(setting: &str, file: &str) -> Result<()> {
    if super::repo::is_reserved(file) {
        bail!(
            "{setting} would write {file:?}, a name reserved for the repository's own files (metadata.json, the run manifest, checksum lists, their locks, goldify's work files)"
        );
    }
    Ok(())
}

/// A repository target's archive base name: its `image_name` setting, else the template
/// name (the setting, --name or the guest's, once known) made file-safe.
pub fn image_name(image_name: Option<&str>, template: Option<&str>) -> Option<String> {
    image_name.map(str::to_string).or_else(|| template.map(file_safe))
}

/// The names a repository target (`vmmanager`, `vmmanager-lxd`) is given: `name` and
/// `image_name` are plain names, and the archive they name (`<image_name>.<ext>`) is not
/// one of the repository's own files.
pub fn check_archive_names(name: Option<&str>, image_name: Option<&str>, ext: &str) -> Result<()> {
    for n in [name, image_name].into_iter().flatten() {
        plain_name(n)?;
    }
    if let Some(image) = self::image_name(image_name, name) {
        publishable("image_name", &format!("{image}.{ext}"))?;
    }
    Ok(())
}

/// What a repository target writes into `repo`: the repository's index, and its archive
/// `<image_name>.<ext>` once the name is known (`image_name`, else the template name made
/// file-safe: the setting, --name, or the guest's).
pub fn repository_destinations(
    plan: &super::Plan,
    repo: &std::path::Path,
    (name, image_name): (Option<&str>, Option<&str>),
    ext: &str,
    info: Option<&super::GuestInfo>,
) -> Vec<super::target::Destination> {
    use super::target::Destination;
    let mut v = vec![Destination::file(
        repo.join(super::repo::METADATA),
        "the repository index",
    )];
    if let Some(image) = self::image_name(image_name, plan.known_template_name(name, info).as_deref()) {
        v.push(Destination::file(repo.join(format!("{image}.{ext}")), "an archive"));
    }
    v
}

/// Kubernetes object names (RFC 1123 labels).
pub fn dns_label(what: &str, v: &str, max: usize) -> Result<()> {
    static LABEL: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$").expect("static regex"));
    if v.len() > max || !LABEL.is_match(v) {
        bail!("{what} {v:?} must be lowercase letters, digits and '-' (at most {max})");
    }
    Ok(())
}

/// A name made safe for a file name: letters, digits, `.`, `_`, `-`.
pub fn file_safe(name: &str) -> String {
    let s: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-".contains(c) {
                c
            } else {
                '-'
            }
        })
        .collect();
    let s = s.trim_matches(|c| c == '-' || c == '.').to_string();
    if s.is_empty() {
        "template".into()
    } else {
        s
    }
}

/// A name made into an RFC 1123 label.
pub fn dns_safe(name: &str) -> String {
    let s: String = name
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    let mut s = s.trim_matches('-').to_string();
    while s.contains("--") {
        s = s.replace("--", "-");
    }
    s.truncate(63);
    let s = s.trim_end_matches('-').to_string();
    if s.is_empty() {
        "template".into()
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_made_safe() {
        assert_eq!(file_safe("Debian 12 (amd64)"), "Debian-12--amd64");
        assert_eq!(dns_safe("Debian 12 (amd64)"), "debian-12-amd64");
        assert_eq!(dns_safe("///"), "template");
    }

    #[test]
    fn checks() {
        assert!(http_url("https://img.example.com/golden").is_ok());
        assert!(http_url("ftp://x").is_err());
        assert!(plain_name("../x").is_err() && plain_name(".hidden").is_err() && plain_name("a.xz").is_ok());
        assert!(dns_label("name", "Debian", 63).is_err() && dns_label("name", "debian-12", 63).is_ok());
    }
}
