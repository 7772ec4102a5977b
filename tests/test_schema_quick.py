"""The quick schema pass never calls valid what jsonschema calls invalid, and spares valid
recipes the jsonschema import."""

from __future__ import annotations

import copy
import subprocess
import sys
from typing import Any

import jsonschema
from hypothesis import given, settings
from hypothesis import strategies as st

import weightpkg
from weightpkg.core.schema import _quick_valid, load_schema
from weightpkg.load import read_recipe

from .conftest import REPO

RECIPES = sorted((REPO / "recipes").glob("*.toml"))
POLICIES = sorted((REPO / "policies").glob("*.toml"))
BASES = [("recipe", read_recipe(p).data) for p in RECIPES] + [
    ("policy", read_recipe(p).data) for p in POLICIES
]
ODD_VALUES = [None, True, 0, 1.0, -1, "", "x", "../x", "A" * 300, [], [1], {}, {"kind": "url"}, "0" * 64]


def paths(value: Any, prefix: tuple = ()) -> list[tuple]:
    found = [prefix]
    if isinstance(value, dict):
        for key, item in value.items():
            found += paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += paths(item, (*prefix, index))
    return found


def mutate(data: Any, path: tuple, action: str, odd: Any) -> Any:
    data = copy.deepcopy(data)
    if not path:
        return odd
    parent = data
    for part in path[:-1]:
        parent = parent[part]
    last = path[-1]
    if action == "delete":
        del parent[last]
    elif action == "replace":
        parent[last] = odd
    elif isinstance(parent, dict):
        parent[f"{last}-extra"] = odd
    return data


def test_shipped_recipes_and_policies_pass_the_quick_pass() -> None:
    for kind, data in BASES:
        schema = load_schema(kind)
        assert _quick_valid(data, schema, schema)


@settings(max_examples=400, deadline=None)
@given(st.data())
def test_quick_valid_implies_jsonschema_valid(data: st.DataObject) -> None:
    kind, base = data.draw(st.sampled_from(BASES))
    path = data.draw(st.sampled_from(paths(base)))
    action = data.draw(st.sampled_from(["delete", "replace", "add"]))
    if action == "delete" and not path:
        action = "replace"
    mutated = mutate(base, path, action, data.draw(st.sampled_from(ODD_VALUES)))
    schema = load_schema(kind)
    try:
        quick = _quick_valid(mutated, schema, schema)
    except NotImplementedError:
        return
    full = not list(jsonschema.Draft202012Validator(schema).iter_errors(mutated))
    if quick:
        assert full, f"quick pass accepted what jsonschema refuses: {path} {action}"


def test_a_valid_recipe_loads_without_importing_jsonschema() -> None:
    code = (
        "import sys, weightpkg\n"
        f"weightpkg.load_recipe({str(RECIPES[0])!r})\n"
        "print('jsonschema' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"
    assert weightpkg.lint(RECIPES) == []
