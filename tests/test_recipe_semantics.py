"""Meaning checks the schema cannot make: integers that are floats, paths not in normal form,
inputs that contradict themselves; licences kept in SPDX's spelling."""

from __future__ import annotations

from pathlib import Path

import pytest

import weightpkg
from weightpkg.errors import RecipeError

from .builders import recipe_text

PIN = "a" * 64


def lint_problems(tmp_path: Path, text: str) -> list[str]:
    path = tmp_path / "r.toml"
    path.write_text(text)
    with pytest.raises(RecipeError) as caught:
        weightpkg.load_recipe(path)
    return [f"{p.line}: {p.key}: {p.message}" for p in caught.value.problems]


def weights(path: str = "w.bin", size: object = 1, source_path: str = "files/w.bin") -> list[dict]:
    return [{"path": path, "sha256": PIN, "size": size, "sources": [{"kind": "path", "path": source_path}]}]


def test_float_where_an_integer_is_required(tmp_path: Path) -> None:
    text = recipe_text(weights(size=14.0)).replace("schema = 1", "schema = 1.0")
    assert lint_problems(tmp_path, text) == [
        "1: schema: expected an integer, got a float 1.0",
        "12: weights[0].size: expected an integer, got a float 14.0",
    ]


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("./w.bin", "path './w.bin' is not in normal form; write 'w.bin'"),
        ("a//w.bin", "path 'a//w.bin' is not in normal form; write 'a/w.bin'"),
        ("a/./w.bin", "path 'a/./w.bin' is not in normal form; write 'a/w.bin'"),
        ("dir/", "path 'dir/' is not in normal form; write 'dir'"),
        (".", "path '.' names the folder itself, not a file"),
    ],
)
def test_paths_must_be_in_normal_form(tmp_path: Path, path: str, message: str) -> None:
    assert lint_problems(tmp_path, recipe_text(weights(path=path))) == [f"10: weights[0].path: {message}"]


def test_inputs_that_contradict_themselves(tmp_path: Path) -> None:
    extra = f"""
[[inputs]]
name = "a"
role = "data"
path = "d.csv"
sha256 = "{PIN}"
size = 1
license = "MIT"
available = true
unavailable-reason = "but it is available"
[[inputs.sources]]
kind = "path"
path = "d.csv"

[[inputs]]
name = "b"
role = "data"
path = "d.csv"
available = false
unavailable-reason = "gone"
[[inputs.sources]]
kind = "path"
path = "d.csv"
"""
    assert lint_problems(tmp_path, recipe_text(weights(), extra=extra)) == [
        "26: inputs[0].unavailable-reason: an available input has no unavailable-reason",
        "34: inputs[1].path: duplicate input path 'd.csv' (also inputs[0])",
        "37: inputs[1].sources: "
        "an unavailable input cannot have sources; set available = true or remove them",
    ]


def test_licences_are_kept_in_spdx_spelling(tmp_path: Path) -> None:
    path = tmp_path / "r.toml"
    path.write_text(recipe_text(weights()).replace('weights = "MIT"', 'weights = "mit or apache-2.0"'))
    recipe = weightpkg.load_recipe(path)
    assert recipe.license.weights == "MIT OR Apache-2.0"


def test_sources_record_what_they_declare(tmp_path: Path) -> None:
    text = recipe_text([{
        "path": "w.bin", "sha256": PIN, "size": 1,
        "sources": [
            {"kind": "path", "path": "a/w.bin", "declared-license": "mit"},
            {"kind": "path", "path": "b/w.bin", "declared-license": "NONE"},
            {"kind": "path", "path": "c/w.bin", "declared-license": "Not-A-Licence"},
        ],
    }])
    problems = lint_problems(tmp_path, text)
    assert len(problems) == 1
    assert problems[0].startswith("25: weights[0].sources[2].declared-license: not an SPDX licence")
    path = tmp_path / "ok.toml"
    path.write_text(text.replace('"Not-A-Licence"', '"NOASSERTION"'))
    sources = weightpkg.load_recipe(path).weights[0].sources
    assert [s.declared_license for s in sources] == ["MIT", "NONE", "NOASSERTION"]


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://[::1", "not a valid URL: Invalid IPv6 URL"),
        ("http://host:port/x", "not a valid URL: Port could not be cast to integer value as 'port'"),
        ("https:///x", "URL 'https:///x' names no host"),
        ("file://server/x", "file URL 'file://server/x' must name a local file (file:///path)"),
        ("http://h/a b", "URL 'http://h/a b' contains white space; percent-encode it"),
    ],
)
def test_urls_that_can_never_work_are_lint_errors(tmp_path: Path, url: str, message: str) -> None:
    source = {"kind": "url", "url": url}
    text = recipe_text([{"path": "w.bin", "sha256": PIN, "size": 1, "sources": [source]}])
    assert lint_problems(tmp_path, text) == [f"16: weights[0].sources[0].url: {message}"]


def test_a_content_pin_is_for_safetensors_files_only(tmp_path: Path) -> None:
    pinned = [{**weights()[0], "format": "pytorch-pickle", "content-sha256": PIN}]
    assert lint_problems(tmp_path, recipe_text(pinned)) == [
        "14: weights[0].content-sha256: content-sha256 is defined for safetensors files only, "
        "not format 'pytorch-pickle'"
    ]
    fine = [{**weights()[0], "format": "safetensors", "content-sha256": PIN}]
    path = tmp_path / "fine.toml"
    path.write_text(recipe_text(fine))
    assert weightpkg.load_recipe(path).weights[0].content_sha256.hex == PIN
