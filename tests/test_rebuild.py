"""weightpkg rebuild: inputs checked first, a fresh folder, a pinned environment, no network,
outputs into the store only after success, a deterministic build record."""

from __future__ import annotations

import hashlib
import json
import socket
import textwrap
from pathlib import Path

import pytest

from .builders import build_wheel, toy_build_recipe
from .conftest import REPO
from .servers import SimpleIndex

BUILD_SCRIPT = textwrap.dedent(
    """\
    import json, os, sys
    data = open("data.txt", "rb").read()
    seen = {k: os.environ.get(k) for k in ("PYTHONHASHSEED", "OMP_NUM_THREADS", "GREETING", "TZ")}
    listing = sorted(os.listdir("."))
    with open("out.bin", "wb") as out:
        out.write(data.upper() + json.dumps({"env": seen, "listing": listing}, sort_keys=True).encode())
    print("trained", len(data), "bytes")
    """
)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def write_recipe(
    folder: Path,
    *,
    script: str = BUILD_SCRIPT,
    data: bytes = b"some training data\n",
    data_pin: str | None = None,
    requirements: list[str] | None = None,
    outputs: tuple[str, ...] = ("out.bin",),
) -> Path:
    """A recipe whose build reads data.txt and writes out.bin (published as b"published")."""
    return toy_build_recipe(
        folder,
        script=script,
        data=data,
        published=b"published",
        data_pin=data_pin,
        requirements=requirements or (),
        outputs=outputs,
        env={"GREETING": "hello"},
    )


def entries(store: Path) -> list[str]:
    folder = store / "entries"
    return sorted(p.name.split("-", 1)[1] for p in folder.iterdir()) if folder.is_dir() else []


def test_a_build_sees_only_its_inputs_and_the_pinned_environment(
    tmp_path: Path, store_root: Path, cli
) -> None:
    recipe = write_recipe(tmp_path)
    done = cli("--store", str(store_root), "rebuild", "--env", "current", str(recipe))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "  | trained 19 bytes" in done.stderr
    [line] = [x for x in done.stdout.splitlines() if ": built out.bin: " in x]
    built = next(p for p in (store_root / "entries").iterdir() if p.name.endswith("-out.bin"))
    content = built.read_bytes()
    assert content.startswith(b"SOME TRAINING DATA\n")
    facts = json.loads(content[len(b"SOME TRAINING DATA\n") :])
    assert facts["listing"] == ["build.py", "data.txt"]
    assert facts["env"] == {"GREETING": "hello", "OMP_NUM_THREADS": "1", "PYTHONHASHSEED": "0", "TZ": "UTC"}
    assert f"sha256 {sha256(content)}" in line
    manifest = json.loads((store_root / "packages" / "toy-1.0.build.json").read_text())
    record = json.loads((store_root / manifest["record"]).read_text())
    assert [i["name"] for i in record["inputs"]] == ["data.txt", "build.py"]
    assert record["inputs"][0]["sha256"] == sha256(b"some training data\n")
    assert record["outputs"][0]["sha256"] == sha256(content)
    assert record["command"] == ["python", "build.py"]
    assert record["environment"]["GREETING"] == "hello"
    assert record["environment"]["HOME"].startswith("$WEIGHTPKG_STORE/tmp/build-")
    assert record["interpreter"]["implementation"] == "cpython"
    assert "click" in record["libraries"]  # --env current: the running interpreter's distributions
    assert record["platform"]["cpu"]["flags"], "CPU flags decide SIMD kernels and belong in the record"
    assert "duration_s" not in record
    assert list((store_root / "tmp").iterdir()) == []


def test_the_record_is_the_same_bytes_in_another_store(tmp_path: Path, cli) -> None:
    recipe = write_recipe(tmp_path)
    records = []
    for name in ("one", "two"):
        done = cli(
            "--store", str(tmp_path / name), "rebuild", "-q", "--json", "--env", "current", str(recipe)
        )
        assert done.returncode == 0, done.stderr
        records.append(done.stdout)
    assert records[0] == records[1]
    timed = cli(
        "--store", str(tmp_path / "one"), "rebuild", "-q", "--json", "--record-duration", "--env", "current",
        str(recipe),
    )
    assert json.loads(timed.stdout)["duration_s"] >= 0


def test_an_input_whose_pin_does_not_match_stops_before_the_command(
    tmp_path: Path, store_root: Path, cli
) -> None:
    script = BUILD_SCRIPT + "open('/tmp/never', 'w')\n"
    recipe = write_recipe(tmp_path, script=script, data_pin="0" * 64)
    done = cli("--store", str(store_root), "rebuild", "--env", "current", str(recipe))
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert (
        f"{recipe}: input 'data.txt': sha256 mismatch: expected {'0' * 64}, "
        f"got {sha256(b'some training data' + bytes([10]))} (from source 1 (path src/data.txt)); "
        "the build command was not run"
    ) in done.stderr
    assert "trained" not in done.stderr and "building toy" not in done.stderr
    assert not (store_root / "logs").exists()
    assert not (store_root / "packages" / "toy-1.0.build.json").exists()
    assert "out.bin" not in entries(store_root)


def test_a_failing_build_adds_nothing_and_keeps_its_log(tmp_path: Path, store_root: Path, cli) -> None:
    recipe = write_recipe(tmp_path, script="print('about to fail')\nraise SystemExit(3)\n")
    done = cli("--store", str(store_root), "rebuild", "--env", "current", str(recipe))
    assert done.returncode == 1
    assert f"{recipe}: the build command exited with 3; nothing entered the store" in done.stderr
    assert "  about to fail" in done.stderr
    assert not (store_root / "packages" / "toy-1.0.build.json").exists()
    assert entries(store_root) == ["build.py", "data.txt"]
    [log] = (store_root / "logs").iterdir()
    assert log.read_text() == "about to fail\n"
    assert [p for p in (store_root / "tmp").iterdir()] == []


def test_a_missing_output_is_an_error(tmp_path: Path, store_root: Path, cli) -> None:
    recipe = write_recipe(tmp_path, outputs=("out.bin", "other.bin"))
    done = cli("--store", str(store_root), "rebuild", "--env", "current", str(recipe))
    assert done.returncode == 1
    assert "the build did not produce 'other.bin' as a regular file; nothing entered the store" in done.stderr
    assert "out.bin" not in entries(store_root)


def test_a_recipe_without_a_build_cannot_be_rebuilt(cli) -> None:
    done = cli("rebuild", str(REPO / "recipes" / "silero-vad.toml"))
    assert done.returncode == 1
    assert "the recipe has no [build] table, so it cannot be rebuilt" in done.stderr


def test_the_build_has_no_network(tmp_path: Path, store_root: Path, cli) -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    script = textwrap.dedent(
        f"""\
        import socket
        try:
            socket.create_connection(("127.0.0.1", {port}), timeout=5).close()
            verdict = b"reached"
        except OSError as exc:
            verdict = b"refused"
        open("out.bin", "wb").write(verdict)
        """
    )
    recipe = write_recipe(tmp_path, script=script)
    try:
        done = cli("--store", str(store_root), "rebuild", "--env", "current", str(recipe))
    finally:
        listener.close()
    assert done.returncode == 0, done.stderr
    isolation = next(x for x in done.stdout.splitlines() if "isolation:" in x)
    built = next(p for p in (store_root / "entries").iterdir() if p.name.endswith("-out.bin")).read_bytes()
    if "none:" in isolation:
        pytest.skip(f"this kernel gives no network namespace: {isolation}")
    assert built == b"refused", "a build reached a server on the host's loopback"


def test_requirements_must_be_pinned_with_hashes(tmp_path: Path, cli) -> None:
    recipe = write_recipe(tmp_path, requirements=["numpy==2.4.6", "torch>=2"])
    done = cli("lint", str(recipe))
    assert done.returncode == 2
    assert "build.requirements[0]: requirement 'numpy==2.4.6' has no --hash=sha256:HEX" in done.stderr
    assert "build.requirements[1]: not a pinned requirement: 'torch>=2'" in done.stderr


def serve_helper_wheel(tmp_path: Path, simple_index: SimpleIndex, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A wheel of wpt-helper 1.0 on the loopback index that pip is pointed at."""
    wheel = build_wheel(tmp_path / "wheels", "wpt-helper", "1.0", {"wpt_helper/__init__.py": b"VALUE = 41\n"})
    simple_index.add_wheel(wheel)
    monkeypatch.setenv("PIP_INDEX_URL", simple_index.url + "/simple")
    return wheel


def test_a_venv_of_exactly_the_pinned_requirements_is_made_once(
    tmp_path: Path, store_root: Path, simple_index: SimpleIndex, monkeypatch: pytest.MonkeyPatch, cli
) -> None:
    wheel = serve_helper_wheel(tmp_path, simple_index, monkeypatch)
    other = build_wheel(tmp_path / "wheels", "wpt-unlisted", "1.0", {"wpt_unlisted/__init__.py": b""})
    simple_index.add_wheel(other)
    script = textwrap.dedent(
        """\
        import importlib.util, wpt_helper
        unlisted = importlib.util.find_spec("wpt_unlisted") is not None
        click = importlib.util.find_spec("click") is not None
        open("out.bin", "w").write(f"{wpt_helper.VALUE + 1} {unlisted} {click}")
        """
    )
    pin = f"wpt-helper==1.0 --hash=sha256:{sha256(wheel.read_bytes())}"
    recipe = write_recipe(tmp_path / "r", script=script, requirements=[pin])
    done = cli("--store", str(store_root), "rebuild", str(recipe))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "creating the build environment" in done.stderr
    built = next(p for p in (store_root / "entries").iterdir() if p.name.endswith("-out.bin"))
    assert built.read_text() == "42 False False"
    manifest = json.loads((store_root / "packages" / "toy-1.0.build.json").read_text())
    record = json.loads((store_root / manifest["record"]).read_text())
    assert record["libraries"] == {"wpt-helper": "1.0"}
    assert record["requirements"] == [pin]
    again = cli("--store", str(store_root), "rebuild", str(recipe))
    assert again.returncode == 0, again.stderr
    assert "creating the build environment" not in again.stderr


def recorded_libraries(store_root: Path) -> dict[str, str]:
    manifest = json.loads((store_root / "packages" / "toy-1.0.build.json").read_text())
    return json.loads((store_root / manifest["record"]).read_text())["libraries"]


def test_the_environment_facts_are_kept_until_the_environment_changes(
    tmp_path: Path, store_root: Path, simple_index: SimpleIndex, monkeypatch: pytest.MonkeyPatch, cli
) -> None:
    wheel = serve_helper_wheel(tmp_path, simple_index, monkeypatch)
    pin = f"wpt-helper==1.0 --hash=sha256:{sha256(wheel.read_bytes())}"
    recipe = write_recipe(tmp_path / "r", script="open('out.bin', 'w').write('x')\n", requirements=[pin])
    assert cli("--store", str(store_root), "rebuild", str(recipe)).returncode == 0
    assert recorded_libraries(store_root) == {"wpt-helper": "1.0"}
    [env] = (store_root / "envs").iterdir()
    cache = env / ".weightpkg-facts.json"
    kept = json.loads(cache.read_text())
    # The kept answer is used while the environment is unchanged: prove it by editing it.
    kept["facts"]["libraries"]["wpt-helper"] = "1.0+kept"
    cache.write_text(json.dumps(kept))
    assert cli("--store", str(store_root), "rebuild", str(recipe)).returncode == 0
    assert recorded_libraries(store_root) == {"wpt-helper": "1.0+kept"}
    # A distribution installed by hand changes site-packages, so the interpreter is asked again.
    [site] = env.glob("lib/python*/site-packages")
    added = site / "wpt_added-2.0.dist-info"
    added.mkdir()
    (added / "METADATA").write_text("Metadata-Version: 2.1\nName: wpt-added\nVersion: 2.0\n")
    assert cli("--store", str(store_root), "rebuild", str(recipe)).returncode == 0
    assert recorded_libraries(store_root) == {"wpt-added": "2.0", "wpt-helper": "1.0"}


def test_a_wheel_whose_hash_does_not_match_fails_the_environment(
    tmp_path: Path, store_root: Path, simple_index: SimpleIndex, monkeypatch: pytest.MonkeyPatch, cli
) -> None:
    serve_helper_wheel(tmp_path, simple_index, monkeypatch)
    recipe = write_recipe(tmp_path / "r", requirements=[f"wpt-helper==1.0 --hash=sha256:{'1' * 64}"])
    done = cli("--store", str(store_root), "rebuild", str(recipe))
    assert done.returncode == 1
    assert "cannot install the build requirements (pip exited 1)" in done.stderr
    assert "Traceback" not in done.stderr.split("cannot install")[0]
    assert not list((store_root / "envs").iterdir())
    assert not (store_root / "packages" / "toy-1.0.build.json").exists()
