"""The lineage graph: files shared by their sha256, recipes built from other recipes, what is
outdated when an upstream re-releases, the order of rebuilds, and its views (text, DOT, and
pictures drawn by the real Graphviz)."""

from __future__ import annotations

import hashlib
import itertools
import json
import re
import sys
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from weightpkg import load_recipe
from weightpkg.core.recipe import Recipe, recipe_from_mapping
from weightpkg.errors import RecipeError, UsageError
from weightpkg.graphview import dot_string, lineage_dot, lineage_lines, render_picture
from weightpkg.lineage import (
    Lineage,
    build_lineage,
    collect,
    collect_recipes,
    dependents,
    lineage_of,
    outdated,
    topological_order,
)

from .conftest import REPO, require_peer

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def recipe_text(
    name: str,
    *,
    version: str = "1.0",
    kind: str = "weights",
    licence: str = "MIT",
    publishes: Mapping[str, bytes],
    inputs: Sequence[Mapping[str, Any]] = (),
) -> str:
    """A minimal valid recipe. Each input: name, role (data), data (bytes; None for an unavailable
    input, with ``reason``), license (MIT), size (len(data) unless given), and ``upstream``
    (recipe file, output) for a recipe source, else a path source."""
    lines = ["schema = 1", "[package]", f"name = {json.dumps(name)}", f"version = {json.dumps(version)}"]
    lines += ['summary = "a lineage test"', f"kind = {json.dumps(kind)}"]
    lines += ["[license]", f"weights = {json.dumps(licence)}", f"upstream = {json.dumps(licence)}"]
    for path, data in publishes.items():
        lines += [
            "[[weights]]",
            f"path = {json.dumps(path)}",
            f'sha256 = "{sha(data)}"',
            f"size = {len(data)}",
        ]
        lines += ['format = "other"', "[[weights.sources]]", 'kind = "path"', f'path = "files/{path}"']
    for item in inputs:
        lines += [
            "[[inputs]]",
            f"name = {json.dumps(item['name'])}",
            f"role = {json.dumps(item.get('role', 'data'))}",
        ]
        data = item.get("data")
        if data is None:
            lines += ["available = false", f"unavailable-reason = {json.dumps(item['reason'])}"]
            continue
        size = item.get("size", len(data))
        lines += ["available = true", f'sha256 = "{sha(data)}"', f"size = {size}"]
        lines += [f"license = {json.dumps(item.get('license', 'MIT'))}", "[[inputs.sources]]"]
        if "upstream" in item:
            recipe, output = item["upstream"]
            lines += ['kind = "recipe"', f"recipe = {json.dumps(recipe)}", f"output = {json.dumps(output)}"]
        else:
            lines += ['kind = "path"', f"path = {json.dumps('files/' + item['name'])}"]
    return "\n".join(lines) + "\n"


def write(folder: Path, file: str, name: str, **kwargs: Any) -> Path:
    """The recipe written to ``folder/file``, and checked by the real loader."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / file
    path.write_text(recipe_text(name, **kwargs))
    load_recipe(path)
    return path


def model(name: str, origin: str, **kwargs: Any) -> Recipe:
    """The recipe as a value, without a file (for the pure functions)."""
    return recipe_from_mapping(tomllib.loads(recipe_text(name, **kwargs)), origin)


CODE = b"print('train')\n"
CORPUS_V1 = b"id,text\n1,hello\n"
CORPUS_V2 = b"id,text\n1,hello\n2,world\n"
MODEL = b"model weights"
TUNED = b"tuned weights"


def chain(folder: Path, *, corpus_pinned: bytes = CORPUS_V1) -> dict[str, Path]:
    """corpus (a data recipe, now v2) → model (pins ``corpus_pinned``) → tuned (pins model's
    current file); fresh also uses the corpus, pinned to v2; other shares nothing with them."""
    return {
        "corpus": write(
            folder,
            "corpus.toml",
            "corpus",
            version="2",
            kind="data",
            licence="CC-BY-4.0",
            publishes={"corpus.csv": CORPUS_V2},
        ),
        "model": write(
            folder,
            "model.toml",
            "model",
            publishes={"model.bin": MODEL},
            inputs=[
                {
                    "name": "corpus.csv",
                    "data": corpus_pinned,
                    "license": "CC-BY-4.0",
                    "upstream": ("corpus.toml", "corpus.csv"),
                },
                {"name": "train.py", "role": "code", "data": CODE, "license": "GPL-3.0-or-later"},
            ],
        ),
        "tuned": write(
            folder,
            "tuned.toml",
            "tuned",
            publishes={"tuned.bin": TUNED},
            inputs=[
                {
                    "name": "model.bin",
                    "role": "base-weights",
                    "data": MODEL,
                    "upstream": ("model.toml", "model.bin"),
                }
            ],
        ),
        "fresh": write(
            folder,
            "fresh.toml",
            "fresh",
            publishes={"fresh.bin": b"fresh"},
            inputs=[
                {
                    "name": "corpus.csv",
                    "data": CORPUS_V2,
                    "license": "CC-BY-4.0",
                    "upstream": ("corpus.toml", "corpus.csv"),
                }
            ],
        ),
        "other": write(
            folder,
            "other.toml",
            "other",
            publishes={"other.bin": b"other"},
            inputs=[{"name": "other.csv", "data": b"unrelated"}],
        ),
    }


# --- the graph -----------------------------------------------------------------------------------


def test_an_input_another_recipe_publishes_is_that_file_when_the_pins_agree(tmp_path: Path) -> None:
    paths = chain(tmp_path, corpus_pinned=CORPUS_V2)
    lineage = lineage_of([paths["model"], paths["fresh"]])
    assert lineage.problems == ()
    corpus = lineage.file(f"sha256:{sha(CORPUS_V2)}")
    assert corpus.names == ("corpus.csv",)
    assert corpus.formats == ("other",)  # published by the data recipe
    assert corpus.roles == ("data",)  # and an input of two others
    assert corpus.licenses == ("CC-BY-4.0",)
    assert not corpus.outdated
    touching = sorted(
        (e.source, e.kind, e.target) for e in lineage.edges if corpus.id in (e.source, e.target)
    )
    assert touching == [
        ("corpus-2", "publishes", corpus.id),
        (corpus.id, "input", "fresh-1.0"),
        (corpus.id, "input", "model-1.0"),
    ]
    assert not any(f.sha256 == sha(CORPUS_V1) for f in lineage.files)
    assert [(d.recipe, d.upstream, d.status) for d in lineage.dependencies] == [
        ("fresh-1.0", "corpus-2", "current"),
        ("model-1.0", "corpus-2", "current"),
    ]
    assert outdated(lineage) == []


def test_the_recipes_an_input_comes_from_are_read_too(tmp_path: Path) -> None:
    paths = chain(tmp_path)
    found = collect_recipes([paths["tuned"]])
    assert [r.id for r in found] == ["tuned-1.0", "model-1.0", "corpus-2"]
    assert [r.origin for r in found] == [
        str(tmp_path / f) for f in ("tuned.toml", "model.toml", "corpus.toml")
    ]


def test_one_file_under_two_spellings_is_one_recipe(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    chain(tmp_path, corpus_pinned=CORPUS_V2)
    monkeypatch.chdir(tmp_path)
    lineage = lineage_of(["model.toml", str(tmp_path / "corpus.toml"), "./corpus.toml"])
    assert [r.id for r in lineage.recipes] == ["corpus-2", "model-1.0"]
    assert lineage.recipe("corpus-2").origin == str(tmp_path / "corpus.toml")
    assert lineage.problems == ()
    assert [d.status for d in lineage.dependencies] == ["current"]


def test_a_rereleased_upstream_makes_exactly_its_downstream_outdated(tmp_path: Path) -> None:
    paths = chain(tmp_path)
    lineage = lineage_of([tmp_path])
    assert lineage.problems == ()
    found = outdated(lineage)
    assert [o.id for o in found] == ["model-1.0", "tuned-1.0"]
    direct, through = found
    assert direct.direct and direct.through == ()
    [pin] = direct.stale
    assert (pin.input, pin.pinned, pin.upstream, pin.output, pin.published) == (
        "corpus.csv",
        sha(CORPUS_V1),
        "corpus-2",
        "corpus.csv",
        sha(CORPUS_V2),
    )
    assert pin.describe() == (
        f"input corpus.csv pins sha256:{sha(CORPUS_V1)[:12]}, but corpus-2 publishes corpus.csv "
        f"as sha256:{sha(CORPUS_V2)[:12]} now"
    )
    assert not through.direct and through.through == ("model-1.0",)
    assert through.origin == str(paths["tuned"])
    # the old bytes are a node of their own, superseded by what the data recipe publishes now
    old = lineage.file(f"sha256:{sha(CORPUS_V1)}")
    assert old.outdated and old.superseded_by == (sha(CORPUS_V2),)
    [supersedes] = [e for e in lineage.edges if e.kind == "supersedes"]
    assert (supersedes.source, supersedes.target, supersedes.upstream) == (
        f"sha256:{sha(CORPUS_V2)}",
        old.id,
        "corpus-2",
    )
    [stale_input] = [e for e in lineage.edges if e.kind == "input" and e.outdated]
    assert (stale_input.source, stale_input.target, stale_input.upstream) == (old.id, "model-1.0", "corpus-2")
    assert not lineage.file(f"sha256:{sha(CORPUS_V2)}").outdated


def test_rebuilding_the_direct_dependent_leaves_nothing_outdated(tmp_path: Path) -> None:
    chain(tmp_path)
    assert [o.id for o in outdated(lineage_of([tmp_path]))] == ["model-1.0", "tuned-1.0"]
    chain(tmp_path, corpus_pinned=CORPUS_V2)  # model rebuilt from v2 (same published bytes here)
    assert outdated(lineage_of([tmp_path])) == []


def test_dependents_come_upstream_first_with_ties_by_id(tmp_path: Path) -> None:
    # a-base → z-left, m-right → b-top: by id alone b-top would come first.
    base = write(tmp_path, "base.toml", "a-base", publishes={"base.bin": b"base"})
    for file, name in (("left.toml", "z-left"), ("right.toml", "m-right")):
        write(
            tmp_path,
            file,
            name,
            publishes={f"{name}.bin": name.encode()},
            inputs=[
                {
                    "name": "base.bin",
                    "role": "base-weights",
                    "data": b"base",
                    "upstream": ("base.toml", "base.bin"),
                }
            ],
        )
    write(
        tmp_path,
        "top.toml",
        "b-top",
        publishes={"top.bin": b"top"},
        inputs=[
            {
                "name": "left.bin",
                "role": "base-weights",
                "data": b"z-left",
                "upstream": ("left.toml", "z-left.bin"),
            },
            {
                "name": "right.bin",
                "role": "base-weights",
                "data": b"m-right",
                "upstream": ("right.toml", "m-right.bin"),
            },
        ],
    )
    lineage = lineage_of([base])  # the rest is found through... nothing: base names no recipe
    assert [r.id for r in lineage.recipes] == ["a-base-1.0"]
    lineage = lineage_of([tmp_path])
    assert lineage.problems == ()
    assert topological_order(lineage) == ["a-base-1.0", "m-right-1.0", "z-left-1.0", "b-top-1.0"]
    assert dependents(lineage, "a-base-1.0") == ["m-right-1.0", "z-left-1.0", "b-top-1.0"]
    assert dependents(lineage, "z-left-1.0") == ["b-top-1.0"]
    assert dependents(lineage, "b-top-1.0") == []
    with pytest.raises(UsageError, match=re.escape("no recipe 'nope-1.0' in the lineage")):
        dependents(lineage, "nope-1.0")


def test_a_loop_is_a_problem_of_the_lineage_and_an_error_for_ordering(tmp_path: Path) -> None:
    write(
        tmp_path,
        "a.toml",
        "a",
        publishes={"a.bin": b"a"},
        inputs=[{"name": "b.bin", "data": b"b", "upstream": ("b.toml", "b.bin")}],
    )
    write(
        tmp_path,
        "b.toml",
        "b",
        publishes={"b.bin": b"b"},
        inputs=[{"name": "a.bin", "data": b"a", "upstream": ("a.toml", "a.bin")}],
    )
    write(
        tmp_path,
        "c.toml",
        "c",
        publishes={"c.bin": b"c"},
        inputs=[{"name": "a.bin", "data": b"a", "upstream": ("a.toml", "a.bin")}],
    )
    found = collect([tmp_path / "c.toml"])  # follows c → a → b → a and stops
    assert [r.id for r in found.recipes] == ["c-1.0", "a-1.0", "b-1.0"]
    lineage = build_lineage(found.recipes, located=found.located)
    assert lineage.problems == ("recipes are built from each other in a loop: a-1.0 → b-1.0 → a-1.0",)
    with pytest.raises(UsageError, match=re.escape("in a loop: a-1.0 → b-1.0 → a-1.0")):
        topological_order(lineage)
    with pytest.raises(UsageError, match="in a loop"):
        dependents(lineage, "c-1.0")
    # the views still show the broken graph
    text = "\n".join(lineage_lines(lineage))
    assert "recipes are built from each other in a loop" in text
    assert "c-1.0" in text
    assert "->" in lineage_dot(lineage)


def test_a_recipe_built_from_itself_is_a_loop(tmp_path: Path) -> None:
    write(
        tmp_path,
        "self.toml",
        "self",
        publishes={"self.bin": b"self"},
        inputs=[{"name": "self.bin", "data": b"self", "upstream": ("self.toml", "self.bin")}],
    )
    lineage = lineage_of([tmp_path / "self.toml"])
    assert lineage.problems == ("recipes are built from each other in a loop: self-1.0 → self-1.0",)


def test_an_upstream_that_is_missing_unreadable_or_does_not_publish_the_file_is_a_problem(
    tmp_path: Path,
) -> None:
    write(tmp_path, "up.toml", "up", publishes={"up.bin": b"up"})
    broken = recipe_text("broken", publishes={"broken.bin": b"z"}).replace('version = "1.0"\n', "")
    (tmp_path / "broken.toml").write_text(broken)
    write(
        tmp_path / "down",
        "down.toml",
        "down",
        publishes={"down.bin": b"down"},
        inputs=[
            {"name": "gone.bin", "data": b"x", "upstream": ("gone.toml", "gone.bin")},
            {"name": "other.bin", "data": b"y", "upstream": ("sub/up.toml", "other.bin")},
            {"name": "broken.bin", "data": b"z", "upstream": ("broken.toml", "broken.bin")},
        ],
    )
    down = tmp_path / "down"
    (down / "sub").mkdir()
    (down / "sub" / "up.toml").write_text((tmp_path / "up.toml").read_text())
    (down / "broken.toml").write_text((tmp_path / "broken.toml").read_text())
    lineage = lineage_of([down / "down.toml"])
    where = f"{down / 'down.toml'}: input"
    broken_problem, *rest = lineage.problems
    assert broken_problem.startswith(
        f"{where} 'broken.bin' comes from recipe broken.toml, which cannot be read: "
        f"{down / 'broken.toml'}:2: package.version: "
    )
    assert rest == [
        f"{where} 'gone.bin' comes from recipe gone.toml, which cannot be read: "
        f"{down / 'gone.toml'}: no such file",
        f"{where} 'other.bin' comes from recipe sub/up.toml: up-1.0 publishes no 'other.bin', only up.bin",
    ]
    assert [r.id for r in lineage.recipes] == ["down-1.0", "up-1.0"]
    assert lineage.dependencies == ()
    # without what collect read, the pure graph can still say the recipe is not there
    bare = build_lineage(collect_recipes([down / "down.toml"]))
    assert f"{where} 'gone.bin' comes from recipe gone.toml, which is not among the recipes" in "\n".join(
        bare.problems
    )
    # a recipe given by name must be valid: that is an error, not a problem of the lineage
    with pytest.raises(RecipeError, match=re.escape("package.version")):
        collect_recipes([tmp_path / "broken.toml"])


def test_a_size_that_disagrees_with_the_upstream_for_the_same_sha256_is_a_problem() -> None:
    up = model("up", "up.toml", publishes={"up.bin": b"12345"})
    down = model(
        "down",
        "down.toml",
        publishes={"down.bin": b"d"},
        inputs=[{"name": "up.bin", "data": b"12345", "size": 6, "upstream": ("up.toml", "up.bin")}],
    )
    lineage = build_lineage([up, down])
    assert lineage.problems == (
        f"down.toml: input 'up.bin' pins size 6, but up-1.0 publishes 'up.bin' (sha256:{sha(b'12345')[:12]}) "
        "with size 5",
    )


def test_two_recipes_of_one_package_version_are_a_problem() -> None:
    first = model("same", "a.toml", publishes={"a.bin": b"a"})
    second = model("same", "b.toml", publishes={"b.bin": b"b"})
    lineage = build_lineage([first, second])
    assert lineage.problems == ("b.toml: same-1.0 is also defined by a.toml",)
    assert [r.origin for r in lineage.recipes] == ["a.toml"]


def test_an_unavailable_input_is_a_node_of_its_recipe_with_its_reason() -> None:
    recipe = model(
        "closed",
        "closed.toml",
        publishes={"w.bin": b"w"},
        inputs=[{"name": "corpus", "data": None, "reason": "never published"}],
    )
    lineage = build_lineage(
        [
            recipe,
            model(
                "open",
                "open.toml",
                publishes={"o.bin": b"o"},
                inputs=[{"name": "corpus", "data": None, "reason": "lost"}],
            ),
        ]
    )
    closed = lineage.file("input:closed-1.0/corpus")
    assert (closed.pinned, closed.available, closed.unavailable_reason) == (False, False, "never published")
    assert lineage.file("input:open-1.0/corpus").unavailable_reason == "lost"  # not merged by name


def test_the_json_is_the_same_text_for_the_same_recipes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    chain(tmp_path)
    monkeypatch.chdir(tmp_path)
    files = ["tuned.toml", "other.toml", "corpus.toml", "fresh.toml", "model.toml"]
    first = json.dumps(lineage_of(files).to_json(), sort_keys=True, indent=1)
    again = json.dumps(lineage_of(list(reversed(files))).to_json(), sort_keys=True, indent=1)
    assert first == again
    assert json.dumps(lineage_of(["."]).to_json(), sort_keys=True, indent=1) == first
    data = json.loads(first)
    assert str(tmp_path) not in first  # relative in, relative out: no absolute path
    assert sorted(data) == ["dependencies", "edges", "files", "lineage", "outdated", "problems", "recipes"]
    assert [r["id"] for r in data["recipes"]] == [
        "corpus-2",
        "fresh-1.0",
        "model-1.0",
        "other-1.0",
        "tuned-1.0",
    ]
    assert data["recipes"][0] == {
        "id": "corpus-2",
        "name": "corpus",
        "version": "2",
        "kind": "data",
        "origin": "corpus.toml",
        "license": {"weights": "CC-BY-4.0", "data": None, "code": None},
        "level": "unavailable",
        "seeds": False,
    }
    assert [o["id"] for o in data["outdated"]] == ["model-1.0", "tuned-1.0"]
    assert {d["status"] for d in data["dependencies"]} == {"current", "outdated"}


def test_the_views_of_a_three_recipe_chain(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    chain(tmp_path)
    monkeypatch.chdir(tmp_path)
    lineage = lineage_of(["tuned.toml"])
    lines = lineage_lines(lineage)
    assert lines[0] == "corpus-2  (data recipe, licence CC-BY-4.0, rebuild unavailable)  corpus.toml"
    [header] = [x for x in lines if x.startswith("model-1.0  ")]
    assert header == "model-1.0  (weights recipe, licence MIT, rebuild unavailable)  model.toml  OUTDATED"
    [corpus_input] = [x for x in lines if x.startswith("  input      corpus.csv")]
    assert f"sha256:{sha(CORPUS_V1)[:12]}  CC-BY-4.0  data  from recipe corpus-2  OUTDATED" in corpus_input
    assert lines[-1] == "2 outdated: model-1.0, tuned-1.0 (rebuild in this order)"
    assert "  OUTDATED: built from model-1.0, which is outdated" in lines
    dot = lineage_dot(lineage)
    assert dot == lineage_dot(lineage_of(["tuned.toml"]))
    [supersedes] = [x for x in dot.splitlines() if 'label="supersedes"' in x]
    assert 'color="red"' in supersedes and 'style="dashed"' in supersedes
    [data_recipe] = [x for x in dot.splitlines() if x.startswith('  "corpus-2" [')]
    assert 'fillcolor="#fde68a"' in data_recipe and 'shape="box"' in data_recipe


def test_dot_strings_escape_what_would_end_them() -> None:
    assert dot_string('say "hi"\\n\nnext\r\nlast') == '"say \\"hi\\"\\\\n\\nnext\\nlast"'


@pytest.mark.peer("dot")
def test_graphviz_draws_the_graph(tmp_path: Path) -> None:
    require_peer("dot")
    chain(tmp_path)
    awkward = 'said "no" \\ twice\nand {closed} the graph; }'
    write(
        tmp_path,
        "closed.toml",
        "closed",
        publishes={"c.bin": b"c"},
        inputs=[{"name": "secret", "data": None, "reason": awkward}],
    )
    lineage = lineage_of([tmp_path])
    svg, png = tmp_path / "out" / "lineage.svg", tmp_path / "out" / "lineage.png"
    svg.parent.mkdir()
    render_picture(lineage_dot(lineage), svg, "svg")
    render_picture(lineage_dot(lineage), png, "png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    root = ET.fromstring(svg.read_bytes())
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    texts = [t.text for t in root.iter("{http://www.w3.org/2000/svg}text") if t.text]
    assert 'unavailable: said "no" \\ twice' in texts
    assert "and {closed} the graph; }" in texts
    assert f"sha256:{sha(CORPUS_V1)[:12]}" in texts
    strokes = {p.get("stroke") for p in root.iter("{http://www.w3.org/2000/svg}path")}
    assert "red" in strokes  # the outdated edges
    assert sorted(p.name for p in svg.parent.iterdir()) == ["lineage.png", "lineage.svg"]  # nothing left over


def test_a_missing_dot_is_a_usage_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    empty = tmp_path / "bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    out = tmp_path / "lineage.svg"
    with pytest.raises(
        UsageError, match="Graphviz's dot is not installed; install graphviz, or use --format dot"
    ):
        render_picture("digraph { a -> b }\n", out, "svg")
    assert not out.exists()


@pytest.mark.peer("dot")
def test_what_dot_refuses_is_a_usage_error_with_what_it_said(tmp_path: Path) -> None:
    require_peer("dot")
    out = tmp_path / "lineage.png"
    with pytest.raises(UsageError, match=r"could not draw the graph \(exit 1\): .*syntax error"):
        render_picture("digraph { a -> }\n", out, "png")
    assert not out.exists()
    with pytest.raises(UsageError, match="the picture formats are svg, png"):
        render_picture("digraph { a -> b }\n", out, "pdf")  # type: ignore[arg-type]


def test_the_shipped_recipes_have_a_lineage_without_problems() -> None:
    lineage = lineage_of([REPO / "recipes"])
    assert lineage.problems == ()
    shipped = {load_recipe(p).id for p in (REPO / "recipes").glob("*.toml")}
    assert {r.id for r in lineage.recipes} == shipped
    assert sorted(topological_order(lineage)) == sorted(shipped)
    assert lineage_lines(lineage)


# --- properties against brute force --------------------------------------------------------------


@st.composite
def graphs(draw: st.DrawFn) -> tuple[int, dict[int, list[tuple[int, bool]]]]:
    """n recipes; recipe j is built from some i < j, each pin current or stale."""
    n = draw(st.integers(1, 7))
    uses: dict[int, list[tuple[int, bool]]] = {}
    for j in range(n):
        ups = draw(st.lists(st.integers(0, j - 1), unique=True, max_size=3)) if j else []
        uses[j] = [(i, draw(st.booleans())) for i in sorted(ups)]
    return n, uses


def pure_lineage(n: int, uses: Mapping[int, list[tuple[int, bool]]], names: Sequence[str]) -> Lineage:
    recipes = []
    for j in range(n):
        inputs = [
            {
                "name": f"in{i}",
                "data": (b"old " if stale else b"") + names[i].encode(),
                "upstream": (f"r{i}.toml", f"out{i}.bin"),
            }
            for i, stale in uses[j]
        ]
        recipes.append(
            model(names[j], f"r{j}.toml", publishes={f"out{j}.bin": names[j].encode()}, inputs=inputs)
        )
    return build_lineage(recipes)


@settings(max_examples=60, deadline=None)
@given(graphs(), st.permutations(list("abcdefg")))
def test_order_dependents_and_outdated_agree_with_brute_force(graph, letters: list[str]) -> None:
    n, uses = graph
    names = [f"{letters[j]}{j}" for j in range(n)]  # ids unrelated to the build order
    lineage = pure_lineage(n, uses, names)
    assert lineage.problems == ()
    rid = {j: f"{names[j]}-1.0" for j in range(n)}
    below = {j: {k for k in range(n) if any(i == j for i, _ in uses[k])} for j in range(n)}

    def reach(start: set[int]) -> set[int]:
        seen, todo = set(start), list(start)
        while todo:
            for k in below[todo.pop()]:
                if k not in seen:
                    seen.add(k)
                    todo.append(k)
        return seen

    def smallest_order(members: set[int]) -> list[str]:
        """The first, by ids, of the orders of ``members`` that put every upstream first."""
        valid = []
        for candidate in itertools.permutations(sorted(members)):
            place = {j: k for k, j in enumerate(candidate)}
            if all(place[i] < place[j] for j in members for i, _ in uses[j] if i in members):
                valid.append([rid[j] for j in candidate])
        return min(valid)

    order = topological_order(lineage)
    assert order == smallest_order(set(range(n)))
    for j in range(n):
        assert dependents(lineage, rid[j]) == smallest_order(reach({j}) - {j})
    stale = {j for j in range(n) if any(s for _, s in uses[j])}
    assert [o.id for o in outdated(lineage)] == [r for r in order if r in {rid[k] for k in reach(stale)}]
    for o in outdated(lineage):
        j = next(k for k in range(n) if rid[k] == o.id)
        assert o.direct == (j in stale)
        assert set(o.through) == {rid[i] for i, _ in uses[j] if i in reach(stale)}
