#!/usr/bin/env python3
"""Builds the phony guest images from vm-fixtures/phony/ (called by phony.sh; see README.md).

  phony.py NAME | all | --list | --tree NAME DIR | --disk-script NAME

A build is one `guestfish --listen` server per image: partition and format as the
manifest says, `tar-in` the host tree (regular files and directories only, never a
symlink on the host), then set owners, modes, symlinks and hard links INSIDE the guest,
do the manifest's [[guest]] entries, check with inspect-os, and rewrite compressed.
"""
import fcntl
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

from phony_data import DataError, HERE, Image, data_files, names, write_rpmdb, DATA

MTIME = "2024-05-01 12:00:00 UTC"
UNSAFE = re.compile(r'["\\\n]|/\.\./|/\.\.$')


def log(msg):
    print(f"[fixture] {msg}", file=sys.stderr, flush=True)


def die(msg):
    log(f"error: {msg}")
    sys.exit(1)


def safe(path):
    """Refuse what the guestfish script quoting can't carry."""
    if not path.startswith("/") or UNSAFE.search(path):
        raise DataError(f"unsupported path for metadata: {path!r}")
    return path


def meta_commands(img):
    """chmod/chown per attrs entry, then symlinks, then hard links (never through a link)."""
    out = []
    attrs = {**{p: a for p, a in img.resolved(img.dirs).items() if a}, **img.resolved(img.attrs)}
    for path, a in attrs.items():
        mode, _, owner = a.partition(" ")
        if mode:
            out.append(f'chmod {mode} "{safe(path)}"')
        if owner and owner != "0:0":
            uid, gid = owner.split(":")
            out.append(f'chown {uid} {gid} "{safe(path)}"')
    for path, target in img.resolved(img.symlinks).items():
        if not target or re.search(r'["\\\n]', target):
            raise DataError(f"unsupported link target: {target!r}")
        out.append(f'ln-s "{target}" "{safe(path)}"')
    for path, existing in img.resolved(img.hardlinks).items():
        out.append(f'rm-f "{safe(path)}"')
        out.append(f'ln "{safe(existing)}" "{path}"')
    return out


def write_tree(img, root):
    """The host side: directories and regular files, default modes (umask 022)."""
    os.umask(0o022)
    os.makedirs(root)
    for path in img.resolved(img.dirs):
        os.makedirs(root + path, exist_ok=True)
    for raw in img.content:
        path = img.sub(raw, raw)
        host = root + path
        os.makedirs(os.path.dirname(host), exist_ok=True)
        kind, spec = img.content[raw]
        if kind == "gen" and spec["kind"] == "rpmdb":
            write_rpmdb(host, spec["packages"])
            continue
        with open(host, "wb") as f:
            f.write(img.bytes_of(raw))
        if kind == "gen" and spec["kind"] == "host_binary":
            os.chmod(host, 0o755)
    for d, subdirs, files in os.walk(root):
        if any(os.path.islink(os.path.join(d, n)) for n in subdirs + files):
            raise DataError("host tree contains a symlink (bug)")


def tree(name, out):
    img = Image(name)
    os.makedirs(out, exist_ok=True)
    if os.listdir(out):
        die(f"{out} is not empty")
    write_tree(img, os.path.join(out, "root"))
    with open(os.path.join(out, "post.gf"), "w") as f:
        f.write("".join(c + "\n" for c in meta_commands(img)))
    return img


# ---------------------------------------------------------------------------
# Disk layout -> guestfish commands
# ---------------------------------------------------------------------------
def disk_commands(img, probe):
    """Partition, LVM, filesystems and the mounts needed before tar-in.
    probe(cmd...) asks the appliance (feature-available, pread-device)."""
    cmds, late = [], []
    letters = "abcdefghijklmnopqrstuvwxyz"
    for i, disk in enumerate(img.disks):
        dev = f"/dev/sd{letters[i]}"
        parts = disk.get("partitions", [])
        if len(parts) == 1 and parts[0].get("whole"):
            cmds.append(["part-disk", dev, disk["table"]])
        else:
            cmds.append(["part-init", dev, disk["table"]])
        for n, p in enumerate(parts, start=1):
            if not p.get("whole"):
                cmds.append(["part-add", dev, "p", str(p["start"]), str(p["end"])])
            if "gpt_type" in p:
                cmds.append(["part-set-gpt-type", dev, str(n), p["gpt_type"]])
            if "name" in p:
                cmds.append(["part-set-name", dev, str(n), p["name"]])
            if p.get("bootable"):
                cmds.append(["part-set-bootable", dev, str(n), "true"])
            if "mbr_id" in p:
                cmds.append(["part-set-mbr-id", dev, str(n), hex(p["mbr_id"])])
    for vg in img.vgs:
        cmds += [["pvcreate", pv] for pv in vg["pvs"]]
        cmds.append(["vgcreate", vg["name"]] + vg["pvs"])
        for lv in vg["lvs"]:
            if "size_mb" in lv:
                cmds.append(["lvcreate", lv["name"], vg["name"], str(lv["size_mb"])])
            else:
                cmds.append(["lvcreate-free", lv["name"], vg["name"], str(lv["free_percent"])])
    for fs in img.filesystems:
        cmds += mkfs(img, fs, probe)
    mounts = sorted((fs for fs in img.filesystems if "mount" in fs), key=lambda f: f["mount"].count("/") - (f["mount"] == "/"))
    for fs in mounts:
        target = fs["mount"]
        steps = [] if target == "/" else [["mkdir-p", target]]
        if "mountpoint_mode" in fs:
            steps.append(["chmod", fs["mountpoint_mode"], target])
        steps.append(["mount", fs["device"], target])
        # vfat cannot carry owners: such a filesystem is mounted after tar-in.
        (late if fs.get("after_tree") else cmds).extend(steps)
    return cmds, late


def mkfs(img, fs, probe):
    dev, typ = fs["device"], fs["type"]
    if typ == "swap":
        return [["mkswap", dev, f"label:{fs['label']}", f"uuid:{img.sub(fs['uuid'], dev)}"]]
    if "fallback" in fs and probe("feature-available", typ) != "true":
        log(f"{img.name}: no {typ} support in the appliance; using {fs['fallback']} for {dev}")
        img.fallback = (typ, fs["fallback"])
        typ = fs["fallback"]
    args = ["mkfs", typ, dev]
    if typ.startswith("ext") and "blocksize" in fs:
        args.append(f"blocksize:{fs['blocksize']}")
    args.append(f"label:{fs['label']}")
    out = [args]
    if "uuid" in fs:
        out.append(["set-uuid", dev, img.sub(fs["uuid"], dev)])
    if "serial" in fs:
        # A known FAT volume id: patched into the boot sector once mkfs has run (run()).
        out.append(["fat-serial", bytes.fromhex(img.sub(fs["serial"], dev).replace("-", ""))[::-1], dev])
    return out


def fat_serial(cmd, probe):
    """["fat-serial", BYTES, DEV] -> upload-offset at the FAT variant's serial offset."""
    _, serial, dev = cmd
    if probe("pread-device", dev, "8", "0x36").startswith(("FAT12", "FAT16")):
        return ["upload-offset", serial, dev, "39"]
    if probe("pread-device", dev, "8", "0x52").startswith("FAT32"):
        return ["upload-offset", serial, dev, "67"]
    raise DataError("unknown FAT variant on " + dev)


def guest_commands(img):
    """[[guest]] entries: what must happen inside the guest after the tree."""
    out, made = [], set()
    for g in img.guest:
        path = img.sub(g["path"], "[[guest]]")
        if g["kind"] == "write":
            parent = os.path.dirname(path)
            if parent not in made:
                out.append(["mkdir-p", parent])
                made.add(parent)
            out.append(["write", path, img.sub(g["text"], path)])
        elif g["kind"] == "swapfile":
            out += [["fallocate64", path, str(g["size"])], ["chmod", g["mode"], path],
                    ["mkswap-file", path]]
        elif g["kind"] == "sparse":
            out += [["touch", path], ["truncate-size", path, str(g["size"])]]
        else:
            raise DataError(f"{img.name}: [[guest]] {path}: unknown kind {g['kind']!r}")
    return out




# ---------------------------------------------------------------------------
# The guestfish session
# ---------------------------------------------------------------------------
class Fish:
    def __init__(self, disks):
        args = ["guestfish", "--listen", "--format=qcow2"]
        for d in disks:
            args += ["-a", d]
        out = subprocess.run(args, check=True, stdout=subprocess.PIPE, text=True).stdout
        m = re.search(r"GUESTFISH_PID=(\d+)", out)
        if not m:
            raise DataError(f"guestfish did not start: {out!r}")
        self.pid = m.group(1)

    def __call__(self, *args, stdin=None, capture=False):
        r = subprocess.run(["guestfish", f"--remote={self.pid}"] + ([] if stdin else ["--"]) + list(args),
                           input=stdin, text=True, stdout=subprocess.PIPE if capture else sys.stderr)
        if r.returncode:
            raise DataError(f"guestfish {' '.join(args)[:200]}: exit {r.returncode}")
        return r.stdout.strip() if capture else None

    def stop(self):
        """Ask the server to exit; a server that does not answer (e.g. a client was killed
        mid-command) is terminated, then killed."""
        if not self.pid:
            return
        pid, self.pid = int(self.pid), None
        try:
            subprocess.run(["guestfish", f"--remote={pid}", "--", "exit"], timeout=60,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            log(f"guestfish server {pid} does not answer; terminating it")
        for sig in (signal.SIGTERM, signal.SIGKILL):
            for _ in range(300):
                try:
                    os.kill(pid, 0)
                except ProcessLookupError:
                    return
                time.sleep(0.2)
            log(f"guestfish server {pid} did not exit; sending {sig.name}")
            os.kill(pid, sig)


def guestfs_env():
    """libguestfs settings for this host, from lib.sh (TCG where KVM does not work)."""
    script = f'. "{HERE}/lib.sh" && guestfs_env && echo "$LIBGUESTFS_BACKEND" && echo "${{LIBGUESTFS_BACKEND_SETTINGS:-}}"'
    backend, settings = subprocess.run(["bash", "-c", script], check=True, stdout=subprocess.PIPE,
                                       stderr=subprocess.DEVNULL, text=True).stdout.split("\n")[:2]
    os.environ["LIBGUESTFS_BACKEND"] = backend
    if settings:
        os.environ["LIBGUESTFS_BACKEND_SETTINGS"] = settings


def run(gf, cmd, work):
    if cmd[0] == "fat-serial":
        cmd = fat_serial(cmd, lambda *a: gf(*a, capture=True))
    if cmd[0] == "upload-offset":  # upload-offset BYTES DEV OFFSET
        blob = os.path.join(work, "upload.bin")
        with open(blob, "wb") as f:
            f.write(cmd[1])
        cmd = [cmd[0], blob] + cmd[2:]
    gf(*cmd)


def build(name, out):
    start = time.time()
    log(f"building phony guest '{name}' -> {out}")
    work = tempfile.mkdtemp(prefix=f"goldify-phony-{name}.", dir=os.environ.get("TMPDIR") or "/tmp")
    tmp = f"{out}.tmp.{os.getpid()}"
    gf = None
    try:
        img = tree(name, work)
        subprocess.run(["tar", "--owner=0", "--group=0", "--numeric-owner", "--sort=name",
                        f"--mtime={MTIME}", "-C", os.path.join(work, "root"), "-cf",
                        os.path.join(work, "root.tar"), "."], check=True)
        disks = [tmp] + [f"{tmp}.{i}" for i in range(1, len(img.disks))]
        for d, spec in zip(disks, img.disks):
            subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", d, spec["size"]], check=True,
                           stdout=sys.stderr)
        guestfs_env()
        gf = Fish(disks)
        gf("run")
        early, late = disk_commands(img, lambda *a: gf(*a, capture=True))  # probes: xfs
        for cmd in early:
            run(gf, cmd, work)
        for fs in img.filesystems:
            if "serial" in fs and gf("vfs-uuid", fs["device"], capture=True) != img.sub(fs["serial"], "serial"):
                raise DataError(f"{fs['device']}: FAT serial not applied")
        gf("tar-in", os.path.join(work, "root.tar"), "/")
        with open(os.path.join(work, "post.gf")) as f:
            gf(stdin=f.read())
        if getattr(img, "fallback", None):
            old, new = img.fallback
            with open(os.path.join(work, "root", "etc", "fstab")) as f:
                fstab = "".join(line.replace(f" {old}  ", f" {new} ", 1) for line in f)
            gf("write", "/etc/fstab", fstab)
        for cmd in late + guest_commands(img):
            run(gf, cmd, work)
        gf("sync")
        gf("umount-all")
        roots = gf("inspect-os", capture=True).split()
        if len(roots) != 1:
            raise DataError(f"{name}: inspection found roots: {roots}")
        r = roots[0]
        q = {k: gf(f"inspect-get-{k}", r, capture=True) for k in
             ("type", "distro", "major-version", "minor-version", "arch", "product-name", "hostname")}
        log(f"{name}: inspect-os: {r} " + " ".join(f"{k}={v!r}" for k, v in q.items()))
        found = (q["type"], q["distro"], f"{q['major-version']}.{q['minor-version']}")
        want = ("linux", img.known.get("libguestfs_distro", img.known["distro"]), img.known["version"])
        if found != want:
            raise DataError(f"{name}: inspection found {found}, the manifest's [known] says {want}")
        gf.stop()
        # Rewrite compressed: zeroed clusters vanish and the XFS log shrinks to almost nothing.
        for d in disks:
            subprocess.run(["qemu-img", "convert", "-c", "-O", "qcow2", d, d + ".c"], check=True)
            os.replace(d + ".c", d)
            subprocess.run(["qemu-img", "check", "-q", d], check=True)
        for i, d in enumerate(disks):
            os.replace(d, out if i == 0 else f"{out[:-len('.qcow2')]}.{i}.qcow2")
        log(f"{name}: built in {time.time() - start:.0f} s ({os.path.getsize(out) >> 10} KiB)")
    finally:
        if gf:
            gf.stop()
        shutil.rmtree(work, ignore_errors=True)
        for f in os.listdir(os.path.dirname(out)):
            if f.startswith(os.path.basename(tmp)):
                os.remove(os.path.join(os.path.dirname(out), f))


def cache_dir():
    d = os.environ.get("GOLDIFY_FIXTURE_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "goldify", "fixtures")
    os.makedirs(d, exist_ok=True)
    return os.path.realpath(d)


def key():
    """Hashes the builder, lib.sh, phony.sh and every data file (names and bytes)."""
    h = hashlib.sha256()
    for f in ["lib.sh", "phony.sh", "phony.py", "phony_data.py"]:
        with open(os.path.join(HERE, f), "rb") as fh:
            h.update(f.encode() + b"\0" + fh.read())
    for f in data_files():
        with open(os.path.join(DATA, f), "rb") as fh:
            h.update(f.encode() + b"\0" + fh.read())
    return h.hexdigest()[:16]


def ensure(name):
    cache = cache_dir()
    out = os.path.join(cache, f"{name}-{key()}.qcow2")
    if not os.path.exists(out):
        # Parallel tests asking for the same image build it once (same lock file as lib.sh's with_lock).
        with open(os.path.join(cache, f".phony-{name}.lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if os.path.exists(out):
                log(f"{name}: built meanwhile by another process")
            else:
                build(name, out)
    return out


USAGE = """usage: phony.sh NAME | all | --list
  NAME     build (once; cached) the phony guest image NAME and print its absolute path
  all      build every image and print "NAME PATH" lines
  --list   print the image names: {names}
  --tree NAME DIR   (debugging) only generate NAME's host-side tree in DIR/root and
                    the guestfish owner/mode/symlink script in DIR/post.gf
  --disk-script NAME  (debugging) print the guestfish layout commands (probes assumed true)
Images are cached in {cache} as NAME-<key>.qcow2 (key: the builder and every data file)."""


def main(argv):
    known = names()
    try:
        if len(argv) == 3 and argv[0] == "--tree":
            if argv[1] not in known:
                die(f"unknown phony guest '{argv[1]}'")
            tree(argv[1], argv[2])
        elif len(argv) == 2 and argv[0] == "--disk-script":
            img = Image(argv[1])
            early, late = disk_commands(img, lambda *a: "true" if a[0] == "feature-available" else "FAT16")
            probe = lambda *a: "FAT16"  # noqa: E731
            for c in early + late + guest_commands(img):
                c = fat_serial(c, probe) if c[0] == "fat-serial" else c
                print(json.dumps([a.hex() if isinstance(a, bytes) else a for a in c]))
        elif len(argv) != 1:
            print(USAGE.format(names=" ".join(known), cache=cache_dir()), file=sys.stderr)
            return 2
        elif argv[0] == "--list":
            print("\n".join(known))
        elif argv[0] in ("-h", "--help"):
            print(USAGE.format(names=" ".join(known), cache=cache_dir()))
        elif argv[0] == "all":
            for n in known:
                print(n, ensure(n), flush=True)
        elif argv[0] in known:
            print(ensure(argv[0]))
        else:
            die(f"unknown phony guest '{argv[0]}' (known: {' '.join(known)})")
    except (DataError, subprocess.CalledProcessError) as e:
        die(str(e))
    except KeyboardInterrupt:
        return 130
    return 0


def interrupted(signum, frame):
    raise KeyboardInterrupt  # unwinds through build()'s cleanup: no guestfish server is left


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, interrupted)
    sys.exit(main(sys.argv[1:]))
