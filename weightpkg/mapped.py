"""Files mapped into memory read-only, for the checks that must not read multi-GB files whole
(pickle scanning, tensor comparison, content digests): the pages they touch stay page cache."""

from __future__ import annotations

import contextlib
import mmap
import os
import stat
from collections.abc import Iterator
from pathlib import Path

from .errors import UsageError


@contextlib.contextmanager
def mapped_file(path: Path) -> Iterator[tuple[mmap.mmap | bytes, int]]:
    """The whole file as a read-only buffer, and its descriptor: an mmap, or ``b""`` for an
    empty file (which cannot be mapped). UsageError names the file when it cannot be used."""
    try:
        handle = open(path, "rb")
    except FileNotFoundError:
        raise UsageError(f"{path}: cannot read: no such file") from None
    except IsADirectoryError:
        raise UsageError(f"{path}: is a directory, not a file") from None
    except OSError as exc:
        raise UsageError(f"{path}: cannot read: {exc.strerror or exc}") from None
    with handle:
        try:
            info = os.fstat(handle.fileno())
        except OSError as exc:
            raise UsageError(f"{path}: cannot read: {exc.strerror or exc}") from None
        if not stat.S_ISREG(info.st_mode):
            raise UsageError(f"{path}: not a regular file")
        if info.st_size == 0:
            yield b"", handle.fileno()
            return
        try:
            mapped = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
        except (OSError, ValueError) as exc:
            raise UsageError(f"{path}: cannot read: {exc}") from None
        try:
            yield mapped, handle.fileno()
        finally:
            with contextlib.suppress(BufferError):  # a view still referenced closes with the map
                mapped.close()
