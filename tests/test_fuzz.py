"""Hypothesis against the three parsers that read hostile bytes: the recipe loader, the safetensors
header and the pickle scanner.

Whatever the input, each gives a value or a typed error, never another exception; its messages name
the file; and its memory stays bounded however large the lengths the input claims. Examples are
derandomized, so CI sees the same ones every run; tests/figures.py counts how many ran. Nothing is
ever unpickled: a tripwire on every loader and process launcher, and a sentinel file that a payload
would create, show that no payload ran.
"""

from __future__ import annotations

import _pickle
import contextlib
import io
import json
import math
import os
import pickle
import re
import struct
import subprocess
import tracemalloc
import warnings
import zipfile
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import safetensors
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import weightpkg
from weightpkg.core.content import content_digest
from weightpkg.core.keypath import render
from weightpkg.core.pickles import PickleScan, scan_pickle, sniff_pickle
from weightpkg.core.recipe import Recipe
from weightpkg.core.safetensors import (
    DTYPE_BITS,
    MAX_HEADER_SIZE,
    RULES,
    SafetensorsError,
    header_length,
    parse_layout,
)
from weightpkg.errors import RecipeError, UsageError
from weightpkg.load import read_recipe
from weightpkg.scan import FileScan, scan_file
from weightpkg.tensorfiles import file_content_digest
from weightpkg.verification import FileReport, check_safetensors

from .conftest import CORPORA, REPO, run_cli
from .figures import count
from .guards import deadline
from .safetensors_cases import STRICTER_THAN_UPSTREAM

MiB = 1 << 20
#: Far below 64 MiB: the inputs here are small, only the lengths they claim are huge.
MEMORY_BOUND = 16 * MiB


#: WEIGHTPKG_FUZZ_SCALE=20 runs twenty times the examples, randomized, for a long hunt by hand.
SCALE = float(os.environ.get("WEIGHTPKG_FUZZ_SCALE", "1"))


def fuzz(examples: int) -> settings:
    """Deterministic (derandomized) settings sized so this module runs well within a minute."""
    return settings(
        max_examples=max(1, round(examples * SCALE)),
        deadline=None,
        derandomize=SCALE == 1,
        database=None,
        suppress_health_check=[
            HealthCheck.too_slow,
            HealthCheck.function_scoped_fixture,
            HealthCheck.data_too_large,
            HealthCheck.filter_too_much,
            HealthCheck.large_base_example,
        ],
    )


@contextlib.contextmanager
def no_warnings() -> Iterator[None]:
    """A warning from the code under test is an error: under ``-W error`` it would escape as one."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        yield


def peak_memory(action: Callable[[], Any]) -> tuple[Any, int]:
    """``action()``'s result and the peak of Python allocations while it ran."""
    tracemalloc.start()
    try:
        result = action()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return result, peak


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One folder for all examples of the module: Hypothesis runs many examples per test call."""
    return tmp_path_factory.mktemp("fuzz")


# =================================================================================================
# 1. The recipe loader
# =================================================================================================

SHIPPED = sorted((REPO / "recipes").glob("*.toml"))
TEXTS = [p.read_text("utf-8") for p in SHIPPED]
_KEY_LINE = re.compile(r"^(\s*[A-Za-z0-9_\"'.-]+\s*=\s*)(\S.*)$")
_BARE = re.compile(r"[A-Za-z0-9_-]+")
PATH_KEYS = ("path", "member", "recipe", "output", "outputs")
HOSTILE_PATHS = [
    "/etc/passwd", "../x", "a/../../x", "a\\b", "..\\x", "C:\\x", "C:/x", "a\x00b", "", ".", "./x",
    "x/", "//x", "a//b", "~/x", "..", "x/..",
]
KEYS = [
    "kind", "path", "url", "mirrors", "urls", "member", "recipe", "output", "sha256", "size", "format",
    "sources", "name", "role", "available", "stress", "seeds", "build", "outputs", "env", "command",
    "content-sha256", "declared-license", "revision", "repo", "repo-type", "schema", "weights", "inputs",
    "package", "license", "x-extra", '"quoted key"', "a.b", "accept", "level",
]
SOURCE_KEYS = {
    "path": ["path"],
    "url": ["url", "mirrors"],
    "pypi": ["package", "version", "sha256", "member", "wheel", "size"],
    "deb": ["package", "version", "sha256", "member", "urls", "architecture", "size"],
    "hf": ["repo", "revision", "path", "repo-type"],
    "recipe": ["recipe", "output"],
}
SCALARS = [
    "9223372036854775807", "-9223372036854775808", "9223372036854775808", "-9223372036854775809",
    "0x" + "f" * 17, "0x" + "f" * 3700, "1" * 4400, "0o777", "0b101", "1e400", "-0.0", "nan", "inf",
    "-inf", "true", "false", "1979-05-27", "1979-05-27T07:32:00Z", "07:32:00",
    "1979-05-27 07:32:00.999999-07:00", '""', "''", '"a" "b"', json.dumps("a" * 5000),
    json.dumps("0" * 64 + "\n"), json.dumps("http://[::1"), json.dumps("http://h:port/x"),
    json.dumps("MIT AND (Apache-2.0"), json.dumps("TODO: fill in"), json.dumps("main"),
]


def one_in(n: int) -> st.SearchStrategy[bool]:
    """True once in ``n`` draws (st.integers(0, n - 1) == 0 would be true far more often: Hypothesis
    favours the bounds)."""
    return st.sampled_from([False] * (n - 1) + [True])


@st.composite
def toml_values(draw: st.DrawFn, depth: int = 0) -> str:
    """One TOML value as text: scalars of every type (edge values too), arrays and inline tables."""
    kinds = ["int", "float", "scalar", "string", "hostile", "sha"] + (["array", "table"] if depth < 2 else [])
    kind = draw(st.sampled_from(kinds))
    if kind == "int":
        return str(draw(st.integers(-(2**70), 2**70)))
    if kind == "float":
        return repr(draw(st.floats(allow_nan=False, allow_infinity=False)))
    if kind == "scalar":
        return draw(st.sampled_from(SCALARS))
    if kind == "string":
        return json.dumps(draw(st.text(max_size=12)))  # lone surrogates make it invalid TOML: fine
    if kind == "hostile":
        return json.dumps(draw(st.sampled_from(HOSTILE_PATHS)))
    if kind == "sha":
        return json.dumps(draw(st.sampled_from(["a" * 64, "A" * 64, "a" * 63, "a" * 40, "0" * 64 + " "])))
    if kind == "array":
        return "[" + ", ".join(draw(st.lists(toml_values(depth + 1), max_size=3))) + "]"
    keys = draw(st.lists(st.sampled_from(KEYS), max_size=3, unique=True))
    return "{ " + ", ".join(f"{k} = {draw(toml_values(depth + 1))}" for k in keys) + " }"


@st.composite
def source_tables(draw: st.DrawFn) -> list[str]:
    """A [[weights.sources]] or [[inputs.sources]] table appended at the end (it joins the last
    entry), of a real kind, with some of its keys, hostile values among them."""
    holder = draw(st.sampled_from(["weights", "inputs"]))
    kind = draw(st.sampled_from(sorted(SOURCE_KEYS)))
    keys = draw(st.lists(st.sampled_from(SOURCE_KEYS[kind] + ["x-extra"]), max_size=4, unique=True))
    lines = [f"[[{holder}.sources]]", f'kind = "{kind}"']
    lines += [f"{key} = {draw(toml_values())}" for key in keys]
    return lines


MUTATIONS = ["delete", "duplicate", "replace", "replace", "insert", "hostile", "source"]


@st.composite
def mutated_recipes(draw: st.DrawFn) -> bytes:
    """A shipped recipe bent in one to three places (lines deleted, repeated, revalued, added,
    paths made hostile, sources appended), then perhaps a flipped byte or a cut."""
    lines = draw(st.sampled_from(TEXTS)).split("\n")
    for _ in range(draw(st.integers(1, 3))):
        op = draw(st.sampled_from(MUTATIONS))
        at = draw(st.integers(0, len(lines) - 1))
        valued = [j for j, line in enumerate(lines) if _KEY_LINE.match(line)]
        if op == "delete" and len(lines) > 1:
            del lines[at]
        elif op == "duplicate":
            lines.insert(at, lines[at])
        elif op == "replace" and valued:
            j = draw(st.sampled_from(valued))
            match = _KEY_LINE.match(lines[j])
            assert match is not None
            lines[j] = match.group(1) + draw(toml_values())
        elif op == "insert":
            lines.insert(at, f"{draw(st.sampled_from(KEYS))} = {draw(toml_values())}")
        elif op == "hostile":
            keyed = [j for j in valued if lines[j].split("=")[0].strip() in PATH_KEYS]
            if keyed:
                j = draw(st.sampled_from(keyed))
                value = json.dumps(draw(st.sampled_from(HOSTILE_PATHS)))
                key = lines[j].split("=")[0].strip()
                listed = key == "outputs" or draw(st.booleans())
                lines[j] = f"{key} = [{value}]" if listed else f"{key} = {value}"
        elif op == "source":
            lines += draw(source_tables())
    raw = bytearray("\n".join(lines).encode("utf-8", "surrogatepass"))
    if raw and draw(one_in(6)):
        raw[draw(st.integers(0, len(raw) - 1))] ^= draw(st.integers(1, 255))
    if raw and draw(one_in(6)):
        raw = raw[: draw(st.integers(0, len(raw)))]
    return bytes(raw)


TOKENS = [
    "[", "]", "[[", "]]", "=", " = ", "\n", "\r\n", '"', "'", '"""', "'''", "\\", "\\u0000", "#", "{",
    "}", ",", ".", "a", "weights", "sources", "path", "kind", '"path"', "1", "0x", "1e9", "inf", "nan",
    "true", "1979-05-27", "\ufeff", "\t", " ", "é", "\x00", "\x7f", "schema", "9" * 30,
]


def toml_soup() -> st.SearchStrategy[bytes]:
    """Bytes that are mostly TOML's own tokens, so the parser goes past its first byte."""
    return st.lists(st.sampled_from(TOKENS), max_size=40).map(lambda t: "".join(t).encode("utf-8"))


def walk(value: Any, parts: tuple[Any, ...] = ()) -> Iterator[tuple[tuple[Any, ...], Any]]:
    yield parts, value
    if isinstance(value, dict):
        for key, item in value.items():
            yield from walk(item, (*parts, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from walk(item, (*parts, index))


def load_outcome(path: Path) -> Recipe | RecipeError:
    """``load_recipe``'s result or its RecipeError, checked; any other exception fails the test."""
    try:
        with no_warnings(), deadline():
            return weightpkg.load_recipe(path)
    except RecipeError as error:
        check_recipe_error(error, path)
        return error


def check_recipe_error(error: RecipeError, path: Path) -> None:
    """Every problem names the file (each line of the message starts with it) and, where the TOML
    could be read, a key path that is in the document, or the key missing from a table that is."""
    assert error.problems, "a RecipeError must hold problems"
    lines = str(error).split("\n")
    assert len(lines) == len(error.problems), str(error)
    for line in lines:
        assert line.startswith(f"{path}:") or line == str(path), line
    try:
        data = read_recipe(path).data
    except RecipeError:
        return
    found = {render(parts) for parts, _ in walk(data)}
    tables = {render(parts) for parts, value in walk(data) if isinstance(value, dict)}
    for problem in error.problems:
        assert problem.file == str(path)
        if not problem.key or problem.key in found:
            continue
        parent, _, leaf = problem.key.rpartition(".")
        assert parent in tables and _BARE.fullmatch(leaf), f"{problem.key!r} is not in the file: {problem}"


@fuzz(500)
@given(st.binary(max_size=300) | toml_soup())
def test_any_bytes_as_a_recipe_give_a_recipe_or_a_recipe_error(scratch: Path, raw: bytes) -> None:
    path = scratch / "bytes.toml"
    path.write_bytes(raw)
    load_outcome(path)
    count("fuzz examples: recipe loader")


@fuzz(1100)
@given(mutated_recipes())
def test_mutated_shipped_recipes_give_a_recipe_or_a_located_recipe_error(scratch: Path, raw: bytes) -> None:
    path = scratch / "mutated.toml"
    path.write_bytes(raw)
    if zlib.crc32(raw) % 8:  # tracemalloc makes a load five times slower: one example in eight
        load_outcome(path)
    else:
        _, peak = peak_memory(lambda: load_outcome(path))
        assert peak < MEMORY_BOUND, f"{peak / MiB:.1f} MiB to load a {len(raw)}-byte recipe"
    count("fuzz examples: recipe loader")


def test_every_shipped_recipe_loads() -> None:
    """The mutations start from valid recipes: a failure above is the mutation's doing."""
    assert len(SHIPPED) >= 5
    for path in SHIPPED:
        assert isinstance(load_outcome(path), Recipe)


def shipped(name: str) -> str:
    return (REPO / "recipes" / name).read_text("utf-8")


#: Inputs the fuzzing above found to crash the loader (each a traceback before its fix), and the
#: problem each must now be reported as.
FOUND = {
    "long-integer.toml": (
        lambda t: t.replace("size = 19528", "size = " + "1" * 4400),
        ":23: TOML syntax error: an integer too long to read (TOML integers are 64-bit)",
    ),
    "wide-integer.toml": (
        lambda t: t.replace("schema = 1", "schema = 0x" + "f" * 3700),
        ":2: schema: integer of 14800 bits out of range: TOML integers are 64-bit signed",
    ),
    "sha-newline.toml": (
        lambda t: t.replace('88078c"', '88078c\\n"', 1),
        ":22: weights[0].sha256: not a sha256: expected 64 lower-case hexadecimal digits, got "
        "'fdd22cfea84802d7d8f2287afb8385e1440b2a3891ee11f905207791... (65 characters)",
    ),
    "stress-integer.toml": (
        lambda t: re.sub(r"\[\[stress\]\]\n.*?(?=\n\[)", "", t, flags=re.S).replace(
            "schema = 1", "stress = 5\nschema = 1", 1),
        ":2: stress: expected an array, got an integer 5",
    ),
}


def test_inputs_the_fuzzer_found_are_recipe_errors(tmp_path: Path) -> None:
    base = shipped("digits-mlp.toml")
    for name, (make, expected) in FOUND.items():
        path = tmp_path / name
        path.write_text(make(base))
        error = load_outcome(path)
        assert isinstance(error, RecipeError), name
        assert f"{path}{expected}" in str(error).split("\n"), str(error)[:500]


def test_a_url_source_does_not_misplace_the_key_paths_of_the_sources_after_it(tmp_path: Path) -> None:
    """Found by the key-path check above: a url source renamed the key of every later source's problem
    (``weights[0].sources[0].url.sources[1].path``)."""
    text = shipped("digits-mlp.toml").replace(
        '[[weights.sources]]\nkind = "path"',
        '[[weights.sources]]\nkind = "url"\nurl = "http://127.0.0.1:9/w"\n\n'
        '[[weights.sources]]\nkind = "path"',
        1,
    ).replace('path = "digits-mlp/digits-mlp.safetensors"', 'path = "../digits-mlp.safetensors"', 1)
    path = tmp_path / "url-then-path.toml"
    path.write_text(text)
    error = load_outcome(path)
    assert isinstance(error, RecipeError)
    assert str(error) == (
        f"{path}:34: weights[0].sources[1].path: path '../digits-mlp.safetensors' contains '..' and "
        "would escape its folder"
    )


def test_the_cli_reports_fuzzed_recipes_in_one_line_each_with_exit_2(tmp_path: Path) -> None:
    base = shipped("digits-mlp.toml")
    paths = []
    for name, (make, _) in FOUND.items():
        paths.append(tmp_path / name)
        paths[-1].write_text(make(base))
    done = run_cli("lint", *map(str, paths))
    assert done.returncode == 2, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    lines = done.stderr.splitlines()
    assert {line.split(":", 1)[0] for line in lines} == {str(p) for p in paths}, done.stderr
    for path, (_, expected) in zip(paths, FOUND.values(), strict=True):
        assert f"{path}{expected}" in lines
    done = run_cli("--store", str(tmp_path / "store"), "verify", str(paths[1]))
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr == f"{paths[1]}{FOUND['wide-integer.toml'][1]}\n"


# =================================================================================================
# 2. The safetensors header, in whole files (tests/test_safetensors_layout.py fuzzes the header)
# =================================================================================================

DTYPES = sorted(DTYPE_BITS)
HUGE = [2**31, 2**32, 2**40, 2**63 - 1, 2**63, 2**64 - 1, 2**64, 10**30]
CLAIMS = [0, 1, 7, 2**32, 10**9, MAX_HEADER_SIZE, MAX_HEADER_SIZE + 1, 2**63, 2**64 - 1]
NAMES = ["a", "b", "__metadata__", "", "w\x00", "é", "x" * 300, "a.weight"]
SPECIALS = [
    "none", "deep-array", "deep-object", "NaN", "Infinity", "-Infinity", "big-integer", "big-float",
    "negative-zero", "bom", "surrogate", "not-utf8", "overlong-utf8", "top-array", "garbage",
]


@st.composite
def hostile_safetensors(draw: st.DrawFn) -> bytes:
    """A whole file: an 8-byte length (its own or a hostile claim), a JSON header written as text
    (so keys can repeat and NaN, deep nesting or bad UTF-8 can appear) and data of about the size
    the header lays out, which may claim exabytes."""
    entries: list[str] = []
    offset = 0
    names = draw(st.lists(st.sampled_from(NAMES) | st.text(max_size=4), max_size=4, unique=True))
    if names and draw(one_in(6)):
        names.append(draw(st.sampled_from(names)))  # a tensor named twice
    for name in names:
        if name == "__metadata__":
            meta = draw(st.dictionaries(st.text(max_size=3), st.text(max_size=3) | st.integers(), max_size=2))
            entries.append(f"{json.dumps(name)}: {json.dumps(meta)}")
            continue
        odd_dtype = draw(one_in(6))
        dtype = draw(st.sampled_from(["f32", "F32 ", "", "Q8", "F8", "BF16\x00"] if odd_dtype else DTYPES))
        dims = st.sampled_from(HUGE) if draw(one_in(5)) else st.integers(0, 4)
        shape = draw(st.lists(dims, max_size=4))
        bits = DTYPE_BITS.get(dtype, 8) * math.prod(shape)
        size = bits // 8
        offsets: Any = [offset, offset + size]
        offset += size
        bend = draw(st.sampled_from(["none", "none", "huge", "swap", "negative", "float", "short"]))
        if bend == "huge":
            offsets[draw(st.integers(0, 1))] = draw(st.sampled_from(HUGE))
        elif bend == "swap":
            offsets = offsets[::-1]
        elif bend == "negative":
            offsets[0] = -1
        elif bend == "float":
            offsets = [float(offsets[0]), offsets[1]]
        elif bend == "short":
            offsets = offsets[:1]
        fields = [("dtype", json.dumps(dtype)), ("shape", json.dumps(shape)),
                  ("data_offsets", json.dumps(offsets))]
        if draw(one_in(7)):
            fields.append(draw(st.sampled_from([*fields, ("extra", "1")])))
        text = "{" + ", ".join(f'"{k}": {v}' for k, v in fields) + "}"
        entries.append(f"{json.dumps(name, ensure_ascii=draw(st.booleans()))}: {text}")
    special = draw(st.sampled_from(SPECIALS)) if draw(one_in(2)) else "none"
    depth = draw(st.sampled_from([50, 1000, 100_000]))
    extra = {
        "deep-array": "[" * depth + "]" * depth,
        "deep-object": '{"a":' * depth + "1" + "}" * depth,
        "NaN": "NaN", "Infinity": "Infinity", "-Infinity": "-Infinity",
        "big-integer": "9" * draw(st.sampled_from([25, 5000, 100_000])),
        "big-float": "1e99999", "negative-zero": "-0", "surrogate": '"\\ud800"',
    }.get(special)
    if extra is not None:
        entries.insert(draw(st.integers(0, len(entries))),
                       f'"{draw(st.sampled_from(["x", "__metadata__", "a"]))}": {extra}')
    header = "{" + ", ".join(entries) + "}"
    if special == "top-array":
        header = "[" + header + "]"
    encoded = header.encode("utf-8", "surrogatepass") + b" " * draw(st.integers(0, 8))
    if special == "bom":
        encoded = b"\xef\xbb\xbf" + encoded
    elif special in ("not-utf8", "overlong-utf8"):
        at = draw(st.integers(0, len(encoded)))
        encoded = encoded[:at] + (b"\xff" if special == "not-utf8" else b"\xc0\x80") + encoded[at:]
    elif special == "garbage":
        encoded += b"\x00garbage"
    data = bytes(min(offset, 4096) + draw(st.integers(0, 2)))
    length = draw(st.sampled_from(CLAIMS)) if draw(one_in(4)) else len(encoded)
    raw = struct.pack("<Q", length) + encoded + data
    if draw(one_in(20)):
        raw = raw[: draw(st.integers(0, 12))]
    return raw


def layout_rules(raw: bytes) -> set[str]:
    """The parser's findings on a whole file (empty: well-formed); SafetensorsError is its one error."""
    try:
        n = header_length(raw[:8], len(raw))
        parse_layout(raw[8 : 8 + n], len(raw))
    except SafetensorsError as error:
        assert error.findings and all(f.rule in RULES for f in error.findings), error.findings
        return error.rules
    return set()


def upstream_accepts(raw: bytes) -> bool:
    """What the real safetensors (its Rust core) makes of the bytes."""
    try:
        safetensors.deserialize(raw)
    except Exception:
        return False
    return True


@fuzz(700)
@given(hostile_safetensors())
def test_whole_safetensors_files_through_every_reader(scratch: Path, raw: bytes) -> None:
    """The strict parser, verify's check, scan and the content digest agree on every file, never
    raise anything but their typed errors, and allocate little whatever the lengths claim."""
    path = scratch / "model.safetensors"
    path.write_bytes(raw)
    report = FileReport(path.name, "0" * 64, len(raw), "safetensors")

    def every_reader() -> tuple[set[str], FileScan, str | None]:
        rules = layout_rules(raw)
        check_safetensors(path, report)
        scanned = scan_file(path)  # an empty file is its own format, "empty"
        try:
            digest: str | None = file_content_digest(path)
        except UsageError as error:
            assert str(error).startswith(f"{path}: not a valid safetensors file: "), error
            digest = None
        return rules, scanned, digest

    with no_warnings():
        (rules, scanned, digest), peak = peak_memory(every_reader)
    assert peak < MEMORY_BOUND, f"{peak / MiB:.1f} MiB for a {len(raw)}-byte file"
    assert (report.status == "failed") == bool(rules), (report.problem, rules)
    assert (digest is None) == bool(rules)
    if not rules:
        assert digest == content_digest(raw)
        assert report.details["safetensors"]["tensors"] >= 0
    if raw and not raw.startswith((b"PK\x03\x04", b"PK\x05\x06", b"\x93NUMPY")):  # sniffed first
        assert scanned.format == "safetensors"
        assert (scanned.verdict == "safe") == (not rules), (scanned.verdict, rules)
    if not (rules and rules <= STRICTER_THAN_UPSTREAM):
        assert upstream_accepts(raw) == (not rules), rules
    count("fuzz examples: safetensors header")


@pytest.mark.parametrize("claim", [MAX_HEADER_SIZE, 2**40, 2**63, 2**64 - 1])
def test_a_file_claiming_a_huge_tensor_is_checked_without_reading_it(tmp_path: Path, claim: int) -> None:
    """A header laying out one exabyte-scale tensor over 16 real bytes: refused from the header alone."""
    dims = [claim, 1] if claim < 2**63 else [2**32, 2**32]
    header = json.dumps({"w": {"dtype": "U8", "shape": dims, "data_offsets": [0, math.prod(dims)]}})
    raw = struct.pack("<Q", len(header)) + header.encode() + bytes(16)
    path = tmp_path / "claims.safetensors"
    path.write_bytes(raw)
    report = FileReport(path.name, "0" * 64, len(raw), "safetensors")
    _, peak = peak_memory(lambda: check_safetensors(path, report))
    assert peak < MiB
    assert report.status == "failed"
    assert report.findings[0].rule in ("safetensors-offsets-past-end", "safetensors-shape-overflow",
                                      "safetensors-bad-offsets"), report.findings
    assert not upstream_accepts(raw)


# =================================================================================================
# 3. The pickle scanner
# =================================================================================================


class Sentinel:
    """Pickles as ``io.open(path, "w")``: loading it would create ``path``."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, tuple[str, str]]:
        return (open, (str(self.path), "w"))


@pytest.fixture
def tripwire(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every way a scanner could run a payload (unpickling, a process, a shell) raises and is
    recorded for the test; the tests assert the record stays empty."""
    tripped: list[str] = []

    def wire(name: str) -> Callable[..., Any]:
        def trip(*args: Any, **kwargs: Any) -> Any:
            tripped.append(name)
            raise AssertionError(f"{name} was called while scanning")

        return trip

    targets = [
        (pickle, ["load", "loads", "Unpickler", "_Unpickler", "_load", "_loads"]),
        (_pickle, ["load", "loads", "Unpickler"]),
        (os, ["system", "popen", "execv", "execve", "execvp", "posix_spawn", "spawnv"]),
        (subprocess, ["Popen"]),
    ]
    for owner, names in targets:
        for name in names:
            if hasattr(owner, name):
                monkeypatch.setattr(owner, name, wire(f"{owner.__name__}.{name}"))
    return tripped


@pytest.fixture
def sentinel(tmp_path: Path) -> Iterator[Path]:
    """The file a payload in the pickles below would create; it must never exist."""
    path = tmp_path / "payload-ran"
    yield path
    assert not path.exists(), "a pickle payload ran"


def same_scan(raw: bytes) -> PickleScan:
    """The scan of ``raw`` as bytes; as a memoryview and a seekable stream it must be identical,
    and as a stream that cannot seek it must reach the same verdict, globals and rules."""
    with no_warnings():
        return _same_scan(raw)


def _same_scan(raw: bytes) -> PickleScan:
    scan = scan_pickle(raw)
    assert scan.verdict in ("safe", "unknown", "dangerous", "malformed")
    assert scan_pickle(memoryview(bytearray(raw))) == scan
    assert scan_pickle(io.BytesIO(raw)) == scan
    streamed = scan_pickle(io.BufferedReader(Unseekable(raw)))
    assert (streamed.verdict, streamed.globals) == (scan.verdict, scan.globals)
    assert [f.rule for f in streamed.findings] == [f.rule for f in scan.findings]
    sniff_pickle(raw[:4096])
    return scan


class Unseekable(io.RawIOBase):
    """A stream that cannot seek (as a decompressor is), delivering at most 7 bytes a read."""

    def __init__(self, data: bytes) -> None:
        self._data = data
        self._pos = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        n = min(len(buffer), 7, len(self._data) - self._pos)
        buffer[:n] = self._data[self._pos : self._pos + n]
        self._pos += n
        return n


HARMLESS = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8) | st.binary(max_size=8)
    | st.complex_numbers(allow_nan=False),
    lambda inner: st.lists(inner, max_size=4) | st.tuples(inner, inner)
    | st.dictionaries(st.text(max_size=4), inner, max_size=3) | st.frozensets(st.integers(), max_size=3)
    | st.sets(st.text(max_size=3), max_size=3) | st.builds(bytearray, st.binary(max_size=4)),
    max_leaves=12,
)
EDITS = st.lists(
    st.tuples(st.sampled_from(["flip", "set", "insert", "delete", "cut"]), st.integers(0, 10**6),
              st.integers(0, 255)),
    max_size=3,
)


def mutate(raw: bytes, edits: list[tuple[str, int, int]]) -> bytes:
    out = bytearray(raw)
    for op, where, value in edits:
        if not out:
            break
        at = where % len(out)
        if op == "flip":
            out[at] ^= value or 1
        elif op == "set":
            out[at] = value
        elif op == "insert":
            out.insert(at, value)
        elif op == "delete":
            del out[at]
        else:
            del out[at:]
    return bytes(out)


@fuzz(500)
@given(st.binary(max_size=400))
def test_any_bytes_scan_to_a_verdict(tripwire: list[str], raw: bytes) -> None:
    same_scan(raw)
    assert not tripwire
    count("fuzz examples: pickle scanner")


@fuzz(600)
@given(HARMLESS, st.integers(0, pickle.HIGHEST_PROTOCOL), EDITS)
def test_mutated_pickles_of_plain_data(tripwire: list[str], value: Any, protocol: int,
                                       edits: list[tuple[str, int, int]]) -> None:
    """Plain data is safe at every protocol; bent in up to three places, it is scanned, not raised."""
    raw = pickle.dumps(value, protocol=protocol)
    assert same_scan(raw).verdict == "safe", raw
    same_scan(mutate(raw, edits))
    assert not tripwire
    count("fuzz examples: pickle scanner")


#: Opcodes whose argument is a length, with the size of that length.
LENGTH_OPCODES = [(b"\x8e", 8), (b"\x8d", 8), (b"\x96", 8), (b"\x95", 8), (b"\x8b", 4), (b"T", 4), (b"B", 4),
                  (b"X", 4), (b"r", 4), (b"j", 4)]
CLAIMED = [2**31 - 1, 2**32 - 1, 2**40, 2**62, 2**63, 2**64 - 1]


@fuzz(200)
@given(st.lists(st.tuples(st.sampled_from(LENGTH_OPCODES), st.sampled_from(CLAIMED)), min_size=1, max_size=4),
       st.binary(max_size=32), st.booleans())
def test_claimed_gigabytes_cost_no_memory(tripwire: list[str], claims: list[tuple[tuple[bytes, int], int]],
                                          tail: bytes, framed: bool) -> None:
    raw = b"\x80\x05" if framed else b""
    for (opcode, width), claim in claims:
        raw += opcode + (claim % (1 << (8 * width))).to_bytes(width, "little") + tail
    _, peak = peak_memory(lambda: same_scan(raw))
    assert peak < MEMORY_BOUND, f"{peak / MiB:.1f} MiB for {len(raw)} bytes"
    assert not tripwire
    count("fuzz examples: pickle scanner")


COMPRESSIONS = [zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2]
EXTRA_MEMBERS = ["archive/extra.pkl", "archive/data.pkl", "x/../../evil", "a.npy", "archive/constants.pkl"]


def torch_zip(data_pkl: bytes, compression: int, extra: dict[str, bytes]) -> bytes:
    """The layout ``torch.save`` writes: archive/data.pkl, the storages under archive/data/, version."""
    buffer = io.BytesIO()
    with warnings.catch_warnings(), zipfile.ZipFile(buffer, "w", compression) as zf:
        warnings.simplefilter("ignore")  # a second archive/data.pkl is one of the tricks
        zf.writestr("archive/data.pkl", data_pkl)
        zf.writestr("archive/byteorder", b"little")
        zf.writestr("archive/data/0", bytes(range(64)))
        zf.writestr("archive/version", b"3\n")
        for name, blob in extra.items():
            zf.writestr(name, blob)
    return buffer.getvalue()


@fuzz(500)
@given(HARMLESS, st.booleans(), st.sampled_from(COMPRESSIONS),
       st.dictionaries(st.sampled_from(EXTRA_MEMBERS), st.binary(max_size=40), max_size=2), EDITS)
def test_mutated_torch_zip_checkpoints(scratch: Path, tripwire: list[str], sentinel: Path, value: Any,
                                       armed: bool, compression: int, extra: dict[str, bytes],
                                       edits: list[tuple[str, int, int]]) -> None:
    """A torch-style zip whose data.pkl is plain data (or a payload creating the sentinel), then bent:
    scan_file gives a verdict (a payload untouched by the edits is dangerous) and runs nothing."""
    payload = [value, Sentinel(sentinel)] if armed else value
    raw = torch_zip(pickle.dumps(payload, protocol=2), compression, extra)
    path = scratch / "model.pt"
    for data, bent in ((raw, False), (mutate(raw, edits), True)):
        path.write_bytes(data)
        with no_warnings():
            scanned = scan_file(path)
        assert scanned.verdict in ("safe", "unknown", "dangerous", "malformed")
        assert all(line.startswith(str(path)) for line in scanned.lines())
        if not bent and armed:
            assert scanned.verdict == "dangerous" and "io.open" in {g.dotted for g in scanned.globals}
    assert not sentinel.exists() and not tripwire
    count("fuzz examples: pickle scanner")


CORPUS_FILES = sorted(
    p for corpus in ("picklescan", "modelscan") for p in (CORPORA / corpus / "tests").rglob("*")
    if p.is_file()
)


@pytest.mark.skipif(not CORPUS_FILES, reason=f"no pickle corpora under {CORPORA}")
@fuzz(600)
@given(st.sampled_from(CORPUS_FILES or [Path("missing")]), EDITS)
def test_mutated_corpus_files(scratch: Path, tripwire: list[str], seed: Path,
                              edits: list[tuple[str, int, int]]) -> None:
    """picklescan's and modelscan's malicious and benign files, bent: still scanned, never run."""
    path = scratch / seed.name
    path.write_bytes(mutate(seed.read_bytes(), edits))
    with no_warnings():
        scanned = scan_file(path)
    assert scanned.verdict in ("safe", "unknown", "dangerous", "malformed")
    assert not tripwire
    count("fuzz examples: pickle scanner")


def test_the_corpora_are_the_ones_described() -> None:
    if not CORPUS_FILES:
        pytest.skip(f"no pickle corpora under {CORPORA}")
    assert len(CORPUS_FILES) >= 100
    assert any(p.name == "malicious1.zip" for p in CORPUS_FILES)


def test_inputs_the_fuzzer_found_in_the_scanner(tripwire: list[str]) -> None:
    """Each failed a property above before its fix: an invalid escape in a protocol-0 string leaked
    a DeprecationWarning (an exception under -W error); a huge skipped length was reported at the
    end of the buffered bytes for a stream, at the start of the argument for bytes."""
    assert same_scan(b"S'\\q'\n.").verdict == "safe"
    scan = same_scan(b"\x96" + (2**56).to_bytes(8, "little") + b"\x00")
    assert [(f.rule, f.offset) for f in scan.findings] == [("not-a-pickle", 9)]
    assert not tripwire


def test_a_zip_claiming_gigabyte_members_costs_no_memory(tmp_path: Path, tripwire: list[str]) -> None:
    """Every member of a torch zip claims 4 GiB uncompressed: refused or read as what it holds,
    in bounded memory."""
    data = bytearray(torch_zip(pickle.dumps(list(range(100))), zipfile.ZIP_DEFLATED, {}))
    end = data.rfind(b"PK\x05\x06")
    position = struct.unpack_from("<I", data, end + 16)[0]
    while data[position : position + 4] == b"PK\x01\x02":
        local = struct.unpack_from("<I", data, position + 42)[0]
        struct.pack_into("<I", data, position + 24, 0xFFFFFFFF)
        struct.pack_into("<I", data, local + 22, 0xFFFFFFFF)
        n, m, k = struct.unpack_from("<HHH", data, position + 28)
        position += 46 + n + m + k
    path = tmp_path / "claims.pt"
    path.write_bytes(bytes(data))
    with no_warnings():
        scanned, peak = peak_memory(lambda: scan_file(path))
    assert peak < MEMORY_BOUND
    assert scanned.verdict == "malformed"
    assert {f.rule for f in scanned.findings} == {"zip-size-mismatch"}
    assert not tripwire


def test_the_tripwire_would_catch_a_load(tripwire: list[str], sentinel: Path) -> None:
    """The guard is real: a load of the payload trips it (and, unguarded, would create the file)."""
    with pytest.raises(AssertionError, match=r"pickle\.loads was called"):
        pickle.loads(pickle.dumps(Sentinel(sentinel)))
    assert tripwire == ["pickle.loads"]
    tripwire.clear()
    assert not sentinel.exists()
