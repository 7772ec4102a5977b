"""The core's safetensors header checks, on files built here (never loading tensors)."""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest
from safetensors.numpy import save

from weightpkg.core.safetensors import MAX_HEADER_SIZE, SafetensorsError, header_length, parse_layout


def layout_of(raw: bytes):
    n = header_length(raw[:8], len(raw))
    return parse_layout(raw[8 : 8 + n], len(raw))


def file_with(header: dict, data: bytes, pad: bytes = b"") -> bytes:
    text = json.dumps(header).encode() + pad
    return struct.pack("<Q", len(text)) + text + data


def findings(raw: bytes) -> list[str]:
    with pytest.raises(SafetensorsError) as caught:
        layout_of(raw)
    return caught.value.findings


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


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"\x01\x02", "file of 2 bytes is too short for a safetensors header"),
        (b"\0" * 8, "header length is 0: the header is empty"),
        (struct.pack("<Q", 100) + b"{}", "header length 100 runs past the end of the 10-byte file"),
        (struct.pack("<Q", MAX_HEADER_SIZE + 1) + b"{}",
         f"header length {MAX_HEADER_SIZE + 1} exceeds the 100000000-byte limit"),
        (struct.pack("<Q", 2) + b"\xff\xfe", "header is not UTF-8 (byte 0)"),
        (struct.pack("<Q", 2) + b"{,",
         "header is not JSON: Expecting property name enclosed in double quotes at character 1"),
        (struct.pack("<Q", 2) + b"[]", "header is not a JSON object"),
        (struct.pack("<Q", 17) + b'{"a":{},"a":{}}  ', "header has the key 'a' twice"),
    ],
)
def test_header_framing_problems(raw: bytes, message: str) -> None:
    assert findings(raw) == [message]


def test_tensor_problems_are_all_reported_with_names() -> None:
    header = {
        "bad_dtype": {"dtype": "F128", "shape": [1], "data_offsets": [0, 16]},
        "bad_shape": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]},
        "size": {"dtype": "F32", "shape": [2], "data_offsets": [0, 4]},
        "__metadata__": {"k": 1},
    }
    assert sorted(findings(file_with(header, bytes(16)))) == sorted([
        "__metadata__['k'] is not a string",
        "tensor 'bad_dtype': unknown dtype 'F128'",
        "tensor 'bad_shape': shape [-1] is not a list of non-negative integers",
        "tensor 'size': shape [2] × F32 is 8 bytes but data_offsets span 4",
    ])  # no tiling findings: a tensor that cannot be read would show up as a false gap


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
