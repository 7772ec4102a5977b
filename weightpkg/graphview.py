"""Views of a lineage: lines for a terminal, Graphviz DOT, and pictures drawn by Graphviz's dot.

The text and the DOT are pure and deterministic (the lineage's sorted order, nothing else); only
:func:`render_picture` runs a program and writes a file.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Literal

from .errors import UsageError, write_atomically
from .lineage import Edge, FileNode, Lineage, OutdatedRecipe, RecipeNode, display_order, outdated, short

PictureFormat = Literal["svg", "png"]
PICTURE_FORMATS: tuple[PictureFormat, ...] = ("svg", "png")

#: Inputs are listed by role in this order (what a model learnt from first), then by name.
ROLE_ORDER = {"data": 0, "base-weights": 1, "code": 2}

#: How long dot may take on one graph; the shipped recipes draw in well under a second.
DOT_TIMEOUT_S = 120


# --- text ----------------------------------------------------------------------------------------


def lineage_lines(lineage: Lineage) -> list[str]:
    """One block per recipe, upstream first: what it is, its inputs (short hash, licence, role,
    the recipe they come from) and its published files, OUTDATED where its inputs are not what
    its upstreams publish now; then the lineage's problems."""
    stale = {o.id: o for o in outdated(lineage)}
    lines: list[str] = []
    for recipe_id in display_order(lineage):
        recipe = lineage.recipe(recipe_id)
        lines.extend(_recipe_block(lineage, recipe, stale.get(recipe_id)))
    if not lineage.recipes:
        lines.append("no recipes")
    if stale:
        lines.append(f"{len(stale)} outdated: {', '.join(stale)} (rebuild in this order)")
    if lineage.problems:
        lines.append(f"problems ({len(lineage.problems)}):")
        lines.extend(f"  {p}" for p in lineage.problems)
    return lines


def _recipe_block(lineage: Lineage, recipe: RecipeNode, stale: OutdatedRecipe | None) -> list[str]:
    facts = [f"{recipe.kind} recipe", f"licence {recipe.license}", f"rebuild {recipe.level}"]
    if recipe.seeds:
        facts.append("seeds")
    header = f"{recipe.id}  ({', '.join(facts)})  {recipe.origin}"
    lines = [header + ("  OUTDATED" if stale else "")]
    rows: list[tuple[str, str, str, str]] = []
    for edge in sorted(lineage.inputs_of(recipe.id), key=lambda e: (ROLE_ORDER.get(e.role or "", 9), e.name)):
        rows.append(("input", edge.name, _hash_of(lineage.file(edge.source)), _input_notes(lineage, edge)))
    for edge in lineage.published_by(recipe.id):
        node = lineage.file(edge.target)
        size = f"{node.size} bytes" if node.size is not None else "size unknown"
        rows.append(("publishes", edge.name, _hash_of(node), f"{edge.license}  {edge.format}, {size}"))
    width = max((len(r[1]) for r in rows), default=0)
    for what, name, digest, notes in rows:
        lines.append(f"  {what:<9}  {name:<{width}}  {digest:<19}  {notes}".rstrip())
    if stale:
        lines.extend(f"  OUTDATED: {reason}" for reason in stale.reasons())
    return lines


def _hash_of(node: FileNode) -> str:
    return short(node.sha256) if node.sha256 is not None else "(no pin)"


def _input_notes(lineage: Lineage, edge: Edge) -> str:
    node = lineage.file(edge.source)
    notes = [edge.license or "licence not stated", edge.role or "input"]
    if edge.upstream:
        notes.append(f"from recipe {edge.upstream}")
    if not node.available:
        notes.append(f"unavailable: {node.unavailable_reason or 'no reason given'}")
    if edge.outdated:
        notes.append("OUTDATED")
    return "  ".join(notes)


# --- DOT -----------------------------------------------------------------------------------------


def dot_string(text: str) -> str:
    """``text`` as a DOT double-quoted string: backslashes and quotes escaped, every line break
    as DOT's ``\\n`` (so a label cannot end the string, the statement or the graph early)."""
    body = text.replace("\\", "\\\\").replace('"', '\\"')
    body = body.replace("\r\n", "\n").replace("\r", "\n").replace("\n", "\\n")
    return f'"{body}"'


def _attributes(**values: str) -> str:
    return "[" + ", ".join(f"{k}={dot_string(v)}" for k, v in sorted(values.items())) + "]"


def lineage_dot(lineage: Lineage) -> str:
    """The lineage as a Graphviz digraph: recipes as boxes (data recipes filled yellow, weights
    blue, rounded), files as ellipses (a note, dashed, for an input that pins nothing), what is
    outdated red and dashed. Everything in sorted order, so the text is stable."""
    stale = {o.id for o in outdated(lineage)}
    out = [
        "digraph lineage {",
        '  graph [rankdir="LR", fontname="Helvetica"];',
        '  node [fontname="Helvetica", fontsize="10"];',
        '  edge [fontname="Helvetica", fontsize="9"];',
    ]
    for recipe in lineage.recipes:
        out.append(f"  {dot_string(recipe.id)} {_attributes(**_recipe_style(recipe, recipe.id in stale))};")
    for node in lineage.files:
        out.append(f"  {dot_string(node.id)} {_attributes(**_file_style(node))};")
    for edge in lineage.edges:
        out.append(
            f"  {dot_string(edge.source)} -> {dot_string(edge.target)} {_attributes(**_edge_style(edge))};"
        )
    out.append("}")
    return "\n".join(out) + "\n"


def _recipe_style(recipe: RecipeNode, is_outdated: bool) -> dict[str, str]:
    lines = [recipe.name, recipe.version, f"{recipe.kind} · {recipe.license}", f"rebuild {recipe.level}"]
    if is_outdated:
        lines.append("OUTDATED")
    style = {
        "shape": "box",
        "label": "\n".join(lines),
        "tooltip": recipe.origin,
        "style": "filled" if recipe.kind == "data" else "rounded,filled",
        "fillcolor": "#fde68a" if recipe.kind == "data" else "#dbeafe",
    }
    if is_outdated:
        style.update(color="red", fontcolor="red", penwidth="2", style=style["style"] + ",dashed")
    return style


def _file_style(node: FileNode) -> dict[str, str]:
    lines = [", ".join(node.names)]
    lines.append(short(node.sha256) if node.sha256 is not None else "no pin")
    lines.append(", ".join(node.licenses) or "licence not stated")
    if not node.available:
        lines.append(f"unavailable: {node.unavailable_reason or 'no reason given'}")
    if node.outdated:
        lines.append("OUTDATED")
    style = {"shape": "ellipse", "label": "\n".join(lines)}
    if not node.pinned or not node.available:
        style.update(shape="note", style="dashed", color="gray40")
    if node.outdated:
        style.update(style="dashed", color="red", fontcolor="red")
    return style


def _edge_style(edge: Edge) -> dict[str, str]:
    style = {"label": edge.role or edge.kind} if edge.kind == "input" else {"label": edge.kind}
    if edge.kind == "publishes":
        style["color"] = "gray30"
    if edge.outdated:
        style.update(color="red", fontcolor="red", style="dashed")
    return style


# --- pictures ------------------------------------------------------------------------------------


def render_picture(dot_text: str, out: Path, fmt: PictureFormat) -> None:
    """Draw ``dot_text`` with Graphviz's dot and write the picture to ``out`` whole or not at all;
    UsageError when dot is missing or refuses the graph (with what it said)."""
    if fmt not in PICTURE_FORMATS:
        raise UsageError(f"cannot draw {fmt!r}: the picture formats are {', '.join(PICTURE_FORMATS)}")
    dot = shutil.which("dot")
    if dot is None:
        raise UsageError("Graphviz's dot is not installed; install graphviz, or use --format dot")
    try:
        done = subprocess.run(
            [dot, f"-T{fmt}"],
            input=dot_text.encode("utf-8"),
            capture_output=True,
            timeout=DOT_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise UsageError(f"Graphviz's dot did not finish drawing in {DOT_TIMEOUT_S} s") from None
    except OSError as exc:
        raise UsageError(f"cannot run {dot}: {exc.strerror}") from None
    said = done.stderr.decode("utf-8", "replace").strip()
    if done.returncode != 0 or not done.stdout:
        raise UsageError(f"Graphviz's dot could not draw the graph (exit {done.returncode}): {said}")
    write_atomically(Path(out), done.stdout)
