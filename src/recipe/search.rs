//! Where recipes are found: `extends: debian.yaml` from a recipe saved anywhere, and a
//! bare shipped-recipe name on the command line (`goldify run debian.yaml disk`).
//!
//! The search path, first match wins:
//! 1. the extending recipe's own directory (for the command line: the current directory,
//!    that is the name as given);
//! 2. each directory of `$GOLDIFY_RECIPE_PATH` (a colon-separated list);
//! 3. the installed recipes, `<directory of the goldify binary>/../share/goldify/recipes`
//!    (what `scripts/install.sh` writes);
//! 4. the checkout's `recipes/`, when the binary runs from `<checkout>/target/<profile>/`.
//!
//! Only a plain relative name (`debian.yaml`, `site/web.yaml`) is searched. An absolute
//! name, or one with `..` or `.` in it, means exactly that file next to the recipe that
//! names it, so `extends: ../../x.yaml` cannot be found in some directory the author
//! never meant. Every candidate is only stat(2)ed here; `load_chain` refuses what is not
//! a regular file before opening it.

use crate::suggest::nearest;
use std::path::{Component, Path, PathBuf};

/// One directory of the search path and why it is on it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Place {
    pub dir: PathBuf,
    pub from: &'static str,
}

/// The search path after the recipe's own directory (steps 2-4 above).
pub fn search_path() -> Vec<Place> {
    let mut v = Vec::new();
    #[cfg(test)]
    if let Some(dirs) = OVERRIDE.with(|o| o.borrow().clone()) {
        v.extend(dirs.into_iter().map(|dir| Place { dir, from: "test" }));
    }
    if let Some(list) = std::env::var_os("GOLDIFY_RECIPE_PATH") {
        for dir in std::env::split_paths(&list).filter(|d| !d.as_os_str().is_empty()) {
            v.push(Place {
                dir,
                from: "$GOLDIFY_RECIPE_PATH",
            });
        }
    }
    // /proc/self/exe: the binary's real location, links resolved.
    let Some(bin) = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(Path::to_path_buf))
    else {
        return v;
    };
    if let Some(prefix) = bin.parent() {
        v.push(Place {
            dir: prefix.join("share/goldify/recipes"),
            from: "installed",
        });
        // <checkout>/target/<profile>/goldify
        if let Some(root) = prefix
            .parent()
            .filter(|_| prefix.file_name().is_some_and(|n| n == "target"))
        {
            if root.join("Cargo.toml").is_file() && root.join("recipes").is_dir() {
                v.push(Place {
                    dir: root.join("recipes"),
                    from: "checkout",
                });
            }
        }
    }
    v
}

/// Whether `name` is looked up along the search path (a plain relative path).
fn searchable(name: &Path) -> bool {
    name.components().all(|c| matches!(c, Component::Normal(_)))
}

/// The files `name` may be, in search order: `first` (the recipe's own directory, or the
/// name as given), then the search path when `name` is plain.
pub fn candidates(first: PathBuf, name: &Path) -> Vec<PathBuf> {
    let mut v = vec![first];
    if searchable(name) {
        v.extend(search_path().into_iter().map(|p| p.dir.join(name)));
    }
    v.dedup();
    v
}

/// The first candidate that exists (of any type: a FIFO found here is refused by the
/// loader, not skipped for a file further down the path).
pub fn first_existing(candidates: &[PathBuf]) -> Option<&PathBuf> {
    candidates.iter().find(|c| std::fs::metadata(c).is_ok())
}

/// `not found (looked in: a, b); did you mean debian.yaml?`: every file tried and the
/// nearest recipe name present in one of their directories.
pub fn not_found(name: &Path, tried: &[PathBuf]) -> String {
    let list: Vec<String> = tried.iter().map(|p| p.display().to_string()).collect();
    let mut msg = format!("not found (looked in: {})", list.join(", "));
    if let Some(s) = suggestion(name, tried) {
        msg.push_str(&format!("; did you mean {s}?"));
    }
    msg
}

fn suggestion(name: &Path, tried: &[PathBuf]) -> Option<String> {
    let wanted = name.file_name()?.to_str()?;
    let mut present: Vec<String> = Vec::new();
    for dir in tried.iter().filter_map(|p| p.parent()) {
        let dir = if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        };
        present.extend(recipes_in(dir).into_iter().map(|(n, _)| n));
    }
    let names: Vec<&str> = present.iter().map(String::as_str).collect();
    let best = nearest(wanted, &names)?;
    // Said as the user would write it: the same directories in front.
    Some(match name.parent().filter(|p| !p.as_os_str().is_empty()) {
        Some(p) => p.join(best).display().to_string(),
        None => best.to_string(),
    })
}

/// The `.yaml`/`.yml` files of a directory, sorted (at most a few thousand: a directory
/// of the search path is not a place for more).
pub fn recipes_in(dir: &Path) -> Vec<(String, PathBuf)> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut v: Vec<(String, PathBuf)> = rd
        .take(4096)
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            (name.ends_with(".yaml") || name.ends_with(".yml")).then(|| (name, e.path()))
        })
        .collect();
    v.sort();
    v
}

/// `goldify recipes`: the search path and the recipes on it.
#[derive(Debug, serde::Serialize)]
pub struct Listing {
    pub path: Vec<Place>,
    pub recipes: Vec<Found>,
}

#[derive(Debug, serde::Serialize)]
pub struct Found {
    pub name: String,
    pub path: PathBuf,
    pub from: &'static str,
    /// An earlier directory has a recipe of the same name, which is the one used.
    pub shadowed: bool,
}

pub fn listing() -> Listing {
    let path = search_path();
    let mut recipes: Vec<Found> = Vec::new();
    for place in &path {
        for (name, file) in recipes_in(&place.dir) {
            let shadowed = recipes.iter().any(|f| f.name == name);
            recipes.push(Found {
                name,
                path: file,
                from: place.from,
                shadowed,
            });
        }
    }
    Listing { path, recipes }
}

impl Listing {
    pub fn human(&self) -> String {
        let mut out =
            String::from("recipe search path, after the extending recipe's own directory (first match wins):\n");
        for p in &self.path {
            let missing = if p.dir.is_dir() { "" } else { " (missing)" };
            out.push_str(&format!("  {}  [{}]{missing}\n", p.dir.display(), p.from));
        }
        out.push_str("recipes:\n");
        for r in &self.recipes {
            let note = if r.shadowed { "  (hidden by the one above)" } else { "" };
            out.push_str(&format!("  {:<24} {}{note}\n", r.name, r.path.display()));
        }
        out
    }
}

/// Line and column of the top-level `extends:` key, for `file:line:col:` messages.
pub fn extends_position(text: &str) -> Option<(usize, usize)> {
    text.lines().enumerate().find_map(|(i, line)| {
        let key = line
            .strip_prefix("extends")
            .or_else(|| line.strip_prefix("\"extends\""))
            .or_else(|| line.strip_prefix("'extends'"))?;
        key.trim_start_matches([' ', '\t'])
            .starts_with(':')
            .then_some((i + 1, 1))
    })
}

#[cfg(test)]
thread_local! {
    static OVERRIDE: std::cell::RefCell<Option<Vec<PathBuf>>> = const { std::cell::RefCell::new(None) };
}

/// Run `f` with `dirs` first on this thread's search path (tests run in parallel, so the
/// environment variable cannot stand in).
#[cfg(test)]
pub fn with_path<T>(dirs: &[&Path], f: impl FnOnce() -> T) -> T {
    OVERRIDE.with(|o| *o.borrow_mut() = Some(dirs.iter().map(|d| d.to_path_buf()).collect()));
    let out = f();
    OVERRIDE.with(|o| *o.borrow_mut() = None);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_names_are_searched() {
        assert!(searchable(Path::new("debian.yaml")));
        assert!(searchable(Path::new("site/web.yaml")));
        for name in ["../debian.yaml", "./debian.yaml", "/etc/x.yaml", "a/../b.yaml"] {
            assert!(!searchable(Path::new(name)), "{name}");
            assert_eq!(candidates(PathBuf::from("here"), Path::new(name)).len(), 1, "{name}");
        }
    }

    #[test]
    fn the_installed_recipes_are_found_beside_the_binary() {
        let exe = std::env::current_exe().unwrap();
        let prefix = exe.parent().unwrap().parent().unwrap();
        let path = search_path();
        let installed = path.iter().find(|p| p.from == "installed").unwrap();
        assert_eq!(installed.dir, prefix.join("share/goldify/recipes"));
    }

    #[test]
    fn not_found_names_every_file_tried_and_the_nearest_recipe() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("debian.yaml"), "steps: []\n").unwrap();
        let tried = vec![PathBuf::from("/nonexistent/debian.yml"), d.path().join("debian.yml")];
        let msg = not_found(Path::new("debian.yml"), &tried);
        assert!(
            msg.starts_with("not found (looked in: /nonexistent/debian.yml, "),
            "{msg}"
        );
        assert!(msg.ends_with("; did you mean debian.yaml?"), "{msg}");
        let msg = not_found(Path::new("zzzzzzzz.yaml"), &tried);
        assert!(!msg.contains("did you mean"), "{msg}");
    }

    #[test]
    fn the_listing_shows_every_recipe_and_which_one_wins() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        for d in [&a, &b] {
            std::fs::write(d.path().join("web.yaml"), "steps: []\n").unwrap();
        }
        std::fs::write(b.path().join("db.yml"), "steps: []\n").unwrap();
        std::fs::write(b.path().join("notes.txt"), "").unwrap();
        let l = with_path(&[a.path(), b.path()], listing);
        let found: Vec<(&str, bool)> = l
            .recipes
            .iter()
            .filter(|f| f.from == "test")
            .map(|f| (f.name.as_str(), f.shadowed))
            .collect();
        assert_eq!(found, [("web.yaml", false), ("db.yml", false), ("web.yaml", true)]);
        let text = l.human();
        assert!(text.contains(&format!("  {}  [test]\n", a.path().display())), "{text}");
        assert!(text.contains("(hidden by the one above)"), "{text}");
    }

    #[test]
    fn finds_the_extends_key() {
        assert_eq!(extends_position("name: x\nextends: a.yaml\n"), Some((2, 1)));
        assert_eq!(extends_position("# extends: no\n\"extends\" : a.yaml\n"), Some((2, 1)));
        assert_eq!(extends_position("steps:\n  extends: a.yaml\n"), None);
        assert_eq!(extends_position("extendsx: a\n"), None);
    }
}
