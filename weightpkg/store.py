"""The content-addressed store: the one writer under its root.

Layout::

    ROOT/entries/<nix32 sha256>-<name>   a verified file, read-only, named like a Nix store path
    ROOT/packages/<name>-<version>.json  a package's manifest (deterministic JSON), a GC root
    ROOT/tmp/<hex sha256>.partial        a download in progress, resumable
    ROOT/locks/<hex sha256>.lock         one writer per entry (flock)
    ROOT/store.lock                      shared while adding, exclusive while collecting garbage

Nothing is renamed into ``entries/`` before its size and sha256 match the pin.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .core.digest import Digest, StreamHasher, chunk_buffer, hash_stream, nix32_decode
from .errors import IntegrityError, StoreError

_NAME_UNSAFE = re.compile(r"[^A-Za-z0-9+._?=-]")
_ENTRY = re.compile(r"([0-9a-df-np-sv-z]{52})-(.+)")


def default_store_root() -> Path:
    """``$WEIGHTPKG_STORE``, else ``$XDG_DATA_HOME/weightpkg/store`` (~/.local/share by default)."""
    if explicit := os.environ.get("WEIGHTPKG_STORE"):
        return Path(explicit)
    data_home = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(data_home) / "weightpkg" / "store"


def entry_name(digest: Digest, name: str) -> str:
    """``<nix32>-<name>``; the name keeps Nix's store-path characters, others become '_'."""
    clean = _NAME_UNSAFE.sub("_", name).lstrip(".") or "file"
    return f"{digest.nix32}-{clean[:200]}"


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@dataclass(frozen=True)
class StoreEntry:
    name: str
    path: Path
    digest: Digest
    size: int


class Ingest:
    """One pinned file being added: write bytes (resuming a partial), then commit or fail.

    The hash runs over the bytes as they are written, so the digest comes from the write itself.
    """

    def __init__(self, store: Store, digest: Digest, size: int, name: str) -> None:
        self.store = store
        self.expected = digest
        self.expected_size = size
        self.name = name
        self.final = store.root / "entries" / entry_name(digest, name)
        self.partial = store.root / "tmp" / f"{digest.hex}.partial"
        self._file: Any = None
        self._hasher = StreamHasher()

    @property
    def present(self) -> bool:
        return self.final.exists()

    @property
    def offset(self) -> int:
        """Bytes already held (resumed from an earlier, interrupted attempt)."""
        return self._hasher.size

    def _open(self) -> None:
        self._file = open(self.partial, "ab+", buffering=0)
        self._file.seek(0)
        if os.fstat(self._file.fileno()).st_size > self.expected_size:
            self._file.truncate(0)
        digest_bytes = StreamHasher()
        buf = chunk_buffer()
        view = memoryview(buf)
        while n := self._file.readinto(buf):
            digest_bytes.update(view[:n])
        self._hasher = digest_bytes

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self._hasher.size + len(data) > self.expected_size:
            self.discard()
            raise IntegrityError(
                self.name,
                kind="size",
                expected=f"{self.expected_size} bytes",
                actual=f"more than {self.expected_size} bytes",
            )
        try:
            self._file.write(data)
        except OSError as exc:
            self.discard()
            if exc.errno == errno.ENOSPC:
                raise StoreError(
                    f"{self.name}: no space left on the store's disk ({self.store.root}); nothing was added"
                ) from None
            raise StoreError(f"{self.name}: cannot write to the store: {exc.strerror}") from None
        self._hasher.update(data)

    def restart(self) -> None:
        """Forget what was written (the server ignored a range request, or a source changed)."""
        self._file.seek(0)
        self._file.truncate(0)
        self._hasher = StreamHasher()

    def commit(self) -> Path:
        """Check size and sha256, then make the entry appear atomically; IntegrityError if not."""
        actual = self._hasher.digest()
        size = self._hasher.size
        if size != self.expected_size:
            self.discard()
            raise IntegrityError(
                self.name, kind="size", expected=f"{self.expected_size} bytes", actual=f"{size} bytes"
            )
        if actual != self.expected:
            self.discard()
            raise IntegrityError(self.name, expected=self.expected.hex, actual=actual.hex)
        try:
            os.fsync(self._file.fileno())
            self._file.close()
            self._file = None
            os.chmod(self.partial, 0o444)
            os.replace(self.partial, self.final)
            _fsync_dir(self.final.parent)
        except OSError as exc:
            self.discard()
            raise StoreError(f"{self.name}: cannot add to the store: {exc.strerror}") from None
        return self.final

    def discard(self) -> None:
        """Drop the partial bytes: they are wrong, or the disk cannot hold them."""
        if self._file is not None:
            self._file.close()
            self._file = None
        with contextlib.suppress(FileNotFoundError):
            self.partial.unlink()
        self._hasher = StreamHasher()

    def reopen(self) -> None:
        """Be ready for the next candidate after a failed one (keeps resumable bytes)."""
        if self._file is None and not self.present:
            self._open()

    def close(self) -> None:
        """Release the partial; keep it only if it holds bytes worth resuming from."""
        if self._file is not None:
            self._file.close()
            self._file = None
            if self._hasher.size == 0:
                with contextlib.suppress(FileNotFoundError):
                    self.partial.unlink()


class Store:
    """A store rooted at ``root``; created on first write."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).expanduser().absolute()

    def _ensure(self) -> None:
        try:
            for sub in ("entries", "packages", "tmp", "locks"):
                (self.root / sub).mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot create the store at {self.root}: {exc.strerror}") from None

    @contextlib.contextmanager
    def _flock(self, path: Path, mode: int) -> Iterator[None]:
        self._ensure()
        with open(path, "a+b") as handle:
            fcntl.flock(handle.fileno(), mode)
            try:
                yield
            finally:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)

    @contextlib.contextmanager
    def session(self) -> Iterator[Store]:
        """Hold the store open for adding; garbage collection waits until every session ends."""
        with self._flock(self.root / "store.lock", fcntl.LOCK_SH):
            yield self

    def entry_path(self, digest: Digest, name: str) -> Path:
        return self.root / "entries" / entry_name(digest, name)

    def lookup(self, digest: Digest, name: str) -> Path | None:
        """The entry for a pin if present; any entry with the same content will do for reading."""
        exact = self.entry_path(digest, name)
        if exact.exists():
            return exact
        entries = self.root / "entries"
        if entries.is_dir():
            for candidate in entries.glob(f"{digest.nix32}-*"):
                return candidate
        return None

    @contextlib.contextmanager
    def ingest(self, digest: Digest, size: int, name: str) -> Iterator[Ingest]:
        """Add one pinned file; one writer per digest, others wait then find it present."""
        self._ensure()
        with self._flock(self.root / "locks" / f"{digest.hex}.lock", fcntl.LOCK_EX):
            ingest = Ingest(self, digest, size, name)
            if not ingest.present:
                ingest._open()
            try:
                yield ingest
            finally:
                ingest.close()

    def add_alias(self, source: Path, digest: Digest, name: str) -> Path:
        """Make an entry under another name for content already in the store (hard link)."""
        target = self.entry_path(digest, name)
        if not target.exists():
            tmp = self.root / "tmp" / f"{digest.hex}.{os.getpid()}.link"
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
            try:
                os.link(source, tmp)
            except OSError:
                import shutil

                shutil.copyfile(source, tmp)
                os.chmod(tmp, 0o444)
            os.replace(tmp, target)
        return target

    # --- manifests ------------------------------------------------------------------------------

    def write_manifest(self, package_id: str, manifest: Mapping[str, Any]) -> Path:
        """Write ``packages/<id>.json`` atomically as sorted, indented JSON."""
        self._ensure()
        path = self.root / "packages" / f"{_NAME_UNSAFE.sub('_', package_id)}.json"
        text = json.dumps(manifest, sort_keys=True, indent=2, ensure_ascii=False) + "\n"
        if path.exists() and path.read_text("utf-8") == text:
            return path
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        with open(tmp, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
        _fsync_dir(path.parent)
        return path

    def manifests(self) -> dict[str, Mapping[str, Any]]:
        out: dict[str, Mapping[str, Any]] = {}
        folder = self.root / "packages"
        if folder.is_dir():
            for path in sorted(folder.glob("*.json")):
                try:
                    out[path.stem] = json.loads(path.read_text("utf-8"))
                except (OSError, ValueError):
                    out[path.stem] = {}
        return out

    # --- listing, checking, collecting ------------------------------------------------------------

    def entries(self) -> list[StoreEntry]:
        folder = self.root / "entries"
        if not folder.is_dir():
            return []
        found = []
        for path in sorted(folder.iterdir()):
            match = _ENTRY.fullmatch(path.name)
            if not match or not path.is_file() or path.is_symlink():
                continue
            digest = Digest(nix32_decode(match.group(1), Digest.size))
            found.append(StoreEntry(path.name, path, digest, path.stat().st_size))
        return found

    def altered(self) -> list[StoreEntry]:
        """Entries whose bytes no longer hash to their name."""
        bad = []
        for entry in self.entries():
            with open(entry.path, "rb", buffering=0) as handle:
                actual, _ = hash_stream(handle)
            if actual != entry.digest:
                bad.append(entry)
        return bad

    def repair(self) -> list[Path]:
        """Delete altered entries so the next fetch brings them back intact."""
        removed = []
        with self._flock(self.root / "store.lock", fcntl.LOCK_EX):
            for entry in self.altered():
                entry.path.unlink()
                removed.append(entry.path)
        return removed

    def check(self) -> list[str]:
        """Re-hash every entry and check every manifest; each problem is one line."""
        problems = []
        folder = self.root / "entries"
        known = set()
        if folder.is_dir():
            for path in sorted(folder.iterdir()):
                if not _ENTRY.fullmatch(path.name) or path.is_symlink() or not path.is_file():
                    problems.append(f"{path}: not a store entry (unexpected name or file type)")
        for entry in self.entries():
            known.add(entry.name)
            with open(entry.path, "rb", buffering=0) as handle:
                actual, _ = hash_stream(handle)
            if actual != entry.digest:
                problems.append(
                    f"{entry.path}: content changed: sha256 is {actual.hex}, "
                    f"the entry's name says {entry.digest.hex}"
                )
        for package, manifest in self.manifests().items():
            files = manifest.get("files") if isinstance(manifest, Mapping) else None
            if not isinstance(files, list):
                problems.append(f"{self.root / 'packages' / package}.json: unreadable manifest")
                continue
            for item in files:
                name = str(item.get("store_path", "")).removeprefix("entries/")
                if name not in known:
                    problems.append(f"{package}: {item.get('path')}: entry {name} is missing")
        return problems

    def gc(self, *, dry_run: bool = False) -> list[Path]:
        """Delete entries no manifest refers to and abandoned partial downloads."""
        if not self.root.exists():
            return []
        removed: list[Path] = []
        with self._flock(self.root / "store.lock", fcntl.LOCK_EX):
            live = set()
            for manifest in self.manifests().values():
                for item in manifest.get("files", []) if isinstance(manifest, Mapping) else []:
                    live.add(str(item.get("store_path", "")).removeprefix("entries/"))
            for entry in self.entries():
                if entry.name not in live:
                    removed.append(entry.path)
            for path in sorted((self.root / "tmp").glob("*")):
                removed.append(path)
            if not dry_run:
                for path in removed:
                    with contextlib.suppress(FileNotFoundError):
                        path.unlink()
        return removed
