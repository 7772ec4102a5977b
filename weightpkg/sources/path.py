"""Files shipped beside the recipe; the path may not leave the recipe's folder, even by symlink."""

from __future__ import annotations

from pathlib import Path

from ..core.digest import chunk_buffer
from ..core.recipe import PathSource, unsafe_relpath
from ..errors import FetchError
from . import Candidate, FetchContext, Sink


def resolve_inside(base: Path, relative: str) -> Path:
    """``base/relative`` with symlinks resolved; FetchError if it ends up outside ``base``."""
    if why := unsafe_relpath(relative):
        raise FetchError(f"path {relative}", [f"the path {why}"])
    root = base.resolve()
    target = (root / relative).resolve()
    if not target.is_relative_to(root):
        raise FetchError(f"path {relative}", [f"resolves to {target}, outside the recipe's folder {root}"])
    return target


def copy_into(handle: object, sink: Sink, label: str, ctx: FetchContext, total: int | None) -> None:
    """Stream a binary file object into ``sink`` through one reused buffer."""
    buf = chunk_buffer()
    view = memoryview(buf)
    readinto = handle.readinto  # type: ignore[attr-defined]
    while n := readinto(buf):
        sink.write(view[:n])
        ctx.report(label, sink.offset, total)


def candidates(source: PathSource, ctx: FetchContext) -> list[Candidate]:
    label = f"path {source.path}"

    def fetch(sink: Sink) -> None:
        target = resolve_inside(ctx.recipe_dir, source.path)
        if sink.offset:
            sink.restart()
        try:
            with open(target, "rb", buffering=0) as handle:
                copy_into(handle, sink, label, ctx, target.stat().st_size)
        except FileNotFoundError:
            raise FetchError(label, [f"no such file: {target}"]) from None
        except IsADirectoryError:
            raise FetchError(label, [f"{target} is a directory"]) from None
        except OSError as exc:
            raise FetchError(label, [f"cannot read {target}: {exc.strerror}"]) from None

    return [Candidate(label, fetch)]
