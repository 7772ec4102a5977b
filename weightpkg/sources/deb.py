"""A member of a Debian package: the .deb from apt (or URLs of it), then its data.tar."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

from ..core.recipe import DebSource
from ..errors import FetchError, UnsafeArchiveError
from . import Candidate, FetchContext, FileSink, Sink, check_pinned_file, copy_into
from .archive import extract_chain
from .url import download

_AR_MAGIC = b"!<arch>\n"
_AR_HEADER = 60


def candidates(source: DebSource, ctx: FetchContext) -> list[Candidate]:
    spec = f"{source.package}={source.version}"
    found = [Candidate(f"deb {spec} via apt-get", _extractor(source, ctx, lambda: _apt(source, ctx)))]
    for url in source.urls:
        found.append(
            Candidate(f"deb {spec} from {url}", _extractor(source, ctx, _from_url(url, source, ctx)))
        )
    return found


def _extractor(source: DebSource, ctx: FetchContext, get_deb: Callable[[], Path]):
    def fetch(sink: Sink) -> None:
        deb = get_deb()
        check_pinned_file(deb, source.sha256, source.size, f"package {deb.name}")
        extract_deb_member(deb, source.member, sink, ctx, f"deb {source.package}")

    return fetch


def _apt(source: DebSource, ctx: FetchContext) -> Path:
    what = f"apt-get download {source.package}={source.version}"
    apt = shutil.which("apt-get")
    if apt is None:
        raise FetchError(what, ["apt-get is not installed here"])
    dest = ctx.scratch(f"deb-{source.sha256.hex[:16]}")
    for old in dest.glob("*.deb"):
        old.unlink()
    name = source.package
    if source.architecture and source.architecture != "all":
        name += f":{source.architecture}"
    try:
        done = subprocess.run(
            [apt, "download", "-q", f"{name}={source.version}"],
            cwd=dest,
            capture_output=True,
            text=True,
            check=False,
            timeout=3600,
        )
    except OSError as exc:
        raise FetchError(what, [f"cannot run apt-get: {exc.strerror}"]) from None
    except subprocess.TimeoutExpired:
        raise FetchError(what, ["apt-get did not finish within an hour"]) from None
    debs = sorted(dest.glob("*.deb"))
    if done.returncode != 0 or not debs:
        lines = [ln.strip() for ln in done.stderr.splitlines() if ln.startswith("E:")]
        reason = lines[0].removeprefix("E: ") if lines else (done.stderr.strip() or "no .deb")
        unknown = ("Unable to locate package", "Can't select", "has no installation candidate")
        if any(text in reason for text in unknown):
            reason += " (apt has no such package in its lists; run 'apt-get update' or add the suite)"
        raise FetchError(what, [f"apt-get: {reason}"])
    return debs[0]


def _from_url(url: str, source: DebSource, ctx: FetchContext) -> Callable[[], Path]:
    def get() -> Path:
        path = ctx.scratch(f"deb-{source.sha256.hex[:16]}") / f"{source.package}.deb"
        with FileSink(path, limit=source.size) as sink:
            download(url, sink, ctx)
        return path

    return get


def _ar_members(deb: Path) -> dict[str, tuple[int, int]]:
    """Name → (offset, size) of each member of an ar archive (the .deb container)."""
    members: dict[str, tuple[int, int]] = {}
    size = deb.stat().st_size
    with open(deb, "rb") as handle:
        if handle.read(8) != _AR_MAGIC:
            raise UnsafeArchiveError(deb.name, "", "not a Debian package (no ar header)")
        position = 8
        while position + _AR_HEADER <= size:
            handle.seek(position)
            header = handle.read(_AR_HEADER)
            if header[58:60] != b"`\n":
                raise UnsafeArchiveError(deb.name, "", f"corrupt ar header at byte {position}")
            name = header[:16].decode("ascii", "replace").strip().rstrip("/")
            try:
                length = int(header[48:58].decode("ascii").strip())
            except ValueError:
                raise UnsafeArchiveError(deb.name, name, "corrupt ar member size") from None
            start = position + _AR_HEADER
            if start + length > size:
                raise UnsafeArchiveError(deb.name, name, "member runs past the end of the file")
            if name in members:
                raise UnsafeArchiveError(deb.name, name, "appears twice in the package")
            members[name] = (start, length)
            position = start + length + (length & 1)
    return members


def extract_deb_member(
    deb: Path, members: tuple[str, ...], sink: Sink, ctx: FetchContext, label: str
) -> None:
    """Stream ``members[0]`` of the package's data.tar (then any nested members) into ``sink``."""
    tar_path, name = deb_part(deb, "data", ctx, label)
    extract_chain(tar_path, members, sink, ctx, label, shown=f"{deb.name}!/{name}")


def deb_part(deb: Path, part: str, ctx: FetchContext, label: str) -> tuple[Path, str]:
    """The package's ``data.tar*`` or ``control.tar*`` (``part``), copied to scratch space, and
    its name in the package; UnsafeArchiveError when there is not exactly one, or it is zstd."""
    ar = _ar_members(deb)
    found = sorted(n for n in ar if n.startswith(f"{part}.tar"))
    if not found:
        raise UnsafeArchiveError(deb.name, f"{part}.tar", f"the package has no {part}.tar member")
    if len(found) > 1:
        raise UnsafeArchiveError(deb.name, found[1], f"a second {part} member beside {found[0]}")
    name = found[0]
    if name.endswith(".zst"):
        raise UnsafeArchiveError(deb.name, name, f"zstd-compressed {part}.tar is not supported yet")
    offset, length = ar[name]
    tar_path = ctx.scratch(f"deb-{part}") / f"{deb.stem}.{name}"
    with open(deb, "rb", buffering=0) as handle, FileSink(tar_path, limit=length) as out:
        handle.seek(offset)
        copy_into(_Window(handle, length), out, label, ctx, length)
    return tar_path, name


class _Window:
    """A read-only view of ``length`` bytes of an open file from its current position."""

    def __init__(self, handle, length: int) -> None:
        self._handle = handle
        self._left = length

    def readinto(self, buf: bytearray) -> int:
        if self._left <= 0:
            return 0
        view = memoryview(buf)[: min(len(buf), self._left)]
        n = self._handle.readinto(view)
        self._left -= n
        return n
