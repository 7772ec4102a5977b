"""Read one named member out of a zip or tar archive (nested archives too), refusing tricks.

Only the member the recipe names is ever read, and never written under a name the archive
chooses, so nothing can be extracted outside its place; links, encrypted entries, duplicate
names and CRC errors are refused rather than skipped.
"""

from __future__ import annotations

import contextlib
import lzma
import posixpath
import stat
import tarfile
import zipfile
import zlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO

from ..core.recipe import unsafe_relpath
from ..errors import UnsafeArchiveError
from . import FetchContext, FileSink, Sink, copy_into


def extract_chain(
    archive: Path,
    members: Sequence[str],
    sink: Sink,
    ctx: FetchContext,
    label: str,
    shown: str | None = None,
) -> None:
    """Follow ``members`` through nested archives and stream the last one into ``sink``;
    ``shown`` names the outermost archive in messages (default: its file name)."""
    current = archive
    shown = shown or archive.name
    for depth, member in enumerate(members):
        last = depth == len(members) - 1
        with open_member(current, member, shown) as (handle, size):
            if last:
                if sink.offset:
                    sink.restart()
                copy_into(handle, sink, label, ctx, size)
                return
            nested = ctx.scratch("nested") / f"{depth}-{Path(member).name}"
            with FileSink(nested, limit=size) as scratch:
                copy_into(handle, scratch, label, ctx, size)
        current = nested
        shown = f"{shown}!/{member}"


@contextlib.contextmanager
def open_member(archive: Path, member: str, shown: str) -> Iterator[tuple[CheckedStream, int]]:
    """The member's bytes as a stream and its size; UnsafeArchiveError when it cannot be trusted."""
    if why := unsafe_relpath(member):  # a name like '../x' or '/x' is refused whoever asks for it
        raise UnsafeArchiveError(shown, member, f"the name {why}")
    with open(archive, "rb") as probe:
        magic = probe.read(4)
    if magic.startswith(b"PK\x03\x04") or magic.startswith(b"PK\x05\x06"):
        with _zip_member(archive, member, shown) as found:
            yield found
        return
    if tarfile.is_tarfile(archive):
        with _tar_member(archive, member, shown) as found:
            yield found
        return
    raise UnsafeArchiveError(shown, member, "the archive is neither zip nor tar")


@contextlib.contextmanager
def _zip_member(archive: Path, member: str, shown: str) -> Iterator[tuple[CheckedStream, int]]:
    try:
        zf = zipfile.ZipFile(archive)
    except zipfile.BadZipFile as exc:
        raise UnsafeArchiveError(shown, member, f"not a readable zip: {exc}") from None
    with zf:
        infos = [i for i in zf.infolist() if i.filename == member]
        if not infos:
            raise UnsafeArchiveError(shown, member, _missing(member, zf.namelist()))
        names = [i.filename for i in zf.infolist()]
        aliases = [n for n in names if n != member and extracted_as(n) == member]
        if len(infos) > 1 or aliases:
            times = f"appears {len(infos) + len(aliases)} times in the archive"
            raise UnsafeArchiveError(shown, member, times + _also(aliases))
        info = infos[0]
        mode = info.external_attr >> 16
        if info.is_dir():
            raise UnsafeArchiveError(shown, member, "is a directory")
        if stat.S_ISLNK(mode):
            raise UnsafeArchiveError(shown, member, "is a symbolic link; name its target instead")
        if info.flag_bits & 0x1:
            raise UnsafeArchiveError(shown, member, "is encrypted")
        try:
            handle = zf.open(info)
        except (zipfile.BadZipFile, NotImplementedError, RuntimeError) as exc:
            raise UnsafeArchiveError(shown, member, f"cannot be read: {exc}") from None
        try:
            yield CheckedStream(handle, shown, member), info.file_size
        finally:
            handle.close()


#: What a corrupt member raises while it is read: bad CRC, broken deflate/xz/bz2 streams.
CORRUPTION = (zipfile.BadZipFile, tarfile.TarError, EOFError, OSError, zlib.error, lzma.LZMAError, ValueError)


class CheckedStream:
    """A member's stream whose corruption errors become UnsafeArchiveError."""

    def __init__(self, handle: IO[bytes], shown: str, member: str) -> None:
        self._handle = handle
        self._shown = shown
        self._member = member

    def readinto(self, buf: bytearray) -> int:
        try:
            data = self._handle.read(len(buf))
        except CORRUPTION as exc:
            raise UnsafeArchiveError(self._shown, self._member, f"corrupt: {exc}") from None
        buf[: len(data)] = data
        return len(data)


@contextlib.contextmanager
def _tar_member(archive: Path, member: str, shown: str) -> Iterator[tuple[CheckedStream, int]]:
    try:
        tf = tarfile.open(archive, "r:*")
    except CORRUPTION as exc:
        raise UnsafeArchiveError(shown, member, f"not a readable tar: {exc}") from None
    with tf:
        yield open_tar_member(tf, member, shown)


def tar_name(name: str) -> str:
    """Tar names as recipes write them: without a leading './'."""
    while name.startswith("./"):
        name = name[2:]
    return name


def open_tar_member(tf: tarfile.TarFile, member: str, shown: str) -> tuple[CheckedStream, int]:
    """Find ``member`` in an open tar and check it is there once, as one plain file."""
    wanted = tar_name(member)
    found: tarfile.TarInfo | None = None
    names: list[str] = []
    aliases: list[str] = []
    try:
        for info in tf:
            name = tar_name(info.name)
            names.append(name)
            if name == wanted:
                if found is not None:
                    raise UnsafeArchiveError(shown, member, "appears twice in the archive")
                found = info
            elif extracted_as(info.name) == wanted:
                aliases.append(info.name)
    except CORRUPTION as exc:
        raise UnsafeArchiveError(shown, member, f"corrupt tar: {exc}") from None
    if found is None:
        raise UnsafeArchiveError(shown, member, _missing(wanted, names))
    if aliases:
        raise UnsafeArchiveError(shown, member, "appears twice in the archive" + _also(aliases))
    if found.issym() or found.islnk():
        raise UnsafeArchiveError(shown, member, f"is a link to {found.linkname!r}; name its target instead")
    if not found.isfile():
        raise UnsafeArchiveError(shown, member, "is not a regular file")
    handle = tf.extractfile(found)
    if handle is None:  # pragma: no cover - isfile() above rules this out
        raise UnsafeArchiveError(shown, member, "cannot be read")
    return CheckedStream(handle, shown, member), found.size


def extracted_as(name: str) -> str:
    """The file an extractor writes for the member ``name``: '\\' read as '/' (as on Windows), and
    '.', '..', '//' and a leading '/' resolved away (as zipfile, pip and tar's filters do). Two
    members that land on one file are one name twice: which of them did the check read?"""
    return posixpath.normpath("/" + name.replace("\\", "/")).lstrip("/")


def _also(aliases: list[str]) -> str:
    return f" (also as {', '.join(repr(a) for a in aliases[:3])})" if aliases else ""


def _missing(member: str, names: list[str]) -> str:
    import difflib

    close = difflib.get_close_matches(member, names, n=1, cutoff=0.6)
    return f"no such member; did you mean {close[0]!r}?" if close else "no such member"
