"""A store on a real, small, full disk (a tmpfs mounted for the test): every write that can fail
fails with one clear line naming the full disk and the store, never a traceback, and leaves
nothing half-written behind; once space is freed the same command succeeds."""

from __future__ import annotations

import errno
import os
import subprocess
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from . import procs
from .builders import pinned, toy_build_recipe, write_recipe
from .figures import count
from .servers import FileServer

KIB = 1 << 10
MIB = 1 << 20
PAGE = os.sysconf("SC_PAGE_SIZE")

Mount = Callable[[str], Path]


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Mount]:
    """Mounts a tmpfs with the given options under tmp_path (root only; skipped otherwise,
    except in CI, where a failing mount as root is a failure); unmounted afterwards."""
    mounted: list[Path] = []

    def mount(options: str) -> Path:
        if os.geteuid() != 0:
            pytest.skip("mounting a tmpfs needs root")
        target = tmp_path / f"disk-{len(mounted)}"
        target.mkdir()
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(target)],
            capture_output=True,
            text=True,
            timeout=30,
        )
        if done.returncode != 0:
            reason = f"cannot mount a tmpfs ({options}): {done.stderr.strip()}"
            if os.environ.get("CI"):
                pytest.fail(reason)
            pytest.skip(reason)
        mounted.append(target)
        return target

    yield mount
    for target in reversed(mounted):
        done = subprocess.run(["umount", str(target)], capture_output=True, text=True, timeout=30)
        if done.returncode != 0:  # something still holds it: detach now, freed when let go
            subprocess.run(["umount", "-l", str(target)], capture_output=True, timeout=30, check=True)


def fill(disk: Path, leave: int) -> Path:
    """A file taking all of ``disk`` but ``leave`` bytes (rounded to pages)."""
    filler = disk / "filler"
    with open(filler, "wb", buffering=0) as handle:
        for block in (b"\0" * MIB, b"\0" * PAGE):  # big blocks, then the last pages
            while True:
                try:
                    handle.write(block)
                except OSError as exc:
                    assert exc.errno == errno.ENOSPC
                    break
    os.truncate(filler, max(0, filler.stat().st_size - leave))
    return filler


def served(server: FileServer, tmp_path: Path, size: int) -> tuple[bytes, Path]:
    data = os.urandom(size)
    server.files["/w.bin"] = data
    recipe = write_recipe(
        tmp_path / "recipe", [pinned("w.bin", data, [{"kind": "url", "url": f"{server.url}/w.bin"}])]
    )
    return data, recipe


def assert_clear_failure(done: subprocess.CompletedProcess[str], store: Path) -> None:
    """Exit 1 or 2, no traceback, and a line naming the full disk and the store."""
    assert done.returncode in (1, 2), done.stdout + done.stderr
    assert procs.no_traceback(done.stderr), done.stderr
    named = f"no space left on the store's disk ({store})"
    assert any(named in line for line in done.stderr.splitlines()), done.stderr


def assert_nothing_partial(store: Path, *, allowed_entries: dict[str, bytes] | None = None) -> None:
    """No partial download, scratch folder or half-written manifest; entries only complete ones."""
    tmp = store / "tmp"
    assert not tmp.is_dir() or sorted(p.name for p in tmp.iterdir()) == []
    packages = store / "packages"
    assert not packages.is_dir() or all(p.suffix == ".json" for p in packages.iterdir())
    for entry in (store / "entries").iterdir() if (store / "entries").is_dir() else []:
        complete = (allowed_entries or {}).get(entry.name.split("-", 1)[1])
        assert complete == entry.read_bytes(), (
            f"{entry} ({entry.stat().st_size} bytes) is not a complete file"
        )
    if store.is_dir():
        assert procs.store_verify(store).returncode == 0


def test_a_file_larger_than_the_disk(tmp_path: Path, small_disk: Mount, file_server: FileServer) -> None:
    """The disk fills mid-download: the partial is dropped (it cannot be finished there)."""
    disk = small_disk("size=4m")
    store = disk / "store"
    _, recipe = served(file_server, tmp_path, 6 * MIB)
    done = procs.cli("--store", str(store), "fetch", str(recipe))
    assert_clear_failure(done, store)
    assert_nothing_partial(store)
    assert not (store / "packages" / "test-pkg-1.0.json").exists()
    count("full-disk cases")


def test_a_nearly_full_disk_then_space_freed(
    tmp_path: Path, small_disk: Mount, file_server: FileServer
) -> None:
    """A write that takes only what fits (a short write) must not count the rest as written:
    the truncated file was committed under the pin's name before. Freed space: it works."""
    disk = small_disk("size=4m")
    store = disk / "store"
    data, recipe = served(file_server, tmp_path, 100 * KIB)
    filler = fill(disk, 8 * KIB)
    done = procs.cli("--store", str(store), "fetch", str(recipe))
    assert_clear_failure(done, store)
    assert_nothing_partial(store)
    count("full-disk cases")

    filler.unlink()
    again = procs.cli("--store", str(store), "fetch", str(recipe))
    assert again.returncode == 0, again.stdout + again.stderr
    [entry] = (store / "entries").iterdir()
    assert entry.read_bytes() == data
    assert_nothing_partial(store, allowed_entries={"w.bin": data})
    count("full-disk cases")


def test_room_for_the_file_but_not_its_manifest(
    tmp_path: Path, small_disk: Mount, file_server: FileServer
) -> None:
    """The last write of a fetch fails: the complete entry stays, no manifest half-written."""
    disk = small_disk("size=4m")
    store = disk / "store"
    data, recipe = served(file_server, tmp_path, 64 * KIB)
    filler = fill(disk, len(data))
    done = procs.cli("--store", str(store), "fetch", str(recipe))
    assert_clear_failure(done, store)
    assert "cannot write the manifest" in done.stderr
    # The entry is complete and verified; without a manifest gc will collect it.
    assert_nothing_partial(store, allowed_entries={"w.bin": data})
    assert not (store / "packages" / "test-pkg-1.0.json").exists()
    count("full-disk cases")
    filler.unlink()
    again = procs.cli("--store", str(store), "fetch", str(recipe))
    assert again.returncode == 0, again.stdout + again.stderr
    assert (store / "packages" / "test-pkg-1.0.json").is_file()


def test_no_inode_left_at_each_step(tmp_path: Path, small_disk: Mount, file_server: FileServer) -> None:
    """A file system out of inodes, N at a time: creating the store's folders, its lock files,
    the scratch folder, the partial, the manifest fails in turn, each with one clear line."""
    data, recipe = served(file_server, tmp_path, 64 * KIB)
    failures = []
    for inodes in range(1, 20):
        disk = small_disk(f"size=4m,nr_inodes={inodes}")
        store = disk / "store"
        done = procs.cli("--store", str(store), "fetch", str(recipe))
        if done.returncode == 0:
            break
        assert_clear_failure(done, store)
        assert_nothing_partial(store, allowed_entries={"w.bin": data})
        failures.append(done.stderr.strip().splitlines()[-1])
        count("full-disk cases")
    else:
        pytest.fail("the fetch never succeeded")
    assert len(failures) >= 5, failures


BIG_OUTPUT = textwrap.dedent(
    """\
    import os
    size = int(os.environ["OUTPUT_BYTES"])
    with open("out.bin", "wb") as out:
        out.write(open("data.txt", "rb").read() * (size // 16))
    print("wrote", size, "bytes")
    """
)


@pytest.mark.parametrize(
    ("output_bytes", "why"),
    [
        (int(2.5 * MIB), "the output fits the build folder, not the store"),
        (6 * MIB, "the build cannot write"),
    ],
)
def test_a_rebuild_whose_output_does_not_fit(
    tmp_path: Path, small_disk: Mount, output_bytes: int, why: str
) -> None:
    """A build that succeeded, or one stopped, on a full disk: nothing of its output enters the store."""
    disk = small_disk("size=4m")
    store = disk / "store"
    data = b"sixteen bytes!!\n"
    recipe = toy_build_recipe(
        tmp_path / "recipe",
        script=BIG_OUTPUT,
        data=data,
        published=data * (output_bytes // 16),
        env={"OUTPUT_BYTES": str(output_bytes)},
    )
    done = procs.cli("--store", str(store), "rebuild", "--env", "current", str(recipe))
    assert_clear_failure(done, store)
    assert "nothing entered the store" in done.stderr or "nothing was added" in done.stderr
    entries = {p.name.split("-", 1)[1] for p in (store / "entries").iterdir()}
    assert entries == {"data.txt", "build.py"}, why
    assert_nothing_partial(store, allowed_entries={"data.txt": data, "build.py": BIG_OUTPUT.encode()})
    assert not (store / "packages" / "toy-1.0.build.json").exists()
    count("full-disk cases")
