"""Network faults injected for real by a loopback server: each fetch ends with the pinned bytes in
the store or a one-line error naming the URL and the cause; nothing else ever enters the store,
and no partial download grows past the pin.

Every case then lets the server behave and fetches again: what was kept is resumed, not fetched
again from zero.
"""

from __future__ import annotations

import email.utils
import os
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

import weightpkg
from weightpkg.sources.retry import (
    MAX_ATTEMPTS,
    MAX_FRUITLESS,
    RETRY_AFTER_MAX_S,
    Retries,
    retry_after_seconds,
)

from .builders import report_lines, sha256
from .figures import count
from .servers import Fault, FileServer
from .test_source_url import assert_stored, entries, gets, partials, url_recipe

MIB = 1 << 20
BIG = os.urandom(3 * MIB + 777)  # several 1 MiB chunks
OTHER = os.urandom(len(BIG))
CUT = 200_000  # bytes sent before a cut, a reset or a stall
PATH = "/w.bin"
READ_TIMEOUT_S = 1.0
STALL_S = 4.0  # longer than the read timeout


@dataclass
class Servers:
    """The server the recipe names, and another on a different loopback address."""

    main: FileServer
    other: FileServer

    @property
    def url(self) -> str:
        return f"{self.main.url}{PATH}"


@dataclass(frozen=True)
class Case:
    name: str
    fault: Callable[[Servers], Fault]
    #: None: the fetch must succeed; else a pattern the one-line cause must match.
    error: str | None = None
    #: The least time the retries must have waited (backoff or Retry-After), in seconds.
    waited_s: float = 0.0
    #: How many GETs of the file the fetch may make at most (None: not checked).
    most_gets: int | None = None
    mirrors: tuple[str, ...] = field(default=())


def http_date(seconds_from_now: float) -> str:
    return email.utils.formatdate(time.time() + seconds_from_now, usegmt=True)


CASES = [
    Case("truncated body once", lambda s: Fault(cut_after=CUT, times=1)),
    Case(
        "truncated body every time",
        lambda s: Fault(cut_after=CUT),
        rf"body ended after {MAX_ATTEMPTS * CUT} of {len(BIG)} bytes "
        rf"\(after {MAX_ATTEMPTS} attempts, {MAX_ATTEMPTS * CUT} bytes kept for resuming\)",
        most_gets=MAX_ATTEMPTS,
    ),
    Case("connection reset mid-body twice", lambda s: Fault(cut_after=CUT, reset=True, times=2)),
    Case(
        "connection reset every time",
        lambda s: Fault(cut_after=CUT, reset=True),
        r"(connection reset by peer|body ended after \d+ of \d+ bytes( \(connection reset by peer\))?) "
        r"\(after \d+ attempts(, \d+ bytes kept for resuming)?\)",
        most_gets=MAX_ATTEMPTS,
    ),
    Case("Content-Length larger than the body", lambda s: Fault(content_length=len(BIG) + 4096)),
    Case(
        "Content-Length smaller than the body",
        lambda s: Fault(content_length=len(BIG) - 4096),
        rf"size mismatch: expected {len(BIG)} bytes, got {len(BIG) - 4096} bytes",
    ),
    Case("HTTP 503 three times without Retry-After", lambda s: Fault(status=503, times=3), waited_s=3.0),
    Case("HTTP 500 twice with Retry-After: 1", lambda s: Fault(status=500, retry_after="1", times=2),
         waited_s=1.8),
    Case("HTTP 429 once with Retry-After as a date", lambda s: Fault(status=429, retry_after=http_date(2),
                                                                      times=1), waited_s=0.5),
    Case(
        "HTTP 503 every time",
        lambda s: Fault(status=503),
        rf"HTTP 503 Service Unavailable \(after {MAX_FRUITLESS} attempts\)",
        waited_s=3.0,
        most_gets=MAX_FRUITLESS,
    ),
    Case(
        "HTTP 503 with a Retry-After longer than weightpkg waits",
        lambda s: Fault(status=503, retry_after="3600"),
        rf"HTTP 503 Service Unavailable; the server asks to retry after 3600 s, "
        rf"longer than weightpkg waits \({RETRY_AFTER_MAX_S:g} s\)",
        most_gets=1,
    ),
    Case("HTTP 404 is not retried", lambda s: Fault(status=404), r"HTTP 404 Not Found", most_gets=1),
    Case(
        "HTTP 503 every time, then a mirror",
        lambda s: Fault(status=503),
        mirrors=("other",),
        waited_s=3.0,
    ),
    Case("stall mid-body past the read timeout once", lambda s: Fault(cut_after=CUT, stall=STALL_S, times=1)),
    Case("stall before the body once", lambda s: Fault(stall=STALL_S, times=1), waited_s=0.5),
    Case("no answer at all for longer than the read timeout, twice", lambda s: Fault(hang=STALL_S, times=2),
         waited_s=1.5),
    Case(
        "stall every time",
        lambda s: Fault(cut_after=0, stall=STALL_S),
        rf"stalled: nothing received for {READ_TIMEOUT_S:g} s \(the read timeout\) "
        rf"\(after {MAX_FRUITLESS} attempts\)",
        most_gets=MAX_FRUITLESS,
    ),
    Case(
        "redirect loop",
        lambda s: Fault(redirect=s.url),
        r"too many redirects \(more than 30\)",
    ),
    Case("redirect to another host on loopback", lambda s: Fault(redirect=f"{s.other.url}{PATH}")),
    Case(
        "redirect to another host that serves other bytes",
        lambda s: Fault(redirect=f"{s.other.url}/other.bin"),
        rf"sha256 mismatch: expected {sha256(BIG)}, got {sha256(OTHER)}",
    ),
    Case(
        "other bytes than the pin",
        lambda s: Fault(body=OTHER),
        rf"sha256 mismatch: expected {sha256(BIG)}, got {sha256(OTHER)}",
    ),
    Case(
        "more bytes than the pin",
        lambda s: Fault(body=BIG + os.urandom(MIB)),
        rf"size mismatch: expected {len(BIG)} bytes, got more than {len(BIG)} bytes",
    ),
    Case("Range ignored after a cut", lambda s: Fault(cut_after=CUT, ignore_range=True, times=2)),
    Case(
        "Range ignored and the body cut every time",
        lambda s: Fault(cut_after=CUT, ignore_range=True),
        rf"body ended after {CUT} of {len(BIG)} bytes \(after {MAX_ATTEMPTS} attempts, {CUT} bytes kept",
        most_gets=MAX_ATTEMPTS,
    ),
]


@pytest.fixture
def servers() -> Iterator[Servers]:
    main = FileServer().start()
    other = FileServer(host="127.0.0.2").start()
    for server in (main, other):
        server.files[PATH] = BIG
    other.files["/other.bin"] = OTHER
    yield Servers(main, other)
    main.stop()
    other.stop()


@pytest.fixture(autouse=True)
def short_read_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WEIGHTPKG_READ_TIMEOUT", str(READ_TIMEOUT_S))


def held_partials(store_root: Path) -> list[bytes]:
    """What partial downloads hold; each must be a prefix of the pinned bytes, never longer."""
    found = [p.read_bytes() for p in partials(store_root)]
    for data in found:
        assert len(data) <= len(BIG) and BIG.startswith(data)
    return found


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_a_fault_ends_in_the_right_bytes_or_one_clear_line(
    case: Case, tmp_path: Path, store_root: Path, servers: Servers
) -> None:
    servers.main.faults[PATH] = case.fault(servers)
    mirrors = [f"{servers.other.url}{PATH}" for _ in case.mirrors]
    recipe = url_recipe(tmp_path, BIG, servers.url, *mirrors)
    store = weightpkg.open_store(store_root)
    started = time.monotonic()
    [report] = weightpkg.fetch([recipe], store)
    elapsed = time.monotonic() - started
    assert elapsed >= case.waited_s, "the retries did not back off"
    if case.most_gets is not None:
        assert len(gets(servers.main, PATH)) <= case.most_gets
    [f] = report.files
    if case.error is None:
        assert report.ok, report.to_json()
        assert_stored(store_root, BIG)
        # A failover to the mirror is said, in one line naming the URL and why.
        assert all(servers.url in note and "\n" not in note for note in f.notes)
        assert bool(f.notes) == bool(case.mirrors)
        count("network faults tried")
        return

    assert not report.ok
    assert entries(store_root) == [], "nothing unverified may enter the store"
    assert not (store_root / "packages").exists() or not list((store_root / "packages").iterdir())
    held = held_partials(store_root)
    assert f.problem is not None
    lines = [*f.notes, f.problem]
    assert all("\n" not in line for line in lines)
    cause = [line for line in lines if servers.url in line]
    if case.error.startswith(("sha256 mismatch", "size mismatch")):
        assert re.search(case.error, f.problem), f.problem
        assert f.problem.endswith(f" (from source 1 (url {servers.url}))")  # where the wrong bytes came from
        assert held == []  # wrong bytes are dropped, not kept for resuming
    else:
        assert re.fullmatch(rf"source 1 \(url {re.escape(servers.url)}\): {case.error}.*", cause[0]), cause[0]

    # The server behaves again: the fetch completes, resuming from what was kept.
    servers.main.faults.clear()
    before = len(gets(servers.main, PATH))
    [report] = weightpkg.fetch([recipe], store)
    assert report.ok, report.to_json()
    assert_stored(store_root, BIG)
    expected_range = f"bytes={len(held[0])}-" if held and held[0] else None
    assert gets(servers.main, PATH)[before] == expected_range
    count("network faults tried")


def test_resuming_never_downloads_what_was_kept(tmp_path: Path, store_root: Path, servers: Servers) -> None:
    """Cut every 200 kB, the file still arrives with each byte sent about once."""
    servers.main.faults[PATH] = Fault(cut_after=CUT, times=MAX_ATTEMPTS - 1)
    [report] = weightpkg.fetch([url_recipe(tmp_path, BIG, servers.url)], weightpkg.open_store(store_root))
    assert report.ok
    assert_stored(store_root, BIG)
    ranges = gets(servers.main, PATH)
    assert ranges == [None, *(f"bytes={k * CUT}-" for k in range(1, MAX_ATTEMPTS))]
    assert servers.main.sent[PATH] == len(BIG)
    count("network faults tried")


def test_faults_through_the_cli_are_one_line_each_and_no_traceback(
    tmp_path: Path, store_root: Path, servers: Servers, cli
) -> None:
    """What a distro build's log shows: one line per failed source, the URL and the cause."""
    servers.main.files["/loop.bin"] = BIG
    servers.main.files["/busy.bin"] = BIG
    servers.main.faults["/loop.bin"] = Fault(redirect=f"{servers.main.url}/loop.bin")
    servers.main.faults["/busy.bin"] = Fault(status=503, retry_after="86400")
    loop, busy = f"{servers.main.url}/loop.bin", f"{servers.main.url}/busy.bin"
    recipe = url_recipe(tmp_path, BIG, loop, busy)
    done = cli("--store", str(store_root), "fetch", str(recipe), env={"WEIGHTPKG_READ_TIMEOUT": "1"})
    assert done.returncode == 1
    assert report_lines(done.stdout) == [
        f"{recipe}: w.bin: note: source 1 (url {loop}): too many redirects (more than 30)",
        f"{recipe}: w.bin: note: source 1 (url {busy}): HTTP 503 Service Unavailable; the server asks to "
        f"retry after 86400 s, longer than weightpkg waits ({RETRY_AFTER_MAX_S:g} s)",
        f"{recipe}: w.bin: FAILED: no source delivered it",
        f"{recipe}: FAILED: test-pkg 1.0 (1 of 1 file failed)",
    ]
    assert done.stderr == ""
    assert entries(store_root) == [] and partials(store_root) == []
    count("network faults tried", 2)


@pytest.mark.parametrize("value", ["soon", "0", "-3", "nan", "inf"])
def test_a_bad_timeout_in_the_environment_is_a_usage_error(
    value: str, tmp_path: Path, store_root: Path, servers: Servers, cli
) -> None:
    recipe = url_recipe(tmp_path, BIG, servers.url)
    done = cli("--store", str(store_root), "fetch", str(recipe), env={"WEIGHTPKG_READ_TIMEOUT": value})
    assert done.returncode == 2
    assert done.stderr.strip().endswith(
        f"WEIGHTPKG_READ_TIMEOUT={value!r}: expected a positive number of seconds"
    ), done.stderr
    assert "Traceback" not in done.stderr
    assert gets(servers.main, PATH) == []


# --- the retry policy on its own -----------------------------------------------------------------


def test_backoff_doubles_is_bounded_and_progress_resets_it() -> None:
    retries = Retries()
    waits = []
    for _ in range(MAX_FRUITLESS):
        retries.start()
        waits.append(retries.wait_before_next(progressed=False))
    assert waits == [0.5, 1.0, 2.0, None]
    retries = Retries()
    for _ in range(MAX_ATTEMPTS - 1):
        retries.start()
        assert retries.wait_before_next(progressed=True) == 0.0
    retries.start()
    assert retries.wait_before_next(progressed=True) is None  # attempts are bounded even with progress


def test_retry_after_forms() -> None:
    now = time.time()
    assert retry_after_seconds("7") == 7.0
    assert retry_after_seconds(None) is None
    assert retry_after_seconds("soon") is None
    assert retry_after_seconds("-1") is None
    assert abs(retry_after_seconds(email.utils.formatdate(now + 20, usegmt=True), now) - 20) < 1.01
    assert retry_after_seconds(email.utils.formatdate(now - 20, usegmt=True), now) == 0.0
    retries = Retries()
    retries.start()
    assert retries.wait_before_next(False, retry_after=RETRY_AFTER_MAX_S + 1) is None
    assert retries.wait_before_next(False, retry_after=2.0) == 2.0
