"""The content-addressed store: the one writer under its root.

Layout::

    ROOT/entries/<nix32 sha256>-<name>   a verified file, read-only, named like a Nix store path
    ROOT/packages/<name>-<version>.json  a package's manifest (deterministic JSON), a GC root
    ROOT/tmp/<hex sha256>.partial        a download in progress, resumable
    ROOT/tmp/run-*/                      scratch of one run (outer archives), removed after it
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
import shutil
import stat
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .core.digest import Digest, StreamHasher, ThreadedHasher, chunk_buffer, hash_stream, nix32_decode
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


#: What the OS says when a disk (or the user's quota, or the file system's inodes) is full.
NO_SPACE = (errno.ENOSPC, errno.EDQUOT)


def store_failure(what: str, doing: str, exc: OSError, root: Path, outcome: str = "") -> StoreError:
    """One line for an OS error while writing to the store; a full disk is named as such, with
    the store's root, since the fix (free space there) is the same whatever was being written."""
    full = exc.errno in NO_SPACE
    why = f"no space left on the store's disk ({root})" if full else exc.strerror or str(exc)
    return StoreError(f"{what}: {doing}: {why}{outcome}")


def write_all(handle: Any, data: bytes | bytearray | memoryview) -> None:
    """Write every byte to an unbuffered file: a raw write may take only part of the bytes
    (on a disk filling up, it takes what fits and says how many), and the rest must follow
    (or fail with the reason) rather than be counted as written."""
    view = memoryview(data).cast("B")
    while view:
        written = handle.write(view)
        if not written:
            raise OSError(errno.EIO, "the write took no bytes")
        view = view[written:]


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


class PinMismatch(IntegrityError):
    """The bytes written for a pinned file are not the pinned bytes (as opposed to an outer
    archive's own pin failing)."""


#: Files of at least this size are hashed on a helper thread as they arrive, and written to
#: disk while they arrive (docs/performance.md, fetch).
OVERLAP_FROM = 32 << 20


class _WriteBehind:
    """Has the kernel write a big download to disk while it still arrives: after every
    ``every`` bytes a helper thread runs fdatasync, so commit's fsync waits for the last stretch
    only, not the whole file (measured: 0.44 s of a 1.75 s fetch of 1 GiB). A failure here is
    left to commit's own fsync, which reports it."""

    def __init__(self, fd: int, every: int = 64 << 20) -> None:
        import threading

        self._fd = fd
        self._every = every
        self._unsynced = 0
        self._stopping = False
        self._due = threading.Event()
        self._thread = threading.Thread(target=self._run, name="weightpkg-write-behind", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            self._due.wait()
            self._due.clear()
            if self._stopping:
                return
            try:
                os.fdatasync(self._fd)
            except OSError:
                return

    def wrote(self, count: int) -> None:
        self._unsynced += count
        if self._unsynced >= self._every:
            self._unsynced = 0
            self._due.set()

    def stop(self) -> None:
        """End the thread (after the sync under way, if any); the file may be closed after."""
        self._stopping = True
        self._due.set()
        self._thread.join()


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
        self.restarted = False
        self._file: Any = None
        self._syncer: _WriteBehind | None = None
        self._hasher = StreamHasher()  # _open makes the one that bytes are written through

    def _fresh_hasher(self, start: StreamHasher | None = None) -> StreamHasher:
        """A hasher on its own thread for a big file (see ThreadedHasher), else a plain one."""
        if self.expected_size >= OVERLAP_FROM:
            return ThreadedHasher(start)
        return start or StreamHasher()

    def _set_hasher(self, hasher: StreamHasher) -> None:
        self._hasher.close()
        self._hasher = hasher

    def _close_file(self) -> None:
        if self._syncer is not None:
            self._syncer.stop()
            self._syncer = None
        if self._file is not None:
            self._file.close()
            self._file = None

    def _failure(self, doing: str, exc: OSError, what: str | None = None) -> StoreError:
        return store_failure(what or self.name, doing, exc, self.store.root, "; nothing was added")

    @property
    def present(self) -> bool:
        """Whether this pin's entry, under this name, is already in the store."""
        return self.store.lookup(self.expected, self.name, self.expected_size) == self.final

    def adopt(self, existing: Path) -> Path:
        """Make the entry from another entry with the same content (a hard link, or a copy
        across file systems), after re-hashing it: the store is a cache, not an authority."""
        with open(existing, "rb", buffering=0) as handle:
            actual, size = hash_stream(handle)
        if (actual, size) != (self.expected, self.expected_size):
            raise PinMismatch(f"store entry {existing}", expected=self.expected.hex, actual=actual.hex)
        link = self.partial.with_suffix(f".{os.getpid()}.link")
        try:
            with contextlib.suppress(FileNotFoundError):
                link.unlink()
            try:
                os.link(existing, link)
            except OSError:
                shutil.copyfile(existing, link)
                os.chmod(link, 0o444)
            os.replace(link, self.final)
            _fsync_dir(self.final.parent)
        except OSError as exc:
            with contextlib.suppress(OSError):
                link.unlink()
            raise self._failure("cannot add to the store", exc) from None
        return self.final

    @property
    def offset(self) -> int:
        """Bytes already held (resumed from an earlier, interrupted attempt)."""
        return self._hasher.size

    def _open(self) -> None:
        try:
            # A run killed inside commit() may leave a complete partial already made read-only.
            with contextlib.suppress(FileNotFoundError):
                if not os.stat(self.partial).st_mode & stat.S_IWUSR:
                    os.chmod(self.partial, 0o644)
            self._file = open(self.partial, "ab+", buffering=0)
            self._file.seek(0)
            if os.fstat(self._file.fileno()).st_size > self.expected_size:
                self._file.truncate(0)
            hasher = StreamHasher()
            buf = chunk_buffer()
            view = memoryview(buf)
            while n := self._file.readinto(buf):
                hasher.update(view[:n])
        except OSError as exc:
            self.close()
            raise self._failure("cannot use the partial download", exc, str(self.partial)) from None
        self._set_hasher(self._fresh_hasher(hasher))
        if self.expected_size >= OVERLAP_FROM:
            self._syncer = _WriteBehind(self._file.fileno())

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self._hasher.size + len(data) > self.expected_size:
            self.discard()
            raise PinMismatch(
                self.name,
                kind="size",
                expected=f"{self.expected_size} bytes",
                actual=f"more than {self.expected_size} bytes",
            )
        try:
            write_all(self._file, data)
        except OSError as exc:
            self.discard()
            raise self._failure("cannot write to the store", exc) from None
        self._hasher.update(data)
        if self._syncer is not None:
            self._syncer.wrote(len(data))

    def restart(self) -> None:
        """Forget what was written (the server ignored a range request, or a source changed)."""
        self._file.seek(0)
        self._file.truncate(0)
        self._set_hasher(self._fresh_hasher())
        self.restarted = True

    def commit(self) -> Path:
        """Check size and sha256, then make the entry appear atomically; PinMismatch if not."""
        actual = self._hasher.digest()
        size = self._hasher.size
        if size != self.expected_size:
            self.discard()
            raise PinMismatch(
                self.name, kind="size", expected=f"{self.expected_size} bytes", actual=f"{size} bytes"
            )
        if actual != self.expected:
            self.discard()
            raise PinMismatch(self.name, expected=self.expected.hex, actual=actual.hex)
        try:
            if self._syncer is not None:
                self._syncer.stop()
                self._syncer = None
            os.fsync(self._file.fileno())
            self._close_file()
            os.chmod(self.partial, 0o444)
            os.replace(self.partial, self.final)
            _fsync_dir(self.final.parent)
        except OSError as exc:
            self.discard()
            raise self._failure("cannot add to the store", exc) from None
        return self.final

    def discard(self) -> None:
        """Drop the partial bytes: they are wrong, or the disk cannot hold them."""
        self._close_file()
        with contextlib.suppress(FileNotFoundError, IsADirectoryError):
            self.partial.unlink()
        self._set_hasher(StreamHasher())

    def reopen(self) -> None:
        """Be ready for the next candidate after a failed one (keeps resumable bytes)."""
        self.restarted = False
        if self._file is None:
            self._open()

    def close(self) -> None:
        """Release the partial; keep it only if it holds bytes worth resuming from."""
        self._hasher.close()
        if self._file is not None:
            self._close_file()
            if self._hasher.size == 0:
                with contextlib.suppress(FileNotFoundError):
                    self.partial.unlink()


@dataclass
class StoreCheck:
    """What ``Store.check`` found: one line per problem, and the entries whose bytes changed."""

    problems: list[str] = field(default_factory=list)
    altered: list[StoreEntry] = field(default_factory=list)


class Store:
    """A store rooted at ``root``; created on first write."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).expanduser().absolute()

    def _ensure(self) -> None:
        try:
            for sub in ("entries", "packages", "tmp", "locks"):
                (self.root / sub).mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise store_failure(str(self.root), "cannot create the store", exc, self.root) from None

    @contextlib.contextmanager
    def _flock(self, path: Path, mode: int) -> Iterator[None]:
        self._ensure()
        try:
            handle = open(path, "a+b")
        except OSError as exc:
            raise store_failure(str(path), "cannot open the lock file", exc, self.root) from None
        with handle:
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

    def lookup(self, digest: Digest, name: str, size: int | None = None) -> Path | None:
        """An entry holding a pin's content, the one named ``name`` first; only regular files of
        the pinned size count (a symlink or directory planted there is not an entry)."""
        exact = self.entry_path(digest, name)
        entries = self.root / "entries"
        candidates = [exact, *sorted(entries.glob(f"{digest.nix32}-*"))] if entries.is_dir() else []
        for candidate in candidates:
            try:
                info = candidate.lstat()
            except OSError:
                continue
            if stat.S_ISREG(info.st_mode) and (size is None or info.st_size == size):
                return candidate
        return None

    @contextlib.contextmanager
    def ingest(self, digest: Digest, size: int, name: str) -> Iterator[Ingest]:
        """Add one pinned file; one writer per digest, others wait then find it present."""
        with (
            self.session(),
            self._flock(self.root / "locks" / f"{digest.hex}.lock", fcntl.LOCK_EX),
        ):
            ingest = Ingest(self, digest, size, name)
            if not ingest.present:
                ingest._open()
            try:
                yield ingest
            finally:
                ingest.close()

    # --- manifests ------------------------------------------------------------------------------

    def write_manifest(self, package_id: str, manifest: Mapping[str, Any]) -> Path:
        """Write ``packages/<id>.json`` atomically as sorted, indented JSON. The bytes go to
        ``tmp/`` first, so that what a killed run leaves is collected by gc (``packages/`` holds
        nothing but manifests)."""
        self._ensure()
        path = self.root / "packages" / f"{_NAME_UNSAFE.sub('_', package_id)}.json"
        text = json.dumps(manifest, sort_keys=True, indent=2, ensure_ascii=False) + "\n"
        tmp = self.root / "tmp" / f"{path.stem}.{os.getpid()}.manifest"
        try:
            if path.is_file() and path.read_text("utf-8") == text:
                return path
            with open(tmp, "w", encoding="utf-8") as handle:
                handle.write(text)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, path)
            _fsync_dir(path.parent)
        except OSError as exc:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise store_failure(str(path), "cannot write the manifest", exc, self.root) from None
        return path

    def read_manifest(self, package_id: str) -> dict[str, Any] | None:
        """One manifest, or None when there is none or it cannot be read (then it is rewritten)."""
        path = self.root / "packages" / f"{_NAME_UNSAFE.sub('_', package_id)}.json"
        try:
            manifest = json.loads(path.read_text("utf-8"))
        except (OSError, ValueError):
            return None
        return manifest if isinstance(manifest, dict) else None

    @contextlib.contextmanager
    def lock(self, name: str) -> Iterator[None]:
        """An exclusive lock named ``name``, for work that must happen once (making a build
        environment) however many processes ask at the same time."""
        with self._flock(self.root / "locks" / f"{_NAME_UNSAFE.sub('_', name)}.lock", fcntl.LOCK_EX):
            yield

    def read_manifests(self) -> tuple[dict[str, list[str]], list[str]]:
        """Entry names each package refers to, and one line per manifest that cannot be read."""
        referenced: dict[str, list[str]] = {}
        problems: list[str] = []
        folder = self.root / "packages"
        if not folder.is_dir():
            return referenced, problems
        for path in sorted(folder.glob("*.json")):
            try:
                manifest = json.loads(path.read_text("utf-8"))
            except (OSError, ValueError) as exc:
                problems.append(f"{path}: unreadable manifest ({getattr(exc, 'strerror', None) or exc})")
                continue
            files = manifest.get("files") if isinstance(manifest, dict) else None
            names = [
                str(item.get("store_path")).removeprefix("entries/")
                for item in files or []
                if isinstance(item, dict) and isinstance(item.get("store_path"), str)
            ]
            if not isinstance(files, list) or len(names) != len(files):
                problems.append(f"{path}: malformed manifest (expected files with store paths)")
                continue
            referenced[path.stem] = names
        return referenced, problems

    # --- listing, checking, collecting ------------------------------------------------------------

    def _scan(self) -> tuple[list[StoreEntry], list[str]]:
        """Entries, and one line for anything under entries/ that is not one."""
        folder = self.root / "entries"
        found: list[StoreEntry] = []
        strays: list[str] = []
        if not folder.is_dir():
            return found, strays
        for path in sorted(folder.iterdir()):
            match = _ENTRY.fullmatch(path.name)
            try:
                info = path.lstat()
            except FileNotFoundError:  # collected by a gc running beside us (verify takes no lock)
                continue
            try:
                digest = Digest(nix32_decode(match.group(1), Digest.size)) if match else None
            except ValueError:
                digest = None
            if digest is None or not stat.S_ISREG(info.st_mode):
                strays.append(f"{path}: not a store entry (unexpected name or file type)")
                continue
            found.append(StoreEntry(path.name, path, digest, info.st_size))
        return found, strays

    def entries(self) -> list[StoreEntry]:
        return self._scan()[0]

    def check(self) -> StoreCheck:
        """Re-hash every entry and check every manifest against what is there. It takes no lock
        (a read-only store can be checked): an entry gc removes meanwhile is passed over."""
        entries, strays = self._scan()
        result = StoreCheck(problems=list(strays))
        gone = []
        for entry in entries:
            try:
                with open(entry.path, "rb", buffering=0) as handle:
                    actual, _ = hash_stream(handle)
            except FileNotFoundError:
                gone.append(entry)
                continue
            if actual != entry.digest:
                result.altered.append(entry)
                result.problems.append(
                    f"{entry.path}: content changed: sha256 is {actual.hex}, "
                    f"the entry's name says {entry.digest.hex}"
                )
        referenced, unreadable = self.read_manifests()
        result.problems.extend(unreadable)
        known = {e.name for e in entries if e not in gone}
        for package, names in referenced.items():
            result.problems.extend(
                f"{package}: entry {name} is missing" for name in names if name not in known
            )
        return result

    def repair(self, altered: list[StoreEntry]) -> list[Path]:
        """Delete altered entries so the next fetch brings them back intact."""
        removed = []
        with self._flock(self.root / "store.lock", fcntl.LOCK_EX):
            for entry in altered:
                with contextlib.suppress(FileNotFoundError):
                    entry.path.unlink()
                    removed.append(entry.path)
        return removed

    def gc(self, *, dry_run: bool = False, partials: bool = False) -> list[Path]:
        """Delete entries no manifest refers to and the scratch of finished runs; partial
        downloads stay for resuming unless ``partials``. Refuses while a manifest is unreadable:
        what it refers to cannot be told from garbage."""
        if not (self.root / "entries").is_dir():
            return []
        removed: list[Path] = []
        with self._flock(self.root / "store.lock", fcntl.LOCK_EX):
            referenced, unreadable = self.read_manifests()
            if unreadable:
                raise StoreError(
                    "refusing to collect garbage while manifests are unreadable:\n" + "\n".join(unreadable)
                )
            live = {name for names in referenced.values() for name in names}
            removed.extend(e.path for e in self.entries() if e.name not in live)
            for path in sorted((self.root / "tmp").iterdir()):
                if partials or not path.name.endswith(".partial"):
                    removed.append(path)
            if not dry_run:
                for path in removed:
                    try:
                        if path.is_dir() and not path.is_symlink():
                            shutil.rmtree(path)
                        else:
                            path.unlink()
                    except FileNotFoundError:
                        pass
                    except OSError as exc:
                        raise StoreError(f"{path}: cannot remove: {exc.strerror}") from None
        return removed

    @contextlib.contextmanager
    def scratch(self) -> Iterator[Path]:
        """A scratch folder for one run under tmp/, so that a killed run's leftovers are
        collected by gc (which never runs while a session holds the store).

        Its name is unique but the folder is not made: whoever needs it makes it (most runs find
        every file in the store and never do), and it is removed at the end if it was."""
        self._ensure()
        folder = self.root / "tmp" / f"run-{os.getpid()}-{os.urandom(6).hex()}"
        try:
            yield folder
        finally:
            if folder.exists():
                shutil.rmtree(folder, ignore_errors=True)
