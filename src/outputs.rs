//! Outputs never replace inputs. Every file a run writes (the golden disk, every artifact
//! of every publish target, the run manifest) is checked before anything starts, in one
//! place: against the run's inputs (the disk, the recipe and the recipes it extends) and
//! against each other.
//!
//! Sameness is the filesystem's, not the names': device and inode, so that a symbolic
//! link or a hard link to the input is the input. Artifacts are written under a
//! temporary name and renamed over their destination; a destination that is an input
//! would silently take that input's place.

use crate::error::Exit;
use anyhow::Result;
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};

/// A file (or directory) a run will write.
#[derive(Debug, Clone)]
pub struct Output {
    /// Who writes it, for messages: "the golden disk", "the `disk` target".
    pub by: String,
    pub path: PathBuf,
    /// Replaced as a whole (the OCI layout): an input inside it is replaced too.
    pub dir: bool,
}

impl Output {
    pub fn file(by: impl Into<String>, path: PathBuf) -> Output {
        Output {
            by: by.into(),
            path,
            dir: false,
        }
    }
}

/// A file the run reads.
#[derive(Debug, Clone)]
pub struct Input {
    /// "input disk", "recipe".
    pub what: &'static str,
    pub path: PathBuf,
}

/// A name that stays in its directory: not empty, no `/`, not hidden (nor `.`/`..`), no
/// control characters (they would garble the checksum files and terminals).
pub fn is_plain_name(name: &str) -> bool {
    !name.is_empty() && !name.contains('/') && !name.starts_with('.') && !name.chars().any(char::is_control)
}

/// Refuse (exit 2, one line naming both files) an output that is one of the inputs, an
/// output directory that holds one, or two outputs that are one file.
pub fn check(outputs: &[Output], inputs: &[Input]) -> Result<()> {
    for o in outputs {
        for i in inputs {
            if same_file(&o.path, &i.path) {
                crate::bail_tag!(
                    Exit::Usage,
                    "{} would write {}, which is the {} {}; choose another name or directory",
                    o.by,
                    o.path.display(),
                    i.what,
                    i.path.display()
                );
            }
            if o.dir && resolve(&i.path).starts_with(resolve(&o.path)) {
                crate::bail_tag!(
                    Exit::Usage,
                    "{} would replace the directory {}, which holds the {} {}; choose another name or directory",
                    o.by,
                    o.path.display(),
                    i.what,
                    i.path.display()
                );
            }
        }
    }
    let resolved: Vec<PathBuf> = outputs.iter().map(|o| resolve(&o.path)).collect();
    for (n, a) in outputs.iter().enumerate() {
        for (b, rb) in outputs.iter().zip(&resolved).skip(n + 1) {
            if resolved[n] != *rb && !same_file(&a.path, &b.path) {
                continue;
            }
            crate::bail_tag!(
                Exit::Usage,
                "{} would be written by both {} and {}; give them different names",
                a.path.display(),
                a.by,
                b.by
            );
        }
    }
    Ok(())
}

/// Both exist and are one file (symbolic links followed: renaming over a link replaces
/// the link, but the user named it as the file, and a hard link is the file itself).
pub fn same_file(a: &Path, b: &Path) -> bool {
    match (std::fs::metadata(a), std::fs::metadata(b)) {
        (Ok(x), Ok(y)) => (x.dev(), x.ino()) == (y.dev(), y.ino()),
        _ => false,
    }
}

/// Where a path leads, for comparing destinations that may not exist yet: its directory
/// made canonical as far as it exists, the rest taken as written, then the name.
fn resolve(p: &Path) -> PathBuf {
    let abs = std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
    let (Some(dir), Some(name)) = (abs.parent(), abs.file_name()) else {
        return abs;
    };
    let mut out = PathBuf::new();
    let mut exists = true;
    for c in dir.components() {
        match c {
            Component::CurDir => {}
            // `out` has no symbolic links (canonical while it exists): `..` is its parent.
            Component::ParentDir => {
                out.pop();
            }
            Component::Normal(n) => {
                out.push(n);
                if exists {
                    match out.canonicalize() {
                        Ok(real) => out = real,
                        Err(_) => exists = false,
                    }
                }
            }
            Component::RootDir | Component::Prefix(_) => out.push(c),
        }
    }
    out.join(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(e: anyhow::Error) -> String {
        assert_eq!(crate::error::exit_of(&e), Exit::Usage);
        format!("{e:#}")
    }

    #[test]
    fn plain_names() {
        for ok in ["debian-12", "a b", "x.qcow2", "vm-golden"] {
            assert!(is_plain_name(ok), "{ok}");
        }
        for bad in ["", ".", "..", "../x", "a/b", ".hidden", "a\nb", "a\u{1b}[31m", "/abs"] {
            assert!(!is_plain_name(bad), "{bad:?}");
        }
    }

    #[test]
    fn an_output_that_is_an_input_by_any_name_is_refused() {
        let d = tempfile::tempdir().unwrap();
        let input = d.path().join("in.qcow2");
        std::fs::write(&input, b"disk").unwrap();
        std::fs::hard_link(&input, d.path().join("hard.qcow2")).unwrap();
        std::os::unix::fs::symlink(&input, d.path().join("soft.qcow2")).unwrap();
        let inputs = [Input {
            what: "input disk",
            path: input.clone(),
        }];
        for name in ["in.qcow2", "hard.qcow2", "soft.qcow2"] {
            let out = Output::file("the `disk` target", d.path().join(name));
            let e = line(check(&[out], &inputs).unwrap_err());
            assert!(
                e.contains("the `disk` target would write") && e.contains(&input.display().to_string()),
                "{e}"
            );
        }
        let fine = Output::file("the `disk` target", d.path().join("new.qcow2"));
        check(&[fine], &inputs).unwrap();
        // A directory replaced as a whole must not hold an input.
        let layout = d.path().join("x.oci");
        std::fs::create_dir(&layout).unwrap();
        let inside = [Input {
            what: "recipe",
            path: layout.join("r.yaml"),
        }];
        let out = Output {
            dir: true,
            ..Output::file("the `deckhouse` target", layout.clone())
        };
        assert!(line(check(&[out], &inside).unwrap_err()).contains("which holds the recipe"));
    }

    #[test]
    fn two_outputs_in_one_file_are_refused() {
        let d = tempfile::tempdir().unwrap();
        let a = Output::file("the `disk` target", d.path().join("new/x.qcow2"));
        // Spelt differently, not created yet: still one file.
        let b = Output::file("the `manifest` target", d.path().join("new/./sub/../x.qcow2"));
        let e = line(check(&[a.clone(), b], &[]).unwrap_err());
        assert!(
            e.contains("written by both the `disk` target and the `manifest` target"),
            "{e}"
        );
        check(&[a, Output::file("x", d.path().join("new/y.qcow2"))], &[]).unwrap();
    }
}
