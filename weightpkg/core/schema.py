"""Check a recipe mapping against schemas/recipe.schema.json and word each violation for a human.

jsonschema's own messages ("'abc' does not match '^[0-9a-f]{64}$'") name the rule, not the fix;
here each becomes a key path plus a sentence that says what is expected.
"""

from __future__ import annotations

import datetime
import difflib
import functools
import json
from collections.abc import Iterator, Mapping
from importlib import resources
from typing import Any

from .keypath import render

#: What a pattern means, for the messages; patterns not listed are quoted as they are.
_PATTERN_MEANING = {
    "^[0-9a-f]{64}$": "not a sha256: expected 64 lower-case hexadecimal digits",
    "^[a-z0-9][a-z0-9._+-]*$": ("expected lower-case letters, digits and . _ + - (a letter or digit first)"),
    "^[A-Za-z0-9][A-Za-z0-9._+-]*$": "expected letters, digits and . _ + - (a letter or digit first)",
    "^[A-Za-z0-9][A-Za-z0-9._+~-]*$": (
        "expected letters, digits and . _ + ~ -, starting with a letter or digit"
    ),
    "^[A-Za-z0-9][A-Za-z0-9._-]*$": "expected a package name (letters, digits and . _ -)",
    "^[a-z0-9][a-z0-9.+-]+$": "expected a Debian package name (lower-case letters, digits and . + -)",
    "^[a-z0-9-]+$": "expected a Debian architecture such as 'all' or 'amd64'",
    "^https?://": "expected an http:// or https:// URL",
    "^(https?|file)://": "expected an http://, https:// or file:// URL",
    "\\.whl$": "expected a wheel file name ending in .whl",
}

_JSON_TYPES = {
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "boolean": "true or false",
    "array": "an array",
    "object": "a table",
}


@functools.cache
def load_schema(name: str = "recipe") -> Mapping[str, Any]:
    """A JSON Schema shipped inside the package: ``recipe`` or ``policy``."""
    text = resources.files("weightpkg").joinpath(f"schemas/{name}.schema.json").read_text("utf-8")
    return json.loads(text)


def recipe_schema() -> Mapping[str, Any]:
    return load_schema("recipe")


@functools.cache
def _validator(name: str) -> Any:
    import jsonschema

    schema = load_schema(name)
    cls = jsonschema.validators.validator_for(schema)
    # jsonschema matches "pattern" with Python's re, whose "$" also matches before a final
    # newline: "<64 hex digits>\n" passed as a sha256, then failed (ValueError) in the model.
    return jsonschema.validators.extend(cls, {"pattern": _pattern_keyword})(schema)


def _pattern_keyword(validator: Any, pattern: str, instance: Any, schema: Any) -> Iterator[Any]:
    """JSON Schema's "pattern" with ECMA-262's meaning of "$" (the end of the string only)."""
    from jsonschema.exceptions import ValidationError

    if validator.is_type(instance, "string") and _compiled(pattern).search(instance) is None:
        yield ValidationError(f"{instance!r} does not match {pattern!r}")


def _toml_type(value: Any) -> str:
    if isinstance(value, datetime.datetime):
        return "a date-time" if value.tzinfo else "a local date-time"
    if isinstance(value, datetime.date):
        return "a local date"
    if isinstance(value, datetime.time):
        return "a local time"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a float"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "a table"
    return type(value).__name__


def _short(value: Any) -> str:
    """The value as TOML would show it, cut to a readable length."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (datetime.date, datetime.time)):
        return value.isoformat()
    if isinstance(value, dict):
        text = "{" + ", ".join(f"{k} = {_short(v)}" for k, v in value.items()) + "}"
    elif isinstance(value, list):
        text = "[" + ", ".join(_short(v) for v in value) + "]"
    else:  # strings as TOML literal strings ('abc'), numbers as written
        text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def schema_violations(data: Mapping[str, Any], schema: str = "recipe") -> list[tuple[str, str]]:
    """Every violation of the named schema as (key path, message), in document order.

    A quick yes/no pass decides the common case (a valid file) without importing jsonschema,
    about 55 ms of start-up; jsonschema runs when the answer is no, to find and word each error.
    """
    try:
        if _quick_valid(data, load_schema(schema), load_schema(schema)):
            return []
    except NotImplementedError:
        pass  # a keyword the quick pass does not know: let jsonschema decide
    found: list[tuple[str, str]] = []
    for error in _validator(schema).iter_errors(data):
        found.extend(_describe(error))
    seen: set[tuple[str, str]] = set()
    unique = []
    for item in found:
        if item not in seen:
            seen.add(item)
            unique.append(item)
    return unique


def _describe(error: Any) -> Iterator[tuple[str, str]]:
    path = list(error.absolute_path)
    where = render(path)
    kind = error.validator
    instance = error.instance
    if kind == "additionalProperties":
        allowed = sorted(error.schema.get("properties", {}))
        extra = sorted(set(instance) - set(allowed))
        for key in extra:
            hint = difflib.get_close_matches(key, allowed, n=1)
            suggestion = f"; did you mean {hint[0]!r}?" if hint else f"; known keys: {', '.join(allowed)}"
            context = _source_context(instance)
            yield render([*path, key]), f"unknown key{context}{suggestion}"
    elif kind == "required":
        missing = [k for k in error.validator_value if k not in instance]
        for key in missing:
            yield render([*path, key]), f"required key is missing{_source_context(instance)}"
    elif kind == "type":
        expected = error.validator_value
        names = [expected] if isinstance(expected, str) else list(expected)
        wanted = " or ".join(_JSON_TYPES.get(n, n) for n in names)
        yield where, f"expected {wanted}, got {_toml_type(instance)} {_short(instance)}"
    elif kind == "pattern":
        meaning = _PATTERN_MEANING.get(error.validator_value)
        if meaning:
            extra = f" ({len(instance)} characters)" if "sha256" in meaning else ""
            yield where, f"{meaning}, got {_short(instance)}{extra}"
        else:
            yield where, f"{_short(instance)} does not match {error.validator_value!r}"
    elif kind == "enum":
        options = ", ".join(repr(v) for v in error.validator_value)
        yield where, f"must be one of {options}; got {_short(instance)}"
    elif kind == "const":
        if path == ["schema"]:
            yield where, f"unsupported recipe format {_short(instance)}; this weightpkg reads schema = 1"
        else:
            yield where, f"must be {error.validator_value!r}, got {_short(instance)}"
    elif kind == "minItems":
        yield where, "must not be empty" if error.validator_value == 1 else error.message
    elif kind == "minLength":
        yield where, "must not be empty"
    elif kind == "minProperties":
        yield where, "must not be empty: give at least one key"
    elif kind == "maxLength":
        yield where, f"must be at most {error.validator_value} characters, got {len(instance)}"
    elif kind == "minimum":
        yield where, f"must be at least {error.validator_value}, got {_short(instance)}"
    elif kind == "oneOf" and path and path[-1] == "member":
        # An empty name is a string of the right type: say what is wrong with it, and where.
        items = instance if isinstance(instance, list) else []
        empty = [render([*path, k]) for k, m in enumerate(items) if m == ""]
        if instance in ("", []) or (empty and all(isinstance(m, str) for m in instance)):
            for key in empty or [where]:
                yield key, "must not be empty"
        else:
            yield where, f"expected a path string or an array of path strings, got {_short(instance)}"
    else:
        yield where, error.message


#: Source kinds, as ``[[….sources]]`` tables name them (``[package]`` has a ``kind`` too).
_SOURCE_KINDS = frozenset({"path", "url", "pypi", "deb", "hf", "recipe"})


def _source_context(instance: Any) -> str:
    """' for a pypi source' where the table is a source, so the fix is obvious."""
    kind = instance.get("kind") if isinstance(instance, Mapping) else None
    if isinstance(kind, str) and kind in _SOURCE_KINDS:  # `kind = []` is unhashable: TypeError
        return f" for a {kind} source"
    return ""


# --- the quick pass ---------------------------------------------------------------------------

_TYPE_CHECKS = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
}
_ANNOTATIONS = frozenset({"$schema", "$id", "$defs", "title", "description", "$comment", "default"})
_OBJECT_KEYWORDS = frozenset({"properties", "required", "additionalProperties", "minProperties"})
_ARRAY_KEYWORDS = frozenset({"items", "minItems", "maxItems"})
_STRING_KEYWORDS = frozenset({"pattern", "minLength", "maxLength"})


def _json_equal(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    return bool(a == b)


@functools.cache
def _compiled(pattern: str) -> Any:
    """``pattern`` compiled as JSON Schema (ECMA-262) reads it: an unescaped "$" outside a
    character class ends the string, so it becomes Python's "\\Z" (Python's "$" would also
    match before a trailing newline, letting "name\\n" through every anchored pattern)."""
    import re

    out, escaped, in_class = [], False, False
    for char in pattern:
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == "[":
            in_class = True
        elif char == "]":
            in_class = False
        elif char == "$" and not in_class:
            char = "\\Z"
        out.append(char)
    return re.compile("".join(out))


def _quick_valid(value: Any, node: Any, root: Mapping[str, Any]) -> bool:
    """Whether ``value`` is valid against ``node``, for the keywords our schemas use. A stricter
    reading than JSON Schema's in one place (1.0 is not an integer) only sends the value to
    jsonschema; an unknown keyword raises NotImplementedError, so nothing is ever passed wrongly."""
    if node is True or node is False:
        return bool(node)
    for key, rule in node.items():
        if key in _ANNOTATIONS or key in ("then", "else"):
            continue
        if key == "type":
            kinds = rule if isinstance(rule, list) else [rule]
            ok = any(_TYPE_CHECKS[k](value) for k in kinds)
        elif key == "$ref":
            if not rule.startswith("#/"):
                raise NotImplementedError(rule)
            target: Any = root
            for part in rule[2:].split("/"):
                target = target[part.replace("~1", "/").replace("~0", "~")]
            ok = _quick_valid(value, target, root)
        elif key == "const":
            ok = _json_equal(value, rule)
        elif key == "enum":
            ok = any(_json_equal(value, r) for r in rule)
        elif key == "allOf":
            ok = all(_quick_valid(value, r, root) for r in rule)
        elif key == "anyOf":
            ok = any(_quick_valid(value, r, root) for r in rule)
        elif key == "oneOf":
            ok = sum(1 for r in rule if _quick_valid(value, r, root)) == 1
        elif key == "if":
            branch = node.get("then" if _quick_valid(value, rule, root) else "else", True)
            ok = _quick_valid(value, branch, root)
        elif key in _OBJECT_KEYWORDS:
            ok = not isinstance(value, dict) or _object_valid(value, key, rule, node, root)
        elif key in _ARRAY_KEYWORDS:
            ok = not isinstance(value, list) or (
                all(_quick_valid(v, rule, root) for v in value)
                if key == "items"
                else (len(value) >= rule if key == "minItems" else len(value) <= rule)
            )
        elif key in _STRING_KEYWORDS:
            ok = not isinstance(value, str) or (
                _compiled(rule).search(value) is not None
                if key == "pattern"
                else (len(value) >= rule if key == "minLength" else len(value) <= rule)
            )
        elif key in ("minimum", "maximum"):
            number = isinstance(value, (int, float)) and not isinstance(value, bool)
            ok = not number or (value >= rule if key == "minimum" else value <= rule)
        else:
            raise NotImplementedError(key)
        if not ok:
            return False
    return True


def _object_valid(value: dict[str, Any], key: str, rule: Any, node: Any, root: Mapping[str, Any]) -> bool:
    if key == "properties":
        return all(_quick_valid(value[k], sub, root) for k, sub in rule.items() if k in value)
    if key == "required":
        return all(k in value for k in rule)
    if key == "minProperties":
        return len(value) >= rule
    known = node.get("properties", {})
    return all(_quick_valid(v, rule, root) for k, v in value.items() if k not in known)
