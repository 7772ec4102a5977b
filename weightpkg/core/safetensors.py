"""safetensors header parsing and layout checks, without loading a tensor.

Layout (per the format): an 8-byte little-endian header length N, N bytes of UTF-8 JSON mapping
tensor names to {dtype, shape, data_offsets} plus an optional ``__metadata__`` of strings, then
the data; offsets are relative to the data and must tile it exactly from 0 to its end.

Every problem is a :class:`SafetensorsFinding` with a kebab-case ``rule`` (see :data:`RULES`),
the tensor it concerns where there is one, and a message. The rules follow what safetensors
itself rejects (``SafeTensors::read_metadata`` and ``Metadata::validate`` in its
``safetensors/src/tensor.rs``, serde's decoding of the header, and the null-byte guard of its
Python binding), with these deliberate differences, each stricter than upstream:

* duplicate keys are rejected at every level; upstream's serde rejects a repeated
  ``__metadata__`` or a repeated field inside a tensor entry, but silently keeps the last of two
  tensors, or of two ``__metadata__`` keys, with the same name, although its format notes say
  duplicate keys are disallowed: two parsers can then disagree on what the file holds;
* a field other than dtype/shape/data_offsets in a tensor entry is rejected; serde ignores it,
  which makes it a place to hide bytes no loader reads;
* a tensor entry written as an array is rejected; serde's derived decoding happens to accept
  ``[dtype, shape, data_offsets]`` positionally, which no writer produces and other readers reject;
* a NUL character in a tensor name or ``__metadata__`` is rejected, as safetensors' Python binding
  does since its fix for null-byte injection (releases before it accept them).

JSON whitespace before and after the object is legal: upstream decided so (its test
``test_whitespace_leading_padded_header``: writers may pad the header to align the data) and
dropped its never-enforced ``InvalidHeaderStart``. A zero-sized tensor is legal at any point
where a tensor may begin or end (including several at the same point and at the very end of the
data); one that begins inside another tensor's bytes is an overlap, as upstream says.
"""

from __future__ import annotations

import json
import reprlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

#: Upstream refuses headers larger than this (safetensors' MAX_HEADER_SIZE).
MAX_HEADER_SIZE = 100_000_000

#: Upstream sizes are ``usize`` (64 bits on every platform a model is shipped for).
U64_MAX = 2**64 - 1

#: Bits per element of every dtype the format defines.
DTYPE_BITS = {
    "BOOL": 8,
    "U8": 8,
    "I8": 8,
    "F8_E5M2": 8,
    "F8_E4M3": 8,
    "F8_E8M0": 8,
    "F8_E4M3FNUZ": 8,
    "F8_E5M2FNUZ": 8,
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

#: Every rule a finding can name, with what it means (upstream's error in brackets).
RULES: Mapping[str, str] = {
    "header-too-short": "the file is shorter than the 8-byte header length [HeaderTooSmall]",
    "header-empty": "the header length is 0 [InvalidHeaderDeserialization: EOF]",
    "header-too-large": f"the header length exceeds {MAX_HEADER_SIZE} bytes [HeaderTooLarge]",
    "header-past-end": "the header length runs past the end of the file [InvalidHeaderLength]",
    "header-not-utf8": "the header is not valid UTF-8 [InvalidHeader]",
    "header-not-json": "the header is not strict JSON: syntax, NaN/Infinity, a byte-order mark, "
    "an unpaired surrogate escape [InvalidHeaderDeserialization]",
    "header-too-deep": "the header JSON nests too deeply to read [InvalidHeaderDeserialization: "
    "recursion limit]",
    "header-not-object": "the header is JSON but not an object [InvalidHeaderDeserialization]",
    "header-duplicate-key": "a key appears twice in the header, in __metadata__ or in a tensor entry "
    "[InvalidHeaderDeserialization for __metadata__ and entry fields; upstream keeps the last "
    "duplicate tensor or metadata key]",
    "metadata-not-object": "__metadata__ is neither an object nor null [InvalidHeaderDeserialization]",
    "metadata-not-string": "a __metadata__ value is not a string [InvalidHeaderDeserialization]",
    "null-byte": "a tensor name or __metadata__ key or value contains U+0000 [Python binding guard]",
    "entry-not-object": "a tensor entry is not an object [InvalidHeaderDeserialization]",
    "entry-positional": "a tensor entry is an array [upstream's serde reads [dtype, shape, data_offsets] "
    "positionally]",
    "missing-field": "a tensor entry lacks dtype, shape or data_offsets [InvalidHeaderDeserialization]",
    "unknown-field": "a tensor entry has a field besides dtype, shape, data_offsets [upstream ignores it]",
    "unknown-dtype": "the dtype is not one the format defines [InvalidHeaderDeserialization]",
    "bad-shape": "the shape is not a list of non-negative integers [InvalidHeaderDeserialization]",
    "bad-offsets": "data_offsets is not [begin, end] of integers with begin <= end "
    "[InvalidHeaderDeserialization, InvalidOffset]",
    "shape-overflow": "a dimension, the element count or the bit count does not fit in 64 bits "
    "[ValidationOverflow]",
    "size-not-whole-bytes": "a sub-byte dtype's elements do not fill whole bytes [MisalignedSlice]",
    "size-mismatch": "shape × dtype size differs from the data_offsets span [TensorInvalidInfo]",
    "offsets-not-from-zero": "no tensor starts at byte 0 of the data [InvalidOffset]",
    "offsets-gap": "bytes between two tensors belong to none [InvalidOffset]",
    "offsets-overlap": "a tensor starts inside another tensor's bytes [InvalidOffset]",
    "offsets-past-end": "a tensor ends past the end of the file [MetadataIncompleteBuffer]",
    "trailing-bytes": "bytes after the last tensor belong to none [MetadataIncompleteBuffer]",
}

_FIELDS = ("dtype", "shape", "data_offsets")

_brief = reprlib.Repr()
_brief.maxstring = 120
_brief.maxother = 120
_brief.maxlist = 12
_brief.maxtuple = 12
_brief.maxdict = 6
_brief.maxlevel = 3
_brief.maxlong = 60


def _show(value: Any) -> str:
    """repr() of something the file said, cut short so a hostile header cannot flood a report."""
    return _brief.repr(value)


@dataclass(frozen=True)
class SafetensorsFinding:
    """One way a file is not well-formed safetensors; ``str()`` is the message alone."""

    rule: str
    message: str
    tensor: str | None = None

    def __str__(self) -> str:
        return self.message


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

    def __init__(self, findings: Sequence[SafetensorsFinding]) -> None:
        self.findings = list(findings)
        super().__init__("; ".join(str(f) for f in self.findings))

    @property
    def rules(self) -> set[str]:
        return {f.rule for f in self.findings}


def _fail(rule: str, message: str, tensor: str | None = None) -> SafetensorsError:
    return SafetensorsError([SafetensorsFinding(rule, message, tensor)])


def header_length(prefix: bytes, file_size: int) -> int:
    """Read and sanity-check the header length from the first 8 bytes of a file.

    Needs nothing but those 8 bytes and the file's size, so a caller reads the header only once
    this has bounded it (at most MAX_HEADER_SIZE, and within the file).
    """
    if file_size < 8 or len(prefix) < 8:
        raise _fail("header-too-short", f"file of {file_size} bytes is too short for a safetensors header")
    n = int.from_bytes(prefix[:8], "little")
    if n == 0:
        raise _fail("header-empty", "header length is 0: the header is empty")
    if n > MAX_HEADER_SIZE:
        raise _fail("header-too-large", f"header length {n} exceeds the {MAX_HEADER_SIZE}-byte limit")
    if 8 + n > file_size:
        raise _fail("header-past-end", f"header length {n} runs past the end of the {file_size}-byte file")
    return n


# --- strict JSON ------------------------------------------------------------------------------


class _NotJson(Exception):
    """Raised from inside the JSON decoder's hooks for what Python accepts and JSON does not."""


class _Object(dict):  # type: ignore[type-arg]
    """A decoded JSON object that remembers the keys it saw more than once."""

    duplicates: tuple[str, ...] = ()


class _Oversized:
    """An integer literal too long to be any 64-bit value (kept unparsed: no quadratic int())."""

    def __init__(self, digits: str) -> None:
        self.digits = digits

    def __repr__(self) -> str:
        return f"{self.digits[:8]}…({len(self.digits.lstrip('-'))}-digit integer)"


def _has_surrogate(text: str) -> bool:
    if text.isascii():
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _object(pairs: list[tuple[str, Any]]) -> _Object:
    out = _Object(pairs)
    if len(out) != len(pairs):
        seen: set[str] = set()
        twice: dict[str, None] = {}
        for key, _ in pairs:
            if key in seen:
                twice[key] = None
            seen.add(key)
        out.duplicates = tuple(twice)
    for key, value in pairs:
        if _has_surrogate(key) or (type(value) is str and _has_surrogate(value)):
            raise _NotJson("a string holds an unpaired UTF-16 surrogate escape")
    return out


def _integer(digits: str) -> Any:
    if digits == "-0":
        return -0.0  # what serde_json makes of it: a float, so not a size
    if len(digits) > 24:
        return _Oversized(digits)
    return int(digits)


def _constant(name: str) -> Any:
    raise _NotJson(f"{name} is not a JSON value")


def _decode(text: str) -> Any:
    try:
        doc = json.loads(text, object_pairs_hook=_object, parse_int=_integer, parse_constant=_constant)
    except json.JSONDecodeError as exc:
        raise _fail("header-not-json", f"header is not JSON: {exc.msg} at character {exc.pos}") from None
    except _NotJson as exc:
        raise _fail("header-not-json", f"header is not JSON: {exc}") from None
    except RecursionError:
        raise _fail("header-too-deep", "header JSON is nested too deeply to read") from None
    return doc


# --- the header -------------------------------------------------------------------------------


def parse_layout(header: bytes, file_size: int) -> SafetensorsLayout:
    """Validate the JSON header against the file size; collects every finding before raising."""
    n = len(header)
    data_size = file_size - 8 - n
    if data_size < 0:
        raise _fail("header-past-end", f"header length {n} runs past the end of the {file_size}-byte file")
    try:
        text = header.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _fail("header-not-utf8", f"header is not UTF-8 (byte {exc.start})") from None
    doc = _decode(text)
    if not isinstance(doc, dict):
        raise _fail("header-not-object", "header is not a JSON object")
    duplicates = _duplicate_findings(doc)
    if duplicates:  # the header means different things to different parsers: judge it on that alone
        raise SafetensorsError(duplicates)

    findings: list[SafetensorsFinding] = []
    metadata = _metadata(doc["__metadata__"], findings) if "__metadata__" in doc else {}
    tensors: list[TensorInfo] = []
    spans: list[tuple[int, int, str]] = []
    entries = [(name, info) for name, info in doc.items() if name != "__metadata__"]
    for name, info in entries:
        tensor, span = _entry(name, info, findings)
        if tensor is not None:
            tensors.append(tensor)
        if span is not None:
            spans.append((*span, name))
    if len(spans) == len(entries):  # an entry without usable offsets would show up as a false gap
        findings.extend(_tiling_findings(spans, data_size))
    if findings:
        raise SafetensorsError(findings)
    return SafetensorsLayout(header_size=n, data_start=8 + n, tensors=tuple(tensors), metadata=metadata)


def _duplicate_findings(doc: _Object) -> list[SafetensorsFinding]:
    rule = "header-duplicate-key"
    found = []
    for key in getattr(doc, "duplicates", ()):
        tensor = None if key == "__metadata__" else key
        found.append(SafetensorsFinding(rule, f"header has the key {_show(key)} twice", tensor))
    for key in getattr(doc.get("__metadata__"), "duplicates", ()):
        found.append(SafetensorsFinding(rule, f"__metadata__ has the key {_show(key)} twice"))
    for name, info in doc.items():
        if name != "__metadata__":
            for key in getattr(info, "duplicates", ()):
                message = f"tensor {_show(name)}: entry has the key {_show(key)} twice"
                found.append(SafetensorsFinding(rule, message, name))
    return found


def _metadata(raw: Any, findings: list[SafetensorsFinding]) -> dict[str, str]:
    metadata: dict[str, str] = {}
    if raw is None:  # upstream reads __metadata__ as an Option: null means none
        return metadata
    if not isinstance(raw, dict):
        findings.append(SafetensorsFinding("metadata-not-object", "__metadata__ is not an object"))
        return metadata
    for key, value in raw.items():
        where = f"__metadata__[{_show(key)}]"
        if "\0" in key:
            message = f"__metadata__ key {_show(key)} contains a NUL character"
            findings.append(SafetensorsFinding("null-byte", message))
        if not isinstance(value, str):
            findings.append(SafetensorsFinding("metadata-not-string", f"{where} is not a string"))
            continue
        if "\0" in value:
            findings.append(SafetensorsFinding("null-byte", f"{where} contains a NUL character"))
        metadata[key] = value
    return metadata


def _is_uint(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _uints(values: list[Any]) -> bool:
    """All plain integers in 0..U64_MAX (the fast path: what every real header holds)."""
    return all(type(v) is int and 0 <= v <= U64_MAX for v in values)


def _too_big(value: Any) -> bool:
    if isinstance(value, _Oversized):
        return not value.digits.startswith("-")
    return _is_uint(value) and value > U64_MAX


def _entry(
    name: str, info: Any, findings: list[SafetensorsFinding]
) -> tuple[TensorInfo | None, tuple[int, int] | None]:
    """Check one tensor entry: the tensor if it is sound, and its byte span if that is readable."""

    def fail(rule: str, message: str) -> None:
        findings.append(SafetensorsFinding(rule, f"tensor {_show(name)}: {message}", name))

    if "\0" in name:
        fail("null-byte", "the name contains a NUL character")
    if isinstance(info, list):
        fail("entry-positional", "entry is an array, not an object naming dtype, shape and data_offsets")
        return None, None
    if not isinstance(info, dict):
        fail("entry-not-object", "entry is not an object")
        return None, None
    unknown = [key for key in info if key not in _FIELDS]
    if unknown:
        fail("unknown-field", f"unknown field(s) {', '.join(_show(k) for k in sorted(unknown)[:8])}")
    missing = [key for key in _FIELDS if key not in info]
    if missing:
        fail("missing-field", f"entry lacks {', '.join(missing)}")
    dtype, shape, offsets = info.get("dtype"), info.get("shape"), info.get("data_offsets")

    dtype_ok = "dtype" in info and isinstance(dtype, str) and dtype in DTYPE_BITS
    if "dtype" in info and not dtype_ok:
        fail("unknown-dtype", f"unknown dtype {_show(dtype)}")

    shape_ok = False
    if "shape" in info:
        if type(shape) is list and _uints(shape):
            shape_ok = True
        elif not (isinstance(shape, list) and all(_is_uint(d) or _too_big(d) for d in shape)):
            fail("bad-shape", f"shape {_show(shape)} is not a list of non-negative integers")
        else:
            fail("shape-overflow", f"shape {_show(shape)} has a dimension that does not fit in 64 bits")

    span: tuple[int, int] | None = None
    if "data_offsets" in info:
        pair = isinstance(offsets, list) and len(offsets) == 2
        if pair and _uints(offsets) and offsets[0] <= offsets[1]:
            span = (offsets[0], offsets[1])
        elif not (pair and all(_is_uint(o) or _too_big(o) for o in offsets)):
            fail("bad-offsets", f"data_offsets {_show(offsets)} is not [begin, end]")
        elif any(_too_big(o) for o in offsets):
            fail("bad-offsets", f"data_offsets {_show(offsets)} does not fit in 64 bits")
        else:
            fail("bad-offsets", f"data_offsets begin {offsets[0]} is after end {offsets[1]}")

    if not shape_ok:
        return None, span
    elements, overflowed = 1, False
    for d in shape:  # left to right, as upstream's checked multiplication: it can overflow before a 0
        elements *= d
        if elements > U64_MAX:
            overflowed = True
            break
    if overflowed:
        if 0 in shape:
            fail(
                "shape-overflow",
                f"shape {_show(shape)} has no elements, but multiplying it out left to "
                "right (as safetensors does) overflows 64 bits before reaching the 0",
            )
        else:
            fail("shape-overflow", f"shape {_show(shape)} has more elements than fit in 64 bits")
        return None, span
    if not dtype_ok:
        return None, span
    bits = elements * DTYPE_BITS[dtype]
    if bits > U64_MAX:
        fail("shape-overflow", f"shape {_show(shape)} × {dtype} is more bits than fit in 64 bits")
        return None, span
    if bits % 8:
        fail("size-not-whole-bytes", f"{elements} × {DTYPE_BITS[dtype]}-bit elements is not whole bytes")
        return None, span
    if span is None:
        return None, span
    begin, end = span
    if bits // 8 != end - begin:
        fail(
            "size-mismatch",
            f"shape {_show(shape)} × {dtype} is {bits // 8} bytes but data_offsets span {end - begin}",
        )
        return None, span
    return TensorInfo(name=name, dtype=dtype, shape=tuple(shape), begin=begin, end=end), span


def _tiling_findings(spans: list[tuple[int, int, str]], data_size: int) -> list[SafetensorsFinding]:
    """Offsets must cover the data exactly: start at 0, no gap, no overlap, nothing after."""
    findings = []
    position = 0
    previous: str | None = None
    for begin, end, name in sorted(spans):
        where = f"tensor {_show(name)}"
        if end > data_size:
            message = f"{where}: data_offsets end {end} is past the data ({data_size} bytes)"
            findings.append(SafetensorsFinding("offsets-past-end", message, name))
        if begin > position and position < data_size:  # a hole past the data is past-the-end's business
            hole = min(begin, data_size) - position
            if previous is None:
                message = f"gap of {hole} bytes at the start of the data (before {where})"
                findings.append(SafetensorsFinding("offsets-not-from-zero", message, name))
            else:
                message = f"gap of {hole} bytes after tensor {_show(previous)} (before {where})"
                findings.append(SafetensorsFinding("offsets-gap", message, name))
        elif begin < position:
            message = f"{where} overlaps tensor {_show(previous)}"
            findings.append(SafetensorsFinding("offsets-overlap", message, name))
        if end > position or previous is None:
            position, previous = max(position, end), name
    if position < data_size:
        message = f"{data_size - position} trailing bytes after the last tensor"
        findings.append(SafetensorsFinding("trailing-bytes", message, previous))
    return findings
