"""Files shipped beside the recipe; the path may not leave the recipe's folder, even by symlink."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from ..core.recipe import PathSource, unsafe_relpath
from ..errors import FetchError
from . import Candidate, FetchContext, Sink, copy_into


def resolve_inside(base: Path, relative: str) -> Path:
    """``base/relative`` with symlinks resolved; FetchError if it ends up outside ``base``."""
    if why := unsafe_relpath(relative):
        raise FetchError(f"path {relative}", [f"the path {why}"])
    root = base.resolve()
    target = (root / relative).resolve()
    if not target.is_relative_to(root):
        raise FetchError(f"path {relative}", [f"resolves to {target}, outside the recipe's folder {root}"])
    return target


def candidates(source: PathSource, ctx: FetchContext) -> list[Candidate]:
    label = f"path {source.path}"

    def fetch(sink: Sink) -> None:
        target = resolve_inside(ctx.recipe_dir, source.path)
        if sink.offset:
            sink.restart()
        try:
            if target.exists() and not target.is_dir() and not stat.S_ISREG(target.stat().st_mode):
                raise FetchError(label, [f"{target} is not a regular file"])  # a FIFO would block
            with open(target, "rb", buffering=0) as handle:
                info = os.fstat(handle.fileno())
                if not stat.S_ISREG(info.st_mode):
                    raise FetchError(label, [f"{target} is not a regular file"])
                copy_into(handle, sink, label, ctx, info.st_size)
        except FileNotFoundError:
            raise FetchError(label, [f"no such file: {target}"]) from None
        except IsADirectoryError:
            raise FetchError(label, [f"{target} is a directory"]) from None
        except OSError as exc:
            raise FetchError(label, [f"cannot read {target}: {exc.strerror}"]) from None

    return [Candidate(label, fetch)]
