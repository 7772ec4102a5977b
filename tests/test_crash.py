"""SIGKILL at random points (seeded, so each run kills at the same ones): the store stays
consistent, a fetch resumes where the killed one stopped, and a build never outlives the
weightpkg that started it."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import random
import signal
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from weightpkg.builder import network_isolation
from weightpkg.core.digest import Digest

from . import procs
from .builders import pinned, sha256, toy_build_recipe, write_recipe
from .figures import count
from .servers import Fault, FileServer

MIB = 1 << 20
SIZE = 32 * MIB
RATE = 16 * MIB  # bytes per second: a whole transfer takes about two seconds
#: What a killed fetch may have received but not yet written: the 1 MiB chunk being read, plus
#: what sat in the sockets' buffers. Anything near SIZE would mean a download started over.
IN_FLIGHT_LIMIT = 3 * MIB


def entry_files(store: Path) -> list[Path]:
    folder = store / "entries"
    return sorted(folder.iterdir()) if folder.is_dir() else []


def gets(server: FileServer, path: str, start: int, end: int) -> list[str | None]:
    """The Range header of each GET of ``path`` among requests ``start`` to ``end``."""
    return [rng for method, got, rng in server.requests[start:end] if method == "GET" and got == path]


@dataclass
class Attempt:
    """One fetch, killed or not: the partial's size before and after, what the server sent
    meanwhile, and which of the server's requests it made."""

    before: int
    after: int
    sent: int
    requests: tuple[int, int]

    @property
    def lost(self) -> int:
        """Bytes sent but not kept: what was in flight when it was killed."""
        return self.sent - (self.after - self.before)


def check_consistent(store: Path, data: bytes, where: str) -> None:
    """``store verify`` is clean and entries/ holds nothing but the one verified entry."""
    done = procs.store_verify(store)
    assert done.returncode == 0, f"{where}: store verify: {done.stdout}{done.stderr}"
    for path in entry_files(store):
        assert path.name.endswith("-big.bin"), f"{where}: unexpected entry {path}"
        assert path.read_bytes() == data, f"{where}: {path} is not the pinned bytes"
    packages = store / "packages"
    if packages.is_dir():
        strays = [p.name for p in packages.iterdir() if p.suffix != ".json"]
        assert strays == [], f"{where}: half-written manifests in packages/: {strays}"


def test_a_fetch_killed_anywhere_leaves_a_consistent_store_and_resumes(
    tmp_path: Path, file_server: FileServer
) -> None:
    """A user's Ctrl-\\, the OOM killer, a power cut: whenever a fetch dies, the store holds only
    verified entries and the next fetch asks for the bytes it lacks, never for the whole file."""
    rng = random.Random(20240808)
    data = rng.randbytes(SIZE)
    file_server.files["/big.bin"] = data
    file_server.faults["/big.bin"] = Fault(rate=RATE)
    recipe = write_recipe(
        tmp_path / "recipe", [pinned("big.bin", data, [{"kind": "url", "url": f"{file_server.url}/big.bin"}])]
    )
    store = tmp_path / "store"
    partial = store / "tmp" / f"{sha256(data)}.partial"

    def held() -> int:
        """Bytes of the file the store holds: all of them once the entry is there."""
        return SIZE if entry_files(store) else procs.file_size(partial)

    fetch = ("--store", str(store), "fetch", str(recipe))

    # Kill points, in the order the download passes them: at start-up (no partial yet), at
    # random byte thresholds (one per MiB band, so each needs new bytes), at start-up again
    # with a partial there, then around the commit (complete partial, rename, manifest).
    early = [("time", rng.uniform(0.0, 0.2)) for _ in range(3)]
    bands = sorted(rng.sample(range(1, SIZE // MIB - 1), 16))
    thresholds = [("bytes", band * MIB + rng.randrange(MIB)) for band in bands]
    for position in sorted(rng.sample(range(4, len(thresholds)), 2), reverse=True):
        thresholds.insert(position, ("time", rng.uniform(0.0, 0.3)))
    late = [("complete", rng.uniform(0.0, 0.004)), ("entry", 0.0), ("time", rng.uniform(0.03, 0.12))]
    plan = early + thresholds + late

    attempts: list[Attempt] = []
    survived = 0
    for number, (kind, value) in enumerate([*plan, ("final", 0.0)]):
        where = f"kill {number} ({kind} {value:.3f})"
        before = held()
        sent_before = file_server.sent.get("/big.bin", 0)
        requests_before = len(file_server.requests)
        process = procs.start(*fetch)
        started = time.monotonic()
        if kind == "final":
            code, out, err = procs.finish(process)
            assert code == 0, out + err
        else:
            if kind == "bytes":
                grown = procs.wait_until(
                    procs.any_of(procs.grown_to(partial, value), procs.ended(process)), 30
                )
                assert grown, f"{where}: the partial never reached {value} bytes"
            elif kind == "complete":
                procs.wait_until(procs.any_of(procs.grown_to(partial, SIZE), procs.has_entries(store)), 30)
                time.sleep(value)
            elif kind == "entry":
                procs.wait_until(procs.any_of(procs.has_entries(store), procs.ended(process)), 30, 0.0005)
            else:
                time.sleep(max(0.0, value - (time.monotonic() - started)))
            killed = procs.sigkill(process)
            # Once the file is in, a fetch is over in a blink: it may end before its kill point.
            assert killed or before == SIZE, f"{where}: the fetch ended before it could be killed"
            time.sleep(0.05)  # the server's next write finds the connection gone
        check_consistent(store, data, where)
        after = held()
        sent = file_server.sent.get("/big.bin", 0) - sent_before
        attempts.append(Attempt(before, after, sent, (requests_before, len(file_server.requests))))
        # It resumed from what was on disk: a Range from the partial's size, no request at all
        # when the partial was complete, a plain GET only when there was none.
        ranges = gets(file_server, "/big.bin", *attempts[-1].requests)
        if before == SIZE:
            assert ranges == [], f"{where}: the whole file was there, yet it asked for {ranges}"
        elif ranges:
            assert ranges[0] == (f"bytes={before}-" if before else None), f"{where}: first GET {ranges[0]}"
        assert after >= before, f"{where}: the store held {before} bytes of the file, then {after}"
        assert 0 <= attempts[-1].lost <= IN_FLIGHT_LIMIT, f"{where}: {attempts[-1].lost} bytes lost"
        if kind != "final" and killed:
            survived += 1
            count("kill points survived: fetch")

    assert survived >= 20, f"only {survived} kill points were reached"
    [entry] = entry_files(store)
    assert entry.read_bytes() == data
    assert not partial.exists()
    manifest = json.loads((store / "packages" / "test-pkg-1.0.json").read_text())
    assert [f["store_path"] for f in manifest["files"]] == [f"entries/{entry.name}"]
    total = file_server.sent["/big.bin"]
    assert total == SIZE + sum(a.lost for a in attempts), "every byte sent was kept or lost in flight"
    assert total < 1.5 * SIZE, f"{total} bytes sent for a {SIZE}-byte file: something started over"


def commit_state(store: Path, partial: Path, size: int = SIZE) -> str:
    """Where a killed fetch stood around its commit."""
    if not entry_files(store):
        return "complete partial" if procs.file_size(partial) == size else "partial"
    return (
        "entry and manifest" if (store / "packages" / "test-pkg-1.0.json").exists() else "entry, no manifest"
    )


def test_a_fetch_killed_around_its_commit_is_finished_without_downloading_again(
    tmp_path: Path, file_server: FileServer
) -> None:
    """The few milliseconds between the last byte and the manifest (fsync, rename, manifest),
    hit again and again: each time from a partial a killed fetch could have left, a little
    short of complete."""
    rng = random.Random(1717)
    data = rng.randbytes(SIZE)
    digest = sha256(data)
    file_server.files["/big.bin"] = data
    file_server.faults["/big.bin"] = Fault(rate=RATE)
    recipe = write_recipe(
        tmp_path / "recipe", [pinned("big.bin", data, [{"kind": "url", "url": f"{file_server.url}/big.bin"}])]
    )
    # Measured here: the fsync takes ~11 ms after the last byte, rename to manifest ~1-3 ms.
    targets = [("last byte", 0.012), ("entry", 0.0), ("entry", 0.002)] * 3
    for number, (event, spread) in enumerate(targets):
        store = tmp_path / f"store-{number}"
        partial = store / "tmp" / f"{digest}.partial"
        partial.parent.mkdir(parents=True)
        partial.write_bytes(data[: SIZE - rng.randrange(64 << 10, MIB)])
        process = procs.start("--store", str(store), "fetch", str(recipe))
        if event == "entry":
            procs.wait_until(procs.any_of(procs.has_entries(store), procs.ended(process)), 30, 0.0002)
        else:
            procs.wait_until(
                procs.any_of(procs.grown_to(partial, SIZE), procs.has_entries(store)), 30, 0.0005
            )
        time.sleep(rng.uniform(0.0, spread))
        killed = procs.sigkill(process)
        check_consistent(store, data, f"kill {number}")
        state = commit_state(store, partial)
        requests_before = len(file_server.requests)
        done = procs.cli("--store", str(store), "fetch", str(recipe))
        assert done.returncode == 0, done.stdout + done.stderr
        check_consistent(store, data, f"after kill {number}")
        assert [p.name for p in entry_files(store)] == [f"{Digest.from_hex(digest).nix32}-big.bin"]
        if state != "partial":
            assert gets(file_server, "/big.bin", requests_before, len(file_server.requests)) == []
        if killed:
            count("kill points survived: fetch")


#: Steps of adding a file, in order: the partial complete and synced; made read-only; renamed
#: into entries/; the manifest written beside and about to replace the old one; all done.
COMMIT_STEPS = [
    ("chmod:.partial:before", "complete partial"),
    ("chmod:.partial:after", "complete partial"),
    ("replace:.partial:after", "entry, no manifest"),
    ("replace:.json:before", "entry, no manifest"),
    ("replace:.json:after", "entry and manifest"),
]


@pytest.mark.parametrize(("kill_at", "state"), COMMIT_STEPS)
def test_a_fetch_killed_at_each_step_of_its_commit(
    tmp_path: Path, file_server: FileServer, kill_at: str, state: str
) -> None:
    """Each step a random time hits only by luck, hit on purpose (a real SIGKILL at that call)."""
    data = random.Random(kill_at).randbytes(MIB + 5)
    file_server.files["/big.bin"] = data
    recipe = write_recipe(
        tmp_path / "recipe", [pinned("big.bin", data, [{"kind": "url", "url": f"{file_server.url}/big.bin"}])]
    )
    store = tmp_path / "store"
    partial = store / "tmp" / f"{sha256(data)}.partial"
    code, out, err = procs.finish(procs.start("--store", str(store), "fetch", str(recipe), kill_at=kill_at))
    assert code == -9, out + err
    check_consistent(store, data, kill_at)
    assert commit_state(store, partial, len(data)) == state
    requests = len(file_server.requests)
    done = procs.cli("--store", str(store), "fetch", str(recipe))
    assert done.returncode == 0, done.stdout + done.stderr
    check_consistent(store, data, f"after {kill_at}")
    assert gets(file_server, "/big.bin", requests, len(file_server.requests)) == []
    assert [p.name.split("-", 1)[1] for p in entry_files(store)] == ["big.bin"]
    assert (store / "packages" / "test-pkg-1.0.json").is_file() and not partial.exists()
    count("kill points survived: fetch")


# --- rebuild -------------------------------------------------------------------------------------

SLOW_BUILD = textwrap.dedent(
    """\
    import hashlib, os, subprocess, sys, time
    marks = os.environ["CRASH_MARKS"]
    open(os.path.join(marks, "started"), "w").close()
    # A grandchild, as a data loader or a compiler would start: it must not outlive us either.
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"])
    data = open("data.txt", "rb").read()
    with open("out.bin", "wb") as out:
        for piece in range(8):
            out.write(hashlib.sha256(data + bytes([piece])).digest() * 4096)
            out.flush()
            time.sleep(0.06)
    sleeper.kill()
    sleeper.wait()
    open(os.path.join(marks, "written"), "w").close()
    print("built", os.path.getsize("out.bin"), "bytes")
    """
)
TRAINING_DATA = b"slowly learnt weights\n"
#: What SLOW_BUILD writes, 1 MiB in eight pieces: the published file, rebuilt bit for bit.
PUBLISHED = b"".join(hashlib.sha256(TRAINING_DATA + bytes([i])).digest() * 4096 for i in range(8))


def snapshot(store: Path) -> dict[str, bytes]:
    """Every entry's name and bytes."""
    return {p.name: p.read_bytes() for p in entry_files(store)}


def command_line(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_text().replace("\0", " ")
    except OSError:
        return ""


def survivors(store: Path, timeout: float = 5.0) -> list[int]:
    """Processes still working in the store after ``timeout`` seconds (a build and its children
    work in tmp/build-*/)."""
    procs.wait_until(lambda: not procs.working_in(store), timeout, 0.02)
    return procs.working_in(store)


def test_a_rebuild_killed_anywhere_leaves_no_build_running_and_no_partial_output(tmp_path: Path) -> None:
    """A killed rebuild must not leave its command running (writing into a folder the next
    rebuild of the same derivation reuses) nor a half-written output in the store."""
    rng = random.Random(4242)
    marks = tmp_path / "marks"
    marks.mkdir()
    recipe = toy_build_recipe(
        tmp_path / "recipe",
        script=SLOW_BUILD,
        data=TRAINING_DATA,
        published=PUBLISHED,
        env={"CRASH_MARKS": str(marks)},
    )
    pid_namespace = "--pid" in network_isolation()[0]
    stores = [tmp_path / "reference", tmp_path / "store"]
    rebuild = ("rebuild", "--env", "current", str(recipe))

    def clear_marks() -> None:
        for mark in marks.iterdir():
            mark.unlink()

    try:
        # A reference build: the complete files every entry must be one of, and the timings
        # the random kill points are drawn from.
        reference = stores[0]
        launched = time.monotonic()
        process = procs.start("--store", str(reference), *rebuild)
        assert procs.wait_until(procs.exists(marks / "started"), 60)
        started = time.monotonic()
        assert procs.wait_until(procs.exists(marks / "written"), 60)
        written = time.monotonic()
        code, out, err = procs.finish(process)
        assert code == 0, out + err
        ended = time.monotonic()
        complete = snapshot(reference)
        built_manifest = (reference / "packages" / "toy-1.0.build.json").read_text()
        assert [name.split("-", 1)[1] for name in sorted(complete)].count("out.bin") == 1
        assert PUBLISHED in complete.values()

        # In the order a build passes them; the steps right after the command are aimed at,
        # since each lasts a millisecond (and, once passed, its entry is there for good).
        plan = (
            [("launch", rng.uniform(0.0, started - launched)) for _ in range(3)]
            + [("started", rng.uniform(0.0, 0.8 * (written - started))) for _ in range(4)]
            + [
                ("aimed", "replace:-out.bin:after"),
                ("aimed", "replace:-toy-1.0.build-record.json:after"),
                ("aimed", "replace:/toy-1.0.build.json:before"),
            ]
            + [("written", rng.uniform(0.0, ended - written)) for _ in range(3)]
        )
        store = stores[1]
        manifest = store / "packages" / "toy-1.0.build.json"
        survived = 0
        for number, (kind, value) in enumerate(plan):
            where = f"kill {number} ({kind} {value})"
            clear_marks()
            had_manifest = manifest.exists()
            process = procs.start("--store", str(store), *rebuild, kill_at=value if kind == "aimed" else None)
            launched = time.monotonic()
            if kind == "aimed":
                code, out, err = procs.finish(process)
                assert code == -9, f"{where}: {out}{err}"
            else:
                if kind != "launch":
                    assert procs.wait_until(
                        procs.any_of(procs.exists(marks / kind), procs.ended(process)), 60
                    )
                    launched = time.monotonic()
                time.sleep(max(0.0, float(value) - (time.monotonic() - launched)))
                if not procs.sigkill(process):
                    # After its command, a rebuild is over in tens of milliseconds.
                    assert kind == "written", f"{where}: the rebuild ended before it could be killed"
                    continue

            killed_at = time.monotonic()
            running = (marks / "started").exists() and not (marks / "written").exists()

            # Nothing the build started lives on (it would go on writing into the store)...
            left = survivors(store)
            if not pid_namespace:  # a grandchild can only be reached through a PID namespace
                left = [pid for pid in left if "time.sleep(300)" not in command_line(pid)]
            assert left == [], f"{where}: processes outlived the killed rebuild: {left}"
            # ... nor did it, briefly, before dying: a command orphaned mid-build would finish
            # its work (and mark it) within the time a whole build takes.
            if running:
                time.sleep(max(0.0, killed_at + (written - started) + 0.1 - time.monotonic()))
                assert not (marks / "written").exists(), f"{where}: the build went on after weightpkg died"

            done = procs.store_verify(store)
            assert done.returncode == 0, f"{where}: {done.stdout}{done.stderr}"
            for name, data in snapshot(store).items():
                assert complete.get(name) == data, f"{where}: entry {name} is not one of the complete files"
            if manifest.exists():
                assert had_manifest or (marks / "written").exists(), (
                    f"{where}: a manifest for an unfinished build"
                )
                assert manifest.read_text() == built_manifest
            survived += 1
            count("kill points survived: rebuild")
        assert survived >= 8

        clear_marks()
        code, out, err = procs.finish(procs.start("--store", str(store), *rebuild))
        assert code == 0, out + err
        assert snapshot(store) == complete, "the rebuild after the kills is not bit-identical"
        assert manifest.read_text() == built_manifest
        assert procs.store_verify(store).returncode == 0
    finally:
        for root in stores:
            for pid in procs.working_in(root):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
