"""Checking store entries on worker threads, and hashing them ahead of the recipes' loading.

Kept apart from verification so that verify can start hashing before it imports the recipe
model and everything else it needs: the time to import and build those then overlaps the hash.
"""

from __future__ import annotations

import contextlib
import os
import stat
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .core.digest import Digest, hash_stream

if TYPE_CHECKING:
    from .store import Store

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib


def check_workers(jobs: int | None) -> int:
    """How many files may be checked at once: ``jobs``, else the CPUs this process may run on."""
    if jobs is not None:
        return max(1, jobs)
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        return os.cpu_count() or 1


#: While checks run, a thread that holds the GIL (the main one, importing and loading recipes)
#: is asked to hand it over after this long, not Python's default 5 ms: each hashing thread
#: needs the GIL for an instant between chunks, and waited up to 5 ms each time. Measured: 1 GiB
#: in 4 files on 2 threads beside 0.1 s of Python work took 0.473 s, and 0.428 s with 0.5 ms.
SWITCH_INTERVAL = 0.0005


class Checks:
    """Runs the checks of store entries (re-hash, format checks) on up to ``workers`` threads.

    Hashing and reading release the GIL, so files are checked in parallel while the recipes'
    own thread fetches the next files. With one worker, a check runs at once, in that thread.
    (A queue and plain threads rather than concurrent.futures, whose import of logging would
    add about 5 ms to every verify.)"""

    def __init__(self, workers: int) -> None:
        self._workers = workers
        self._threads: list[Any] = []
        self._tasks: Any = None
        self._abandoned = False
        self._switch = sys.getswitchinterval()

    def submit(self, check: Callable[..., Any], *args: Any) -> Callable[[], Any]:
        """Start ``check(*args)``; returns what gives its result (or raises its exception)."""
        if self._workers == 1:
            done = check(*args)
            return lambda: done
        import queue
        import threading

        if self._tasks is None:
            self._tasks = queue.SimpleQueue()
        if not self._threads:
            self._switch = sys.getswitchinterval()
            sys.setswitchinterval(min(self._switch, SWITCH_INTERVAL))
        if len(self._threads) < self._workers:  # one more thread per task, up to the limit
            thread = threading.Thread(target=self._work, name="weightpkg-check", daemon=True)
            thread.start()
            self._threads.append(thread)
        outcome: list[Any] = []
        finished = threading.Event()
        self._tasks.put((check, args, outcome, finished))

        def result() -> Any:
            finished.wait()
            if isinstance(outcome[0], BaseException):
                raise outcome[0]
            return outcome[0]

        return result

    def _work(self) -> None:
        while (task := self._tasks.get()) is not None:
            check, args, outcome, finished = task
            try:
                if self._abandoned:
                    raise RuntimeError("abandoned")
                outcome.append(check(*args))
            except BaseException as exc:  # handed to whoever asks for the result
                outcome.append(exc)
            finished.set()

    def __enter__(self) -> Checks:
        return self

    def __exit__(self, exc_type: object, *_: object) -> None:
        if not self._threads:
            return
        sys.setswitchinterval(self._switch)
        for _ in self._threads:
            self._tasks.put(None)
        if exc_type is None:
            for thread in self._threads:
                thread.join()
        else:  # an error: the queued checks are dropped, the running ones not waited for
            self._abandoned = True


def entry_identity(path: Path) -> tuple[int, int, int, int, int] | None:
    """What tells that a store entry is still the same, unchanged file: its device, inode, size,
    modification and change times (a write changes the ctime, which no user can set back)."""
    try:
        info = os.lstat(path)
    except OSError:
        return None
    if not stat.S_ISREG(info.st_mode):
        return None
    return (info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns)


def _hash_entry(path: Path) -> tuple[tuple[int, int, int, int, int] | None, Digest]:
    identity = entry_identity(path)  # before reading: a change while hashing changes the ctime
    with open(path, "rb", buffering=0) as handle:
        digest, _ = hash_stream(handle)
    return identity, digest


class HashedAhead:
    """Store entries hashed while the recipes that pin them are still being loaded.

    Modelling and checking a recipe (the model's classes, the schema, the licences) takes longer
    than finding its pins in the TOML, so each pin's entry starts hashing on the check threads
    first, and the loading overlaps it. Only reading is done ahead: a recipe that turns out
    malformed is reported as before, and a result is used only if the entry is still the same
    file (``entry_identity``); otherwise the entry is hashed again."""

    def __init__(self, checks: Checks) -> None:
        self.checks = checks
        self._pending: dict[Path, Callable[[], Any]] = {}

    def start(self, recipe_files: Sequence[Path], store: Store) -> None:
        from pathlib import PurePosixPath

        for file in recipe_files:
            try:
                weights = tomllib.loads(file.read_text("utf-8")).get("weights", [])
            except (OSError, ValueError, RecursionError):  # TOMLDecodeError is a ValueError
                continue  # the loader says what is wrong with it
            for w in weights if isinstance(weights, list) else []:
                pin = (w.get("sha256"), w.get("size"), w.get("path")) if isinstance(w, dict) else ()
                if len(pin) != 3 or not isinstance(pin[1], int) or not isinstance(pin[2], str):
                    continue
                try:
                    entry = store.entry_path(Digest.from_hex(pin[0]), PurePosixPath(pin[2]).name)
                except (TypeError, ValueError):
                    continue
                identity = entry_identity(entry)
                if identity is not None and identity[2] == pin[1] and entry not in self._pending:
                    self._pending[entry] = self.checks.submit(self._hash, entry)

    @staticmethod
    def _hash(entry: Path) -> Any:
        try:
            return _hash_entry(entry)
        except OSError:
            return None  # gone or unreadable: the check hashes it again and says why

    def take(self, entry: Path) -> Callable[[], Any] | None:
        """What gives the early hash of ``entry`` (identity, digest), if one was started."""
        return self._pending.pop(entry, None)


@contextlib.contextmanager
def hashing_ahead(
    recipe_files: Sequence[Path], store: Store, jobs: int | None
) -> Iterator[HashedAhead | None]:
    """Start hashing the entries ``recipe_files`` pin (None with one job: nothing would overlap)."""
    workers = check_workers(jobs)
    if workers == 1:
        yield None
        return
    with Checks(workers) as checks:
        ahead = HashedAhead(checks)
        ahead.start(recipe_files, store)
        yield ahead
