"""Bring pinned files into the store: try each source's candidates in order, admit only a match."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath

from .core.digest import Digest
from .core.recipe import Recipe, Source
from .errors import FetchError, IntegrityError, UnsafeArchiveError, UsageError
from .sources import FetchContext, FileSink, Progress, candidates
from .store import NO_SPACE, PinMismatch, Store, store_failure

#: Failures that mean "this candidate did not deliver; try the next one".
CANDIDATE_FAILURES = (FetchError, IntegrityError, UnsafeArchiveError)


@dataclass(frozen=True)
class Pin:
    """What a file must be: its name in the package, sha256 and size, and for a safetensors file
    whose recipe pins its content, the content digest another serialization may match."""

    path: str
    sha256: Digest
    size: int
    content_sha256: Digest | None = None

    @property
    def name(self) -> str:
        return PurePosixPath(self.path).name


@dataclass
class Obtained:
    """Where a pinned file is in the store, how it got there, and what was tried on the way."""

    store_path: Path
    source: str | None  # None: it was already in the store
    notes: list[str] = field(default_factory=list)


def failure_reason(exc: Exception) -> str:
    """Why a candidate failed, without repeating what the candidate's label already says."""
    if isinstance(exc, FetchError) and exc.attempts:
        return "; ".join(exc.attempts)
    return str(exc)


@contextmanager
def fetch_context(recipe: Recipe, store: Store, progress: Progress | None = None) -> Iterator[FetchContext]:
    """A context whose scratch folder (outer archives) lives in the store's tmp/, removed
    afterwards, and collected by gc if the run is killed."""
    with store.scratch() as scratch:
        yield FetchContext(recipe_dir=Path(recipe.origin).parent, workdir=scratch, progress=progress)


def obtain(store: Store, pin: Pin, sources: Sequence[Source], ctx: FetchContext) -> Obtained:
    """The store entry for ``pin``, fetching it from the first source that delivers it.

    Every failed candidate is recorded in the notes. If none delivers, IntegrityError when some
    delivered wrong bytes (with the other failures as its notes), else FetchError listing all.
    """
    notes: list[str] = []
    wrong: list[tuple[int, IntegrityError, str]] = []  # (index of its note, error, candidate)
    with store.ingest(pin.sha256, pin.size, pin.name) as ingest:
        if ingest.present:
            return Obtained(ingest.final, None)
        other = store.lookup(pin.sha256, pin.name, pin.size)
        if other is not None:
            try:
                return Obtained(ingest.adopt(other), None)
            except PinMismatch as exc:
                notes.append(f"{exc}; fetching again")
        if ingest.offset == pin.size:
            try:
                return Obtained(ingest.commit(), "a complete earlier download", notes)
            except PinMismatch:
                notes.append("an earlier download was complete but wrong; fetching again")
                ingest.reopen()
        for number, source in enumerate(sources, start=1):
            for candidate in candidates(source, ctx):
                label = f"source {number} ({candidate.label})"
                for fresh_start in (False, True):
                    start = ingest.offset
                    ingest.restarted = False
                    try:
                        candidate.fetch(ingest)
                        path = ingest.commit()
                    except OSError as exc:
                        # A source's scratch (an outer archive) lives on the store's disk too:
                        # a full disk is the store's failure, not this candidate's.
                        if exc.errno not in NO_SPACE:
                            raise
                        raise store_failure(pin.path, label, exc, store.root, "; nothing was added") from None
                    except CANDIDATE_FAILURES as exc:
                        resumed = start > 0 and not ingest.restarted
                        ingest.reopen()
                        # Only the pinned file's own mismatch counts here; an outer archive's
                        # (wheel, .deb) is that candidate's failure like any other.
                        if isinstance(exc, PinMismatch) and resumed and not fresh_start:
                            # The bytes kept from an earlier attempt may be what was wrong.
                            notes.append(f"{label}: resumed bytes did not match; starting over")
                            continue
                        if isinstance(exc, PinMismatch):
                            wrong.append((len(notes), exc, label))
                        notes.append(f"{label}: {failure_reason(exc)}")
                        break
                    return Obtained(path, label, notes)
    if wrong:
        # Wrong bytes are the finding that matters; the other failures travel along.
        index, last, label = wrong[-1]
        others = notes[:index] + notes[index + 1 :]
        raise IntegrityError(
            pin.path, expected=last.expected, actual=last.actual, kind=last.kind, notes=others, source=label
        )
    raise FetchError(f"{pin.path}: no source delivered it", notes)


@dataclass(frozen=True)
class SourceCheck:
    """What one declared source delivered, for ``verify --all-sources``."""

    source: str
    status: str  # "agrees" | "same-content" | "differs" | "unavailable"
    detail: str
    sha256: str | None = None
    declared_license: str | None = None


#: A source checked against a content pin may deliver other bytes for the same tensors: only the
#: header can differ (data is tiled exactly), so a little more than the pinned size is let in.
CONTENT_HEADER_SLACK_BYTES = 8 << 20


def check_sources(pin: Pin, sources: Sequence[Source], ctx: FetchContext) -> list[SourceCheck]:
    """Fetch ``pin`` from every source into scratch space and compare each with the pin: by bytes,
    and where the bytes differ and the pin has a content digest, by what the file holds."""
    limit = pin.size + (CONTENT_HEADER_SLACK_BYTES if pin.content_sha256 is not None else 0)
    results = []
    saved, ctx.local_caches = ctx.local_caches, False
    try:
        for number, source in enumerate(sources, start=1):
            results.append(_check_source(number, source, pin, limit, ctx))
    finally:
        ctx.local_caches = saved
    return results


def _check_source(number: int, source: Source, pin: Pin, limit: int, ctx: FetchContext) -> SourceCheck:
    """What one source delivers, by its first candidate that delivers anything."""
    label = f"source {number} ({source.describe()})"
    reasons = []
    outcome: SourceCheck | None = None
    for candidate in candidates(source, ctx):
        scratch = ctx.scratch("compare") / f"{number}-{pin.name}"
        try:
            with FileSink(scratch, limit=limit) as sink:
                candidate.fetch(sink)
                digest, size = sink.digest()
            if digest == pin.sha256 and size == pin.size:
                outcome = SourceCheck(label, "agrees", f"sha256 {digest.hex}", digest.hex)
            else:
                outcome = _differing_source(label, pin, digest, size, scratch)
        except CANDIDATE_FAILURES as exc:
            reasons.append(f"{candidate.label}: {failure_reason(exc)}")
            continue
        finally:
            scratch.unlink(missing_ok=True)
        break
    outcome = outcome or SourceCheck(label, "unavailable", "; ".join(reasons))
    return replace(outcome, declared_license=source.declared_license)


def _differing_source(label: str, pin: Pin, digest: Digest, size: int, scratch: Path) -> SourceCheck:
    """Other bytes than the pin's: the same content when the pin has a content digest it matches."""
    detail = f"sha256 {digest.hex} and {size} bytes, expected {pin.sha256.hex} and {pin.size}"
    if pin.content_sha256 is None:
        return SourceCheck(label, "differs", detail, digest.hex)
    try:
        from .tensorfiles import file_content_digest

        content = file_content_digest(scratch)
    except UsageError as exc:
        why = str(exc).removeprefix(f"{scratch}: ")
        return SourceCheck(label, "differs", f"{detail}; {why}", digest.hex)
    if content != pin.content_sha256.hex:
        detail += f"; content-sha256 {content}, expected {pin.content_sha256.hex}"
        return SourceCheck(label, "differs", detail, digest.hex)
    detail = f"sha256 {digest.hex}: other bytes, the pinned content-sha256 {content}"
    return SourceCheck(label, "same-content", detail, digest.hex)
