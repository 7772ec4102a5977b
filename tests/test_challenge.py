"""weightpkg challenge and diff: published files against a rebuild, tensor by tensor, with the
recipe's absolute tolerance and functional check. Builds here copy a "trained" input to the
output, so each test decides exactly how the rebuilt file differs from the published one."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from .builders import input_tables, safetensors_bytes

BUILD = "import shutil\nshutil.copyfile('trained.bin', 'model.safetensors')\nprint('trained')\n"
# The functional metric: the sum of tensor "w", read with the project's own parser-free logic.
EVALUATE = """\
import json, struct, sys
import numpy as np
raw = open(sys.argv[1], "rb").read()
n = struct.unpack("<Q", raw[:8])[0]
header = json.loads(raw[8:8 + n])
start, end = header["w"]["data_offsets"]
values = np.frombuffer(raw[8 + n + start:8 + n + end], dtype=np.float32)
print(json.dumps({"weight_sum": round(float(values.sum()), 6)}))
"""


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def model(w: np.ndarray | None = None, **extra: tuple[str, list[int], bytes]) -> bytes:
    w = np.arange(12, dtype=np.float32).reshape(3, 4) / 8 if w is None else w
    tensors = {"w": ("F32", list(w.shape), w.astype(np.float32).tobytes()), **extra}
    tensors.setdefault("b", ("F32", [4], np.ones(4, dtype=np.float32).tobytes()))
    return safetensors_bytes(tensors)


def write_recipe(
    folder: Path,
    published: bytes,
    rebuilt: bytes,
    *,
    level: str = "bit-identical",
    atol: float | None = 0.0,
    expected: float | None = None,
    tolerance: float = 0.001,
    content_pin: str | None = None,
    repackaged: bytes | None = None,
) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    files = {"published.safetensors": published, "trained.bin": rebuilt, "build.py": BUILD.encode(),
             "evaluate.py": EVALUATE.encode()}
    for name, data in files.items():
        (folder / name).write_bytes(data)
    pin_line = f'content-sha256 = "{content_pin}"\n' if content_pin else ""
    second_source = ""
    if repackaged is not None:  # a second source: another serialization, as a repackager may ship
        (folder / "repackaged.safetensors").write_bytes(repackaged)
        second_source = '[[weights.sources]]\nkind = "path"\npath = "repackaged.safetensors"\n'
    inputs = input_tables({name: ("data" if name.endswith(".bin") else "code", files[name])
                           for name in ("trained.bin", "build.py", "evaluate.py")})
    if expected is None:
        expected = 8.25  # the sum of the default "w": 0/8 + 1/8 + … + 11/8
    tolerance_line = f"atol = {atol}\n" if atol is not None else ""
    text = f"""schema = 1
[package]
name = "toy"
version = "1.0"
summary = "a toy model"
[license]
weights = "MIT"
upstream = "MIT"
[[weights]]
path = "model.safetensors"
sha256 = "{sha256(published)}"
size = {len(published)}
format = "safetensors"
{pin_line}[[weights.sources]]
kind = "path"
path = "published.safetensors"
{second_source}{inputs}
[build]
command = ["python", "build.py"]
outputs = ["model.safetensors"]
[reproducibility]
level = "{level}"
{tolerance_line}
[reproducibility.functional]
metric = "weight_sum"
expected = {expected}
tolerance = {tolerance}
command = ["python", "evaluate.py", "{{weights}}"]
"""
    recipe = folder / "toy.toml"
    recipe.write_text(text)
    return recipe


def challenge(cli, store: Path, recipe: Path, *extra: str):
    return cli("--store", str(store), "challenge", "-q", "--env", "current", *extra, str(recipe))


def nudged(delta: float = 1e-4) -> np.ndarray:
    w = np.arange(12, dtype=np.float32).reshape(3, 4) / 8
    w[1, 2] += np.float32(delta)
    return w


def test_a_bit_identical_rebuild_passes(tmp_path: Path, store_root: Path, cli) -> None:
    recipe = write_recipe(tmp_path, model(), model())
    done = challenge(cli, store_root, recipe)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert f"  model.safetensors: identical (sha256 {sha256(model())[:12]}…): ok" in lines
    assert "  functional weight_sum: published 8.25, rebuilt 8.25 (expected 8.25 ± 0.001): ok" in lines
    assert lines[-1] == f"{recipe}: challenge passed: identical"
    again = challenge(cli, store_root, recipe, "--json")
    assert again.returncode == 0
    assert again.stdout == challenge(cli, store_root, recipe, "--json").stdout
    assert "a stored build of the same derivation" in challenge(cli, store_root, recipe).stdout


def test_a_nudged_tensor_is_named_with_its_max_difference(tmp_path: Path, store_root: Path, cli) -> None:
    recipe = write_recipe(tmp_path, model(), model(nudged()), level="tolerance", atol=1e-3, tolerance=0.01)
    done = challenge(cli, store_root, recipe, "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(done.stdout)
    [file] = report["files"]
    assert file["verdict"] == "within-tolerance" and file["ok"]
    [w] = [t for t in file["comparison"]["tensors"] if t["status"] != "identical"]
    assert w["name"] == "w" and w["differing"] == 1 and w["index"] == [1, 2]
    assert abs(w["max_abs_diff"] - 1e-4) < 1e-4 * 1e-3  # 1e-4 within float32 rounding
    human = challenge(cli, store_root, recipe).stdout
    assert "within atol" in human and "w" in human and "[1, 2]" in human
    strict = write_recipe(tmp_path / "strict", model(), model(nudged()), level="tolerance", atol=1e-5,
                          tolerance=0.01)
    refused = challenge(cli, store_root, strict, "--json")
    assert refused.returncode == 1
    [file] = json.loads(refused.stdout)["files"]
    assert file["verdict"] == "differs" and not file["ok"]
    last = challenge(cli, store_root, strict).stdout.splitlines()[-1]
    assert last.startswith(f"{strict}: challenge FAILED")


def test_a_bit_identical_recipe_fails_on_any_difference(tmp_path: Path, store_root: Path, cli) -> None:
    recipe = write_recipe(tmp_path, model(), model(nudged(1e-6)), tolerance=0.01)
    done = challenge(cli, store_root, recipe)
    assert done.returncode == 1
    assert "model.safetensors: differs" in done.stdout


def test_renamed_reshaped_and_retyped_tensors_are_reported(tmp_path: Path, store_root: Path, cli) -> None:
    base = np.arange(12, dtype=np.float32).reshape(3, 4) / 8
    cases = {
        "renamed": (model(extra=("F32", [2], bytes(8))), model(extra2=("F32", [2], bytes(8)))),
        "reshaped": (model(), model(base.reshape(4, 3))),
        "retyped": (
            model(),
            safetensors_bytes({"w": ("F16", [3, 4], base.astype(np.float16).tobytes()),
                               "b": ("F32", [4], np.ones(4, dtype=np.float32).tobytes())}),
        ),
    }
    expected = {
        "renamed": {"extra": "missing", "extra2": "extra"},
        "reshaped": {"w": "shape-changed"},
        "retyped": {"w": "dtype-changed"},
    }
    for label, (published, rebuilt) in cases.items():
        recipe = write_recipe(
            tmp_path / label, published, rebuilt, level="tolerance", atol=1.0, tolerance=100
        )
        done = challenge(cli, store_root, recipe, "--json", "--no-functional")
        assert done.returncode == 1, label
        [file] = json.loads(done.stdout)["files"]
        tensors = file["comparison"]["tensors"]
        statuses = {t["name"]: t["status"] for t in tensors if t["status"] != "identical"}
        assert statuses == expected[label], label


def test_a_functional_check_out_of_tolerance_fails(tmp_path: Path, store_root: Path, cli) -> None:
    recipe = write_recipe(tmp_path, model(), model(), expected=9.0, tolerance=0.5)
    done = challenge(cli, store_root, recipe)
    assert done.returncode == 1
    assert "functional weight_sum: published 8.25, rebuilt 8.25 (expected 9 ± 0.5): FAILED" in done.stdout
    assert "the functional check failed" in done.stdout.splitlines()[-1]


def test_a_recipe_that_cannot_be_rebuilt_cannot_be_challenged(cli) -> None:
    from .conftest import REPO

    done = cli("challenge", str(REPO / "recipes" / "silero-vad.toml"))
    assert done.returncode == 1
    assert "Traceback" not in done.stderr and "cannot be" in done.stderr


def test_diff_command(tmp_path: Path, cli) -> None:
    a, b = tmp_path / "a.safetensors", tmp_path / "b.safetensors"
    a.write_bytes(model())
    b.write_bytes(model(nudged()))
    loose = cli("diff", str(a), str(b), "--atol", "1e-3")
    assert loose.returncode == 0, loose.stdout + loose.stderr
    assert "within atol" in loose.stdout
    tight = cli("diff", str(a), str(b), "--atol", "1e-5")
    assert tight.returncode == 1
    plain = cli("diff", "--json", str(a), str(b))
    assert plain.returncode == 1
    report = json.loads(plain.stdout)
    assert report["verdict"] == "differs" and report["a"] == str(a)
    assert cli("diff", str(a), str(a)).returncode == 0
    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(b"\x00" * 4)
    bad = cli("diff", str(a), str(broken))
    assert bad.returncode == 2 and "Traceback" not in bad.stderr and str(broken) in bad.stderr


def reserialized(raw: bytes) -> bytes:
    """The same tensors and metadata, written with the header keys in another order."""
    n = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8 : 8 + n])
    text = json.dumps(dict(reversed(list(header.items())))).encode()
    text += b" " * (-len(text) % 8)
    out = len(text).to_bytes(8, "little") + text + raw[8 + n :]
    assert out != raw
    return out


def content_of(raw: bytes, tmp_path: Path) -> str:
    from weightpkg.tensorfiles import file_content_digest

    path = tmp_path / f"content-{sha256(raw)}.safetensors"
    path.write_bytes(raw)
    return file_content_digest(path)


def test_hash_content(tmp_path: Path, cli) -> None:
    one = tmp_path / "one.safetensors"
    one.write_bytes(model())
    other = tmp_path / "other.safetensors"
    other.write_bytes(reserialized(model()))
    assert sha256(one.read_bytes()) != sha256(other.read_bytes())
    first = cli("hash", "--content", "--format", "hex", str(one)).stdout.split()
    second = cli("hash", "--content", "--format", "hex", str(other)).stdout.split()
    assert first[0] != second[0] and first[1] == second[1] and first[1].startswith("content-sha256:")


def test_sources_are_compared_like_guix_challenge(tmp_path: Path, store_root: Path, cli) -> None:
    recipe = write_recipe(tmp_path, model(), model())
    done = challenge(cli, store_root, recipe, "--sources", "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    [file] = json.loads(done.stdout)["files"]
    assert [(s["source"], s["status"]) for s in file["sources"]] == [
        ("source 1 (path published.safetensors)", "agrees")
    ]
    (tmp_path / "published.safetensors").write_bytes(model(nudged()))
    differing = challenge(cli, store_root, recipe, "--sources")
    assert differing.returncode == 1
    assert "source 1 (path published.safetensors): differs" in differing.stdout


def test_a_content_pin_accepts_the_same_tensors_in_other_bytes(
    tmp_path: Path, store_root: Path, cli
) -> None:
    published, rebuilt = model(), reserialized(model())
    unpinned = write_recipe(tmp_path / "unpinned", published, rebuilt)
    refused = challenge(cli, store_root, unpinned)
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert "model.safetensors: same-content" in refused.stdout
    assert "a content-sha256 pin would accept the same tensors in other bytes" in refused.stdout

    pin = content_of(published, tmp_path)
    pinned = write_recipe(tmp_path / "pinned", published, rebuilt, content_pin=pin)
    done = challenge(cli, store_root, pinned, "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    [file] = json.loads(done.stdout)["files"]
    assert (file["verdict"], file["ok"]) == ("same-content", True)
    assert file["content_sha256"] == file["rebuilt_content_sha256"] == pin
    human = challenge(cli, store_root, pinned).stdout.splitlines()
    assert f"    rebuilt content-sha256 {pin[:12]}…: the recipe's pin" in human
    assert human[-1] == f"{pinned}: challenge passed: same-content"

    # The pin names content, not leniency: one nudged value still fails a bit-identical recipe.
    nudged_build = write_recipe(tmp_path / "nudged", published, model(nudged()), content_pin=pin)
    failed = challenge(cli, store_root, nudged_build, "--json", "--no-functional")
    assert failed.returncode == 1
    [file] = json.loads(failed.stdout)["files"]
    assert (file["verdict"], file["ok"], file["rebuilt_content_sha256"]) == ("differs", False, None)


def test_verify_checks_the_content_pin_against_the_file(tmp_path: Path, store_root: Path, cli) -> None:
    published = model()
    good = write_recipe(tmp_path / "good", published, published, content_pin=content_of(published, tmp_path))
    done = cli("--store", str(store_root), "verify", "--json", str(good))
    assert done.returncode == 0, done.stdout + done.stderr
    [file] = json.loads(done.stdout)["recipes"][0]["files"]
    assert file["details"]["safetensors"]["content_sha256"] == content_of(published, tmp_path)
    assert "as pinned" in cli("--store", str(store_root), "verify", str(good)).stdout

    wrong_pin = content_of(model(nudged()), tmp_path)
    bad = write_recipe(tmp_path / "bad", published, published, content_pin=wrong_pin)
    refused = cli("--store", str(store_root), "verify", "--json", str(bad))
    assert refused.returncode == 1
    [recipe_report] = json.loads(refused.stdout)["recipes"]
    assert [f["rule"] for f in recipe_report["findings"]] == ["content-mismatch"]
    [file] = recipe_report["files"]
    assert wrong_pin in file["problem"] and content_of(published, tmp_path) in file["problem"]


def test_a_repackaged_source_with_the_pinned_content_agrees(tmp_path: Path, store_root: Path, cli) -> None:
    published = model()
    pin = content_of(published, tmp_path)
    pinned = write_recipe(tmp_path / "pinned", published, published, content_pin=pin,
                          repackaged=reserialized(published))
    done = cli("--store", str(store_root), "verify", "--all-sources", "--json", str(pinned))
    assert done.returncode == 0, done.stdout + done.stderr
    [file] = json.loads(done.stdout)["recipes"][0]["files"]
    assert [s["status"] for s in file["sources"]] == ["agrees", "same-content"]
    assert pin in file["sources"][1]["detail"]
    challenged = challenge(cli, store_root, pinned, "--sources")
    assert challenged.returncode == 0, challenged.stdout + challenged.stderr
    assert "source 2 (path repackaged.safetensors): same-content" in challenged.stdout

    # Without the pin, other bytes are other bytes.
    unpinned = write_recipe(tmp_path / "unpinned", published, published, repackaged=reserialized(published))
    refused = cli("--store", str(store_root), "verify", "--all-sources", str(unpinned))
    assert refused.returncode == 1
    assert "source 2 (path repackaged.safetensors): differs" in refused.stdout

    # With the pin, other content is named as such, and so is a file that is no safetensors at all.
    for label, served, words in [
        ("other", model(nudged()), f"content-sha256 {content_of(model(nudged()), tmp_path)}, expected {pin}"),
        ("broken", b"\x00" * 16, "not a valid safetensors file"),
    ]:
        recipe = write_recipe(tmp_path / label, published, published, content_pin=pin, repackaged=served)
        refused = cli("--store", str(store_root), "verify", "--all-sources", str(recipe))
        assert refused.returncode == 1, label
        [line] = [x for x in refused.stdout.splitlines() if "source 2" in x and "FAILED" not in x]
        assert ": differs: " in line and words in line, (label, line)
