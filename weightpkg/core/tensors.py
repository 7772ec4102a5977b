"""Tensor-by-tensor comparison of two safetensors files.

``challenge`` has to say *where* a rebuilt file differs from the published one and by how much,
not just that the sha256 differs; a writer that orders the header differently must not count as a
difference at all. :func:`compare_layouts` takes whole-file buffers (in practice read-only ``mmap``
objects handed in by :mod:`weightpkg.tensorfiles`) and never copies a tensor: raw bytes are
compared through numpy views, :data:`CHUNK_BYTES` at a time, and only where bits differ are
values decoded, :data:`BLOCK_ELEMENTS` at a time, so temporaries stay a few MiB whatever the
tensor size.

The canonical content digest lives in :mod:`weightpkg.core.content`, which needs no numpy.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from .content import Buffer, layout_of
from .safetensors import DTYPE_BITS, SafetensorsLayout, TensorInfo

#: Raw bytes are compared this many at a time (rounded down to whole elements).
CHUNK_BYTES = 8 << 20

#: Where a chunk's bits differ, values are decoded this many elements at a time: the float64
#: temporaries of one block are then 512 KiB each, small enough to be reused, not page-faulted anew.
BLOCK_ELEMENTS = 1 << 16

#: Per-tensor statuses, and overall verdicts, from best to worst.
STATUSES = ("identical", "differs", "missing", "extra", "dtype-changed", "shape-changed")
VERDICTS = ("identical", "same-content", "within-tolerance", "differs")

_RAW = {1: np.dtype("u1"), 2: np.dtype("<u2"), 4: np.dtype("<u4"), 8: np.dtype("<u8")}


# --- decoding ---------------------------------------------------------------------------------


def _f8_table(exponent_bits: int, mantissa_bits: int, *, ieee_specials: bool) -> np.ndarray:
    """float64 value of each of the 256 bit patterns of an 8-bit float.

    ``ieee_specials``: the top exponent holds inf (mantissa 0) and NaN (E5M2); otherwise only the
    all-ones pattern is NaN and there is no inf (E4M3 "fn", as OCP FP8 and torch.float8_e4m3fn).
    """
    bias = (1 << (exponent_bits - 1)) - 1
    top = (1 << exponent_bits) - 1
    values = np.empty(256, dtype=np.float64)
    for bits in range(256):
        sign = -1.0 if bits & 0x80 else 1.0
        exponent = (bits >> mantissa_bits) & top
        mantissa = bits & ((1 << mantissa_bits) - 1)
        fraction = mantissa / (1 << mantissa_bits)
        if ieee_specials and exponent == top:
            value = math.inf if mantissa == 0 else math.nan
        elif not ieee_specials and exponent == top and mantissa == (1 << mantissa_bits) - 1:
            value = math.nan
        elif exponent == 0:
            value = fraction * 2.0 ** (1 - bias)
        else:
            value = (1.0 + fraction) * 2.0 ** (exponent - bias)
        values[bits] = sign * value
    return values


F8_E4M3_VALUES = _f8_table(4, 3, ieee_specials=False)
F8_E5M2_VALUES = _f8_table(5, 2, ieee_specials=True)


def _float_delta(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """|x - y| in float64, where two NaNs (or inf and inf) give 0 and exactly one NaN gives inf.

    Called under np.errstate(all="ignore"): inf - inf and overflow are handled here, not warned of.
    """
    delta = np.subtract(x, y)
    np.abs(delta, out=delta)
    odd = np.flatnonzero(np.isnan(delta))  # a NaN on either side, or inf - inf of one sign
    if odd.size:
        delta[odd] = np.where(np.isnan(x[odd]) ^ np.isnan(y[odd]), np.inf, 0.0)
    return delta


def _floats(decode: Callable[[np.ndarray], np.ndarray]) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    return lambda a, b: _float_delta(decode(a), decode(b))


def _small_ints(signed: str) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    """Integers of at most 32 bits: int64 holds every difference exactly."""
    return lambda a, b: np.abs(a.view(signed).astype(np.int64) - b.view(signed).astype(np.int64))


def _i64_delta(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """|a - b| of int64s as uint64: the wrapping difference of the larger minus the smaller is exact."""
    x, y = a.view("<i8"), b.view("<i8")
    return np.where(x >= y, a - b, b - a)


def _u64_delta(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.where(a >= b, a - b, b - a)


#: dtype → |Δ| of two gathered raw-bit arrays (little-endian unsigned of the element's width).
_DELTAS: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    "F64": _floats(lambda u: u.view("<f8")),
    "F32": _floats(lambda u: u.view("<f4").astype(np.float64)),
    "F16": _floats(lambda u: u.view("<f2").astype(np.float64)),
    "BF16": _floats(lambda u: (u.astype("<u4") << 16).view("<f4").astype(np.float64)),
    "F8_E4M3": _floats(lambda u: F8_E4M3_VALUES[u]),
    "F8_E5M2": _floats(lambda u: F8_E5M2_VALUES[u]),
    "BOOL": _floats(lambda u: (u != 0).astype(np.float64)),
    "I8": _small_ints("i1"),
    "I16": _small_ints("<i2"),
    "I32": _small_ints("<i4"),
    "U8": _small_ints("u1"),
    "U16": _small_ints("<u2"),
    "U32": _small_ints("<u4"),
    "I64": _i64_delta,
    "U64": _u64_delta,
}

#: dtypes whose values are decoded; the others (F4, F6_*, F8_E8M0, the FNUZ floats, C64) are
#: compared bit for bit only.
DECODED_DTYPES = frozenset(_DELTAS)


# --- results ----------------------------------------------------------------------------------


def _number(value: float | None) -> float | str | None:
    """A float as JSON allows it: infinities as strings (NaN never reaches a result)."""
    if value is None or math.isfinite(value):
        return value
    return "inf" if value > 0 else "-inf"


@dataclass(frozen=True)
class TensorSide:
    """A tensor's dtype and shape as one file declares it."""

    dtype: str
    shape: tuple[int, ...]

    def to_json(self) -> dict[str, Any]:
        return {"dtype": self.dtype, "shape": list(self.shape)}


@dataclass(frozen=True)
class TensorDiff:
    """How one tensor name compares across the two files.

    For ``differs``: ``differing`` of ``total`` units differ in their bits, where the unit is an
    element, or a byte for the sub-byte dtypes (F4, F6_*); ``max_abs_diff`` is max |Δ| in float64
    (None where the dtype is not decoded), first reached at ``flat_index`` / ``index``; ``within``
    says max |Δ| <= atol (None without an atol; False where values are not decoded).
    """

    name: str
    status: str
    a: TensorSide | None
    b: TensorSide | None
    differing: int = 0
    total: int = 0
    unit: str = "elements"
    max_abs_diff: float | None = None
    flat_index: int | None = None
    index: tuple[int, ...] | None = None
    within: bool | None = None

    @property
    def share(self) -> float:
        """Fraction of units whose bits differ (0 for a zero-sized tensor)."""
        return self.differing / self.total if self.total else 0.0

    @property
    def decoded(self) -> bool:
        return self.status == "differs" and self.max_abs_diff is not None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name,
            "status": self.status,
            "a": self.a.to_json() if self.a else None,
            "b": self.b.to_json() if self.b else None,
        }
        if self.status == "differs":
            out.update(
                differing=self.differing,
                total=self.total,
                unit=self.unit,
                share=self.share,
                decoded=self.decoded,
                max_abs_diff=_number(self.max_abs_diff),
                flat_index=self.flat_index,
                index=None if self.index is None else list(self.index),
                within=self.within,
            )
        return out


@dataclass(frozen=True)
class MetadataChange:
    """One ``__metadata__`` key whose value differs; None for the side that lacks the key."""

    key: str
    a: str | None
    b: str | None

    @property
    def kind(self) -> str:
        return "added" if self.a is None else "removed" if self.b is None else "changed"

    def to_json(self) -> dict[str, Any]:
        return {"key": self.key, "kind": self.kind, "a": self.a, "b": self.b}


@dataclass(frozen=True)
class TensorComparison:
    """Two safetensors files compared: tensors sorted by name, metadata changes sorted by key."""

    byte_identical: bool
    atol: float | None
    tensors: tuple[TensorDiff, ...]
    metadata: tuple[MetadataChange, ...]
    verdict: str

    def count(self, status: str) -> int:
        return sum(1 for t in self.tensors if t.status == status)

    def to_json(self) -> dict[str, Any]:
        return {
            "verdict": self.verdict,
            "byte_identical": self.byte_identical,
            "atol": self.atol,
            "counts": {status: self.count(status) for status in STATUSES},
            "tensors": [t.to_json() for t in self.tensors],
            "metadata": [m.to_json() for m in self.metadata],
        }


# --- comparing --------------------------------------------------------------------------------


def _check_atol(atol: float | None) -> None:
    if atol is not None and not (math.isfinite(atol) and atol >= 0):
        raise ValueError(f"atol must be a finite number >= 0, not {atol!r}")


def compare_layouts(
    a_buf: Buffer,
    b_buf: Buffer,
    *,
    atol: float | None,
    a_layout: SafetensorsLayout | None = None,
    b_layout: SafetensorsLayout | None = None,
) -> TensorComparison:
    """Compare two whole safetensors files tensor by tensor (see :class:`TensorComparison`).

    ``a_layout``/``b_layout``: what :func:`layout_of` already made of the buffers, so a caller that
    validated them first does not parse a header twice. Raises SafetensorsError if either file is
    malformed, ValueError for a negative or non-finite atol.
    """
    _check_atol(atol)
    a = a_layout if a_layout is not None else layout_of(a_buf)
    b = b_layout if b_layout is not None else layout_of(b_buf)
    a_tensors = {t.name: t for t in a.tensors}
    b_tensors = {t.name: t for t in b.tensors}
    diffs = []
    for name in sorted(a_tensors.keys() | b_tensors.keys()):
        ta, tb = a_tensors.get(name), b_tensors.get(name)
        side_a = TensorSide(ta.dtype, ta.shape) if ta else None
        side_b = TensorSide(tb.dtype, tb.shape) if tb else None
        if ta is None or tb is None:
            diffs.append(TensorDiff(name, "extra" if ta is None else "missing", side_a, side_b))
        elif ta.dtype != tb.dtype:
            diffs.append(TensorDiff(name, "dtype-changed", side_a, side_b))
        elif ta.shape != tb.shape:
            diffs.append(TensorDiff(name, "shape-changed", side_a, side_b))
        else:
            diffs.append(_compare_tensor(a_buf, a.data_start, ta, b_buf, b.data_start, tb, atol))
    changes = tuple(_metadata_changes(a.metadata, b.metadata))
    header_same = len(a_buf) == len(b_buf) and a.data_start == b.data_start
    header_same = header_same and bytes(a_buf[: a.data_start]) == bytes(b_buf[: b.data_start])
    all_identical = all(d.status == "identical" for d in diffs)
    # the data tiles the file after the header, so equal headers and equal tensors are equal bytes
    byte_identical = header_same and all_identical
    if byte_identical:
        verdict = "identical"
    elif all_identical and not changes:
        verdict = "same-content"
    elif not changes and all(d.status == "identical" or d.within for d in diffs):
        verdict = "within-tolerance"
    else:
        verdict = "differs"
    return TensorComparison(byte_identical, atol, tuple(diffs), changes, verdict)


def _metadata_changes(a: Mapping[str, str], b: Mapping[str, str]) -> Iterator[MetadataChange]:
    for key in sorted(a.keys() | b.keys()):
        if a.get(key) != b.get(key):
            yield MetadataChange(key, a.get(key), b.get(key))


def _raw_equal(a_buf: Buffer, a_at: int, b_buf: Buffer, b_at: int, n: int) -> bool:
    """Whether n bytes at two offsets are equal, through zero-copy views of the widest fitting word."""
    width = 8 if n % 8 == 0 else 4 if n % 4 == 0 else 2 if n % 2 == 0 else 1
    raw = _RAW[width]
    x = np.frombuffer(a_buf, dtype=raw, count=n // width, offset=a_at)
    y = np.frombuffer(b_buf, dtype=raw, count=n // width, offset=b_at)
    return bool(np.array_equal(x, y))


def _unravel(flat: int, shape: tuple[int, ...]) -> tuple[int, ...]:
    index = []
    for dim in reversed(shape):
        flat, i = divmod(flat, dim)
        index.append(i)
    return tuple(reversed(index))


def _compare_tensor(
    a_buf: Buffer, a_base: int, ta: TensorInfo, b_buf: Buffer, b_base: int, tb: TensorInfo, atol: float | None
) -> TensorDiff:
    """Two tensors of one dtype and shape: raw chunks first, values only where bits differ."""
    nbytes = ta.end - ta.begin
    bits = DTYPE_BITS[ta.dtype]
    unit = bits // 8 if bits % 8 == 0 else 1  # sub-byte dtypes: counted, and compared, by byte
    a_at, b_at = a_base + ta.begin, b_base + tb.begin
    delta = _DELTAS.get(ta.dtype) if unit == bits // 8 else None
    raw = _RAW[unit]
    chunk = max(unit, CHUNK_BYTES - CHUNK_BYTES % unit)
    block = max(1, BLOCK_ELEMENTS) * unit
    differing = 0
    best: int | float | None = None
    best_at: int | None = None
    for start in range(0, nbytes, chunk):
        n = min(chunk, nbytes - start)
        if _raw_equal(a_buf, a_at + start, b_buf, b_at + start, n):
            continue
        for at in range(start, start + n, block):
            count = min(block, start + n - at) // unit
            x = np.frombuffer(a_buf, dtype=raw, count=count, offset=a_at + at)
            y = np.frombuffer(b_buf, dtype=raw, count=count, offset=b_at + at)
            unequal = x != y
            found = int(np.count_nonzero(unequal))
            if found == 0:
                continue
            differing += found
            if delta is None:
                continue
            with np.errstate(all="ignore"):  # signalling NaNs raise "invalid" when widened
                if found * 8 >= count:  # dense: decode the whole block; equal bits give 0
                    d = delta(x, y)
                    j = int(np.argmax(d))
                    value = d[j].item()  # a Python int for integer dtypes: exact, however large
                    place = j if value else int(np.argmax(unequal))
                else:  # sparse: decode only the elements that differ
                    where = np.flatnonzero(unequal)
                    d = delta(x[where], y[where])
                    j = int(np.argmax(d))
                    value, place = d[j].item(), int(where[j])
            if best is None or value > best:
                best, best_at = value, at // unit + place
    side = TensorSide(ta.dtype, ta.shape)
    if differing == 0:
        return TensorDiff(ta.name, "identical", side, side)
    total = nbytes // unit
    unit_name = "elements" if unit == bits // 8 else "bytes"
    if delta is None or best is None or best_at is None:
        within = None if atol is None else False
        return TensorDiff(ta.name, "differs", side, side, differing, total, unit_name, within=within)
    within = None if atol is None else best <= atol
    return TensorDiff(
        ta.name,
        "differs",
        side,
        side,
        differing,
        total,
        unit_name,
        max_abs_diff=float(best),
        flat_index=best_at,
        index=_unravel(best_at, ta.shape),
        within=within,
    )


# --- the report -------------------------------------------------------------------------------


def _quote(name: str) -> str:
    """A name as the report shows it: as is when printable, else repr() so no line can be forged."""
    shown = name if name.isprintable() and name.strip() == name and name else repr(name)
    return shown if len(shown) <= 200 else shown[:199] + "…"


def _value(text: str) -> str:
    shown = repr(text)
    return shown if len(shown) <= 80 else shown[:79] + "…"


def _shape(shape: tuple[int, ...]) -> str:
    return "[" + ", ".join(str(d) for d in shape) + "]"


def _sci(value: float, digits: int | None = None) -> str:
    """Scientific notation: ``digits`` after the point, or the fewest that give the value back."""
    if math.isinf(value):
        return "inf"
    if digits is not None:
        return f"{value:.{digits}e}"
    for places in range(17):
        text = f"{value:.{places}e}"
        if float(text) == value:
            return text
    return repr(value)


def _percent(share: float) -> str:
    percent = 100.0 * share
    return f"{percent:.2f} %" if percent >= 0.01 or percent == 0 else f"{percent:.1e} %"


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _differ(n: int) -> str:
    return f"{n} tensor differs" if n == 1 else f"{n} tensors differ"


def _tensor_line(d: TensorDiff, atol: float | None, b_label: str) -> str:
    name = _quote(d.name)
    if d.status == "missing":
        return f"{name}: missing in {b_label}"
    if d.status == "extra":
        return f"{name}: extra in {b_label}"
    assert d.a is not None and d.b is not None
    if d.status in ("dtype-changed", "shape-changed"):
        parts = []
        if d.a.dtype != d.b.dtype:
            parts.append(f"dtype {d.a.dtype} → {d.b.dtype}")
        if d.a.shape != d.b.shape:
            parts.append(f"shape {_shape(d.a.shape)} → {_shape(d.b.shape)}")
        return f"{name}: {', '.join(parts)}"
    head = f"{name}: {d.a.dtype} {_shape(d.a.shape)}: "
    head += f"{d.differing} of {d.total} {d.unit} differ ({_percent(d.share)})"
    if d.max_abs_diff is None:
        return head + ", values not decoded" + (", so not shown within atol" if atol is not None else "")
    assert d.index is not None
    head += f", max |Δ| {_sci(d.max_abs_diff, 1)} at {_shape(d.index)} (flat {d.flat_index})"
    if atol is None:
        return head
    return head + (f": within atol {_sci(atol)}" if d.within else f": exceeds atol {_sci(atol)}")


def _verdict_line(c: TensorComparison, b_label: str) -> str:
    if c.verdict == "identical":
        return "verdict: identical (byte for byte)"
    if c.verdict == "same-content":
        return "verdict: same content (tensors and metadata equal; only the byte layout differs)"
    differs = c.count("differs")
    if c.verdict == "within-tolerance":
        atol = _sci(c.atol or 0.0)
        return f"verdict: within tolerance ({_differ(differs)}, all within atol {atol})"
    parts = []
    if differs:
        beyond = sum(1 for t in c.tensors if t.status == "differs" and not t.within)
        part = _differ(differs)
        if c.atol is not None and beyond:
            part += f" ({beyond} not within atol {_sci(c.atol)})"
        parts.append(part)
    for status, words in (
        ("missing", f"missing in {b_label}"),
        ("extra", f"extra in {b_label}"),
        ("dtype-changed", "with another dtype"),
        ("shape-changed", "with another shape"),
    ):
        if c.count(status):
            parts.append(f"{c.count(status)} {words}")
    if c.metadata:
        parts.append(f"metadata differs ({_plural(len(c.metadata), 'key')})")
    return f"verdict: differs ({', '.join(parts)})"


def describe(comparison: TensorComparison, a_label: str, b_label: str) -> list[str]:
    """The human report, diffoscope-like: what differs and by how much, then one verdict line."""
    lines = [f"--- {a_label}", f"+++ {b_label}"]
    identical = 0
    for diff in comparison.tensors:
        if diff.status == "identical":
            identical += 1
        else:
            lines.append(_tensor_line(diff, comparison.atol, b_label))
    if identical:
        lines.append(f"{identical} {'tensor' if identical == 1 else 'tensors'} identical")
    for change in comparison.metadata:
        key = f"__metadata__[{_value(change.key)}]"
        if change.a is None:
            lines.append(f"{key}: extra in {b_label}: {_value(change.b or '')}")
        elif change.b is None:
            lines.append(f"{key}: missing in {b_label} (was {_value(change.a)})")
        else:
            lines.append(f"{key}: {_value(change.a)} → {_value(change.b)}")
    lines.append(_verdict_line(comparison, b_label))
    return lines
