"""Where bytes come from: one module per source kind, all behind the same small interface.

A source offers one or more *candidates* (a URL and each of its mirrors, apt then the .deb's
URLs); each candidate writes the pinned file's bytes into a :class:`Sink`. The caller decides
whether the bytes are right: nothing here trusts what a server or an archive says.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from ..core.digest import Digest, StreamHasher
from ..core.recipe import DebSource, PathSource, PypiSource, Source, UrlSource

Progress = Callable[[str, int, "int | None"], None]


class Sink(Protocol):
    """Where a candidate writes; ``offset`` bytes are already held from an earlier attempt."""

    @property
    def offset(self) -> int: ...

    def write(self, data: bytes | bytearray | memoryview) -> None: ...

    def restart(self) -> None: ...


@dataclass
class FetchContext:
    """What every source needs besides the source itself."""

    recipe_dir: Path
    workdir: Path
    connect_timeout: float = 10.0
    read_timeout: float = 60.0
    progress: Progress | None = None
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
    """A sink onto a scratch file, hashing as it writes (outer archives, source comparisons)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file = open(path, "wb", buffering=0)
        self._hasher = StreamHasher()

    @property
    def offset(self) -> int:
        return self._hasher.size

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self._file.write(data)
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


def candidates(source: Source, ctx: FetchContext) -> list[Candidate]:
    """The ways ``source`` can deliver its file, in the order to try them."""
    from . import deb, path, pypi, url

    if isinstance(source, PathSource):
        return path.candidates(source, ctx)
    if isinstance(source, UrlSource):
        return url.candidates(source, ctx)
    if isinstance(source, PypiSource):
        return pypi.candidates(source, ctx)
    if isinstance(source, DebSource):
        return deb.candidates(source, ctx)
    raise TypeError(f"unknown source {source!r}")


def remove_quietly(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
