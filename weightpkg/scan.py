"""``weightpkg scan``'s engine: open weight files, find every pickle inside, judge them statically.

The edge around :mod:`weightpkg.core.pickles`: this module opens files (mmap, so a multi-GB file
is paged in only where a pickle is), recognises containers by their bytes rather than their names
— zip (PyTorch ``*/data.pkl``, TorchScript archives, ``.npz``), legacy ``torch.save`` files,
``.npy`` with object dtype, joblib (plain or compressed), tar, raw pickles, safetensors — and hands
each pickle to the core. Nothing is ever unpickled.

Zip archives are read with our own reader, not :mod:`zipfile`, because the loaders that matter
(PyTorch's miniz reader) ignore what zipfile refuses: flag bits, CRCs, the central directory's
idea of a member's name. Every such inconsistency is a finding, and the member is scanned anyway
the way a lenient loader would read it.
"""

from __future__ import annotations

import ast
import bz2
import collections
import contextlib
import gzip
import io
import lzma
import math
import os
import struct
import tarfile
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import BinaryIO

from .core.pickles import (
    DANGEROUS_RULES,
    Finding,
    GlobalRef,
    PickleScan,
    Severity,
    Verdict,
    scan_pickle,
    sniff_pickle,
    verdict_of,
)
from .core.safetensors import SafetensorsError, header_length, parse_layout
from .errors import UsageError

#: Extensions whose files are expected to hold a pickle: if they do not, that is an error.
PICKLE_SUFFIXES = frozenset({
    ".pkl", ".pickle", ".pt", ".pth", ".bin", ".ckpt", ".joblib", ".jbl", ".sav", ".p", ".dill",
})
#: Archive members read as pickles whatever their first bytes.
PICKLE_MEMBER_SUFFIXES = (".pkl", ".pickle", ".debug_pkl")
#: How much of a member or file is looked at to decide what it is.
SNIFF_BYTES = 4096
#: Deflate cannot expand more than ~1032:1; a member claiming more is a bomb or a lie.
MAX_DEFLATE_RATIO = 1100
#: Bytes of an unreadable archive (7z) searched for embedded pickles.
EMBEDDED_SEARCH_LIMIT = 64 * 1024 * 1024
EMBEDDED_MAX_CANDIDATES = 256
CHUNK = 1 << 20

_ZIP_FLAG_ENCRYPTED = 0x1
_ZIP_FLAG_STRONG_ENCRYPTION = 0x40
_ZIP_FLAGS_USUAL = 0x2 | 0x4 | 0x8 | 0x800  # deflate options, data descriptor, UTF-8 names


@dataclass(frozen=True)
class FileScan:
    """The verdict on one file: its format, every global its pickles import, every finding.

    ``members`` lists the archive members scanned as pickles. ``verdict`` is ``dangerous`` (a global
    or construct that can run code), ``malformed`` (something could not be parsed or read, so the
    file cannot be judged safe), ``unknown`` (globals neither allowlisted nor known-dangerous) or
    ``safe``.
    """

    path: str
    format: str
    verdict: Verdict
    findings: tuple[Finding, ...]
    globals: tuple[GlobalRef, ...]
    members: tuple[str, ...] = ()

    @property
    def failed(self) -> bool:
        """What ``weightpkg scan`` exits 1 for."""
        return self.verdict in ("dangerous", "malformed")

    def lines(self) -> list[str]:
        """One summary line, then one line per finding, each beginning with the file."""
        bad = [g.dotted for g in self.globals if g.verdict != "safe"]
        if bad:
            detail = ", ".join(bad)
        elif self.globals:
            detail = f"{len(self.globals)} allowlisted global{'s' if len(self.globals) != 1 else ''}"
        else:
            detail = "no globals"
        rules = sorted({f.rule for f in self.findings if f.severity == "error"} - {"dangerous-global"})
        if rules:
            detail += f"; {', '.join(rules)}"
        out = [f"{self.path}: {self.verdict} ({self.format}): {detail}"]
        for f in self.findings:
            where = f"{self.path}[{f.member}]" if f.member else self.path
            out.append(f"{where}: {f.severity}: {f.rule}: {f.message}")
        return out

    def to_json(self) -> dict[str, object]:
        """Deterministic JSON: findings in scan order, globals sorted, no clock."""
        return {
            "path": self.path,
            "format": self.format,
            "verdict": self.verdict,
            "globals": [
                {"global": g.dotted, "verdict": g.verdict, "reason": g.reason} for g in self.globals
            ],
            "members": list(self.members),
            "findings": [{"file": self.path, **f.to_json()} for f in self.findings],
        }


@dataclass
class _Result:
    """What a scan of one file accumulates before it is frozen into a FileScan."""

    format: str
    findings: list[Finding] = field(default_factory=list)
    globals: dict[str, GlobalRef] = field(default_factory=dict)
    members: list[str] = field(default_factory=list)

    def add(self, rule: str, severity: Severity, message: str, member: str | None = None) -> None:
        self.findings.append(Finding(rule, severity, message, member=member))

    def merge(self, scan: PickleScan, member: str | None = None, *, lenient: bool = False,
              label: str | None = None) -> None:
        """Take a pickle scan's globals and findings; ``lenient`` turns parse errors into warnings
        (for bytes that only looked like a pickle)."""
        for ref in scan.globals:
            self.globals.setdefault(ref.dotted, ref)
        for f in scan.findings:
            if lenient and f.rule in ("malformed-pickle", "not-a-pickle"):
                f = replace(f, rule="unparsed-pickle", severity="info",
                            message=f"starts like a pickle but does not parse ({f.message}); read as data")
            if label:
                f = replace(f, message=f"{label}: {f.message}")
            self.findings.append(replace(f, member=member) if member else f)
        if member is not None and member not in self.members:
            self.members.append(member)

    def freeze(self, path: str) -> FileScan:
        refs = tuple(self.globals[k] for k in sorted(self.globals))
        return FileScan(path=path, format=self.format, verdict=verdict_of(self.findings),
                        findings=tuple(self.findings), globals=refs, members=tuple(self.members))


# --------------------------------------------------------------------------------------------
# Public API


def scan_paths(paths: Iterable[str | os.PathLike[str]]) -> list[FileScan]:
    """Scan files and directories (recursed, files sorted), in the order given, each file once.

    Raises UsageError naming every path that does not exist or cannot be read, before scanning.
    """
    files: list[Path] = []
    missing: list[str] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            files.extend(_walk(path))
        elif path.is_file():
            files.append(path)
        elif path.exists():
            missing.append(f"{path}: not a regular file or directory")
        else:
            missing.append(f"{path}: no such file or directory")
    if missing:
        raise UsageError("\n".join(missing))
    seen: set[Path] = set()
    out = []
    for path in files:
        key = path.resolve()
        if key not in seen:
            seen.add(key)
            out.append(scan_file(path))
    return out


def _walk(root: Path) -> Iterator[Path]:
    """Every regular file under ``root``, sorted by path; symlinked directories are not followed."""
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames):
            path = Path(dirpath) / name
            if path.is_file():
                yield path


def scan_file(path: str | os.PathLike[str]) -> FileScan:
    """Scan one file. Raises UsageError if it is missing, not a regular file, or unreadable."""
    from .mapped import mapped_file

    path = Path(path)
    with mapped_file(path) as (buffer, fd):
        if not len(buffer):
            result = _Result("empty")
            result.add("empty-file", "error", "the file is empty: there is nothing to load")
            return result.freeze(str(path))
        try:
            view = memoryview(buffer)
            try:
                result = _scan_bytes(view, fd, path, lambda: open(path, "rb"))
            finally:
                with contextlib.suppress(BufferError):
                    view.release()
        except OSError as exc:
            raise UsageError(f"{path}: cannot read: {exc.strerror or exc}") from None
    return result.freeze(str(path))


# --------------------------------------------------------------------------------------------
# Format detection


def _scan_bytes(view: memoryview, fd: int, path: Path, reopen: Callable[[], BinaryIO]) -> _Result:
    head = bytes(view[:SNIFF_BYTES])
    suffix = path.suffix.lower()
    if head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        return _scan_zip(_PreadView(fd, len(view)), fd)
    if head.startswith(b"\x93NUMPY"):
        result = _Result("npy")
        _scan_npy(lambda: _as_stream(view), None, result, len(view))
        return result
    if suffix == ".safetensors" or _looks_like_safetensors(head, len(view)):
        # before the compression magics: a header length can start with 0x1f 0x8b or a zlib header
        result = _scan_safetensors(view)
        if result.findings and sniff_pickle(head):
            result.merge(scan_pickle(view), label="a pickle named .safetensors")
        return result
    if head.startswith(b"7z\xbc\xaf\x27\x1c"):
        return _scan_unreadable_archive(view, "7z", "a 7z archive: no reader for it here, its members "
                                        "cannot be listed or scanned")
    if head.startswith(b"\x04\x22\x4d\x18"):
        return _scan_unreadable_archive(view, "lz4", "lz4-compressed (as joblib writes with "
                                        "compress='lz4'): no lz4 decoder here, cannot be scanned")
    compressed = _compression(head)
    if compressed is not None:
        return _scan_compressed(compressed, reopen)
    if len(head) > 262 and head[257:262] == b"ustar":
        return _scan_tar(reopen)
    if suffix in PICKLE_SUFFIXES or sniff_pickle(head):
        scan = scan_pickle(view)
        fmt = "torch-legacy" if scan.torch_legacy else ("joblib" if _is_joblib(scan) else "pickle")
        if not scan.pickles and not scan.globals:
            fmt = "unknown"
        result = _Result(fmt)
        result.merge(scan)
        return result
    result = _Result("other")
    result.add("not-scanned", "info",
               "not a pickle-bearing format (pickle, torch, numpy, joblib, zip, tar) nor safetensors; "
               "no pickle found in it")
    return result


def _is_joblib(scan: PickleScan) -> bool:
    return any(g.name == "NumpyArrayWrapper" for g in scan.globals)


def _looks_like_safetensors(head: bytes, size: int) -> bool:
    if len(head) < 9:
        return False
    n = int.from_bytes(head[:8], "little")
    return 2 <= n <= size - 8 and head[8:9] == b"{"


def _compression(head: bytes) -> str | None:
    """The whole-file compression joblib (and others) use, by magic number."""
    if head.startswith(b"\x1f\x8b"):
        return "gzip"
    if head.startswith(b"BZh"):
        return "bz2"
    if head.startswith(b"\xfd7zXZ\x00"):
        return "xz"
    if head.startswith(b"]\x00\x00"):
        return "lzma"
    if head.startswith(b"ZF") and len(head) > 21:
        return "joblib-zfile"
    if len(head) >= 2 and head[0] == 0x78 and (head[0] * 256 + head[1]) % 31 == 0:
        return "zlib"
    return None


# --------------------------------------------------------------------------------------------
# Streams over bytes: decompression with bounded output, never the whole member in memory


class _Inflater(io.RawIOBase):
    """Decompress a memoryview (zip member) or a stream chunk by chunk."""

    def __init__(self, source: memoryview | BinaryIO, kind: str, limit: int | None = None) -> None:
        self._source = source
        self._offset = 0
        self._kind = kind
        self._limit = limit
        self._produced = 0
        self._pending = b""
        self._eof = False
        if kind == "deflate":
            self._z = zlib.decompressobj(-15)
        elif kind == "zlib":
            self._z = zlib.decompressobj(15)
        elif kind == "bz2":
            self._z = bz2.BZ2Decompressor()
        else:
            raise ValueError(kind)

    def readable(self) -> bool:
        return True

    def _input(self) -> bytes:
        if isinstance(self._source, memoryview):
            chunk = bytes(self._source[self._offset:self._offset + (1 << 16)])
            self._offset += len(chunk)
            return chunk
        return self._source.read(1 << 16)

    def readinto(self, buffer) -> int:  # type: ignore[override]
        try:
            return self._readinto(buffer)
        except (zlib.error, EOFError, lzma.LZMAError) as exc:
            raise OSError(f"compressed data is corrupt: {exc}") from None

    def _readinto(self, buffer) -> int:
        want = len(buffer)
        while not self._pending and not self._eof:
            if self._limit is not None and self._produced >= self._limit:
                break
            if isinstance(self._z, bz2.BZ2Decompressor):
                if self._z.eof:
                    self._eof = True
                    break
                data = self._input() if self._z.needs_input else b""
                if not data and self._z.needs_input:
                    raise EOFError("compressed data ends early")
                self._pending = self._z.decompress(data, max_length=1 << 16)
            else:
                data = self._z.unconsumed_tail or self._input()
                if not data:
                    if not self._z.eof:
                        raise EOFError("compressed data ends early")
                    self._eof = True
                    break
                self._pending = self._z.decompress(data, 1 << 16)
                if self._z.eof and not self._pending:
                    self._eof = True
        out = self._pending[:want]
        self._pending = self._pending[want:]
        self._produced += len(out)
        buffer[:len(out)] = out
        return len(out)


# --------------------------------------------------------------------------------------------
# Zip


class _PreadView:
    """``view[a:b]`` → bytes read with pread: the zip reader looks at headers scattered over a
    possibly huge file, and mapping them would fault in pages around each (the whole file, in RSS)."""

    def __init__(self, fd: int, size: int) -> None:
        self._fd = fd
        self._size = size

    def __len__(self) -> int:
        return self._size

    def __getitem__(self, where: slice) -> bytes:
        start, stop, _ = where.indices(self._size)
        if stop <= start:
            return b""
        return os.pread(self._fd, stop - start, start)


@dataclass(frozen=True)
class _ZipEntry:
    name: str
    flags: int
    method: int
    crc: int
    compressed_size: int
    size: int
    header_offset: int


def _scan_zip(view: _PreadView, fd: int) -> _Result:
    result = _Result("zip")
    entries = _central_directory(view, result)
    if entries is None:
        entries = _local_headers(view, result)
    names = [e.name for e in entries]
    dupes = sorted(n for n, count in collections.Counter(names).items() if count > 1)
    for name in dupes:
        result.add("zip-duplicate-name", "error",
                   f"member {name!r} appears more than once: loaders disagree on which one they read", name)
    torchscript = any("/code/" in f"/{n}" or n.endswith("constants.pkl") for n in names)
    if torchscript:
        result.format = "torchscript"
        code = sum(1 for n in names if "/code/" in f"/{n}" and n.endswith(".py"))
        result.add("torchscript-code", "warning",
                   f"a TorchScript archive: its {code} code/ file{'s' if code != 1 else ''} run when the "
                   "model is loaded with torch.jit.load (TorchScript, not Python; not analysed here)")
    elif any(n == "data.pkl" or n.endswith("/data.pkl") for n in names):
        result.format = "torch-zip"
    elif names and all(n.endswith(".npy") for n in names):
        result.format = "npz"
    for entry in entries:
        _scan_zip_member(view, fd, entry, result, torchscript)
    return result


def _central_directory(view: _PreadView, result: _Result) -> list[_ZipEntry] | None:
    """Entries as the central directory lists them, checked against their local headers; None
    if there is no usable central directory."""
    size = len(view)
    tail_start = max(0, size - (65535 + 22))
    tail = bytes(view[tail_start:])
    at = tail.rfind(b"PK\x05\x06")
    if at < 0 or at + 22 > len(tail):
        result.add("zip-no-central-directory", "error",
                   "no end-of-central-directory record: the archive is truncated or forged; members "
                   "read from their local headers")
        return None
    eocd = tail_start + at
    (_, _, _, _, count, cd_size, cd_offset, _) = struct.unpack("<IHHHHIIH", tail[at:at + 22])
    locator = eocd - 20
    if locator >= 0 and bytes(view[locator:locator + 4]) == b"PK\x06\x07":
        z64_offset = struct.unpack("<Q", view[locator + 8:locator + 16])[0]
        if bytes(view[z64_offset:z64_offset + 4]) == b"PK\x06\x06" and z64_offset + 56 <= size:
            count, cd_size, cd_offset = struct.unpack("<QQQ", view[z64_offset + 32:z64_offset + 56])
            eocd = z64_offset
    shift = eocd - cd_size - cd_offset
    if shift < 0 or cd_offset + shift + cd_size > size:
        result.add("zip-bad-central-directory", "error",
                   f"the central directory claims {cd_size} bytes at offset {cd_offset}, outside the "
                   f"{size}-byte file; members read from their local headers")
        return None
    if shift:
        result.add("zip-prefix-data", "warning",
                   f"{shift} bytes precede the archive (a loader that reads from the start sees them first)")
    entries: list[_ZipEntry] = []
    pos = cd_offset + shift
    end = pos + cd_size
    while pos + 46 <= end and bytes(view[pos:pos + 4]) == b"PK\x01\x02":
        fields = struct.unpack("<IHHHHHHIIIHHHHHII", view[pos:pos + 46])
        flags, method, crc, csize, usize = fields[3], fields[4], fields[7], fields[8], fields[9]
        n, m, k, offset = fields[10], fields[11], fields[12], fields[16]
        if pos + 46 + n + m + k > end:
            break
        raw_name = bytes(view[pos + 46:pos + 46 + n])
        extra = bytes(view[pos + 46 + n:pos + 46 + n + m])
        usize, csize, offset = _zip64(extra, usize, csize, offset)
        name = _zip_name(raw_name, flags)
        entries.append(_ZipEntry(name, flags, method, crc, csize, usize, offset + shift))
        pos += 46 + n + m + k
    if len(entries) != count or pos != end:
        result.add("zip-bad-central-directory", "error",
                   f"the central directory lists {len(entries)} readable entries of the {count} it "
                   "declares; members read from their local headers as well")
        known = {e.header_offset for e in entries}
        entries.extend(e for e in _local_headers(view, None) if e.header_offset not in known)
    return entries


def _zip64(extra: bytes, usize: int, csize: int, offset: int) -> tuple[int, int, int]:
    pos = 0
    while pos + 4 <= len(extra):
        tag, length = struct.unpack("<HH", extra[pos:pos + 4])
        if tag == 1:
            data = extra[pos + 4:pos + 4 + length]
            values = [struct.unpack("<Q", data[i:i + 8])[0] for i in range(0, len(data) - 7, 8)]
            if usize == 0xFFFFFFFF and values:
                usize = values.pop(0)
            if csize == 0xFFFFFFFF and values:
                csize = values.pop(0)
            if offset == 0xFFFFFFFF and values:
                offset = values.pop(0)
        pos += 4 + length
    return usize, csize, offset


def _zip_name(raw: bytes, flags: int) -> str:
    if flags & 0x800:
        return raw.decode("utf-8", "replace")
    return raw.decode("cp437")


def _local_headers(view: _PreadView, result: _Result | None) -> list[_ZipEntry]:
    """Members found by walking local headers from the start, as a streaming loader would."""
    entries: list[_ZipEntry] = []
    pos = 0
    size = len(view)
    while pos + 30 <= size and bytes(view[pos:pos + 4]) == b"PK\x03\x04":
        fields = struct.unpack("<IHHHHHIIIHH", view[pos:pos + 30])
        flags, method, crc, csize, usize, n, m = (fields[2], fields[3], fields[6], fields[7], fields[8],
                                                 fields[9], fields[10])
        raw_name = bytes(view[pos + 30:pos + 30 + n])
        extra = bytes(view[pos + 30 + n:pos + 30 + n + m])
        usize, csize, _ = _zip64(extra, usize, csize, 0)
        entries.append(_ZipEntry(_zip_name(raw_name, flags), flags, method, crc, csize, usize, pos))
        if flags & 0x8 and csize == 0:
            if result is not None:
                result.add("zip-no-central-directory", "error",
                           f"member {_zip_name(raw_name, flags)!r} has its size only in a data descriptor "
                           "and there is no central directory: the rest of the archive cannot be read")
            break
        pos += 30 + n + m + csize
        if flags & 0x8:  # data descriptor, optionally signed
            pos += 16 if bytes(view[pos:pos + 4]) == b"PK\x07\x08" else 12
    return entries


def _scan_zip_member(view: _PreadView, fd: int, entry: _ZipEntry, result: _Result, torchscript: bool) -> None:
    name = entry.name
    pos = entry.header_offset
    if pos + 30 > len(view) or bytes(view[pos:pos + 4]) != b"PK\x03\x04":
        result.add("zip-bad-local-header", "error",
                   f"member {name!r}: no local header at offset {pos}; cannot be read", name)
        return
    fields = struct.unpack("<IHHHHHIIIHH", view[pos:pos + 30])
    local_flags, local_method, n, m = fields[2], fields[3], fields[9], fields[10]
    local_name = _zip_name(bytes(view[pos + 30:pos + 30 + n]), local_flags)
    if local_name != name:
        result.add("zip-name-mismatch", "error",
                   f"the central directory names member {name!r} but its local header says {local_name!r}: "
                   "loaders disagree on what the member is", name)
    if local_method != entry.method or (local_flags & ~0x8) != (entry.flags & ~0x8):
        result.add("zip-header-mismatch", "error",
                   f"member {name!r}: local header (method {local_method}, flags 0x{local_flags:x}) differs "
                   f"from the central directory (method {entry.method}, flags 0x{entry.flags:x})", name)
    flags = entry.flags | local_flags
    unusual = flags & ~(_ZIP_FLAGS_USUAL | _ZIP_FLAG_ENCRYPTED)
    if unusual:
        result.add("zip-unusual-flags", "error",
                   f"member {name!r} has unusual flag bits 0x{unusual:x} "
                   f"({_flag_names(unusual)}): a scanner evasion, since loaders ignore them", name)
    start = pos + 30 + n + m
    end = start + entry.compressed_size
    if end > len(view):
        result.add("zip-bad-member", "error",
                   f"member {name!r}: {entry.compressed_size} bytes at offset {start} run past the end of "
                   "the file", name)
        return
    method = entry.method
    if method == 0 and entry.compressed_size != entry.size and not flags & _ZIP_FLAG_ENCRYPTED:
        result.add("zip-size-mismatch", "error",
                   f"member {name!r} is stored with {entry.compressed_size} bytes but declares {entry.size}",
                   name)
    if method not in (0, 8, 12):
        result.add("zip-unsupported-compression", "error",
                   f"member {name!r} uses compression method {method}, which cannot be read here", name)
        return
    if method == 8 and entry.size > max(entry.compressed_size, 1) * MAX_DEFLATE_RATIO:
        result.add("zip-size-mismatch", "error",
                   f"member {name!r} claims {entry.size} bytes from {entry.compressed_size} compressed: "
                   "more than deflate can produce (a decompression bomb)", name)
        return

    def open_member() -> BinaryIO:
        body = io.BufferedReader(_FileSlice(fd, start, end - start), buffer_size=1 << 16)
        if method == 0:
            return body
        kind = "deflate" if method == 8 else "bz2"
        return io.BufferedReader(_Inflater(body, kind, limit=entry.size + 1), buffer_size=1 << 16)

    crc, length, error = _checksum(open_member)
    encrypted = bool(flags & (_ZIP_FLAG_ENCRYPTED | _ZIP_FLAG_STRONG_ENCRYPTION))
    readable = error is None and crc == entry.crc and length == entry.size
    if encrypted and not readable:
        result.add("zip-encrypted-member", "error",
                   f"member {name!r} is encrypted: its contents cannot be read, so cannot be scanned", name)
        return
    if encrypted:
        result.add("zip-encrypted-flag", "error",
                   f"member {name!r} is flagged encrypted but is stored in the clear (its CRC matches): a "
                   "scanner evasion, since loaders that ignore the flag read it", name)
    elif error is not None:
        result.add("zip-bad-member", "error", f"member {name!r} cannot be decompressed: {error}", name)
        return
    elif crc != entry.crc:
        result.add("zip-bad-crc", "error",
                   f"member {name!r} has CRC-32 {crc:08x} but the archive records {entry.crc:08x}: "
                   "altered after it was written", name)
    elif length != entry.size:
        result.add("zip-size-mismatch", "error",
                   f"member {name!r} holds {length} bytes but declares {entry.size}", name)
    _scan_member_content(open_member, name, result, torchscript, length)


def _flag_names(bits: int) -> str:
    names = {0x20: "compressed patched data", 0x40: "strong encryption", 0x2000: "masked central directory"}
    found = [names.get(1 << i, f"bit {i}") for i in range(16) if bits & (1 << i)]
    return ", ".join(found)


class _OSErrors(io.RawIOBase):
    """A decompressing file whose every failure (corrupt, truncated) surfaces as OSError, which the
    scanner reports as a truncated pickle, keeping what it found before."""

    def __init__(self, inner: BinaryIO) -> None:
        self._inner = inner

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:  # type: ignore[override]
        try:  # read1: what one step decompressed, so the bytes before a corrupt point still arrive
            data = self._inner.read1(len(buffer))  # type: ignore[attr-defined]
            buffer[:len(data)] = data
            return len(data)
        except (OSError, EOFError, zlib.error, lzma.LZMAError) as exc:
            raise OSError(f"compressed data is corrupt or truncated: {exc}") from None

    def close(self) -> None:
        self._inner.close()
        super().close()


class _FileSlice(io.RawIOBase):
    """Bytes ``start:start+length`` of an open file, read with pread: nothing is mapped or kept, so
    checking a multi-GB archive's CRCs costs a buffer, not the file's size in resident pages."""

    def __init__(self, fd: int, start: int, length: int) -> None:
        self._fd = fd
        self._start = start
        self._length = length
        self._pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._length}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def readinto(self, buffer) -> int:  # type: ignore[override]
        n = max(0, min(len(buffer), self._length - self._pos))
        if n == 0:
            return 0
        if hasattr(os, "preadv"):
            got = os.preadv(self._fd, [memoryview(buffer)[:n]], self._start + self._pos)
        else:  # pragma: no cover - platforms without preadv
            data = os.pread(self._fd, n, self._start + self._pos)
            got = len(data)
            buffer[:got] = data
        self._pos += got
        return got


class _ViewStream(io.RawIOBase):
    """A zero-copy readable stream over a memoryview slice of the mapped file."""

    def __init__(self, view: memoryview) -> None:
        self._view = view
        self._pos = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:  # type: ignore[override]
        n = min(len(buffer), len(self._view) - self._pos)
        buffer[:n] = self._view[self._pos:self._pos + n]
        self._pos += n
        return n


def _checksum(open_member: Callable[[], BinaryIO]) -> tuple[int, int, str | None]:
    """CRC-32 and length of a member's content, read through once in 1 MiB chunks."""
    crc = 0
    length = 0
    try:
        with open_member() as source:
            while chunk := source.read(CHUNK):
                crc = zlib.crc32(chunk, crc)
                length += len(chunk)
    except OSError as exc:
        return crc, length, str(exc)
    return crc, length, None


def _as_stream(view: memoryview) -> BinaryIO:
    return io.BufferedReader(_ViewStream(view), buffer_size=1 << 16)


def _scan_member_content(open_member: Callable[[], BinaryIO], name: str, result: _Result,
                         torchscript: bool, size: int) -> None:
    """Scan a member as what its bytes say it is: .npy, pickle, or data (not a pickle: ignored)."""
    with open_member() as source:
        head = source.read(SNIFF_BYTES)
    if head.startswith(b"\x93NUMPY"):
        _scan_npy(open_member, name, result, size)
        return
    named = name.endswith(PICKLE_MEMBER_SUFFIXES)
    if not (named or sniff_pickle(head)):
        return
    with open_member() as source:
        scan = scan_pickle(source, torchscript=torchscript)
    result.merge(scan, name, lenient=not named and not scan.globals)
    if not named and scan.pickles and not name.endswith("/data.pkl"):
        result.add("zip-disguised-pickle", "warning",
                   f"member {name!r} is a pickle under a name that does not say so (scanned all the same)",
                   name)


# --------------------------------------------------------------------------------------------
# npy


def _scan_npy(open_stream: Callable[[], BinaryIO], member: str | None, result: _Result, size: int) -> None:
    """A .npy file: its header; an object dtype means the rest is a pickle of the array."""
    with open_stream() as stream:
        header = _npy_header(stream, size)
        if isinstance(header, str):
            result.add("npy-malformed", "error", header, member)
            return
        data_start, dtype, shape = header
        if dtype.hasobject:
            scan = scan_pickle(stream)
            result.merge(scan, member, label="object array")
            if member is None:
                result.members.append("(object array)")
            return
    expected = math.prod(shape) * dtype.itemsize
    if data_start + expected != size:
        result.add("npy-size-mismatch", "error",
                   f"header declares {expected} bytes of {dtype} data in shape {shape}, but "
                   f"{size - data_start} follow", member)


def _npy_header(stream: BinaryIO, size: int):
    """(data offset, dtype, shape) or a message saying what is wrong."""
    import numpy as np

    prefix = stream.read(10)
    if len(prefix) < 10:
        return "the .npy header is truncated"
    major = prefix[6]
    if major == 1:
        length = struct.unpack("<H", prefix[8:10])[0]
        start = 10
    elif major in (2, 3):
        rest = stream.read(2)
        if len(rest) < 2:
            return "the .npy header is truncated"
        length = struct.unpack("<I", prefix[8:10] + rest)[0]
        start = 12
    else:
        return f"unknown .npy format version {major}"
    if length > 1 << 20 or start + length > size:
        return f".npy header length {length} is past the end of the data or absurdly large"
    text = stream.read(length)
    try:
        header = ast.literal_eval(text.decode("utf-8" if major == 3 else "latin-1"))
        descr, shape = header["descr"], tuple(header["shape"])
        dtype = np.dtype(descr)
    except (ValueError, SyntaxError, KeyError, TypeError, UnicodeDecodeError, MemoryError, RecursionError):
        return "the .npy header is not a valid {'descr', 'fortran_order', 'shape'} dictionary"
    if not all(isinstance(d, int) and d >= 0 for d in shape):
        return f"the .npy shape {shape!r} is not a tuple of non-negative integers"
    return start + length, dtype, shape


# --------------------------------------------------------------------------------------------
# Other containers


def _scan_compressed(kind: str, reopen: Callable[[], BinaryIO]) -> _Result:
    """A whole-file-compressed pickle (joblib's compress= option): decompress as a stream."""
    result = _Result(f"joblib-{kind}" if kind != "joblib-zfile" else "joblib-zfile")
    with reopen() as raw:
        if kind == "gzip":
            stream: BinaryIO = _OSErrors(gzip.GzipFile(fileobj=raw, mode="rb"))
        elif kind == "bz2":
            stream = _OSErrors(bz2.BZ2File(raw))
        elif kind in ("xz", "lzma"):
            stream = _OSErrors(lzma.LZMAFile(raw))
        else:
            if kind == "joblib-zfile":
                raw.seek(21)  # b"ZF" + the length as hex, padded to 19 bytes
            stream = io.BufferedReader(_Inflater(raw, "zlib"), buffer_size=1 << 16)
        with stream:
            scan = scan_pickle(stream)
    result.merge(scan)
    return result


def _scan_tar(reopen: Callable[[], BinaryIO]) -> _Result:
    """A tar archive (the oldest torch.save format): every member that is, or looks like, a pickle."""
    result = _Result("tar")
    with reopen() as raw:
        try:
            with tarfile.open(fileobj=raw, mode="r:") as archive:
                for info in archive:
                    if not info.isfile():
                        continue
                    member = archive.extractfile(info)
                    if member is None:
                        continue
                    head = member.read(SNIFF_BYTES)
                    named = info.name.endswith(PICKLE_MEMBER_SUFFIXES) or info.name in (
                        "pickle", "storages", "tensors", "sys_info")
                    if not (named or sniff_pickle(head)):
                        continue
                    scan = scan_pickle(archive.extractfile(info))  # type: ignore[arg-type]
                    result.merge(scan, info.name, lenient=not named and not scan.globals)
        except (tarfile.TarError, OSError, EOFError) as exc:
            result.add("tar-malformed", "error", f"the tar archive cannot be read: {exc}")
    return result


def _scan_safetensors(view: memoryview) -> _Result:
    result = _Result("safetensors")
    size = len(view)
    try:
        n = header_length(bytes(view[:8]), size)
        parse_layout(bytes(view[8:8 + n]), size)
    except SafetensorsError as exc:
        for finding in exc.findings:
            rule = getattr(finding, "rule", None) or "safetensors-invalid"
            result.add(rule if rule.startswith("safetensors") else f"safetensors-{rule}", "error",
                       getattr(finding, "message", None) or str(finding))
    return result


def _scan_unreadable_archive(view: memoryview, fmt: str, why: str) -> _Result:
    """An archive we cannot open: say so (an error), and look for pickles stored in it uncompressed."""
    result = _Result(fmt)
    result.add("archive-unreadable", "error", why)
    limit = min(len(view), EMBEDDED_SEARCH_LIMIT)
    data = bytes(view[:limit])
    at = data.find(b"\x80")
    tried = 0
    while 0 <= at < limit - 1 and tried < EMBEDDED_MAX_CANDIDATES:
        if data[at + 1] <= 5:
            tried += 1
            scan = scan_pickle(view[at:limit])
            if scan.globals:
                kept = tuple(f for f in scan.findings
                             if f.rule in DANGEROUS_RULES or f.rule == "unknown-global")
                result.merge(replace(scan, findings=kept), None, label=f"a pickle embedded at offset {at}")
        at = data.find(b"\x80", at + 1)
    return result
