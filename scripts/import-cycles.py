#!/usr/bin/env python3
"""Lists pairs of goldify modules that import each other, and files outside main.rs and
cli.rs that use `crate::cli`. A module is a file under src/ (src/a/mod.rs is `a`,
src/a/b.rs is `a::b`); `crate::x::y::z` in a file counts as an import of the longest
module path it names, and so does `super::x` (relative to the file's parent module). A
parent naming its own children by their relative name (`vmmanager::INFO` in
publish/mod.rs) is the module tree itself and is not counted; tests (`mod tests { … }`)
are left out. Exits 1 when it finds any (run by scripts/test.sh)."""
import os, re, sys

root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src")
mods = {}
for d, _, files in os.walk(root):
    for f in files:
        if not f.endswith(".rs"):
            continue
        rel = os.path.relpath(os.path.join(d, f), root)[:-3].split(os.sep)
        if rel[-1] == "mod":
            rel = rel[:-1]
        if rel in (["lib"], ["main"]):
            rel = ["crate"]
        mods["::".join(rel)] = os.path.join(d, f)

def strip(text):
    text = re.sub(r"#\[cfg\(test\)\]\s*mod tests\s*\{.*", "", text, flags=re.S)
    text = re.sub(r"//[^\n]*", "", text)
    return text

def target(path, me):
    parts = path.split("::")
    for n in range(len(parts), 0, -1):
        m = "::".join(parts[:n])
        if m in mods:
            return m
    return None

edges = {m: set() for m in mods}
cli_users = []
for m, f in mods.items():
    text = strip(open(f).read())
    paths = re.findall(r"crate::((?:[a-z_][a-z0-9_]*::)*[a-z_][a-z0-9_]*)", text)
    # `super::x` from a/b.rs is a::x
    base = m.split("::")[:-1] if not f.endswith("mod.rs") else m.split("::")
    for s in re.findall(r"\bsuper::((?:[a-z_][a-z0-9_]*::)*[a-z_][a-z0-9_]*)", text):
        parent = base[:-1] if f.endswith("mod.rs") else base
        paths.append("::".join(parent + [s]) if parent else s)
    for p in paths:
        t = target(p, m)
        if t and t != m and t != "crate":
            edges[m].add(t)
        if p == "cli" or p.startswith("cli::"):
            if os.path.basename(f) not in ("main.rs", "cli.rs"):
                cli_users.append(f)

bad = 0
for a in sorted(edges):
    for b in sorted(edges[a]):
        # a parent module declaring its children (`pub mod x;`) is not an import
        if a < b and a in edges.get(b, ()):
            print(f"import circle: {a} <-> {b}")
            bad += 1
for f in sorted(set(cli_users)):
    print(f"uses crate::cli outside main.rs and cli.rs: {os.path.relpath(f, os.path.join(root, '..'))}")
    bad += 1
print(f"{len(mods)} modules, {sum(len(v) for v in edges.values())} imports, {bad} problems")
sys.exit(1 if bad else 0)
