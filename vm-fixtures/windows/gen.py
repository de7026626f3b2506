#!/usr/bin/env python3
"""Data generators for the Windows test fixture (vm-fixtures/windows.sh).

    gen.py hive OUT NAME      an empty registry hive (a root key only), for hivexregedit --merge
    gen.py pe OUT MACHINE     a minimal PE32+ console executable header (MACHINE: x86_64)
    gen.py tree MANIFEST DIR  the file tree listed in MANIFEST, created under DIR
    gen.py hiberfil OUT SIZE SIGNATURE   a hibernation file: SIGNATURE ("HIBR", "hibr", "wake"
                              or "zero") in the first 4 bytes of a 4 KiB header, then data

Everything is written from this project's own code: no hive or executable is copied from
elsewhere. The hive layout follows the regf format as hivex documents it (hivex(3),
lib/hivex-internal.h: "regf" base block, "hbin" pages, "nk"/"sk" cells) and libyal's
"Windows NT Registry File (REGF) format" notes.
"""
import hashlib
import os
import struct
import sys

# A fixed FILETIME (2024-05-01 12:00:00 UTC) so that builds are reproducible.
FILETIME = (1714564800 + 11644473600) * 10_000_000


def cell(payload: bytes) -> bytes:
    """An allocated cell: negative size (size field included), padded to 8 bytes."""
    size = (4 + len(payload) + 7) & ~7
    return struct.pack("<i", -size) + payload + b"\0" * (size - 4 - len(payload))


def hive(name: str) -> bytes:
    """An empty hive: one hbin holding the root key ("nk", flags 0x2c: hive entry, no
    delete, ASCII name) and its security cell ("sk", a minimal self-relative descriptor
    with no owner, group or ACLs), the rest of the page one free cell. hivex copies the
    root's "sk" to every key it adds, so the root must have one."""
    # Offsets are relative to the first hbin (file offset 0x1000); cells start at 0x20.
    root_off = 0x20
    root_name = b"ROOT"
    nk_len = 4 + 76 + len(root_name)
    sk_off = root_off + ((nk_len + 7) & ~7)
    descriptor = struct.pack("<BBHIIII", 1, 0, 0x8000, 0, 0, 0, 0)  # revision 1, self-relative
    nk = struct.pack(
        "<2sHQIIIIIIIIIIIIIIIHH",
        b"nk",
        0x2C,
        FILETIME,
        0,  # access bits
        0xFFFFFFFF,  # parent (none)
        0,  # subkeys
        0,  # volatile subkeys
        0xFFFFFFFF,  # subkey list
        0xFFFFFFFF,  # volatile subkey list
        0,  # values
        0xFFFFFFFF,  # value list
        sk_off,
        0xFFFFFFFF,  # class name
        0, 0, 0, 0,  # largest subkey name/class, value name/data
        0,  # work var
        len(root_name),
        0,  # class name length
    ) + root_name
    sk = struct.pack("<2sHIIII", b"sk", 0, sk_off, sk_off, 1, len(descriptor)) + descriptor
    cells = cell(nk) + cell(sk)
    page = 4096
    free = page - 0x20 - len(cells)
    hbin = struct.pack("<4sIIQQI", b"hbin", 0, page, 0, FILETIME, 0) + cells + struct.pack("<i", free)
    hbin += b"\0" * (page - len(hbin))
    assert len(hbin) == page
    # Base block: sequence numbers equal (the hive was written cleanly), version 1.3,
    # primary file, format 1, root offset, data size, clustering 1, file name (UTF-16LE).
    fname = name.upper().encode("utf-16-le")[:64]
    base = struct.pack("<4sIIQIIIIIII", b"regf", 1, 1, FILETIME, 1, 3, 0, 1, root_off, page, 1)
    base += fname + b"\0" * (64 - len(fname))
    base += b"\0" * (508 - len(base))
    checksum = 0
    for (word,) in struct.iter_unpack("<I", base):
        checksum ^= word
    base += struct.pack("<I", checksum)
    base += b"\0" * (4096 - len(base))
    return base + hbin


def pe(machine: str) -> bytes:
    """A PE32+ console executable: the DOS header ("MZ", e_lfanew), the stub text, the "PE"
    signature, the COFF header (machine, no sections) and the optional header (magic 0x20b,
    subsystem console). `file` (which libguestfs' file-architecture reads) names it
    "PE32+ executable (console) x86-64, for MS Windows"."""
    machines = {"x86_64": 0x8664, "aarch64": 0xAA64}
    e_lfanew = 0x80
    dos = bytearray(e_lfanew)
    dos[0:2] = b"MZ"
    struct.pack_into("<HHHHHHHHH", dos, 2, 0x90, 3, 0, 4, 0, 0xFFFF, 0, 0xB8, 0)
    struct.pack_into("<H", dos, 0x18, 0x40)  # e_lfarlc: a "new" executable follows
    struct.pack_into("<I", dos, 0x3C, e_lfanew)
    stub = b"This program cannot be run in DOS mode.\r\r\n$"
    dos[0x4E:0x4E + len(stub)] = stub
    opt_size = 240
    coff = struct.pack("<4sHHIIIHH", b"PE\0\0", machines[machine], 0, 0x5F5E1000 & 0xFFFFFFFF, 0, 0, opt_size, 0x22)
    opt = bytearray(opt_size)
    struct.pack_into("<HBB", opt, 0, 0x20B, 14, 0)
    struct.pack_into("<Q", opt, 24, 0x140000000)  # image base
    struct.pack_into("<II", opt, 32, 0x1000, 0x200)  # section/file alignment
    struct.pack_into("<HHHHHH", opt, 40, 10, 0, 10, 0, 10, 0)  # OS/image/subsystem versions
    struct.pack_into("<II", opt, 56, 0x1000, 0x400)  # image size, headers size
    struct.pack_into("<HH", opt, 68, 3, 0x8160)  # subsystem console, DLL characteristics
    struct.pack_into("<I", opt, 108, 16)  # number of data directories
    body = bytes(dos) + coff + bytes(opt)
    return body + b"\0" * (0x400 - len(body))


def prand(seed: str, size: int) -> bytes:
    """Deterministic pseudo-random bytes (SHA-256 in counter mode)."""
    out = bytearray()
    block = 0
    while len(out) < size:
        out += hashlib.sha256(f"{seed}:{block}".encode()).digest()
        block += 1
    return bytes(out[:size])


def tree(manifest: str, root: str) -> None:
    """Create the tree MANIFEST lists. Lines (fields separated by TABs; # comments):
        dir   PATH
        text  PATH  TEXT        (\\n in TEXT is a line break; written with CRLF)
        rand  PATH  BYTES       (deterministic pseudo-random content)
        zero  PATH  BYTES       (zero bytes: sparse where the filesystem allows)
    PATH is relative to the volume root, with / as the separator."""
    with open(manifest, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            line = line.rstrip("\n")
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            fields = line.split("\t")
            kind, path = fields[0], fields[1]
            if path.startswith("/") or ".." in path.split("/"):
                sys.exit(f"{manifest}:{n}: path must be relative and inside the volume: {path}")
            host = os.path.join(root, path)
            if kind == "dir":
                os.makedirs(host, exist_ok=True)
                continue
            os.makedirs(os.path.dirname(host), exist_ok=True)
            if kind == "text":
                data = fields[2].replace("\\n", "\r\n").encode("utf-8")
            elif kind == "rand":
                data = prand(path, int(fields[2]))
            elif kind == "zero":
                with open(host, "wb") as out:
                    out.truncate(int(fields[2]))
                continue
            else:
                sys.exit(f"{manifest}:{n}: unknown kind {kind!r}")
            with open(host, "wb") as out:
                out.write(data)


def hiberfil(size: int, signature: str) -> bytes:
    """ntfs-3g reads the first 4 KiB of hiberfil.sys: a "hibr"/"HIBR"/"wake" signature
    means a hibernated (or Fast Startup) session, all zeros means none (libntfs-3g
    volume.c, ntfs_volume_check_hiberfile)."""
    header = bytearray(4096)
    if signature != "zero":
        header[0:4] = signature.encode("ascii")
        header[4:64] = prand("hiberfil-header", 60)
    return bytes(header) + prand("hiberfil", size - 4096)


def main() -> None:
    args = sys.argv[1:]
    if len(args) == 3 and args[0] == "hive":
        data = hive(args[2])
    elif len(args) == 3 and args[0] == "pe":
        data = pe(args[2])
    elif len(args) == 3 and args[0] == "tree":
        tree(args[1], args[2])
        return
    elif len(args) == 4 and args[0] == "hiberfil":
        data = hiberfil(int(args[2]), args[3])
    else:
        sys.exit(__doc__)
    with open(args[1], "wb") as f:
        f.write(data)


if __name__ == "__main__":
    main()
