"""The edge around :mod:`weightpkg.core.tensors`: open safetensors files read-only and mmap them.

A mapping lets the core compare and hash multi-GB files without reading them into memory: the
pages it touches are the page cache's, not the process's. Each file is checked with the strict
header parser before anything is compared, so a malformed file is one clear line naming it.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from .core.content import Buffer, content_digest, layout_of
from .core.safetensors import SafetensorsError, SafetensorsLayout
from .errors import UsageError
from .mapped import mapped_file

if TYPE_CHECKING:  # numpy, which the comparison needs, is imported only when one runs
    from .core.tensors import TensorComparison

#: At most this many findings are named in the error for a malformed file.
_SHOWN_FINDINGS = 5


@contextlib.contextmanager
def _mapped(path: Path) -> Iterator[Buffer]:
    with mapped_file(path) as (buffer, _):
        yield buffer


def _malformed(path: Path, error: SafetensorsError) -> UsageError:
    findings = [f"{finding} [{finding.rule}]" for finding in error.findings[:_SHOWN_FINDINGS]]
    more = len(error.findings) - _SHOWN_FINDINGS
    if more > 0:
        findings.append(f"and {more} more")
    return UsageError(f"{path}: not a valid safetensors file: {'; '.join(findings)}")


def _layout(path: Path, buf: Buffer) -> SafetensorsLayout:
    try:
        return layout_of(buf)
    except SafetensorsError as exc:
        raise _malformed(path, exc) from None


def compare_files(a: Path, b: Path, atol: float | None) -> TensorComparison:
    """Compare two safetensors files tensor by tensor; UsageError names a missing or malformed file."""
    from .core.tensors import compare_layouts

    if atol is not None and not (math.isfinite(atol) and atol >= 0):
        raise UsageError(f"atol must be a finite number >= 0, not {atol!r}")
    a, b = Path(a), Path(b)
    with _mapped(a) as a_buf, _mapped(b) as b_buf:
        a_layout, b_layout = _layout(a, a_buf), _layout(b, b_buf)
        return compare_layouts(a_buf, b_buf, atol=atol, a_layout=a_layout, b_layout=b_layout)


def file_content_digest(path: Path) -> str:
    """The canonical content digest (docs/content-digest.md) of one safetensors file, as hex."""
    path = Path(path)
    with _mapped(path) as buf:
        try:
            return content_digest(buf)
        except SafetensorsError as exc:
            raise _malformed(path, exc) from None
