#!/usr/bin/env bash
# phony-equivalence.sh REV — proves that today's phony builder makes the same guests as the
# shell builder of commit REV: for every image, the same host tree (file set, kinds, host
# modes, bytes), the same guestfish owner/mode/link script (sorted lines) and the same
# layout and after-tree commands (sorted; `mkdir` counts as `mkdir-p`). Needs no appliance.
set -euo pipefail
rev=${1:?usage: phony-equivalence.sh REV (a commit whose vm-fixtures/phony.sh is the shell builder)}
here=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/phony-equiv.XXXXXX")
trap 'rm -rf -- "$work"' EXIT
mkdir "$work/old"
git -C "$here" show "$rev:vm-fixtures/phony.sh" >"$work/old/phony.sh"
git -C "$here" show "$rev:vm-fixtures/lib.sh" >"$work/old/lib.sh"
fail=0
for name in $(bash "$work/old/phony.sh" --list); do
    GOLDIFY_FIXTURE_CACHE=$work/cache bash "$work/old/phony.sh" --tree "$name" "$work/$name.old" 2>/dev/null
    python3 "$here/vm-fixtures/phony.py" --tree "$name" "$work/$name.new"
    # The old layout commands: its disk_NAME and post_NAME with guestfish replaced by a printer.
    (
        sed '$d' "$work/old/phony.sh" >"$work/old/lib-only.sh"
        # shellcheck disable=SC1091
        source "$work/old/lib-only.sh"
        WORK=$work/$name.scratch T=$work/$name.old/root
        mkdir -p "$WORK"
        gf() {
            local a=("$@")
            [ "$1" = upload-offset ] && a[1]=$(od -An -tx1 "$2" | tr -d ' \n')
            python3 -c 'import json, sys; print(json.dumps(sys.argv[1:]))' "${a[@]}"
        }
        gfo() { case $1 in feature-available) echo true ;; pread-device) echo FAT16 ;; vfs-uuid) echo "$UBUNTU_ESP_SERIAL" ;; esac; }
        "disk_$name"
        if declare -F "post_$name" >/dev/null; then "post_$name"; fi
    ) | sed 's/^\["mkdir", /["mkdir-p", /' | sort >"$work/$name.old.cmds"
    python3 "$here/vm-fixtures/phony.py" --disk-script "$name" | sort >"$work/$name.new.cmds"
    python3 - "$work/$name.old" "$work/$name.new" "$work/$name" "$name" <<'PY' || fail=1
import hashlib, os, sys
old, new, cmds, name = sys.argv[1:]
def scan(d):
    out = {}
    for top, dirs, files in os.walk(d):
        for n in dirs + files:
            p = os.path.join(top, n); st = os.lstat(p)
            kind = "dir" if n in dirs else "file"
            h = "" if kind == "dir" else hashlib.sha256(open(p, "rb").read()).hexdigest()[:16]
            out[os.path.relpath(p, d)] = (kind, oct(st.st_mode & 0o7777), h)
    return out
a, b = scan(old + "/root"), scan(new + "/root")
problems = [f"only in old: {p!r}" for p in sorted(a.keys() - b.keys())]
problems += [f"only in new: {p!r}" for p in sorted(b.keys() - a.keys())]
problems += [f"differs: {p!r} old={a[p]} new={b[p]}" for p in sorted(a.keys() & b.keys()) if a[p] != b[p]]
pa = sorted(open(old + "/post.gf").read().splitlines())
pb = sorted(open(new + "/post.gf").read().splitlines())
problems += [f"post.gf only in old: {l}" for l in pa if l not in pb] + [f"post.gf only in new: {l}" for l in pb if l not in pa]
if len(pa) != len(pb): problems.append(f"post.gf: {len(pa)} lines old, {len(pb)} new")
ca, cb = open(cmds + ".old.cmds").read(), open(cmds + ".new.cmds").read()
if ca != cb:
    problems.append("layout commands differ:\n  old: " + ca.replace("\n", "\n  old: ") + "\n  new: " + cb.replace("\n", "\n  new: "))
print(f"{name:10} files+dirs {len(a):4} vs {len(b):4}   post.gf {len(pa):3} vs {len(pb):3} lines   "
      f"layout {ca.count(chr(10)):2} vs {cb.count(chr(10)):2} commands   " + ("IDENTICAL" if not problems else "DIFFERENT"))
for p in problems[:40]: print("   ", p)
sys.exit(1 if problems else 0)
PY
done
exit $fail
