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
