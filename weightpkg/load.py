"""The only code that reads a recipe file: bytes → text (BOM tolerated) → TOML mapping, with lines.

tomllib gives no positions for keys, so a small scanner walks the (already valid) TOML text and
records the line where each key path is defined; errors use it to say ``FILE:LINE``.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .core.keypath import PathPart, render
from .errors import PolicyError, Problem, RecipeError

if TYPE_CHECKING:
    from .core.policy import Policy

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

_BOM = "\ufeff"
_TOML_POSITION = re.compile(r"\s*\(at line (\d+), column (\d+)\)\s*$")
_TOML_EOF = re.compile(r"\s*\(at end of document\)\s*$")


@dataclass(frozen=True)
class LoadedRecipe:
    """A recipe file's parsed TOML, where it came from, and the line of each key path."""

    path: Path
    data: Mapping[str, Any]
    lines: Mapping[str, int] = field(default_factory=dict)
    text: str = ""

    def line_of(self, key: str) -> int | None:
        """The line defining ``key``, or that of its nearest enclosing key that has one."""
        while key:
            if key in self.lines:
                return self.lines[key]
            cut = max(key.rfind("."), key.rfind("["))
            key = key[:cut] if cut > 0 else ""
        return None


def read_policy(path: str | Path) -> Policy:
    """Read, check and model a policy file; PolicyError names the file, line and problem."""
    from .core.policy import Policy
    from .core.recipe import license_problem
    from .core.schema import schema_violations

    try:
        loaded = read_recipe(path)
    except RecipeError as exc:
        raise PolicyError(exc.problems) from None
    problems = schema_violations(loaded.data, "policy")
    rules = loaded.data.get("rules")
    allowed = rules.get("allowed-licenses") if isinstance(rules, dict) else None
    for i, expression in enumerate(allowed if isinstance(allowed, list) else []):
        if (why := license_problem(expression)) is not None:
            problems.append((f"rules.allowed-licenses[{i}]", why))
    if problems:
        shown = str(path)
        raise PolicyError([Problem(shown, key, message, loaded.line_of(key)) for key, message in problems])
    policy = Policy.from_mapping(loaded.data)
    return replace(policy, trusted_keys=resolve_keys(policy.trusted_keys, Path(path).parent))


def resolve_keys(keys: tuple[str, ...], base: Path) -> tuple[str, ...]:
    """Key paths as written in a recipe or policy, made relative to its folder; a minisign key
    line (``RW`` and 54 more base64 characters) stays as it is unless a file has that name."""
    resolved = []
    for key in keys:
        path = base / key
        line = len(key) == 56 and key.startswith("RW") and not path.exists()
        resolved.append(key if line else str(path))
    return tuple(resolved)


def read_recipe(path: str | Path) -> LoadedRecipe:
    """Read and parse one recipe (or policy) file; RecipeError names the file, line and problem."""
    path = Path(path)
    shown = str(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise RecipeError([Problem(shown, "", "no such file")]) from None
    except IsADirectoryError:
        raise RecipeError([Problem(shown, "", "is a directory, not a recipe file")]) from None
    except OSError as exc:
        raise RecipeError([Problem(shown, "", f"cannot read: {exc.strerror}")]) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise RecipeError(
            [Problem(shown, "", f"not valid UTF-8 (byte 0x{raw[exc.start]:02x})", line)]
        ) from None
    text = text.removeprefix(_BOM)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise RecipeError([_toml_problem(shown, text, exc)]) from None
    except RecursionError:
        raise RecipeError([Problem(shown, "", "TOML nested too deeply to read")]) from None
    except ValueError:  # int()'s limit: tomllib lets a decimal literal of over 4,300 digits through
        long_number = _LONG_NUMBER.search(text)
        line = text.count("\n", 0, long_number.start()) + 1 if long_number else None
        message = "TOML syntax error: an integer too long to read (TOML integers are 64-bit)"
        raise RecipeError([Problem(shown, "", message, line)]) from None
    try:
        lines = locate_keys(text)
    except (ValueError, IndexError, RecursionError):  # a scanner bug costs line numbers only
        lines = {}
    loaded = LoadedRecipe(path=path, data=data, lines=lines, text=text)
    if wide := _wide_integers(data):
        raise RecipeError(
            [
                Problem(shown, key, f"integer of {bits} bits out of range: TOML integers are 64-bit signed",
                        loaded.line_of(key))
                for key, bits in wide
            ]
        )
    return loaded


_LONG_NUMBER = re.compile(r"(?<![0-9_])[0-9][0-9_]{4299,}")  # from a run's start only: linear
_INT64 = range(-(2**63), 2**63)


def _wide_integers(data: Mapping[str, Any]) -> list[tuple[str, int]]:
    """(key path, bit length) of every integer outside 64 bits. TOML says such a value must be an
    error; tomllib keeps it (0x followed by 4,000 digits), and its repr() in a later message would
    raise ValueError past Python's 4,300-digit limit for int-to-str conversion."""
    found: list[tuple[str, int]] = []
    stack: list[tuple[list[PathPart], Any]] = [([], data)]
    while stack:
        parts, value = stack.pop()
        if isinstance(value, dict):
            stack.extend(([*parts, key], item) for key, item in reversed(value.items()))
        elif isinstance(value, list):
            stack.extend(([*parts, i], item) for i, item in reversed(list(enumerate(value))))
        elif isinstance(value, int) and not isinstance(value, bool) and value not in _INT64:
            found.append((render(parts), value.bit_length()))
    return found


def _toml_problem(shown: str, text: str, exc: Exception) -> Problem:
    message = str(exc.args[0]) if exc.args else str(exc)
    line: int | None = None
    if match := _TOML_POSITION.search(message):
        line = int(match.group(1))
        message = message[: match.start()]
    elif _TOML_EOF.search(message):
        line = text.count("\n") + (0 if text.endswith("\n") else 1) or 1
        message = _TOML_EOF.sub("", message) + " (at end of file)"
    return Problem(shown, "", f"TOML syntax error: {message}", line)


# --- the line scanner -------------------------------------------------------------------------

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
# A date-time may hold a space between date and time; other scalars end at space or comma.
_DATETIME = re.compile(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})?")
_SCALAR = re.compile(r"[^,\]}\s#]+")


class _Scanner:
    """Walks valid TOML and records the first line of every key path it meets."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0
        self.line = 1
        self.lines: dict[str, int] = {}
        self.array_tables: dict[str, int] = {}

    # low-level helpers
    def peek(self, n: int = 1) -> str:
        return self.text[self.pos : self.pos + n]

    def advance(self, n: int = 1) -> None:
        chunk = self.text[self.pos : self.pos + n]
        self.line += chunk.count("\n")
        self.pos += n

    def skip_ws(self, newlines: bool) -> None:
        while self.pos < len(self.text):
            ch = self.text[self.pos]
            if ch in " \t\r" or (newlines and ch == "\n"):
                self.advance()
            elif ch == "#":
                end = self.text.find("\n", self.pos)
                self.advance((end if end >= 0 else len(self.text)) - self.pos)
            else:
                return

    def record(self, parts: list[PathPart], line: int) -> None:
        for i in range(1, len(parts) + 1):
            self.lines.setdefault(render(parts[:i]), line)

    def key(self) -> list[str]:
        parts: list[str] = []
        while True:
            self.skip_ws(newlines=False)
            ch = self.peek()
            if ch in ('"', "'"):
                parts.append(self.string_value())
            else:
                match = _BARE_KEY.match(self.text, self.pos)
                if not match:
                    raise ValueError("key expected")
                parts.append(match.group())
                self.advance(match.end() - self.pos)
            self.skip_ws(newlines=False)
            if self.peek() != ".":
                return parts
            self.advance()

    def string_value(self) -> str:
        """Skip a string of any of TOML's four kinds and return its value (keys need it)."""
        quote = self.peek()
        start_pos = self.pos
        multi = self.peek(3) == quote * 3
        self.advance(3 if multi else 1)
        end_text = len(self.text)
        while True:
            if self.pos >= end_text:
                raise ValueError("unterminated string")
            ch = self.text[self.pos]
            if quote == '"' and ch == "\\":
                self.advance(2)
                continue
            if not multi and ch == "\n":
                raise ValueError("newline in a single-line string")
            if multi and self.peek(3) == quote * 3:
                # Up to two more quotes belong to the content: """a"""" closes after a".
                extra = 0
                while extra < 2 and self.text[self.pos + 3 + extra : self.pos + 4 + extra] == quote:
                    extra += 1
                self.advance(3 + extra)
                break
            if not multi and ch == quote:
                self.advance()
                break
            self.advance()
        raw = self.text[start_pos : self.pos]
        if quote == "'":
            return raw[3:-3] if multi else raw[1:-1]
        if "\\" not in raw:
            return raw[3:-3] if multi else raw[1:-1]
        return str(tomllib.loads(f"k = {raw}")["k"])

    def value(self, path: list[PathPart]) -> None:
        ch = self.peek()
        if ch in ('"', "'"):
            self.string_value()
        elif ch == "[":
            self.advance()
            index = 0
            while True:
                self.skip_ws(newlines=True)
                if self.peek() == "]":
                    self.advance()
                    return
                self.record([*path, index], self.line)
                self.value([*path, index])
                index += 1
                self.skip_ws(newlines=True)
                if self.peek() == ",":
                    self.advance()
        elif ch == "{":
            self.advance()
            while True:
                self.skip_ws(newlines=True)
                if self.peek() == "}":
                    self.advance()
                    return
                self.key_value(path)
                self.skip_ws(newlines=True)
                if self.peek() == ",":
                    self.advance()
        else:
            match = _DATETIME.match(self.text, self.pos) or _SCALAR.match(self.text, self.pos)
            if not match:
                raise ValueError("value expected")
            self.advance(match.end() - self.pos)

    def key_value(self, table: list[PathPart]) -> None:
        line = self.line
        parts = [*table, *self.key()]
        self.record(parts, line)
        self.skip_ws(newlines=False)
        if self.peek() != "=":
            raise ValueError("'=' expected")
        self.advance()
        self.skip_ws(newlines=False)
        self.value(parts)

    def header(self) -> list[PathPart]:
        line = self.line
        is_array = self.peek(2) == "[["
        self.advance(2 if is_array else 1)
        names = self.key()
        self.advance(2 if is_array else 1)
        # Resolve each dotted part against the arrays of tables seen so far.
        parts: list[PathPart] = []
        for i, name in enumerate(names):
            parts.append(name)
            last = i == len(names) - 1
            key = render(parts)
            if last and is_array:
                index = self.array_tables.get(key, -1) + 1
                self.array_tables[key] = index
                # Arrays nested below are keyed by this element's index, so they start afresh.
                parts.append(index)
            elif key in self.array_tables:
                parts.append(self.array_tables[key])
        self.record(parts, line)
        return parts

    def run(self) -> dict[str, int]:
        table: list[PathPart] = []
        while True:
            self.skip_ws(newlines=True)
            if self.pos >= len(self.text):
                return self.lines
            if self.peek() == "[":
                table = self.header()
            else:
                self.key_value(table)


def locate_keys(text: str) -> dict[str, int]:
    """Map every key path in valid TOML text to the line that defines it."""
    return _Scanner(text).run()
