"""The core's safetensors header checks, on files built here (never loading tensors)."""

from __future__ import annotations

import json
import struct
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import safetensors
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from safetensors.numpy import save

from weightpkg.core.safetensors import (
    DTYPE_BITS,
    MAX_HEADER_SIZE,
    RULES,
    SafetensorsError,
    SafetensorsFinding,
    SafetensorsLayout,
    header_length,
    parse_layout,
)
from weightpkg.verification import FileReport, check_safetensors

from .safetensors_cases import STRICTER_THAN_UPSTREAM, Case, all_cases, malformed_cases, valid_cases

#: Rules about one tensor: their findings must name it.
PER_TENSOR = {
    "entry-not-object", "entry-positional", "missing-field", "unknown-field", "unknown-dtype", "bad-shape",
    "bad-offsets", "shape-overflow", "size-not-whole-bytes", "size-mismatch", "offsets-not-from-zero",
    "offsets-gap", "offsets-overlap", "offsets-past-end",
}


def layout_of(raw: bytes) -> SafetensorsLayout:
    n = header_length(raw[:8], len(raw))
    return parse_layout(raw[8 : 8 + n], len(raw))


def file_with(header: dict, data: bytes, pad: bytes = b"") -> bytes:
    text = json.dumps(header).encode() + pad
    return struct.pack("<Q", len(text)) + text + data


def caught(raw: bytes) -> list[SafetensorsFinding]:
    with pytest.raises(SafetensorsError) as error:
        layout_of(raw)
    return error.value.findings


def findings(raw: bytes) -> list[str]:
    return [str(f) for f in caught(raw)]


def upstream_accepts(raw: bytes) -> bool:
    """What the real safetensors (its Rust core, through the Python binding) makes of the bytes."""
    try:
        safetensors.deserialize(raw)
    except Exception:
        return False
    return True


def outcome(raw: bytes) -> set[str]:
    """The rules our parser reports (empty: well-formed); anything but SafetensorsError fails the test."""
    try:
        layout_of(raw)
    except SafetensorsError as error:
        assert error.findings, "a SafetensorsError must carry findings"
        for finding in error.findings:
            assert finding.rule in RULES, finding
            assert str(finding) == finding.message
        return error.rules
    return set()


def agrees_with_upstream(raw: bytes, rules: set[str]) -> bool:
    if rules and rules <= STRICTER_THAN_UPSTREAM:
        return True  # a documented place where we are stricter: upstream may go either way
    return upstream_accepts(raw) == (not rules)


def test_file_written_by_safetensors_itself_parses() -> None:
    raw = save(
        {"w": np.arange(6, dtype=np.float32).reshape(2, 3), "i": np.arange(3, dtype=np.int64),
         "z": np.zeros((0, 5), dtype=np.float16)},
        metadata={"format": "pt"},
    )
    layout = layout_of(raw)
    assert {t.name: (t.dtype, t.shape) for t in layout.tensors} == {
        "w": ("F32", (2, 3)), "i": ("I64", (3,)), "z": ("F16", (0, 5)),
    }
    assert layout.metadata == {"format": "pt"}


def test_json_whitespace_padding_is_legal() -> None:
    raw = file_with({"a": {"dtype": "U8", "shape": [2], "data_offsets": [0, 2]}}, b"xy", pad=b"    ")
    assert layout_of(raw).tensors[0].name == "a"
    raw = b"\x0c" + b"\0" * 7 + b"  {}        "
    assert layout_of(raw).tensors == ()
    raw = b"\x06" + b"\0" * 7 + b"\t\n{}\r "
    assert layout_of(raw).tensors == ()


@pytest.mark.parametrize(
    ("raw", "rule", "message"),
    [
        (b"\x01\x02", "header-too-short", "file of 2 bytes is too short for a safetensors header"),
        (b"\0" * 8, "header-empty", "header length is 0: the header is empty"),
        (struct.pack("<Q", 100) + b"{}", "header-past-end",
         "header length 100 runs past the end of the 10-byte file"),
        (struct.pack("<Q", MAX_HEADER_SIZE + 1) + b"{}", "header-too-large",
         f"header length {MAX_HEADER_SIZE + 1} exceeds the 100000000-byte limit"),
        (struct.pack("<Q", 2) + b"\xff\xfe", "header-not-utf8", "header is not UTF-8 (byte 0)"),
        (struct.pack("<Q", 2) + b"{,", "header-not-json",
         "header is not JSON: Expecting property name enclosed in double quotes at character 1"),
        (struct.pack("<Q", 2) + b"[]", "header-not-object", "header is not a JSON object"),
        (struct.pack("<Q", 17) + b'{"a":{},"a":{}}  ', "header-duplicate-key",
         "header has the key 'a' twice"),
    ],
)
def test_header_framing_problems(raw: bytes, rule: str, message: str) -> None:
    assert [(f.rule, str(f)) for f in caught(raw)] == [(rule, message)]


def test_tensor_problems_are_all_reported_with_names() -> None:
    header = {
        "bad_dtype": {"dtype": "F128", "shape": [1], "data_offsets": [0, 16]},
        "bad_shape": {"dtype": "F32", "shape": [-1], "data_offsets": [16, 20]},
        "size": {"dtype": "F32", "shape": [2], "data_offsets": [20, 24]},
        "__metadata__": {"k": 1},
    }
    assert sorted((f.rule, f.tensor, str(f)) for f in caught(file_with(header, bytes(24)))) == sorted([
        ("metadata-not-string", None, "__metadata__['k'] is not a string"),
        ("unknown-dtype", "bad_dtype", "tensor 'bad_dtype': unknown dtype 'F128'"),
        ("bad-shape", "bad_shape", "tensor 'bad_shape': shape [-1] is not a list of non-negative integers"),
        ("size-mismatch", "size", "tensor 'size': shape [2] × F32 is 8 bytes but data_offsets span 4"),
    ])


def test_offsets_must_tile_the_data() -> None:
    def t(begin: int, end: int) -> dict:
        return {"dtype": "U8", "shape": [end - begin], "data_offsets": [begin, end]}

    assert findings(file_with({"a": t(2, 4)}, bytes(4))) == [
        "gap of 2 bytes at the start of the data (before tensor 'a')"
    ]
    assert findings(file_with({"a": t(0, 2), "b": t(3, 4)}, bytes(4))) == [
        "gap of 1 bytes after tensor 'a' (before tensor 'b')"
    ]
    assert findings(file_with({"a": t(0, 3), "b": t(2, 4)}, bytes(4))) == ["tensor 'b' overlaps tensor 'a'"]
    assert findings(file_with({"a": t(0, 6)}, bytes(4))) == [
        "tensor 'a': data_offsets end 6 is past the data (4 bytes)"
    ]
    assert findings(file_with({"a": t(0, 2)}, bytes(4))) == ["2 trailing bytes after the last tensor"]


def test_deeply_nested_header_is_a_finding_not_a_crash() -> None:
    text = b'{"a":' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    raw = struct.pack("<Q", len(text)) + text
    assert findings(raw) == ["header JSON is nested too deeply to read"]


def test_overflowing_shape_is_reported_not_raised() -> None:
    header = {"huge": {"dtype": "F64", "shape": [2**40, 2**40], "data_offsets": [0, 8]}}
    assert findings(file_with(header, bytes(8)))[0] == (
        "tensor 'huge': shape [1099511627776, 1099511627776] has more elements than fit in 64 bits"
    )


def test_zero_sized_tensors_are_legal_anywhere() -> None:
    header = {
        "a": {"dtype": "F32", "shape": [0], "data_offsets": [0, 0]},
        "b": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]},
        "c": {"dtype": "F32", "shape": [3, 0], "data_offsets": [4, 4]},
    }
    assert len(layout_of(file_with(header, bytes(4))).tensors) == 3


def test_hostile_values_are_cut_short_in_messages() -> None:
    name = "n" * 10_000
    header = {name: {"dtype": "X" * 10_000, "shape": list(range(-1, 10_000)), "data_offsets": [0, 0]}}
    found = caught(file_with(header, b""))
    assert {f.rule for f in found} == {"unknown-dtype", "bad-shape"}
    assert all(f.tensor == name and len(str(f)) < 400 for f in found)


def test_a_huge_integer_literal_is_a_finding_not_a_value_error() -> None:
    text = '{"a":{"dtype":"U8","shape":[' + "7" * 100_000 + '],"data_offsets":[0,0]}}'
    assert [f.rule for f in caught(struct.pack("<Q", len(text)) + text.encode())] == ["shape-overflow"]


# --- the generated cases: one or more for every rule ----------------------------------------------

CASES = all_cases()


def test_every_rule_has_a_generated_case() -> None:
    covered = set().union(*(case.rules for case in malformed_cases()))
    assert covered == set(RULES)
    assert valid_cases()


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_generated_case(case: Case) -> None:
    _, raw, rules = case
    assert outcome(raw) == rules
    if rules:
        for finding in caught(raw):
            if finding.rule in PER_TENSOR:
                assert finding.tensor is not None, finding
    else:
        layout = layout_of(raw)
        assert layout.data_start + max((t.end for t in layout.tensors), default=0) == len(raw)


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_generated_case_agrees_with_upstream(case: Case) -> None:
    assert agrees_with_upstream(case.data, set(case.rules)), (case.name, upstream_accepts(case.data))


def test_the_stricter_rules_are_the_only_disagreements() -> None:
    """Where we are stricter, upstream really does accept at least one such file (or we would not say so)."""
    accepted_by_upstream = {rule for case in malformed_cases() for rule in case.rules
                            if case.rules <= STRICTER_THAN_UPSTREAM and upstream_accepts(case.data)}
    assert accepted_by_upstream >= {"header-duplicate-key", "unknown-field", "entry-positional"}


def test_verify_reports_a_huge_claimed_header_without_reading_it(tmp_path: Path) -> None:
    """The length is checked against the cap and the file size before a byte of header is read."""
    for claimed, rule_text in [(2**64 - 1, "exceeds the 100000000-byte limit"),
                               (MAX_HEADER_SIZE, "runs past the end of the 18-byte file")]:
        path = tmp_path / "claims.safetensors"
        path.write_bytes(struct.pack("<Q", claimed) + b'{"a":1}   ')
        report = FileReport(path.name, "0" * 64, path.stat().st_size, "safetensors")
        tracemalloc.start()
        try:
            check_safetensors(path, report)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert report.status == "failed" and rule_text in (report.problem or "")
        assert peak < 1_000_000


# --- properties: whatever the bytes, a layout or a SafetensorsError, quickly ----------------------

BASES = [case.data for case in valid_cases()]
PROPERTY = settings(max_examples=300, deadline=2000, suppress_health_check=[HealthCheck.too_slow])


@PROPERTY
@given(st.binary(max_size=400))
def test_random_bytes_never_crash(raw: bytes) -> None:
    outcome(raw)


@PROPERTY
@given(st.text(max_size=200), st.binary(max_size=64))
def test_random_header_text_never_crashes(text: str, data: bytes) -> None:
    encoded = text.encode("utf-8", "surrogatepass")
    raw = struct.pack("<Q", len(encoded)) + encoded + data
    assert agrees_with_upstream(raw, outcome(raw))


@PROPERTY
@given(
    st.sampled_from(BASES),
    st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), max_size=4),
    st.integers(-8, 8),
)
def test_mutated_valid_files_never_crash_and_agree_with_upstream(
    base: bytes, edits: list[tuple[int, int]], resize: int
) -> None:
    raw = bytearray(base)
    for position, value in edits:
        raw[position % len(raw)] = value
    raw = raw[: len(raw) + resize] if resize < 0 else raw + bytes(resize)
    assert agrees_with_upstream(bytes(raw), outcome(bytes(raw)))


JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers(-3, 2**65) | st.floats(allow_nan=False) | st.text(max_size=4),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3),
    max_leaves=6,
)
EDGES = [2**32, 2**40, 2**63, 2**64 - 2, 2**64 - 1, 2**64, -1]
DIMENSION = st.integers(0, 5) | st.sampled_from(EDGES) | JSONISH


@st.composite
def laid_out_headers(draw: st.DrawFn) -> bytes:
    """Mostly sensible headers, laid out back to back, then perhaps bent in one place."""
    tensors = draw(st.lists(
        st.tuples(st.sampled_from(["a", "b", "c", "", "e", "f", "g", "d\0"]),
                  st.sampled_from(sorted(DTYPE_BITS)), st.lists(st.integers(0, 4), max_size=3)),
        max_size=4, unique_by=lambda t: t[0],
    ))
    header: dict = {}
    offset = 0
    for name, dtype, shape in tensors:
        size = int(np.prod(shape, dtype=object)) * DTYPE_BITS[dtype] // 8
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + size]}
        offset += size
    if header and draw(st.booleans()):
        entry = header[draw(st.sampled_from(sorted(header)))]
        key = draw(st.sampled_from(["dtype", "shape", "data_offsets", "shift", "extra"]))
        if key == "shift":
            entry["data_offsets"][draw(st.integers(0, 1))] += draw(st.integers(-2, 2))
        elif key == "shape":
            entry["shape"] = draw(st.lists(DIMENSION, max_size=3))
        elif key == "data_offsets":
            entry["data_offsets"] = draw(st.lists(st.integers(0, 40) | JSONISH, max_size=3))
        else:
            entry[key] = draw(JSONISH | st.sampled_from(sorted(DTYPE_BITS)))
    if draw(st.booleans()):
        header["__metadata__"] = draw(st.dictionaries(st.text(max_size=3), st.text(max_size=3), max_size=2)
                                      | JSONISH)
    text = json.dumps(header, ensure_ascii=draw(st.booleans()))
    text = draw(st.sampled_from(["", " ", "\n\t"])) + text + draw(st.sampled_from(["", "  ", "\r"]))
    extra = draw(st.integers(-2, 2))
    encoded = text.encode()
    return struct.pack("<Q", len(encoded)) + encoded + bytes(max(0, offset + extra))


@PROPERTY
@given(laid_out_headers())
def test_structured_headers_agree_with_upstream(raw: bytes) -> None:
    assert agrees_with_upstream(raw, outcome(raw))
