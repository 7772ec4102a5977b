"""Our own generator of safetensors files, well-formed and malformed, one or more for every rule.

Each case is (name, bytes, the set of rule ids the parser must report); an empty set means the
file is well-formed. The classes follow what safetensors rejects (its ``safetensors/src/tensor.rs``
and Python binding tests), written from scratch here: no file or fixture of theirs is copied.
Well-formed files come from the real ``safetensors.numpy.save`` where it can write them.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from typing import Any

from weightpkg.core.safetensors import DTYPE_BITS, MAX_HEADER_SIZE

#: Rules where we are deliberately stricter than upstream (see weightpkg/core/safetensors.py):
#: a file whose only findings are these may still load with the real library.
STRICTER_THAN_UPSTREAM = frozenset({"header-duplicate-key", "unknown-field", "entry-positional", "null-byte"})


@dataclass(frozen=True)
class Case:
    name: str
    data: bytes
    rules: frozenset[str]

    def __iter__(self):  # so a case unpacks as (name, bytes, rules)
        return iter((self.name, self.data, self.rules))


def frame(text: bytes | str, data: bytes = b"", *, length: int | None = None) -> bytes:
    """8-byte little-endian length (the text's own unless given), the header text, the data."""
    raw = text.encode("utf-8") if isinstance(text, str) else text
    return struct.pack("<Q", len(raw) if length is None else length) + raw + data


def header(entries: dict[str, Any], data: bytes = b"", *, left: str = "", right: str = "") -> bytes:
    """A file from a header dict (JSON-encoded as is, non-ASCII kept) with optional padding."""
    return frame(left + json.dumps(entries, ensure_ascii=False) + right, data)


def t(dtype: str, shape: list[Any], begin: Any, end: Any) -> dict[str, Any]:
    return {"dtype": dtype, "shape": shape, "data_offsets": [begin, end]}


def u8(begin: int, end: int) -> dict[str, Any]:
    """A U8 tensor exactly covering [begin, end)."""
    return t("U8", [end - begin], begin, end)


def _valid_from_safetensors() -> list[Case]:
    import numpy as np
    from safetensors.numpy import save

    files = {
        "real-several-dtypes-and-metadata": save(
            {"w": np.arange(6, dtype=np.float32).reshape(2, 3), "i": np.arange(3, dtype=np.int64),
             "h": np.ones((2, 2), dtype=np.float16), "b": np.array([True, False])},
            metadata={"format": "pt", "note": "ünïcödé"},
        ),
        "real-zero-sized-tensors": save({"z": np.zeros((0,), dtype=np.float32),
                                         "y": np.zeros((3, 0), dtype=np.int8),
                                         "x": np.ones(5, dtype=np.uint8)}),
        "real-only-zero-sized": save({"z": np.zeros((0, 7), dtype=np.float64)}),
        "real-scalar": save({"s": np.asarray(3.5, dtype=np.float64)}),
        "real-no-tensors": save({}),
        "real-no-tensors-with-metadata": save({}, metadata={"k": "v"}),
    }
    return [Case(name, data, frozenset()) for name, data in files.items()]


def valid_cases() -> list[Case]:
    ws = " \t\n\r"
    every_dtype: dict[str, Any] = {}
    offset = 0
    for dtype, bits in sorted(DTYPE_BITS.items()):
        count = 8  # whole bytes for every width, sub-byte ones included
        every_dtype[dtype.lower()] = t(dtype, [2, count // 2], offset, offset + count * bits // 8)
        offset += count * bits // 8
    own = {
        "padding-left-json-whitespace": header({"a": u8(0, 2)}, b"xy", left=ws),
        "padding-right-json-whitespace": header({"a": u8(0, 2)}, b"xy", right=ws * 3),
        "padding-both-sides": header({}, left="  ", right="\n\n"),
        "metadata-null-means-none": header({"__metadata__": None, "a": u8(0, 1)}, b"x"),
        "metadata-empty-object": header({"__metadata__": {}, "a": u8(0, 1)}, b"x"),
        "scalar-shape": header({"s": t("I32", [], 0, 4)}, bytes(4)),
        "zero-sized-at-start-middle-end": header(
            {"a": t("F32", [0], 0, 0), "b": t("F32", [1], 0, 4), "c": t("F32", [3, 0], 4, 4),
             "d": u8(4, 6), "e": t("I64", [0, 9], 6, 6), "f": t("BOOL", [0], 6, 6)}, bytes(6)),
        "zero-sized-only-no-data": header({"a": t("F32", [2, 0], 0, 0)}),
        "zero-dimension-first-then-huge": header({"a": t("U8", [0, 2**40, 2**40], 0, 0)}),
        "largest-u64-dimension-of-empty": header({"a": t("U8", [0, 2**64 - 1], 0, 0)}),
        "every-dtype": header(every_dtype, bytes(offset)),
        "sub-byte-f4-even-count": header({"a": t("F4", [1, 2], 0, 1)}, b"x"),
        "sub-byte-f6-four-elements": header({"a": t("F6_E2M3", [4], 0, 3), "b": t("F6_E3M2", [2, 2], 3, 6)},
                                            bytes(6)),
        "offsets-listed-out-of-order": header({"b": u8(2, 4), "a": u8(0, 2)}, bytes(4)),
        "unicode-names-and-metadata": header({"__metadata__": {"clé": "välue"}, "ŵ.ü": u8(0, 1)}, b"x"),
        "escaped-surrogate-pair-is-fine": frame(
            '{"\\ud83d\\ude00":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}', b"x"),
        "empty-tensor-name": header({"": u8(0, 1)}, b"x"),
        "name-like-metadata": header({"__metadata__x": u8(0, 1)}, b"x"),
    }
    return _valid_from_safetensors() + [Case(name, data, frozenset()) for name, data in own.items()]


def malformed_cases() -> list[Case]:
    one = {"a": u8(0, 2)}
    out: list[tuple[str, bytes, set[str]]] = []

    def add(name: str, data: bytes, *rules: str) -> None:
        out.append((name, data, set(rules)))

    # --- the 8-byte length and the header's extent
    add("empty-file", b"", "header-too-short")
    add("seven-bytes", b"\x07" * 7, "header-too-short")
    add("length-zero", bytes(8), "header-empty")
    add("length-zero-then-json", frame("{}", length=0), "header-empty")
    add("length-past-end", frame("{}", length=100), "header-past-end")
    add("length-past-end-by-one", frame("{}", length=3), "header-past-end")
    add("length-exactly-the-cap-but-short", frame("{}", length=MAX_HEADER_SIZE), "header-past-end")
    add("length-over-the-cap", frame("{}", length=MAX_HEADER_SIZE + 1), "header-too-large")
    add("length-u64-max", frame("{}", length=2**64 - 1), "header-too-large")
    add("length-i64-negative-as-unsigned", frame("{}", length=2**63), "header-too-large")
    # --- UTF-8
    add("not-utf8", frame(b"\xff\xfe"), "header-not-utf8")
    add("utf8-overlong-slash", frame(b'{"\xc0\xaf":1}'), "header-not-utf8")
    add("utf8-encoded-surrogate", frame(b'{"\xed\xa0\x80":1}'), "header-not-utf8")
    add("utf8-truncated-sequence", frame(b'{"a\xe2\x82":1}'), "header-not-utf8")
    add("utf8-beyond-u10ffff", frame(b'{"\xf4\x90\x80\x80":1}'), "header-not-utf8")
    # --- JSON
    add("json-truncated", frame("{"), "header-not-json")
    add("json-garbage-after-object", frame("{}x"), "header-not-json")
    add("json-two-objects", frame("{}{}"), "header-not-json")
    add("json-single-quotes", frame("{'a':1}"), "header-not-json")
    add("json-trailing-comma", frame('{"a":{"dtype":"U8","shape":[0],"data_offsets":[0,0]},}'),
        "header-not-json")
    add("json-nan-in-metadata", frame('{"__metadata__":{"k":NaN}}'), "header-not-json")
    add("json-infinity-in-shape", frame('{"a":{"dtype":"U8","shape":[Infinity],"data_offsets":[0,0]}}'),
        "header-not-json")
    add("json-negative-infinity", frame('{"a":-Infinity}'), "header-not-json")
    add("json-byte-order-mark", frame("\ufeff{}"), "header-not-json")
    add("json-unpaired-surrogate-in-name",
        frame('{"a\\ud800":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}', b"x"), "header-not-json")
    add("json-unpaired-surrogate-in-metadata", frame('{"__metadata__":{"k":"\\udc00"}}'), "header-not-json")
    add("json-unpaired-surrogate-in-dtype",
        frame('{"a":{"dtype":"\\ud800","shape":[0],"data_offsets":[0,0]}}'), "header-not-json")
    add("json-raw-control-character", frame('{"a\x01":{"dtype":"U8","shape":[0],"data_offsets":[0,0]}}'),
        "header-not-json")
    add("json-padding-form-feed", frame("\x0c{}"), "header-not-json")
    add("json-padding-nul-bytes", frame("{}\0\0\0\0"), "header-not-json")
    add("json-padding-non-breaking-space", frame("{}\u00a0"), "header-not-json")
    add("json-only-whitespace", frame("        "), "header-not-json")
    add("json-leading-zero", frame('{"a":{"dtype":"U8","shape":[01],"data_offsets":[0,1]}}', b"x"),
        "header-not-json")
    add("json-deeply-nested", frame('{"a":' + "[" * 100_000 + "]" * 100_000 + "}"), "header-too-deep")
    add("json-array", frame("[]"), "header-not-object")
    add("json-string", frame('"{}"'), "header-not-object")
    add("json-number", frame("8"), "header-not-object")
    add("json-null", frame("null"), "header-not-object")
    # --- duplicate keys
    entry = '{"dtype":"U8","shape":[2],"data_offsets":[0,2]}'
    add("duplicate-tensor", frame(f'{{"a":{entry},"a":{entry}}}', b"xy"), "header-duplicate-key")
    add("duplicate-tensor-differing", frame(f'{{"a":{entry},"a":{{}}}}', b"xy"), "header-duplicate-key")
    add("duplicate-metadata-object", frame(f'{{"__metadata__":{{}},"__metadata__":{{}},"a":{entry}}}', b"xy"),
        "header-duplicate-key")
    add("duplicate-metadata-key", frame(f'{{"__metadata__":{{"k":"1","k":"2"}},"a":{entry}}}', b"xy"),
        "header-duplicate-key")
    add("duplicate-field-in-entry",
        frame('{"a":{"dtype":"U8","dtype":"F32","shape":[2],"data_offsets":[0,2]}}', b"xy"),
        "header-duplicate-key")
    add("duplicate-offsets-in-entry",
        frame('{"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2],"data_offsets":[0,1]}}', b"xy"),
        "header-duplicate-key")
    # --- __metadata__
    add("metadata-array", header({"__metadata__": ["a"], **one}, b"xy"), "metadata-not-object")
    add("metadata-string", header({"__metadata__": "format=pt", **one}, b"xy"), "metadata-not-object")
    add("metadata-number", header({"__metadata__": 1, **one}, b"xy"), "metadata-not-object")
    add("metadata-value-number", header({"__metadata__": {"k": 1}, **one}, b"xy"), "metadata-not-string")
    add("metadata-value-null", header({"__metadata__": {"k": None}, **one}, b"xy"), "metadata-not-string")
    add("metadata-value-object", header({"__metadata__": {"k": {"x": "y"}}, **one}, b"xy"),
        "metadata-not-string")
    add("metadata-value-list", header({"__metadata__": {"k": ["y"]}, **one}, b"xy"), "metadata-not-string")
    add("metadata-value-bool", header({"__metadata__": {"k": True}, **one}, b"xy"), "metadata-not-string")
    add("metadata-looks-like-a-tensor", header({"__metadata__": u8(0, 2)}), "metadata-not-string")
    # --- NUL characters (upstream's Python binding rejects them since its null-byte injection fix)
    add("null-byte-in-tensor-name", header({"a\0hidden": u8(0, 2)}, b"xy"), "null-byte")
    add("null-byte-in-metadata-key", header({"__metadata__": {"frame\0work": "pt"}, **one}, b"xy"),
        "null-byte")
    add("null-byte-in-metadata-value", header({"__metadata__": {"format": "pt\0x"}, **one}, b"xy"),
        "null-byte")
    # --- a tensor entry
    add("entry-null", header({"a": None}), "entry-not-object")
    add("entry-array", header({"a": ["U8", [0], [0, 0]]}), "entry-positional")
    add("entry-array-wrong-length", header({"a": ["U8", [0]]}), "entry-positional")
    add("entry-string", header({"a": "U8"}), "entry-not-object")
    add("entry-number", header({"a": 0}), "entry-not-object")
    add("entry-empty-object", header({"a": {}}), "missing-field")
    add("entry-without-dtype", header({"a": {"shape": [2], "data_offsets": [0, 2]}}, b"xy"), "missing-field")
    add("entry-without-shape", header({"a": {"dtype": "U8", "data_offsets": [0, 2]}}, b"xy"), "missing-field")
    add("entry-without-offsets", header({"a": {"dtype": "U8", "shape": [2]}}), "missing-field")
    add("entry-extra-field", header({"a": {**u8(0, 2), "hidden": "payload"}}, b"xy"), "unknown-field")
    add("entry-extra-field-offset-like", header({"a": {**u8(0, 2), "data_offset": [0, 2]}}, b"xy"),
        "unknown-field")
    add("entry-misspelt-field", header({"a": {"dtype": "U8", "shape": [2], "offsets": [0, 2]}}),
        "missing-field", "unknown-field")
    # --- dtype
    add("dtype-unknown", header({"a": t("F128", [1], 0, 16)}, bytes(16)), "unknown-dtype")
    add("dtype-lowercase", header({"a": t("f32", [1], 0, 4)}, bytes(4)), "unknown-dtype")
    add("dtype-numpy-name", header({"a": t("float32", [1], 0, 4)}, bytes(4)), "unknown-dtype")
    add("dtype-packed-int4-is-not-upstream", header({"a": t("PackedI4", [2], 0, 1)}, b"x"), "unknown-dtype")
    add("dtype-number", header({"a": t(11, [1], 0, 4)}, bytes(4)), "unknown-dtype")  # type: ignore[arg-type]
    add("dtype-null", header({"a": t(None, [1], 0, 4)}, bytes(4)), "unknown-dtype")  # type: ignore[arg-type]
    # --- shape
    for label, shape in [("negative", [-1]), ("float", [2.0]), ("bool", [True]), ("string", ["2"]),
                         ("null", [None]), ("nested-list", [[2]]), ("object", [{"n": 2}]),
                         ("not-a-list", 2), ("object-not-list", {"0": 2}), ("negative-huge", [-(10**30)])]:
        add(f"shape-{label}", header({"a": {"dtype": "U8", "shape": shape, "data_offsets": [0, 2]}}, b"xy"),
            "bad-shape")
    add("shape-negative-zero", frame('{"a":{"dtype":"U8","shape":[-0],"data_offsets":[0,0]}}'), "bad-shape")
    add("shape-exponent-integer", frame('{"a":{"dtype":"U8","shape":[2e0],"data_offsets":[0,2]}}', b"xy"),
        "bad-shape")
    add("shape-nested-deeper-than-upstream-allows",
        frame('{"a":{"dtype":"U8","shape":' + "[" * 200 + "]" * 200 + ',"data_offsets":[0,0]}}'), "bad-shape")
    # --- overflow: a dimension, the element count (u64) and the bit count (usize) must fit 64 bits
    add("shape-dimension-over-u64", header({"a": t("U8", [2**64], 0, 0)}), "shape-overflow")
    add("shape-dimension-30-digits", header({"a": t("U8", [10**30], 0, 0)}), "shape-overflow")
    add("shape-dimension-5000-digits",
        frame('{"a":{"dtype":"U8","shape":[' + "9" * 5000 + '],"data_offsets":[0,0]}}'), "shape-overflow")
    add("shape-product-over-u64", header({"a": t("F64", [2**40, 2**40], 0, 8)}, bytes(8)), "shape-overflow")
    add("shape-product-upstream-example", header({"a": t("I32", [2, 2**64 - 2], 0, 16)}, bytes(16)),
        "shape-overflow")
    add("shape-product-overflows-before-a-zero", header({"a": t("U8", [2**40, 2**40, 0], 0, 0)}),
        "shape-overflow")
    add("shape-bits-over-usize", header({"a": t("I32", [2, 2**63 - 1], 0, 16)}, bytes(16)), "shape-overflow")
    add("shape-bits-over-usize-u8", header({"a": t("U8", [2**64 - 1], 0, 0)}), "shape-overflow")
    add("shape-bits-over-usize-f4", header({"a": t("F4", [2**62], 0, 2**61)}),
        "shape-overflow", "offsets-past-end")
    # --- data_offsets
    for label, offsets in [("one-number", [2]), ("three-numbers", [0, 2, 2]), ("empty", []),
                           ("negative", [-2, 0]), ("float", [0, 2.0]), ("bool", [False, True]),
                           ("strings", ["0", "2"]), ("null", None), ("object", {"begin": 0, "end": 2}),
                           ("scalar", 2)]:
        add(f"offsets-{label}", header({"a": {"dtype": "U8", "shape": [2], "data_offsets": offsets}}, b"xy"),
            "bad-offsets")
    add("offsets-over-u64", header({"a": t("U8", [0], 2**64, 2**64)}), "bad-offsets")
    add("offsets-begin-after-end", header({"a": t("U8", [0], 2, 0)}, b"xy"), "bad-offsets")
    # --- shape × dtype against the span
    add("size-mismatch-short-span", header({"a": t("F32", [2], 0, 4)}, bytes(4)), "size-mismatch")
    add("size-mismatch-long-span", header({"a": t("F32", [1], 0, 8)}, bytes(8)), "size-mismatch")
    add("size-mismatch-upstream-example", header({"test": t("I32", [2, 2], 0, 4)}, bytes(4)), "size-mismatch")
    add("size-mismatch-empty-shape-with-bytes", header({"a": t("F32", [0], 0, 4)}, bytes(4)), "size-mismatch")
    add("size-mismatch-scalar", header({"a": t("F64", [], 0, 4)}, bytes(4)), "size-mismatch")
    add("sub-byte-f4-odd-count", header({"a": t("F4", [3], 0, 2)}, b"xy"), "size-not-whole-bytes")
    add("sub-byte-f4-odd-rows", header({"a": t("F4", [1, 3], 0, 2)}, b"xy"), "size-not-whole-bytes")
    add("sub-byte-f6-two-elements", header({"a": t("F6_E2M3", [2], 0, 2)}, b"xy"), "size-not-whole-bytes")
    add("sub-byte-f6-five-elements", header({"a": t("F6_E3M2", [5], 0, 4)}, bytes(4)), "size-not-whole-bytes")
    # --- how the spans tile the data
    add("offsets-not-from-zero", header({"a": u8(2, 4)}, bytes(4)), "offsets-not-from-zero")
    add("offsets-gap", header({"a": u8(0, 2), "b": u8(3, 4)}, bytes(4)), "offsets-gap")
    add("offsets-gap-after-zero-sized", header({"z": u8(0, 0), "b": u8(1, 4)}, bytes(4)), "offsets-gap")
    add("offsets-overlap", header({"a": u8(0, 3), "b": u8(2, 4)}, bytes(4)), "offsets-overlap")
    add("offsets-same-span-twice", header({"a": u8(0, 4), "b": u8(0, 4)}, bytes(4)), "offsets-overlap")
    add("offsets-upstream-json-attack",
        header({f"weight_{i}": t("F32", [2, 2], 0, 16) for i in range(10)}, bytes(16)), "offsets-overlap")
    add("offsets-zero-sized-inside-another", header({"a": u8(0, 4), "z": u8(2, 2)}, bytes(4)),
        "offsets-overlap")
    add("offsets-nested-inside-another", header({"a": u8(0, 4), "b": u8(1, 2)}, bytes(4)), "offsets-overlap")
    add("offsets-past-end", header({"a": u8(0, 6)}, bytes(4)), "offsets-past-end")
    add("offsets-past-end-truncated-file", header({"test": t("I32", [2, 2], 0, 16)}, bytes(14)),
        "offsets-past-end")
    add("offsets-past-end-no-data", header({"a": u8(0, 2)}), "offsets-past-end")
    add("offsets-zero-sized-past-end", header({"a": u8(0, 4), "z": u8(6, 6)}, bytes(4)), "offsets-past-end")
    add("offsets-far-past-end", header({"a": u8(0, 4), "b": u8(2**40, 2**40 + 1)}, bytes(4)),
        "offsets-past-end")
    add("offsets-all-wrong-at-once", header({"a": u8(1, 2), "b": u8(4, 6), "c": u8(5, 8)}, bytes(7)),
        "offsets-not-from-zero", "offsets-gap", "offsets-overlap", "offsets-past-end")
    add("trailing-bytes", header({"a": u8(0, 2)}, bytes(4)), "trailing-bytes")
    add("trailing-bytes-no-tensors", header({}, b"xy"), "trailing-bytes")
    add("trailing-bytes-polyglot", header({"test": t("I32", [2, 2], 0, 16)}, bytes(16) + b"extra_bogus_data"),
        "trailing-bytes")
    add("trailing-bytes-after-zero-sized", header({"z": u8(0, 0)}, b"x"), "trailing-bytes")
    # --- several problems in one file are all reported
    add("many-problems", header({
        "__metadata__": {"k": 1},
        "bad_dtype": t("F128", [1], 0, 16),
        "bad_shape": {"dtype": "F32", "shape": [-1], "data_offsets": [16, 20]},
        "size": t("F32", [2], 20, 24),
        "extra": {**u8(24, 25), "x": 1},
    }, bytes(26)), "metadata-not-string", "unknown-dtype", "bad-shape", "size-mismatch", "unknown-field",
        "trailing-bytes")
    add("no-tiling-when-an-entry-has-no-offsets", header({"a": u8(2, 4), "b": {"dtype": "U8", "shape": [1]}},
                                                         bytes(9)), "missing-field")
    return [Case(name, data, frozenset(rules)) for name, data, rules in out]


def all_cases() -> list[Case]:
    cases = valid_cases() + malformed_cases()
    names = [c.name for c in cases]
    assert len(names) == len(set(names)), "case names must be unique"
    return cases
