"""TODO markers: what ``weightpkg init`` could not know and only a person can state.

``init`` writes real hashes, sizes, formats and declared licences, but it cannot know a model's
biases or whether its training data can be had. It writes those values as strings beginning with
``TODO`` so that the recipe is well-formed (it lints, with warnings) yet cannot pass a
distributor's policy until someone has written the facts in. A marker is any string value whose
text, leading whitespace aside, begins with ``TODO``; keys are never markers.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from .keypath import PathPart, render

#: What a marker begins with.
MARKER = "TODO"


def is_todo(value: Any) -> bool:
    return isinstance(value, str) and value.lstrip().startswith(MARKER)


def todo_markers(data: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(key path, value) of every marker in a parsed recipe, in document order."""
    return [(render(parts), value) for parts, value in _strings(data, ()) if is_todo(value)]


def _strings(value: Any, parts: tuple[PathPart, ...]) -> Iterator[tuple[tuple[PathPart, ...], str]]:
    if isinstance(value, str):
        yield parts, value
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield from _strings(item, (*parts, key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _strings(item, (*parts, i))
