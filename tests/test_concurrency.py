"""Several weightpkg processes on one store at once: one writer per file, the file downloaded
once, garbage collection never taking what a running fetch is adding."""

from __future__ import annotations

import json
import os
import random
import textwrap
import time
from pathlib import Path

from weightpkg.core.digest import Digest

from . import procs
from .builders import pinned, recipe_text, sha256, toy_build_recipe
from .figures import count
from .servers import Fault, FileServer

MIB = 1 << 20
SIZE = 16 * MIB
RATE = 16 * MIB  # a whole transfer takes about a second


def entries(store: Path) -> list[Path]:
    folder = store / "entries"
    return sorted(folder.iterdir()) if folder.is_dir() else []


def leftovers(store: Path) -> list[str]:
    """What a finished run should not leave under tmp/: partials, links, manifests being
    written, scratch folders."""
    folder = store / "tmp"
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


def url_recipe(folder: Path, data: bytes, url: str, *, name: str = "test-pkg", path: str = "w.bin") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    recipe = folder / f"{name}.toml"
    recipe.write_text(recipe_text([pinned(path, data, [{"kind": "url", "url": url}])], name=name))
    return recipe


def manifest_entries(store: Path, package: str) -> list[str]:
    manifest = json.loads((store / "packages" / f"{package}.json").read_text())
    return [item["store_path"] for item in manifest["files"]]


def served_file(server: FileServer, seed: int, size: int = SIZE) -> bytes:
    data = random.Random(seed).randbytes(size)
    server.files["/w.bin"] = data
    server.faults["/w.bin"] = Fault(rate=RATE)
    return data


def test_four_fetches_of_one_file_download_it_once(tmp_path: Path, file_server: FileServer) -> None:
    """CI jobs sharing a store fetch the same package at once: one writer, one download."""
    data = served_file(file_server, 4)
    recipe = url_recipe(tmp_path / "recipe", data, f"{file_server.url}/w.bin")
    store = tmp_path / "store"
    writers = [procs.start("--store", str(store), "fetch", str(recipe)) for _ in range(4)]
    for writer in writers:
        code, out, err = procs.finish(writer)
        assert code == 0, out + err
        assert "Traceback" not in err
    [entry] = entries(store)
    assert entry.read_bytes() == data
    assert leftovers(store) == []
    assert manifest_entries(store, "test-pkg-1.0") == [f"entries/{entry.name}"]
    assert sorted(p.name for p in (store / "packages").iterdir()) == ["test-pkg-1.0.json"]
    assert procs.store_verify(store).returncode == 0
    # One writer per file holds its lock; the others wait, then find the entry there.
    assert file_server.sent["/w.bin"] < 2 * SIZE, f"{file_server.sent['/w.bin']} bytes sent"
    assert [r for m, p, r in file_server.requests if m == "GET"] == [None]
    count("concurrent writers", len(writers))


def test_two_packages_pinning_one_file_share_its_entry(tmp_path: Path, file_server: FileServer) -> None:
    """The store is content-addressed: one file pinned by two packages is stored once."""
    data = served_file(file_server, 2)
    url = f"{file_server.url}/w.bin"
    recipes = [url_recipe(tmp_path / "recipes", data, url, name=name) for name in ("alpha", "beta")]
    store = tmp_path / "store"
    fetches = [procs.start("--store", str(store), "fetch", str(recipe)) for recipe in recipes]
    for fetch in fetches:
        code, out, err = procs.finish(fetch)
        assert code == 0, out + err
    [entry] = entries(store)
    assert entry.read_bytes() == data
    assert (
        manifest_entries(store, "alpha-1.0")
        == manifest_entries(store, "beta-1.0")
        == [f"entries/{entry.name}"]
    )
    assert leftovers(store) == []
    assert file_server.sent["/w.bin"] < 2 * SIZE
    count("concurrent writers", len(fetches))


def test_the_same_bytes_under_two_names_are_fetched_once_and_linked(
    tmp_path: Path, file_server: FileServer
) -> None:
    """Same bytes, other name: the second writer links the first's entry (after re-hashing it)."""
    data = served_file(file_server, 3)
    url = f"{file_server.url}/w.bin"
    first = url_recipe(tmp_path / "recipes", data, url, name="alpha", path="model.bin")
    second = url_recipe(tmp_path / "recipes", data, url, name="beta", path="weights.bin")
    store = tmp_path / "store"
    fetches = [procs.start("--store", str(store), "fetch", str(recipe)) for recipe in (first, second)]
    for fetch in fetches:
        code, out, err = procs.finish(fetch)
        assert code == 0, out + err
    names = {p.name.split("-", 1)[1]: p for p in entries(store)}
    assert sorted(names) == ["model.bin", "weights.bin"]
    assert names["model.bin"].stat().st_ino == names["weights.bin"].stat().st_ino
    assert manifest_entries(store, "alpha-1.0") == [f"entries/{names['model.bin'].name}"]
    assert manifest_entries(store, "beta-1.0") == [f"entries/{names['weights.bin'].name}"]
    assert file_server.sent["/w.bin"] < 2 * SIZE
    assert leftovers(store) == []
    count("concurrent writers", len(fetches))


def test_gc_beside_a_fetch_waits_and_takes_nothing_it_adds(tmp_path: Path, file_server: FileServer) -> None:
    """gc takes the store's lock exclusively: it waits for a running fetch (whose partial and
    entry no manifest yet refers to), then collects only real garbage."""
    data = served_file(file_server, 5, 2 * SIZE)  # two seconds: gc starts well inside it
    recipe = url_recipe(tmp_path / "recipe", data, f"{file_server.url}/w.bin")
    store = tmp_path / "store"
    partial = store / "tmp" / f"{sha256(data)}.partial"
    # Garbage gc should collect once it runs: an entry nothing refers to, a killed run's scratch.
    (store / "entries").mkdir(parents=True)
    (store / "tmp" / "run-killed").mkdir(parents=True)
    stray = store / "entries" / f"{Digest.from_hex(sha256(b'old')).nix32}-unreferenced.bin"
    stray.write_bytes(b"old")

    fetch = procs.start("--store", str(store), "fetch", str(recipe))
    assert procs.wait_until(procs.any_of(procs.exists(partial), procs.ended(fetch)), 30)
    assert fetch.poll() is None, "the fetch ended before gc could run beside it"
    collectors = [
        procs.start("--store", str(store), "store", "gc", *options)
        for options in ([], ["--partials"], ["--dry-run"], [], ["--partials"])
    ]
    time.sleep(0.5)
    assert fetch.poll() is None, "the fetch ended before gc could be seen waiting"
    waiting = [c for c in collectors if c.poll() is None]
    assert waiting == collectors, "gc ran while a fetch held the store"
    assert partial.exists() and (store / "tmp" / "run-killed").exists() and stray.exists()

    code, out, err = procs.finish(fetch)
    assert code == 0, out + err
    for collector in collectors:
        code, out, err = procs.finish(collector)
        assert code == 0, out + err
        assert "w.bin" not in out, f"gc would remove the fetched file: {out}"
    [entry] = entries(store)
    assert entry.name.endswith("-w.bin") and entry.read_bytes() == data
    assert manifest_entries(store, "test-pkg-1.0") == [f"entries/{entry.name}"]
    assert not stray.exists(), "what nothing refers to is collected once gc gets its turn"
    assert leftovers(store) == []
    assert procs.store_verify(store).returncode == 0
    again = procs.cli("--store", str(store), "store", "gc", "--dry-run")
    assert (again.returncode, again.stdout) == (0, "0 path(s) to remove\n")
    assert entry.exists()


SHARED_BUILD = textwrap.dedent(
    """\
    data = open("data.txt", "rb").read()
    open("out.bin", "wb").write(data[::-1])
    """
)


def test_a_rebuild_and_a_fetch_sharing_inputs_at_once(tmp_path: Path) -> None:
    """A rebuild's inputs are a fetch's inputs too: both add them at once, each entry once."""
    data = os.urandom(2 * MIB)
    recipe = toy_build_recipe(tmp_path / "recipe", script=SHARED_BUILD, data=data, published=data[::-1])
    for round_ in range(3):
        store = tmp_path / f"store-{round_}"
        runs = [
            procs.start("--store", str(store), "rebuild", "--env", "current", str(recipe)),
            procs.start("--store", str(store), "fetch", "--inputs", str(recipe)),
        ]
        for run in runs:
            code, out, err = procs.finish(run)
            assert code == 0, out + err
        names = sorted(p.name.split("-", 1)[1] for p in entries(store))
        assert names == ["build.py", "data.txt", "out.bin", "toy-1.0.build-record.json"]
        assert procs.store_verify(store).returncode == 0
        present = {f"entries/{p.name}" for p in entries(store)}
        assert set(manifest_entries(store, "toy-1.0")) <= present
        assert set(manifest_entries(store, "toy-1.0.build")) <= present
        assert leftovers(store) == []
        count("concurrent writers", len(runs))


def test_store_verify_beside_gc_passes_over_what_gc_removes(tmp_path: Path) -> None:
    """verify takes no lock (a read-only store can be verified), so gc may remove entries under
    it: each one it no longer finds is passed over, not a traceback."""
    store = tmp_path / "store"
    rng = random.Random(99)
    for round_ in range(3):
        (store / "entries").mkdir(parents=True, exist_ok=True)
        for number in range(1500):
            data = f"unreferenced {round_} {number}".encode()
            (store / "entries" / f"{Digest.from_hex(sha256(data)).nix32}-e{number}.bin").write_bytes(data)
        verify = procs.start("--store", str(store), "store", "verify")
        time.sleep(rng.uniform(0.08, 0.16))  # verify is re-hashing by then
        collect = procs.start("--store", str(store), "store", "gc")
        for process in (verify, collect):
            code, out, err = procs.finish(process)
            assert code == 0 and procs.no_traceback(err), out + err
        assert entries(store) == []
