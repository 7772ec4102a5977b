"""Where bytes come from: one module per source kind, all behind the same small interface.

A source offers one or more *candidates* (a URL and each of its mirrors, apt then the .deb's
URLs); each candidate writes the pinned file's bytes into a :class:`Sink`. The caller decides
whether the bytes are right: nothing here trusts what a server or an archive says.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from ..core.digest import Digest, StreamHasher, chunk_buffer, hash_stream
from ..core.recipe import DebSource, HfSource, PathSource, PypiSource, RecipeSource, Source, UrlSource
from ..errors import IntegrityError, UsageError
from ..store import write_all

Progress = Callable[[str, int, "int | None"], None]


class Sink(Protocol):
    """Where a candidate writes; ``offset`` bytes are already held from an earlier attempt."""

    @property
    def offset(self) -> int: ...

    def write(self, data: bytes | bytearray | memoryview) -> None: ...

    def restart(self) -> None: ...


def seconds_from_env(name: str, default: float) -> float:
    """A timeout a distro build may set in the environment (a slow mirror, a flaky link)."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise UsageError(f"{name}={raw!r}: expected a positive number of seconds")
    return value


@dataclass
class FetchContext:
    """What every source needs besides the source itself."""

    recipe_dir: Path
    workdir: Path
    #: Seconds to wait for a connection, and for the next bytes of an answer (a stall longer than
    #: that drops the attempt; it is retried and resumed): ``WEIGHTPKG_CONNECT_TIMEOUT`` and
    #: ``WEIGHTPKG_READ_TIMEOUT`` override them.
    connect_timeout: float = field(
        default_factory=lambda: seconds_from_env("WEIGHTPKG_CONNECT_TIMEOUT", 10.0)
    )
    read_timeout: float = field(default_factory=lambda: seconds_from_env("WEIGHTPKG_READ_TIMEOUT", 60.0))
    progress: Progress | None = None
    #: Whether a source may answer from a local cache of its own (the user's Hugging Face cache):
    #: off while sources are compared, since the point is what each source itself delivers.
    local_caches: bool = True
    #: The recipe files a chain of recipe sources went through, to refuse a loop.
    recipe_chain: tuple[Path, ...] = ()
    _session: Any = field(default=None, repr=False)
    _cache: dict[str, Path] = field(default_factory=dict, repr=False)

    @property
    def session(self) -> Any:
        if self._session is None:
            import requests

            from .. import __version__

            self._session = requests.Session()
            self._session.headers["User-Agent"] = f"weightpkg/{__version__}"
        return self._session

    def cached(self, key: str) -> Path | None:
        """A file fetched earlier in this run (a wheel several members come from)."""
        return self._cache.get(key)

    def remember(self, key: str, path: Path) -> None:
        self._cache[key] = path

    def scratch(self, name: str) -> Path:
        path = self.workdir / name
        path.mkdir(parents=True, exist_ok=True)
        return path

    def report(self, label: str, done: int, total: int | None) -> None:
        if self.progress is not None:
            self.progress(label, done, total)


@dataclass(frozen=True)
class Candidate:
    """One concrete way to get the bytes; ``label`` names it in messages."""

    label: str
    fetch: Callable[[Sink], None]


class FileSink:
    """A sink onto a scratch file, hashing as it writes (outer archives, source comparisons).

    ``limit`` bounds what a server or archive can make it hold.
    """

    def __init__(self, path: Path, limit: int | None = None) -> None:
        self.path = path
        self.limit = limit
        self._file = open(path, "wb", buffering=0)
        self._hasher = StreamHasher()

    @property
    def offset(self) -> int:
        return self._hasher.size

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self.limit is not None and self._hasher.size + len(data) > self.limit:
            raise IntegrityError(
                self.path.name,
                kind="size",
                expected=f"{self.limit} bytes",
                actual=f"more than {self.limit} bytes",
            )
        write_all(self._file, data)  # a raw write on a filling disk may take only part
        self._hasher.update(data)

    def restart(self) -> None:
        self._file.seek(0)
        self._file.truncate(0)
        self._hasher = StreamHasher()

    def digest(self) -> tuple[Digest, int]:
        return self._hasher.digest(), self._hasher.size

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> FileSink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def copy_into(handle: Any, sink: Sink, label: str, ctx: FetchContext, total: int | None) -> None:
    """Stream a binary file object into ``sink`` through one reused, page-aligned buffer."""
    buf = chunk_buffer()
    view = memoryview(buf)
    while n := handle.readinto(buf):
        sink.write(view[:n])
        ctx.report(label, sink.offset, total)


def candidates(source: Source, ctx: FetchContext) -> list[Candidate]:
    """The ways ``source`` can deliver its file, in the order to try them."""
    from . import deb, hf, path, pypi, recipe, url

    if isinstance(source, PathSource):
        return path.candidates(source, ctx)
    if isinstance(source, UrlSource):
        return url.candidates(source, ctx)
    if isinstance(source, PypiSource):
        return pypi.candidates(source, ctx)
    if isinstance(source, DebSource):
        return deb.candidates(source, ctx)
    if isinstance(source, HfSource):
        return hf.candidates(source, ctx)
    if isinstance(source, RecipeSource):
        return recipe.candidates(source, ctx)
    raise TypeError(f"unknown source {source!r}")


def check_pinned_file(path: Path, digest: Digest, size: int | None, what: str) -> None:
    """IntegrityError unless the file at ``path`` is exactly the pinned bytes."""
    actual_size = path.stat().st_size
    if size is not None and actual_size != size:
        raise IntegrityError(what, kind="size", expected=f"{size} bytes", actual=f"{actual_size} bytes")
    with open(path, "rb", buffering=0) as handle:
        actual, _ = hash_stream(handle)
    if actual != digest:
        raise IntegrityError(what, expected=digest.hex, actual=actual.hex)
