"""The toml-test conformance corpus (TOML 1.0.0 cases) through weightpkg's recipe reader.

Invalid documents must become one RecipeError problem naming the file and the line, never another
exception or a traceback; valid documents must parse, have every key path located by the line
scanner, decode to toml-test's expected values, and (not being recipes) fail as RecipeError.
"""

from __future__ import annotations

import datetime
import json
import math
import re
import sys
from typing import Any

import pytest

from weightpkg.errors import RecipeError
from weightpkg.load import locate_keys, read_recipe

from .conftest import CORPORA
from .guards import deadline, key_paths, recipe_error

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

CORPUS = CORPORA / "toml-test" / "tests"
LIST = CORPUS / "files-toml-1.0.0"
MISSING = f"toml-test corpus not found at {CORPUS}"


def cases(kind: str) -> list[Any]:
    """The 1.0.0 test documents of one kind ('valid' or 'invalid'), as paths relative to CORPUS."""
    if not LIST.is_file():
        return [pytest.param(None, marks=pytest.mark.skip(reason=MISSING), id="corpus-missing")]
    names = [line.strip() for line in LIST.read_text("utf-8").splitlines()]
    return [n for n in names if n.startswith(f"{kind}/") and n.endswith(".toml")]


INVALID = cases("invalid")
VALID = cases("valid")

def test_the_corpus_is_the_one_described() -> None:
    if not LIST.is_file():
        pytest.skip(MISSING)
    assert len(INVALID) == 499
    assert len(VALID) == 210
    assert not [n for n in INVALID + VALID if not (CORPUS / n).is_file()]
    assert not [n for n in VALID if not (CORPUS / n).with_suffix(".json").is_file()]


# --- invalid documents --------------------------------------------------------------------------

_POSITION = re.compile(r" \(at line (\d+), column \d+\)$")


def expected_problem(raw: bytes) -> tuple[int, str]:
    """(line, message) that the recipe reader should report, worked out from the bytes and tomllib."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return raw[: exc.start].count(b"\n") + 1, f"not valid UTF-8 (byte 0x{raw[exc.start]:02x})"
    text = text.removeprefix("\ufeff")
    with pytest.raises(tomllib.TOMLDecodeError) as caught:
        tomllib.loads(text)
    message = str(caught.value.args[0])
    if match := _POSITION.search(message):
        return int(match.group(1)), f"TOML syntax error: {message[: match.start()]}"
    assert message.endswith(" (at end of document)"), message
    last_line = max(1, text.count("\n") + (0 if text.endswith("\n") else 1))
    message = message.removesuffix(" (at end of document)")
    return last_line, f"TOML syntax error: {message} (at end of file)"


@pytest.mark.parametrize("name", INVALID)
def test_invalid_document_is_one_located_recipe_error(name: str) -> None:
    path = CORPUS / name
    caught = recipe_error(path)
    (problem,) = caught.problems
    assert problem.file == str(path)
    assert problem.key == ""
    assert problem.message.startswith(("TOML syntax error: ", "not valid UTF-8 (byte 0x"))
    line, message = expected_problem(path.read_bytes())
    assert (problem.line, problem.message) == (line, message)
    assert str(problem) == f"{path}:{line}: {message}"
    assert "\n" not in str(problem)


def test_invalid_encodings_are_reported_as_such() -> None:
    if not LIST.is_file():
        pytest.skip(MISSING)
    utf8 = []
    for name in INVALID:
        with pytest.raises(RecipeError) as caught:
            read_recipe(CORPUS / name)
        if caught.value.problems[0].message.startswith("not valid UTF-8"):
            utf8.append(name)
    assert utf8
    assert all(n.startswith("invalid/encoding/") for n in utf8)


def test_cli_lints_every_invalid_document_in_one_call(cli) -> None:
    if not LIST.is_file():
        pytest.skip(MISSING)
    done = cli("lint", *INVALID, cwd=CORPUS, timeout=120)
    assert "Traceback" not in done.stdout + done.stderr
    assert done.returncode == 2
    assert done.stdout == ""
    lines = done.stderr.splitlines()
    assert len(lines) == len(INVALID)
    for name, line in zip(INVALID, lines, strict=True):
        expected_line, message = expected_problem((CORPUS / name).read_bytes())
        assert line == f"{name}:{expected_line}: {message}"


# --- valid documents ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", VALID)
def test_valid_document_parses_and_the_line_scanner_does_not_crash(name: str) -> None:
    with deadline():
        loaded = read_recipe(CORPUS / name)
        lines = locate_keys(loaded.text)
    n_lines = loaded.text.count("\n") + 1
    assert all(1 <= line <= n_lines for line in lines.values())


@pytest.mark.parametrize("name", VALID)
def test_valid_document_has_a_line_for_every_key_path(name: str) -> None:
    # A key path without a line makes lint fall back to the enclosing table's line (or none).
    with deadline():
        loaded = read_recipe(CORPUS / name)
    assert sorted(loaded.lines) == sorted(set(key_paths(loaded.data)))


@pytest.mark.parametrize("name", VALID)
def test_valid_document_is_not_a_recipe(name: str) -> None:
    path = CORPUS / name
    caught = recipe_error(path)
    assert caught.problems
    assert all(p.file == str(path) and p.key for p in caught.problems)


def _untag(value: Any) -> Any:
    """toml-test's tagged JSON ({"type": ..., "value": ...} for scalars) as Python values."""
    if isinstance(value, list):
        return [_untag(v) for v in value]
    if not isinstance(value, dict):  # pragma: no cover - the format has no bare scalars
        raise TypeError(value)
    if set(value) == {"type", "value"} and isinstance(value["type"], str) and isinstance(value["value"], str):
        kind, text = value["type"], value["value"]
        if kind == "string":
            return text
        if kind == "integer":
            return int(text)
        if kind == "float":
            return float(text)
        if kind == "bool":
            return {"true": True, "false": False}[text]
        parse = {
            "datetime": datetime.datetime.fromisoformat,
            "datetime-local": datetime.datetime.fromisoformat,
            "date-local": datetime.date.fromisoformat,
            "time-local": datetime.time.fromisoformat,
        }[kind]
        try:
            return parse(text.replace("z", "Z"))
        except ValueError:  # pragma: no cover - Python 3.10's fromisoformat is narrower
            pytest.skip(f"this Python cannot parse the expected {kind} {text!r}")
    return {k: _untag(v) for k, v in value.items()}


def _same(got: Any, want: Any, where: str = "") -> None:
    assert type(got) is type(want), f"{where}: {got!r} is not {want!r}"
    if isinstance(want, dict):
        assert sorted(got) == sorted(want), where
        for key in want:
            _same(got[key], want[key], f"{where}.{key}" if where else key)
    elif isinstance(want, list):
        assert len(got) == len(want), where
        for i, (g, w) in enumerate(zip(got, want, strict=True)):
            _same(g, w, f"{where}[{i}]")
    elif isinstance(want, float) and math.isnan(want):
        assert math.isnan(got), where
    elif isinstance(want, (datetime.datetime, datetime.time)):
        assert got == want and got.utcoffset() == want.utcoffset(), f"{where}: {got!r} != {want!r}"
    else:
        assert got == want, f"{where}: {got!r} != {want!r}"


@pytest.mark.parametrize("name", VALID)
def test_valid_document_decodes_to_the_expected_values(name: str) -> None:
    path = CORPUS / name
    want = _untag(json.loads(path.with_suffix(".json").read_text("utf-8")))
    _same(dict(read_recipe(path).data), want)
