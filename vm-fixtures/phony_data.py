"""The phony guests as data: manifests, layers, and the generators of binary files.

An image is vm-fixtures/phony/images/NAME.toml plus NAME/ (its own files); it lists
shared layers (vm-fixtures/phony/layers/LAYER.toml plus LAYER/). See README.md.
"""
import base64
import gzip
import io
import os
import re
import sqlite3
import struct
import subprocess
import tomllib

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, "phony")
VAR = re.compile(r"\$\{([a-z_][a-z0-9_]*)\}")


class DataError(Exception):
    pass


def names():
    """Image names, in build order (the manifests' `order`)."""
    found = []
    for f in os.listdir(os.path.join(DATA, "images")):
        if f.endswith(".toml"):
            found.append((read_toml(os.path.join(DATA, "images", f)).get("order", 99), f[:-5]))
    return [n for _, n in sorted(found)]


def read_toml(path):
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise DataError(f"{path}: {e}") from None


def data_files():
    """Every data file (relative path), sorted: what the cache key hashes."""
    out = []
    for d, _, fs in os.walk(DATA):
        out += [os.path.relpath(os.path.join(d, f), DATA) for f in fs]
    return sorted(out)


class Image:
    """One image's composed tree: contents, dirs, attributes and links by guest path."""

    def __init__(self, name):
        self.name = name
        self.content = {}    # path -> ("file", host path) | ("gen", spec)
        self.dirs = {}       # path -> attrs ("" = 0755 root)
        self.attrs = {}      # path -> "MODE [UID:GID]"
        self.symlinks = {}   # path -> target
        self.hardlinks = {}  # new name -> existing name
        self.guest = []      # [[guest]] entries: done inside the guest after the tree
        m = read_toml(os.path.join(DATA, "images", name + ".toml"))
        self.manifest = m
        if "extends" in m:
            base = Image(m["extends"])
            for k in ("content", "dirs", "attrs", "symlinks", "hardlinks", "guest"):
                setattr(self, k, getattr(base, k))
            self.known = {**base.known, **m.get("known", {})}
            self.vars = {**base.vars, **m.get("vars", {})}
        else:
            self.known = dict(m.get("known", {}))
            self.vars = dict(m.get("vars", {}))
        for layer in m.get("layers", []):
            self._merge(read_toml(os.path.join(DATA, "layers", layer + ".toml")),
                        os.path.join(DATA, "layers", layer))
        for path in m.get("omit", []):
            self._omit(path)
        self._merge(m, os.path.join(DATA, "images", name))
        self.disks = m.get("disks", [])
        self.filesystems = m.get("filesystems", [])
        self.vgs = m.get("vgs", [])
        for key in ("luks", "md"):
            if key in m:
                raise DataError(f"{name}.toml: [[{key}]] is described in README.md but not built yet")

    def _merge(self, t, tree):
        if os.path.isdir(tree):
            for d, _, fs in os.walk(tree):
                for f in fs:
                    host = os.path.join(d, f)
                    self.content["/" + os.path.relpath(host, tree)] = ("file", host)
        for path, spec in t.get("dirs", {}).items():
            self.dirs[path] = spec
        self.attrs.update(t.get("attrs", {}))
        self.symlinks.update(t.get("symlinks", {}))
        self.hardlinks.update(t.get("hardlinks", {}))
        for g in t.get("generate", []):
            self.content[g["path"]] = ("gen", g)
        self.guest += t.get("guest", [])

    def _omit(self, path):
        def hit(p):
            return p == path or p.startswith(path.rstrip("/") + "/")
        for table in (self.content, self.dirs, self.attrs, self.symlinks, self.hardlinks):
            for p in [p for p in table if hit(p)]:
                del table[p]

    def sub(self, text, where):
        """${name} from [known] and [vars]; an unknown name is an error."""
        values = {**self.vars, **self.known}

        def one(m):
            if m.group(1) not in values:
                raise DataError(f"{self.name}: {where}: unknown variable ${{{m.group(1)}}}")
            return str(values[m.group(1)])
        return VAR.sub(one, text)

    def resolved(self, table):
        return {self.sub(p, p): self.sub(v, p) for p, v in table.items()}

    def bytes_of(self, path):
        """The bytes of a regular file of the tree (layer file or generated)."""
        kind, src = self.content[path]
        if kind == "file":
            with open(src, "rb") as f:
                data = f.read()
            try:
                return self.sub(data.decode(), src).encode()
            except UnicodeDecodeError:
                return data
        return generate(self, src)


# ---------------------------------------------------------------------------
# Generators: files that are binary or too big to keep as files.
# ---------------------------------------------------------------------------
def cksum(data):
    """POSIX cksum(1) CRC, as the old shell builder seeded its generator with."""
    crc = 0
    for b in data + len(data).to_bytes((len(data).bit_length() + 7) // 8, "little"):
        crc ^= b << 24
        for _ in range(8):
            crc = (crc << 1) ^ 0x04C11DB7 if crc & 0x80000000 else crc << 1
            crc &= 0xFFFFFFFF
    return crc ^ 0xFFFFFFFF


def prand(seed, size):
    """Deterministic pseudo-random bytes: perl's srand(cksum(seed)) + int(rand 256),
    i.e. drand48 (perl >= 5.20 uses its own drand48 on every platform)."""
    x = ((cksum(seed.encode()) << 16) + 0x330E) & (2**48 - 1)
    out = bytearray(size)
    for i in range(size):
        x = (x * 0x5DEECE66D + 0xB) & (2**48 - 1)
        out[i] = x >> 40
    return bytes(out)


def b64(data, width):
    s = base64.b64encode(data).decode()
    if not width:
        return s
    return "".join(s[i:i + width] + "\n" for i in range(0, len(s), width))


def utmp(line):
    """struct utmp (384 bytes) from "type pid line id user host epoch"."""
    typ, pid, tty, uid, user, host, t = line.split(" ")
    m = re.fullmatch(r"(\d+)\.(\d+)\.(\d+)\.(\d+)", host)
    ip = bytes(int(x) for x in m.groups()) if m else bytes(4)
    return struct.pack("<h2xi32s4s32s256shhiii16s20s", int(typ), int(pid), tty.encode(),
                       uid.encode(), user.encode(), host.encode(), 0, 0, 0, int(t), 0, ip, b"")


def lastlog(entries):
    """lastlog indexed by uid: {"UID" = "epoch line host"}; others zero (292 bytes each)."""
    recs = {int(u): v.split(" ") for u, v in entries.items()}
    out = io.BytesIO()
    for uid in range(max(recs) + 1):
        if uid in recs:
            t, line, host = recs[uid]
            out.write(struct.pack("<i32s256s", int(t), line.encode(), host.encode()))
        else:
            out.write(bytes(292))
    return out.getvalue()


def generate(img, g):
    s = {k: img.sub(v, g["path"]) if isinstance(v, str) else v for k, v in g.items()}
    kind = s["kind"]
    if kind == "text":
        return s["text"].encode()
    if kind == "random":
        return bytes.fromhex(s.get("prefix_hex", "")) + prand(s["seed"], s["size"])
    if kind == "ssh_private":
        body = b64(b"openssh-key-v1\0" + prand(s["seed"], 380), 70)
        return ("-----BEGIN OPENSSH PRIVATE KEY-----\n" + body
                + "-----END OPENSSH PRIVATE KEY-----\n").encode()
    if kind == "ssh_public":
        return f"{s['key_type']} {b64(prand(s['seed'], s['size']), 0)} {s['comment']}\n".encode()
    if kind == "repeat":
        return (s["head"] + s["char"] * s["count"] + s["tail"]).encode()
    if kind == "utmp":
        return b"".join(utmp(img.sub(r, g["path"])) for r in g["records"])
    if kind == "lastlog":
        return lastlog(g["entries"])
    if kind == "gzip":
        # gzip(1) itself: its deflate differs from zlib's, and the bytes must stay stable.
        return subprocess.run(["gzip", "-9n"], input=s["text"].encode(), check=True,
                              stdout=subprocess.PIPE).stdout
    if kind == "host_binary":
        with open(s["source"], "rb") as f:
            return f.read()
    raise DataError(f"{img.name}: {g['path']}: unknown generator kind {kind!r}")


RPM_INT32, RPM_STRING, RPM_I18NSTRING = 4, 6, 9
RPM_TABLES = ["Name", "Basenames", "Group", "Requirename", "Providename", "Conflictname",
              "Obsoletename", "Triggername", "Dirnames", "Installtid", "Sigmd5", "Sha1header",
              "Filetriggername", "Transfiletriggername", "Recommendname", "Suggestname",
              "Supplementname", "Enhancename"]


def rpm_header(tags):
    """An rpm header as stored in the rpmdb: il, dl, index entries, data (no magic, no region)."""
    ents, data = [], b""
    for tag, typ, val in sorted(tags):
        if typ == RPM_INT32:
            data += b"\0" * (-len(data) % 4)
            off = len(data)
            data += struct.pack(">I", val)
        else:
            off = len(data)
            data += val.encode() + b"\0"
        ents.append(struct.pack(">iIiI", tag, typ, off, 1))
    return struct.pack(">II", len(ents), len(data)) + b"".join(ents) + data


def write_rpmdb(path, packages):
    """rpm >= 4.16 sqlite rpmdb; packages: "name epoch|- version release arch group summary..."."""
    db = sqlite3.connect(path)
    db.execute("PRAGMA journal_mode = DELETE")  # no -wal/-shm needed to read it read-only
    db.execute("CREATE TABLE 'Packages' (hnum INTEGER PRIMARY KEY AUTOINCREMENT,blob BLOB NOT NULL)")
    for t in RPM_TABLES:
        kt = "BLOB" if t in ("Installtid", "Sigmd5") else "TEXT"
        db.execute(f"CREATE TABLE '{t}' (key '{kt}' NOT NULL, hnum INTEGER NOT NULL, idx INTEGER NOT NULL, FOREIGN KEY (hnum) REFERENCES 'Packages'(hnum))")
        if kt == "TEXT":
            db.execute(f"CREATE INDEX '{t}_key_idx' ON '{t}'(key ASC)")
    for n, line in enumerate(packages, start=1):
        name, epoch, ver, rel, arch, group, *summary = line.split()
        summary = " ".join(summary)
        tags = [(1000, RPM_STRING, name), (1001, RPM_STRING, ver), (1002, RPM_STRING, rel),
                (1004, RPM_I18NSTRING, summary),
                (1005, RPM_I18NSTRING, summary + " (phony fixture entry)"),
                (1008, RPM_INT32, 1714564800), (1009, RPM_INT32, 1048576),
                (1014, RPM_STRING, "GPL-2.0-or-later"), (1016, RPM_I18NSTRING, group),
                (1020, RPM_STRING, "https://almalinux.org/"), (1021, RPM_STRING, "linux"),
                (1022, RPM_STRING, arch), (1044, RPM_STRING, f"{name}-{ver}-{rel}.src.rpm")]
        if epoch != "-":
            tags.append((1003, RPM_INT32, int(epoch)))
        db.execute("INSERT INTO Packages (hnum, blob) VALUES (?, ?)", (n, rpm_header(tags)))
        for t in ("Name", "Providename"):
            db.execute(f"INSERT INTO '{t}' (key, hnum, idx) VALUES (?, ?, 0)", (name, n))
        db.execute("INSERT INTO 'Group' (key, hnum, idx) VALUES (?, ?, 0)", (group, n))
    db.commit()
    db.close()
