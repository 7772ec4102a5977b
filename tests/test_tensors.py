"""Tensor-by-tensor comparison and the content digest, on files built here (tests/builders.py, numpy,
safetensors' own writer), checked against expectations computed independently of the code under test."""

from __future__ import annotations

import hashlib
import json
import math
import re
import struct
import tracemalloc
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from safetensors.numpy import save_file

import weightpkg.core.tensors as tensors
from weightpkg.core.content import content_digest
from weightpkg.core.safetensors import DTYPE_BITS, SafetensorsError
from weightpkg.core.tensors import (
    F8_E4M3_VALUES,
    F8_E5M2_VALUES,
    TensorComparison,
    TensorDiff,
    compare_layouts,
    describe,
)
from weightpkg.errors import UsageError
from weightpkg.tensorfiles import compare_files, file_content_digest

from .builders import safetensors_bytes, sha256
from .conftest import REPO

DOC = REPO / "docs" / "content-digest.md"
PROPERTY = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

Tensors = dict[str, tuple[str, list[int], bytes]]


# --- helpers ------------------------------------------------------------------------------------


def layout_file(
    tensors_: Tensors,
    metadata: dict[str, str] | None = None,
    *,
    header_order: Sequence[str] | None = None,
    data_order: Sequence[str] | None = None,
    metadata_at: int = -1,
    pad: int = 0,
    compact: bool = True,
) -> bytes:
    """A safetensors file with the header keys, the data and the metadata where we say.

    ``metadata_at``: index among the header keys (-1: last); ``pad``: spaces after the JSON object,
    so the data can start at any offset (an odd one makes every tensor unaligned).
    """
    data_order = list(data_order if data_order is not None else sorted(tensors_))
    offsets, at = {}, 0
    for name in data_order:
        raw = tensors_[name][2]
        offsets[name] = (at, at + len(raw))
        at += len(raw)
    keys: list[str] = list(header_order if header_order is not None else sorted(tensors_))
    if metadata is not None:
        keys.insert(metadata_at if metadata_at >= 0 else len(keys), "__metadata__")
    header: dict[str, Any] = {}
    for key in keys:
        if key == "__metadata__":
            header[key] = metadata
        else:
            dtype, shape, _ = tensors_[key]
            header[key] = {"dtype": dtype, "shape": shape, "data_offsets": list(offsets[key])}
    separators = (",", ":") if compact else (", ", ": ")
    text = json.dumps(header, separators=separators, ensure_ascii=False).encode() + b" " * pad
    return struct.pack("<Q", len(text)) + text + b"".join(tensors_[n][2] for n in data_order)


def f32(values: Any) -> tuple[str, list[int], bytes]:
    array = np.asarray(values, dtype="<f4")
    return "F32", list(array.shape), array.tobytes()


def compare(a: Tensors | bytes, b: Tensors | bytes, atol: float | None = None) -> TensorComparison:
    a_raw = a if isinstance(a, bytes) else safetensors_bytes(a)
    b_raw = b if isinstance(b, bytes) else safetensors_bytes(b)
    return compare_layouts(a_raw, b_raw, atol=atol)


def only(comparison: TensorComparison, name: str) -> TensorDiff:
    [found] = [t for t in comparison.tensors if t.name == name]
    return found


def one_pair(
    dtype: str,
    a_raw: bytes,
    b_raw: bytes,
    shape: list[int] | None = None,
    atol: float | None = None,
    lead: int = 0,
) -> TensorDiff:
    """Compare one tensor ``t`` holding a_raw against one holding b_raw, both after ``lead`` zero
    elements (so that the few that differ are sparse in their block, not dense)."""
    bits = DTYPE_BITS[dtype]
    a_raw, b_raw = bytes(lead * bits // 8) + a_raw, bytes(lead * bits // 8) + b_raw
    shape = shape if shape is not None else [len(a_raw) * 8 // bits]
    return only(compare({"t": (dtype, shape, a_raw)}, {"t": (dtype, shape, b_raw)}, atol), "t")


def doc_blocks(language: str) -> list[str]:
    """The fenced blocks of docs/content-digest.md opened with ``language`` ("" for a bare fence)."""
    blocks, current, opened = [], [], None
    for line in DOC.read_text("utf-8").splitlines():
        if line.startswith("```") and opened is None:
            opened, current = line[3:].strip(), []
        elif line.startswith("```"):
            if opened == language:
                blocks.append("\n".join(current) + "\n")
            opened = None
        elif opened is not None:
            current.append(line)
    return blocks


def doc_reference() -> Callable[[bytes], str]:
    namespace: dict[str, Any] = {}
    exec(doc_blocks("python")[0], namespace)
    return namespace["content_digest"]


def independent_digest(raw: bytes) -> str:
    """The content digest computed here from the definition on docs/content-digest.md, written apart
    from both weightpkg's and that page's code (it builds the whole stream first, then hashes it)."""
    (n,) = struct.unpack_from("<Q", raw, 0)
    header = json.loads(raw[8 : 8 + n].decode("utf-8"))
    metadata = header.pop("__metadata__", None) or {}

    def field(s: str) -> bytes:
        encoded = s.encode("utf-8")
        return len(encoded).to_bytes(8, "little") + encoded

    stream = bytearray(b"weightpkg-safetensors-content-v1\x00")
    stream += len(header).to_bytes(8, "little")
    for name in sorted(header, key=lambda s: s.encode("utf-8")):
        entry = header[name]
        start, stop = entry["data_offsets"]
        stream += field(name) + field(entry["dtype"]) + len(entry["shape"]).to_bytes(8, "little")
        for dim in entry["shape"]:
            stream += dim.to_bytes(8, "little")
        stream += (stop - start).to_bytes(8, "little") + raw[8 + n + start : 8 + n + stop]
    stream += len(metadata).to_bytes(8, "little")
    for key in sorted(metadata, key=lambda s: s.encode("utf-8")):
        stream += field(key) + field(metadata[key])
    return hashlib.sha256(bytes(stream)).hexdigest()


# --- verdicts -------------------------------------------------------------------------------------


MODEL: Tensors = {
    "encoder.w": f32(np.arange(640, dtype=np.float32).reshape(64, 10) / 7),
    "encoder.b": f32(np.linspace(-1, 1, 10)),
    "head": ("I64", [3], np.array([1, -2, 3], dtype="<i8").tobytes()),
}


def test_identical_files() -> None:
    raw = safetensors_bytes(MODEL, {"format": "pt"})
    c = compare(raw, bytes(raw), atol=1e-3)
    assert c.verdict == "identical" and c.byte_identical
    assert [t.status for t in c.tensors] == ["identical"] * 3
    assert [t.name for t in c.tensors] == ["encoder.b", "encoder.w", "head"]
    assert c.metadata == ()
    assert describe(c, "A", "B") == [
        "--- A",
        "+++ B",
        "3 tensors identical",
        "verdict: identical (byte for byte)",
    ]


def test_same_content_in_another_layout() -> None:
    metadata = {"format": "pt", "source": "rebuild", "z": "last"}
    a = layout_file(MODEL, metadata)
    b = layout_file(
        MODEL,
        dict(reversed(metadata.items())),
        header_order=["head", "encoder.w", "encoder.b"],
        data_order=["encoder.w", "head", "encoder.b"],
        metadata_at=0,
        pad=5,
        compact=False,
    )
    assert sha256(a) != sha256(b)
    c = compare(a, b, atol=None)
    assert c.verdict == "same-content" and not c.byte_identical
    assert all(t.status == "identical" for t in c.tensors)
    assert content_digest(a) == content_digest(b)
    assert describe(c, "A", "B")[-1].startswith("verdict: same content")


def test_absent_metadata_equals_empty_and_null_metadata() -> None:
    absent, empty = layout_file(MODEL), layout_file(MODEL, {})
    (n,) = struct.unpack_from("<Q", absent)
    header = json.loads(absent[8 : 8 + n]) | {"__metadata__": None}
    text = json.dumps(header).encode()
    null = struct.pack("<Q", len(text)) + text + absent[8 + n :]
    for other in (empty, null):
        assert sha256(other) != sha256(absent)
        assert compare(absent, other).verdict == "same-content"
        assert content_digest(other) == content_digest(absent) == independent_digest(other)


def test_a_nudged_float32_tensor_is_named_with_its_max_delta() -> None:
    w = np.full((64, 10), 0.5, dtype=np.float32)
    nudged = w.copy()
    nudged[12, 3] += np.float32(1e-4)
    nudged[0, 0] += np.float32(5e-5)
    nudged[63, 9] -= np.float32(2e-5)
    a = dict(MODEL, **{"encoder.w": f32(w)})
    b = dict(MODEL, **{"encoder.w": f32(nudged)})

    within = compare(a, b, atol=1e-3)
    diff = only(within, "encoder.w")
    assert diff.status == "differs" and diff.unit == "elements"
    assert (diff.differing, diff.total) == (3, 640)
    assert diff.max_abs_diff == pytest.approx(1e-4, rel=1e-3)
    assert diff.max_abs_diff == float(np.float64(nudged[12, 3]) - 0.5)  # exactly, in float64
    assert (diff.flat_index, diff.index) == (123, (12, 3))
    assert diff.within is True
    assert within.verdict == "within-tolerance"
    assert [t.status for t in within.tensors if t.name != "encoder.w"] == ["identical", "identical"]
    assert describe(within, "A", "B") == [
        "--- A",
        "+++ B",
        "encoder.w: F32 [64, 10]: 3 of 640 elements differ (0.47 %), max |Δ| 1.0e-04 at [12, 3] (flat 123): "
        "within atol 1e-03",
        "2 tensors identical",
        "verdict: within tolerance (1 tensor differs, all within atol 1e-03)",
    ]

    outside = compare(a, b, atol=1e-5)
    assert only(outside, "encoder.w").within is False
    assert outside.verdict == "differs"
    assert "exceeds atol 1e-05" in describe(outside, "A", "B")[2]

    no_atol = compare(a, b)
    assert only(no_atol, "encoder.w").within is None
    assert no_atol.verdict == "differs"
    assert describe(no_atol, "A", "B")[2].endswith("(flat 123)")


def test_a_renamed_tensor_is_missing_and_extra() -> None:
    b = {("encoder.weight" if k == "encoder.w" else k): v for k, v in MODEL.items()}
    c = compare(MODEL, b, atol=1.0)
    assert only(c, "encoder.w").status == "missing"
    assert only(c, "encoder.w").b is None and only(c, "encoder.w").a is not None
    assert only(c, "encoder.weight").status == "extra"
    assert only(c, "encoder.weight").a is None
    assert c.verdict == "differs"
    lines = describe(c, "published", "rebuilt")
    assert "encoder.w: missing in rebuilt" in lines
    assert "encoder.weight: extra in rebuilt" in lines
    assert lines[-1] == "verdict: differs (1 missing in rebuilt, 1 extra in rebuilt)"


def test_a_changed_shape() -> None:
    dtype, _, raw = MODEL["encoder.w"]
    c = compare(MODEL, dict(MODEL, **{"encoder.w": (dtype, [10, 64], raw)}), atol=1.0)
    diff = only(c, "encoder.w")
    assert diff.status == "shape-changed"
    assert (diff.a.shape, diff.b.shape) == ((64, 10), (10, 64))  # type: ignore[union-attr]
    assert c.verdict == "differs"
    assert "encoder.w: shape [64, 10] → [10, 64]" in describe(c, "A", "B")


def test_a_changed_dtype() -> None:
    values = np.arange(640, dtype=np.float32).reshape(64, 10) / 7
    b = dict(MODEL, **{"encoder.w": ("F16", [64, 10], values.astype("<f2").tobytes())})
    c = compare(MODEL, b, atol=1.0)
    diff = only(c, "encoder.w")
    assert diff.status == "dtype-changed"
    assert (diff.a.dtype, diff.b.dtype) == ("F32", "F16")  # type: ignore[union-attr]
    assert "encoder.w: dtype F32 → F16" in describe(c, "A", "B")
    both = compare(MODEL, dict(MODEL, **{"encoder.w": ("F16", [640], values.astype("<f2").tobytes())}))
    assert only(both, "encoder.w").status == "dtype-changed"
    assert "encoder.w: dtype F32 → F16, shape [64, 10] → [640]" in describe(both, "A", "B")


def test_metadata_changes() -> None:
    a = safetensors_bytes(MODEL, {"format": "pt", "gone": "x", "seed": "1"})
    b = safetensors_bytes(MODEL, {"format": "pt", "new": "y", "seed": "2"})
    c = compare(a, b, atol=1.0)
    assert all(t.status == "identical" for t in c.tensors)
    assert [(m.key, m.kind, m.a, m.b) for m in c.metadata] == [
        ("gone", "removed", "x", None),
        ("new", "added", None, "y"),
        ("seed", "changed", "1", "2"),
    ]
    assert c.verdict == "differs"
    lines = describe(c, "A", "B")
    assert "__metadata__['seed']: '1' → '2'" in lines
    assert "__metadata__['new']: extra in B: 'y'" in lines
    assert "__metadata__['gone']: missing in B (was 'x')" in lines
    assert lines[-1] == "verdict: differs (metadata differs (3 keys))"
    assert content_digest(a) != content_digest(b)


# --- dtypes ---------------------------------------------------------------------------------------


def u16(*values: int) -> bytes:
    return struct.pack(f"<{len(values)}H", *values)


@pytest.mark.parametrize(
    ("dtype", "a_raw", "b_raw", "expected"),
    [
        # BF16 1.0 (0x3f80) vs the next value up, 1 + 2**-7; -2.0 (0xc000) vs -2.5 (0xc020)
        ("BF16", u16(0x3F80, 0xC000), u16(0x3F81, 0xC020), 0.5),
        ("BF16", u16(0x3F80), u16(0x3F81), 2.0**-7),
        # F16 1.0 (0x3c00) vs 1 + 2**-10; 65504 (0x7bff) vs -65504 (0xfbff)
        ("F16", u16(0x3C00), u16(0x3C01), 2.0**-10),
        ("F16", u16(0x7BFF), u16(0xFBFF), 131008.0),
        # F8_E4M3 (fn): 0x38 is 1.0, 0x39 1.125; 0x7e is 448 (the largest), 0x7f NaN
        ("F8_E4M3", bytes([0x38]), bytes([0x39]), 0.125),
        ("F8_E4M3", bytes([0x7E]), bytes([0xFE]), 896.0),
        ("F8_E4M3", bytes([0x01]), bytes([0x00]), 2.0**-9),  # the smallest subnormal
        # F8_E5M2: 0x3c is 1.0, 0x3d 1.25; 0x7b is 57344 (the largest finite)
        ("F8_E5M2", bytes([0x3C]), bytes([0x3D]), 0.25),
        ("F8_E5M2", bytes([0x7B]), bytes([0x00]), 57344.0),
        ("F64", struct.pack("<d", 1.0), struct.pack("<d", 1.0 + 2.0**-52), 2.0**-52),
        ("F32", struct.pack("<f", 3.0), struct.pack("<f", -1.0), 4.0),
        ("I8", struct.pack("<b", -128), struct.pack("<b", 127), 255.0),
        ("U8", bytes([0]), bytes([255]), 255.0),
        ("I16", struct.pack("<h", -32768), struct.pack("<h", 32767), 65535.0),
        ("U16", u16(1), u16(65535), 65534.0),
        ("I32", struct.pack("<i", -(2**31)), struct.pack("<i", 2**31 - 1), 2.0**32 - 1),
        ("U32", struct.pack("<I", 2**32 - 1), struct.pack("<I", 0), 2.0**32 - 1),
        ("I64", struct.pack("<q", -(2**63)), struct.pack("<q", 2**63 - 1), float(2**64 - 1)),
        ("I64", struct.pack("<q", 2**62 + 1), struct.pack("<q", 2**62), 1.0),
        ("U64", struct.pack("<Q", 0), struct.pack("<Q", 2**64 - 1), float(2**64 - 1)),
        ("U64", struct.pack("<Q", 2**64 - 1), struct.pack("<Q", 2**64 - 2), 1.0),
        ("BOOL", bytes([0, 1]), bytes([1, 1]), 1.0),
        ("BOOL", bytes([1]), bytes([2]), 0.0),  # both true: bits differ, values do not
    ],
)
def test_max_delta_per_dtype(dtype: str, a_raw: bytes, b_raw: bytes, expected: float) -> None:
    diff = one_pair(dtype, a_raw, b_raw, atol=1e30)
    assert diff.status == "differs"
    assert diff.max_abs_diff == expected
    assert diff.within is True
    width = DTYPE_BITS[dtype] // 8
    assert diff.differing == sum(
        a_raw[i : i + width] != b_raw[i : i + width] for i in range(0, len(a_raw), width)
    )


def test_integer_deltas_are_exact_before_rounding_to_float() -> None:
    # 2**62 + 1 vs -(2**62): the exact difference 2**63 + 1 is not a float; within atol 2**63 it is not
    diff = one_pair("I64", struct.pack("<q", 2**62 + 1), struct.pack("<q", -(2**62)), atol=2.0**63)
    assert diff.max_abs_diff == 2.0**63
    assert diff.within is False


@pytest.mark.parametrize(
    ("name", "table"), [("float8_e4m3fn", F8_E4M3_VALUES), ("float8_e5m2", F8_E5M2_VALUES)]
)
def test_f8_tables_match_torch(name: str, table: np.ndarray) -> None:
    torch = pytest.importorskip("torch")
    values = torch.arange(256, dtype=torch.uint8).view(getattr(torch, name)).to(torch.float64).numpy()
    assert np.array_equal(values, table, equal_nan=True)
    finite = np.isfinite(table)
    assert np.array_equal(np.signbit(values[finite]), np.signbit(table[finite]))  # -0.0 included


def test_f8_e4m3_has_no_infinity_and_two_nans() -> None:
    assert not np.isinf(F8_E4M3_VALUES).any()
    assert list(np.flatnonzero(np.isnan(F8_E4M3_VALUES))) == [0x7F, 0xFF]
    assert np.nanmax(F8_E4M3_VALUES) == 448.0
    assert list(np.flatnonzero(np.isinf(F8_E5M2_VALUES))) == [0x7C, 0xFC]


def nan32(payload: int, sign: int = 0) -> bytes:
    return struct.pack("<I", (sign << 31) | 0x7F800000 | payload)


@pytest.mark.parametrize("lead", [0, 100], ids=["dense", "sparse"])
def test_nan_rules(lead: int) -> None:
    both = one_pair("F32", nan32(1), nan32(0x400000, sign=1), atol=0.0, lead=lead)
    assert (both.status, both.differing, both.max_abs_diff, both.within) == ("differs", 1, 0.0, True)
    assert both.flat_index == lead  # Δ 0, but the place is still where the bits differ
    second = one_pair("F32", struct.pack("<f", 1.0) + nan32(1), struct.pack("<f", 1.0) + nan32(2), lead=lead)
    assert (second.max_abs_diff, second.flat_index) == (0.0, lead + 1)
    one = one_pair(
        "F32", nan32(0x400000) + struct.pack("<f", 1.0), struct.pack("<f", 1.0) * 2, atol=1e30, lead=lead
    )
    assert (one.differing, one.max_abs_diff, one.within, one.flat_index) == (1, math.inf, False, lead)
    inf = struct.pack("<f", math.inf)
    assert one_pair("F32", inf, inf, lead=lead).status == "identical"
    assert one_pair("F32", inf, struct.pack("<f", -math.inf), lead=lead).max_abs_diff == math.inf
    assert one_pair("F32", inf, struct.pack("<f", 3.0e38), lead=lead).max_abs_diff == math.inf
    zeros = one_pair("F32", struct.pack("<f", 0.0), struct.pack("<f", -0.0), atol=0.0, lead=lead)
    assert (zeros.differing, zeros.max_abs_diff, zeros.within, zeros.flat_index) == (1, 0.0, True, lead)
    e4m3_nans = one_pair("F8_E4M3", bytes([0x7F]), bytes([0xFF]), lead=lead)
    assert e4m3_nans.max_abs_diff == 0.0
    half = one_pair("F16", u16(0x7E00), u16(0x3C00), lead=lead)
    assert half.max_abs_diff == math.inf
    big = one_pair("F64", struct.pack("<d", 1e308), struct.pack("<d", -1e308), lead=lead)  # overflows float64
    assert big.max_abs_diff == math.inf


def test_only_value_equal_bit_changes_are_within_atol_zero() -> None:
    a = {"t": f32([0.0, 1.0]), "u": ("F32", [1], nan32(1))}
    b = {"t": f32([-0.0, 1.0]), "u": ("F32", [1], nan32(2))}
    assert compare(a, b, atol=0.0).verdict == "within-tolerance"
    assert compare(a, b, atol=None).verdict == "differs"


def test_inf_is_reported_as_a_string_in_json() -> None:
    c = compare({"t": ("F32", [1], nan32(1))}, {"t": f32([1.0])}, atol=1.0)
    text = json.dumps(c.to_json(), sort_keys=True, allow_nan=False)
    assert json.loads(text)["tensors"][0]["max_abs_diff"] == "inf"
    assert "max |Δ| inf at [0] (flat 0): exceeds atol 1e+00" in describe(c, "A", "B")[2]


def test_undecoded_dtypes_compare_bits() -> None:
    a_raw = bytes(range(16))
    b_raw = bytes([0xFF, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 0])
    f4 = one_pair("F4", a_raw, b_raw, shape=[32], atol=1.0)
    assert (f4.status, f4.unit, f4.differing, f4.total) == ("differs", "bytes", 2, 16)
    assert (f4.max_abs_diff, f4.index, f4.within) == (None, None, False)
    f6 = one_pair("F6_E2M3", a_raw[:12], b_raw[:12], shape=[16])
    assert (f6.unit, f6.differing, f6.total, f6.within) == ("bytes", 1, 12, None)
    e8m0 = one_pair("F8_E8M0", a_raw, b_raw, atol=1.0)
    assert (e8m0.unit, e8m0.differing, e8m0.total, e8m0.max_abs_diff) == ("elements", 2, 16, None)
    c64 = one_pair("C64", a_raw, b_raw)
    assert (c64.unit, c64.differing, c64.total) == ("elements", 2, 2)
    c = compare({"t": ("F4", [32], a_raw)}, {"t": ("F4", [32], b_raw)}, atol=1.0)
    assert c.verdict == "differs"  # bits differ and nothing shows they are within atol
    assert describe(c, "A", "B")[2] == (
        "t: F4 [32]: 2 of 16 bytes differ (12.50 %), values not decoded, so not shown within atol"
    )


def test_zero_sized_and_scalar_tensors() -> None:
    a = {"empty": ("F32", [0], b""), "empty2": ("I8", [3, 0, 2], b""), "scalar": f32(2.0)}
    b = {"empty": ("F32", [0], b""), "empty2": ("I8", [3, 0, 2], b""), "scalar": f32(2.5)}
    c = compare(a, b, atol=1.0)
    assert [t.status for t in c.tensors] == ["identical", "identical", "differs"]
    scalar = only(c, "scalar")
    assert (scalar.index, scalar.flat_index, scalar.max_abs_diff, scalar.total) == ((), 0, 0.5, 1)
    assert c.verdict == "within-tolerance"
    assert compare({"e": ("F32", [0], b"")}, {"e": ("F32", [0, 5], b"")}).verdict == "differs"
    assert content_digest(safetensors_bytes(a)) == independent_digest(safetensors_bytes(a))
    empty = safetensors_bytes({})
    assert compare(empty, empty).verdict == "identical"
    assert content_digest(empty) == independent_digest(empty)


# --- chunks and blocks ----------------------------------------------------------------------------


def test_differences_in_several_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    values = np.linspace(-3, 3, 1000, dtype=np.float32)
    nudged = values.copy()
    nudged[3] += np.float32(0.25)  # chunk 0
    nudged[500] -= np.float32(0.5)  # a middle chunk
    nudged[997] += np.float32(0.125)  # the last, partial chunk
    a, b = {"t": f32(values.reshape(10, 100))}, {"t": f32(nudged.reshape(10, 100))}
    expected = only(compare(a, b, atol=1.0), "t")
    assert (expected.differing, expected.flat_index, expected.index) == (3, 500, (5, 0))
    for chunk, block in [(64, 4), (100, 3), (4, 1), (4096, 7), (1 << 20, 1 << 18)]:
        monkeypatch.setattr(tensors, "CHUNK_BYTES", chunk)  # 100 is not whole F32s: rounds down to 100
        monkeypatch.setattr(tensors, "BLOCK_ELEMENTS", block)
        got = only(compare(a, b, atol=1.0), "t")
        assert got == expected, (chunk, block)
        assert got.max_abs_diff == float(abs(np.float64(nudged[500]) - np.float64(values[500])))


def test_chunk_size_rounds_down_to_whole_elements(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tensors, "CHUNK_BYTES", 20)  # 2.5 F64 elements: must compare 16 bytes at a time
    monkeypatch.setattr(tensors, "BLOCK_ELEMENTS", 2)
    values = np.arange(9, dtype="<f8")
    nudged = values.copy()
    nudged[[2, 5, 8]] += [1.0, 3.0, 2.0]
    diff = only(compare({"t": ("F64", [9], values.tobytes())}, {"t": ("F64", [9], nudged.tobytes())}), "t")
    assert (diff.differing, diff.max_abs_diff, diff.flat_index) == (3, 3.0, 5)


@pytest.mark.parametrize(("chunk", "block"), [(1 << 20, 1 << 18), (16, 2), (64, 16)])
def test_ties_report_the_first_place(monkeypatch: pytest.MonkeyPatch, chunk: int, block: int) -> None:
    monkeypatch.setattr(tensors, "CHUNK_BYTES", chunk)
    monkeypatch.setattr(tensors, "BLOCK_ELEMENTS", block)
    values = np.zeros(50, dtype=np.float32)
    nudged = values.copy()
    nudged[[7, 30, 31]] = [2.0, -2.0, 2.0]
    diff = only(compare({"t": f32(values)}, {"t": f32(nudged)}), "t")
    assert (diff.flat_index, diff.max_abs_diff) == (7, 2.0)


def test_unaligned_data_and_different_offsets_in_each_file() -> None:
    rng = np.random.default_rng(1)
    model = {
        "a": ("F64", [7], rng.standard_normal(7).tobytes()),
        "b": ("I32", [5], rng.integers(-100, 100, 5, dtype="<i4").tobytes()),
        "c": ("F16", [3], rng.standard_normal(3).astype("<f2").tobytes()),
    }
    changed = dict(model, b=("I32", [5], np.array([0, 0, 0, 0, 250], dtype="<i4").tobytes()))
    a = layout_file(model, pad=3)  # the data starts at an odd offset
    b = layout_file(changed, data_order=["c", "b", "a"], pad=6)
    c = compare(a, b)
    assert [t.status for t in c.tensors] == ["identical", "differs", "identical"]
    expected = int(np.max(np.abs(np.frombuffer(model["b"][2], "<i4").astype(np.int64) - [0, 0, 0, 0, 250])))
    assert only(c, "b").max_abs_diff == expected


def test_memory_stays_a_few_blocks_for_a_large_tensor(tmp_path: Path) -> None:
    """A 32 MiB tensor whose every element differs: numpy's temporaries (tracemalloc sees them) stay
    far below the tensor's size, because the core decodes a block at a time and never copies it."""
    count = 8 << 20  # F32 elements: 32 MiB, four raw chunks
    a_path, b_path = tmp_path / "a.safetensors", tmp_path / "b.safetensors"
    for path, offset in ((a_path, 0.0), (b_path, 0.5)):
        header = json.dumps(
            {"t": {"dtype": "F32", "shape": [count], "data_offsets": [0, count * 4]}}
        ).encode()
        with open(path, "wb") as handle:
            handle.write(struct.pack("<Q", len(header)) + header)
            for start in range(0, count, 1 << 20):
                handle.write(
                    (np.arange(start, start + (1 << 20), dtype="<f4") + np.float32(offset)).tobytes()
                )
    tracemalloc.start()
    try:
        c = compare_files(a_path, b_path, atol=1.0)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    diff = only(c, "t")
    assert (diff.differing, diff.within) == (count, True)
    assert diff.max_abs_diff == 0.5
    assert peak < 8 << 20, f"peak traced memory {peak / (1 << 20):.1f} MiB for a 32 MiB tensor"


# --- against independent references ---------------------------------------------------------------


def reference_delta(dtype: str, x: Any, y: Any) -> float:
    """|Δ| of two values by the rules on the page, element by element, in plain Python."""
    if dtype.startswith(("I", "U")):
        return float(abs(int(x) - int(y)))
    x, y = float(x), float(y)
    if (math.isnan(x) and math.isnan(y)) or x == y:
        return 0.0
    if math.isnan(x) or math.isnan(y):
        return math.inf
    return abs(x - y)


NUMPY_DTYPES = {
    "F64": "<f8",
    "F32": "<f4",
    "F16": "<f2",
    "I8": "i1",
    "I32": "<i4",
    "U16": "<u2",
    "I64": "<i8",
}


@PROPERTY
@given(
    dtype=st.sampled_from(sorted(NUMPY_DTYPES)),
    raw=st.binary(min_size=8, max_size=64),
    flips=st.lists(st.tuples(st.integers(0, 63), st.integers(1, 255)), max_size=6),
    atol=st.one_of(st.none(), st.floats(0, 10)),
    lead=st.sampled_from([0, 100]),
)
def test_comparison_matches_an_elementwise_reference(
    dtype: str, raw: bytes, flips: list[tuple[int, int]], atol: float | None, lead: int
) -> None:
    width = np.dtype(NUMPY_DTYPES[dtype]).itemsize
    raw = raw[: len(raw) - len(raw) % width]
    changed = bytearray(raw)
    for at, xor in flips:
        changed[at % len(raw)] ^= xor
    diff = one_pair(dtype, raw, bytes(changed), atol=atol, lead=lead)
    xs = np.frombuffer(raw, NUMPY_DTYPES[dtype]).tolist()
    ys = np.frombuffer(bytes(changed), NUMPY_DTYPES[dtype]).tolist()
    bits_differ = [raw[i : i + width] != changed[i : i + width] for i in range(0, len(raw), width)]
    if not any(bits_differ):
        assert diff.status == "identical"
        return
    deltas = [
        reference_delta(dtype, x, y) if d else -1.0 for x, y, d in zip(xs, ys, bits_differ, strict=True)
    ]
    assert diff.status == "differs"
    assert diff.differing == sum(bits_differ)
    assert diff.max_abs_diff == max(deltas)
    assert diff.flat_index == lead + deltas.index(max(deltas))
    assert diff.within == (None if atol is None else max(deltas) <= atol)


def test_bf16_against_torch() -> None:
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(7)
    a = torch.from_numpy(rng.standard_normal((33, 17)).astype(np.float32)).to(torch.bfloat16)
    b = a.clone()
    b[4, 5] = b[4, 5] * 1.5
    b[0, 0] = b[0, 0] + 0.0625
    b_nan = b.clone()
    b_nan[30, 16] = float("nan")

    def raw(t: Any) -> bytes:
        return bytes(t.contiguous().view(torch.int16).numpy().tobytes())

    finite = one_pair("BF16", raw(a), raw(b), shape=[33, 17])
    expected = (a.to(torch.float64) - b.to(torch.float64)).abs()
    assert finite.max_abs_diff == float(expected.max())
    assert finite.flat_index == int(expected.flatten().argmax())
    assert finite.differing == int((a != b).sum())
    with_nan = one_pair("BF16", raw(a), raw(b_nan), shape=[33, 17])
    assert (with_nan.max_abs_diff, with_nan.index, with_nan.differing) == (math.inf, (30, 16), 3)


# --- the content digest ---------------------------------------------------------------------------


def test_the_worked_example_on_the_docs_page() -> None:
    text = DOC.read_text("utf-8")
    namespace: dict[str, Any] = {}
    exec(doc_blocks("python")[1], namespace)
    example: bytes = namespace["example"]
    stated = re.search(r"content digest: `([0-9a-f]{64})`", text)
    stated_sha = re.search(r"Its sha256 is `([0-9a-f]{64})`", text)
    assert stated and stated_sha
    assert len(example) == int(re.search(r"A (\d+)-byte file", text)[1])  # type: ignore[index]
    assert sha256(example) == stated_sha[1]
    assert content_digest(example) == stated[1]
    assert doc_reference()(example) == stated[1]
    assert independent_digest(example) == stated[1]
    # the hex listing on the page is exactly the stream that is hashed
    listing = doc_blocks("")[1]  # the first bare block is the definition's grammar
    stream = bytes.fromhex("".join(line[:69].replace(" ", "") for line in listing.splitlines()))
    assert hashlib.sha256(stream).hexdigest() == stated[1]


def test_the_worked_example_written_by_safetensors_has_the_same_content_digest(tmp_path: Path) -> None:
    namespace: dict[str, Any] = {}
    exec(doc_blocks("python")[1], namespace)
    path = tmp_path / "example.safetensors"
    save_file(
        {"b": np.array([1.0, -2.0], dtype=np.float16), "a": np.array([0.5, 3.0], dtype=np.float32)},
        str(path),
        metadata={"format": "pt"},
    )
    assert sha256(path.read_bytes()) != sha256(namespace["example"])
    assert file_content_digest(path) == content_digest(namespace["example"])
    ours = tmp_path / "ours.safetensors"
    ours.write_bytes(namespace["example"])
    assert compare_files(ours, path, atol=None).verdict == "same-content"


def test_the_digest_sees_dtype_shape_names_data_and_metadata() -> None:
    base = {"t": f32([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])}
    raw = base["t"][2]
    digests = {
        content_digest(safetensors_bytes(base)),
        content_digest(safetensors_bytes({"t": ("F32", [3, 2], base["t"][2])})),
        content_digest(safetensors_bytes({"t": ("I32", [2, 3], base["t"][2])})),
        content_digest(safetensors_bytes({"u": base["t"]})),
        content_digest(safetensors_bytes({"t": f32([[1.0, 2.0, 3.0], [4.0, 5.0, 6.5]])})),
        content_digest(safetensors_bytes(base, {"format": "pt"})),
        content_digest(safetensors_bytes(base, {"format": "np"})),
        content_digest(safetensors_bytes(base, {"formatnp": ""})),
        # the same bytes split into two tensors instead of one
        content_digest(safetensors_bytes({"t": ("F32", [3], raw[:12]), "u": ("F32", [3], raw[12:])})),
    }
    assert len(digests) == 9


names = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\0"), max_size=6).filter(
    lambda s: s != "__metadata__"
)
SMALL_DTYPES = {"F32": 4, "F16": 2, "BF16": 2, "U8": 1, "I64": 8, "BOOL": 1}


@st.composite
def models(draw: st.DrawFn) -> tuple[Tensors, dict[str, str] | None]:
    chosen = draw(st.lists(names, max_size=5, unique=True))
    out: Tensors = {}
    for name in chosen:
        dtype = draw(st.sampled_from(sorted(SMALL_DTYPES)))
        shape = draw(st.lists(st.integers(0, 3), max_size=3))
        size = math.prod(shape) * SMALL_DTYPES[dtype]
        out[name] = (dtype, shape, draw(st.binary(min_size=size, max_size=size)))
    values = st.text(max_size=8).filter(lambda s: "\0" not in s)
    metadata = draw(st.one_of(st.none(), st.dictionaries(names, values, max_size=3)))
    return out, metadata


@PROPERTY
@given(model=models(), data=st.data())
def test_content_digest_ignores_header_and_data_order(
    model: tuple[Tensors, dict[str, str] | None], data: st.DataObject
) -> None:
    tensors_, metadata = model
    a = layout_file(tensors_, metadata)
    b = layout_file(
        tensors_,
        None if metadata is None else dict(data.draw(st.permutations(list(metadata.items())))),
        header_order=data.draw(st.permutations(sorted(tensors_))),
        data_order=data.draw(st.permutations(sorted(tensors_))),
        metadata_at=data.draw(st.integers(0, len(tensors_))),
        pad=data.draw(st.integers(0, 9)),
        compact=data.draw(st.booleans()),
    )
    digest = content_digest(a)
    assert content_digest(b) == digest
    assert independent_digest(a) == digest
    assert doc_reference()(b) == digest
    assert compare(a, b, atol=None).verdict in ("identical", "same-content")


# --- the edge -------------------------------------------------------------------------------------


def test_compare_files_and_file_content_digest(tmp_path: Path) -> None:
    a, b = tmp_path / "a.safetensors", tmp_path / "b.safetensors"
    save_file({"x": np.arange(6, dtype=np.float32).reshape(2, 3)}, str(a))
    save_file({"x": np.arange(6, dtype=np.float32).reshape(2, 3) * 2}, str(b))
    c = compare_files(a, b, atol=None)
    assert only(c, "x").max_abs_diff == 5.0 and only(c, "x").index == (1, 2)
    assert file_content_digest(a) == content_digest(a.read_bytes()) == independent_digest(a.read_bytes())


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "file of 0 bytes is too short"),
        (b'\x05\x00\x00\x00\x00\x00\x00\x00{"a":', "header is not JSON"),
        (struct.pack("<Q", 2) + b"{}" + b"junk", "trailing bytes"),
    ],
    ids=["empty", "truncated-json", "trailing-bytes"],
)
def test_a_malformed_file_is_one_clear_error_naming_it(tmp_path: Path, content: bytes, message: str) -> None:
    good, bad = tmp_path / "good.safetensors", tmp_path / "bad.safetensors"
    good.write_bytes(safetensors_bytes(MODEL))
    bad.write_bytes(content)
    for call in (
        lambda: compare_files(good, bad, 1e-3),
        lambda: compare_files(bad, good, None),
        lambda: file_content_digest(bad),
    ):
        with pytest.raises(UsageError) as error:
            call()
        text = str(error.value)
        assert text.startswith(f"{bad}: not a valid safetensors file: ") and message in text, text
        assert "\n" not in text
    with pytest.raises(SafetensorsError):
        content_digest(content)


def test_missing_files_directories_and_bad_atol(tmp_path: Path) -> None:
    good = tmp_path / "good.safetensors"
    good.write_bytes(safetensors_bytes(MODEL))
    with pytest.raises(UsageError, match="no such file"):
        compare_files(good, tmp_path / "absent.safetensors", None)
    with pytest.raises(UsageError, match="is a directory"):
        file_content_digest(tmp_path)
    for atol in (-1.0, math.nan, math.inf):
        with pytest.raises(UsageError, match="atol"):
            compare_files(good, good, atol)
        with pytest.raises(ValueError, match="atol"):
            compare_layouts(good.read_bytes(), good.read_bytes(), atol=atol)


def test_json_is_deterministic_and_strict(tmp_path: Path) -> None:
    a = dict(MODEL, gone=f32([1.0]))
    b = dict(MODEL, head=("I64", [3], np.array([1, -2, 4], dtype="<i8").tobytes()))
    a_raw, b_raw = safetensors_bytes(a, {"k": "1"}), safetensors_bytes(b)
    first = json.dumps(compare(a_raw, b_raw, atol=0.5).to_json(), sort_keys=True, allow_nan=False)
    assert first == json.dumps(compare(a_raw, b_raw, atol=0.5).to_json(), sort_keys=True, allow_nan=False)
    doc = json.loads(first)
    assert doc["verdict"] == "differs" and doc["counts"]["missing"] == 1 and doc["counts"]["identical"] == 2
    head = next(t for t in doc["tensors"] if t["name"] == "head")
    assert head == {
        "name": "head",
        "status": "differs",
        "a": {"dtype": "I64", "shape": [3]},
        "b": {"dtype": "I64", "shape": [3]},
        "differing": 1,
        "total": 3,
        "unit": "elements",
        "share": 1 / 3,
        "decoded": True,
        "max_abs_diff": 1.0,
        "flat_index": 2,
        "index": [2],
        "within": False,
    }
    assert doc["metadata"] == [{"key": "k", "kind": "removed", "a": "1", "b": None}]


def test_names_that_could_forge_report_lines_are_quoted() -> None:
    evil = "x\nverdict: identical"
    c = compare({evil: f32([1.0])}, {evil: f32([2.0])})
    lines = describe(c, "A", "B")
    assert not any(line.startswith("verdict: identical") for line in lines)
    assert lines[2].startswith(repr(evil) + ": F32 [1]: 1 of 1 elements differ (100.00 %)")
