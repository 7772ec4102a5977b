"""Every error weightpkg raises descends from WeightpkgError and carries its facts as attributes."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path


class WeightpkgError(Exception):
    """Root of weightpkg's errors.

    ``exit_code`` is what the CLI exits with: 2 for bad input or usage, 1 for a failed check.
    """

    exit_code = 2


class Problem:
    """One thing wrong with one input file, located as precisely as the input allows.

    Written out rather than a frozen dataclass: every command imports this module, and the
    dataclass machinery (``dataclasses`` and ``inspect``) cost about 9 ms of start-up."""

    __slots__ = ("file", "key", "line", "message")

    file: str
    key: str
    message: str
    line: int | None

    def __init__(self, file: str, key: str, message: str, line: int | None = None) -> None:
        object.__setattr__(self, "file", file)
        object.__setattr__(self, "key", key)
        object.__setattr__(self, "message", message)
        object.__setattr__(self, "line", line)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"Problem is immutable: cannot set {name}")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"Problem is immutable: cannot delete {name}")

    def _fields(self) -> tuple[str, str, str, int | None]:
        return (self.file, self.key, self.message, self.line)

    def __eq__(self, other: object) -> bool:
        return self._fields() == other._fields() if isinstance(other, Problem) else NotImplemented

    def __hash__(self) -> int:
        return hash(self._fields())

    def __reduce__(self) -> tuple[type[Problem], tuple[str, str, str, int | None]]:
        return (Problem, self._fields())  # copy and pickle without __setattr__

    def __repr__(self) -> str:
        return f"Problem(file={self.file!r}, key={self.key!r}, message={self.message!r}, line={self.line!r})"

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.key}: {self.message}" if self.key else f"{where}: {self.message}"


class RecipeError(WeightpkgError):
    """A recipe is malformed; holds every problem found, not just the first."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = tuple(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


class PolicyError(RecipeError):
    """A policy file is malformed; every problem, located like a recipe's."""


class UsageError(WeightpkgError):
    """The command line asks for something that cannot be done (missing file, bad option value)."""


@contextlib.contextmanager
def reading(path: object, what: str | None = None) -> Iterator[None]:
    """Turn the OS's errors while reading an input file into one UsageError line naming it."""
    try:
        yield
    except FileNotFoundError:
        raise UsageError(f"{path}: no such file" + (f" ({what})" if what else "")) from None
    except IsADirectoryError:
        raise UsageError(f"{path}: is a directory" + (f", not {what}" if what else "")) from None
    except OSError as exc:
        thing = f" {what}" if what else ""
        raise UsageError(f"{path}: cannot read{thing}: {exc.strerror}") from None


def write_atomically(path: Path, data: bytes) -> None:
    """Write a whole file or nothing: a temporary file beside it, then a rename over ``path``;
    the OS's errors become one UsageError line naming it."""
    import tempfile

    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise UsageError(f"{path}: cannot write: {exc.strerror}") from None
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise UsageError(f"{path}: cannot write: {exc.strerror}") from None


class FetchError(WeightpkgError):
    """A file could not be had from a source; ``attempts`` lists every URL or client tried and why."""

    exit_code = 1

    def __init__(self, what: str, attempts: Iterable[str]) -> None:
        self.what = what
        self.attempts = tuple(attempts)
        detail = "; ".join(self.attempts)
        super().__init__(f"{what}: {detail}" if detail else what)


class IntegrityError(WeightpkgError):
    """Bytes do not match their pin; nothing with these bytes is admitted to the store."""

    exit_code = 1

    def __init__(
        self,
        what: str,
        *,
        expected: str,
        actual: str,
        kind: str = "sha256",
        notes: Iterable[str] = (),
        source: str | None = None,
    ) -> None:
        self.what = what
        self.kind = kind
        self.expected = expected
        self.actual = actual
        self.notes = tuple(notes)
        #: Where the wrong bytes came from (a source and its URL), when it is known.
        self.source = source
        super().__init__(f"{what}: {self.mismatch}")

    @property
    def mismatch(self) -> str:
        """``KIND mismatch: expected X, got Y`` and, when known, where Y came from."""
        origin = f" (from {self.source})" if self.source else ""
        return f"{self.kind} mismatch: expected {self.expected}, got {self.actual}{origin}"


class UnsafeArchiveError(WeightpkgError):
    """An archive member would escape its archive or is not a plain file (absolute path, '..', link)."""

    exit_code = 1

    def __init__(self, archive: str, member: str, reason: str) -> None:
        self.archive = archive
        self.member = member
        self.reason = reason
        super().__init__(f"{archive}: member {member!r}: {reason}")


class StoreError(WeightpkgError):
    """The store cannot be used (not writable, corrupt layout, disk full)."""

    exit_code = 1


class BuildError(WeightpkgError):
    """A rebuild could not run or did not produce its declared outputs; nothing entered the store."""

    exit_code = 1


class SignatureError(WeightpkgError):
    """A signature does not hold: wrong key, tampered file, unknown signer, malformed signature.

    ``file`` is what was signed (a file or a model directory), ``format`` one of ``minisign``,
    ``ssh``, ``model-signing``; ``problems`` lists every difference found when there are several.
    """

    exit_code = 1

    def __init__(
        self,
        file: str | os.PathLike[str],
        format: str,
        reason: str,
        *,
        signature: str | os.PathLike[str] | None = None,
        problems: Iterable[str] = (),
    ) -> None:
        self.file = str(file)
        self.format = format
        self.reason = reason
        self.signature = None if signature is None else str(signature)
        self.problems = tuple(problems)
        super().__init__(f"{self.file}: {format} signature: {reason}")
