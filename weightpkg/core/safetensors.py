"""safetensors header parsing and layout checks, without loading a tensor.

Layout (per the format): an 8-byte little-endian header length N, N bytes of UTF-8 JSON mapping
tensor names to {dtype, shape, data_offsets} plus an optional ``__metadata__`` of strings, then
the data; offsets are relative to the data and must tile it exactly from 0 to its end.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

#: Upstream refuses headers larger than this (safetensors' MAX_HEADER_SIZE).
MAX_HEADER_SIZE = 100_000_000

#: Bits per element of every dtype the format defines.
DTYPE_BITS = {
    "BOOL": 8,
    "U8": 8,
    "I8": 8,
    "F8_E5M2": 8,
    "F8_E4M3": 8,
    "F8_E8M0": 8,
    "I16": 16,
    "U16": 16,
    "F16": 16,
    "BF16": 16,
    "I32": 32,
    "U32": 32,
    "F32": 32,
    "I64": 64,
    "U64": 64,
    "F64": 64,
    "C64": 64,
    "F4": 4,
    "F6_E2M3": 6,
    "F6_E3M2": 6,
}


@dataclass(frozen=True)
class TensorInfo:
    name: str
    dtype: str
    shape: tuple[int, ...]
    begin: int
    end: int


@dataclass(frozen=True)
class SafetensorsLayout:
    """What a well-formed header declares; ``data_start`` is 8 + header length."""

    header_size: int
    data_start: int
    tensors: tuple[TensorInfo, ...]
    metadata: Mapping[str, str]


class SafetensorsError(ValueError):
    """The file is not well-formed safetensors; ``findings`` says every way it is not."""

    def __init__(self, findings: list[str]) -> None:
        self.findings = findings
        super().__init__("; ".join(findings))


def header_length(prefix: bytes, file_size: int) -> int:
    """Read and sanity-check the header length from the first 8 bytes of a file."""
    if file_size < 8 or len(prefix) < 8:
        raise SafetensorsError([f"file of {file_size} bytes is too short for a safetensors header"])
    n = int.from_bytes(prefix[:8], "little")
    if n == 0:
        raise SafetensorsError(["header length is 0: the header is empty"])
    if n > MAX_HEADER_SIZE:
        raise SafetensorsError([f"header length {n} exceeds the {MAX_HEADER_SIZE}-byte limit"])
    if 8 + n > file_size:
        raise SafetensorsError([f"header length {n} runs past the end of the {file_size}-byte file"])
    return n


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise SafetensorsError([f"header has the key {key!r} twice"])
        out[key] = value
    return out


def parse_layout(header: bytes, file_size: int) -> SafetensorsLayout:
    """Validate the JSON header against the file size; collects every finding before raising."""
    n = len(header)
    try:
        text = header.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SafetensorsError([f"header is not UTF-8 (byte {exc.start})"]) from None
    try:
        doc = json.loads(text, object_pairs_hook=_no_duplicates)
    except json.JSONDecodeError as exc:
        raise SafetensorsError([f"header is not JSON: {exc.msg} at character {exc.pos}"]) from None
    except RecursionError:
        raise SafetensorsError(["header JSON is nested too deeply to read"]) from None
    if not isinstance(doc, dict):
        raise SafetensorsError(["header is not a JSON object"])
    findings: list[str] = []
    metadata: dict[str, str] = {}
    raw_meta = doc.pop("__metadata__", None)
    if raw_meta is not None:
        if not isinstance(raw_meta, dict):
            findings.append("__metadata__ is not an object")
        else:
            for key, value in raw_meta.items():
                if isinstance(value, str):
                    metadata[key] = value
                else:
                    findings.append(f"__metadata__[{key!r}] is not a string")
    data_size = file_size - 8 - n
    tensors: list[TensorInfo] = []
    for name, info in doc.items():
        tensor = _tensor(name, info, findings)
        if tensor is not None:
            tensors.append(tensor)
    if len(tensors) == len(doc):  # a tensor we could not read would show up as a false gap
        findings.extend(_tiling_findings(tensors, data_size))
    if findings:
        raise SafetensorsError(findings)
    return SafetensorsLayout(header_size=n, data_start=8 + n, tensors=tuple(tensors), metadata=metadata)


def _tensor(name: str, info: Any, findings: list[str]) -> TensorInfo | None:
    where = f"tensor {name!r}"
    if not isinstance(info, dict):
        findings.append(f"{where}: entry is not an object")
        return None
    unknown = sorted(set(info) - {"dtype", "shape", "data_offsets"})
    if unknown:
        findings.append(f"{where}: unknown field(s) {', '.join(unknown)}")
    dtype, shape, offsets = info.get("dtype"), info.get("shape"), info.get("data_offsets")
    ok = True
    if dtype not in DTYPE_BITS:
        findings.append(f"{where}: unknown dtype {dtype!r}")
        ok = False
    if not (isinstance(shape, list) and all(_is_uint(d) for d in shape)):
        findings.append(f"{where}: shape {shape!r} is not a list of non-negative integers")
        ok = False
    if not (isinstance(offsets, list) and len(offsets) == 2 and all(_is_uint(o) for o in offsets)):
        findings.append(f"{where}: data_offsets {offsets!r} is not [begin, end]")
        ok = False
    if not ok:
        return None
    begin, end = offsets
    if begin > end:
        findings.append(f"{where}: data_offsets begin {begin} is after end {end}")
        return None
    elements = math.prod(shape)
    if elements > 2**64:
        findings.append(f"{where}: shape {shape} has more elements than fit in 64 bits")
        return None
    bits = elements * DTYPE_BITS[dtype]
    if bits % 8:
        findings.append(f"{where}: {elements} × {DTYPE_BITS[dtype]}-bit elements is not whole bytes")
        return None
    if bits // 8 != end - begin:
        findings.append(
            f"{where}: shape {shape} × {dtype} is {bits // 8} bytes but data_offsets span {end - begin}"
        )
        return None
    return TensorInfo(name=name, dtype=dtype, shape=tuple(shape), begin=begin, end=end)


def _is_uint(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _tiling_findings(tensors: list[TensorInfo], data_size: int) -> list[str]:
    """Offsets must cover the data exactly: start at 0, no gap, no overlap, nothing after."""
    findings = []
    position = 0
    previous: TensorInfo | None = None
    for t in sorted(tensors, key=lambda t: (t.begin, t.end, t.name)):
        if t.end > data_size:
            findings.append(
                f"tensor {t.name!r}: data_offsets end {t.end} is past the data ({data_size} bytes)"
            )
        if t.begin > position:
            after = f"after tensor {previous.name!r}" if previous else "at the start of the data"
            findings.append(f"gap of {t.begin - position} bytes {after} (before tensor {t.name!r})")
        elif t.begin < position and previous is not None:
            findings.append(f"tensor {t.name!r} overlaps tensor {previous.name!r}")
        if t.end >= position:
            position, previous = t.end, t
    if position < data_size:
        findings.append(f"{data_size - position} trailing bytes after the last tensor")
    return findings
