"""The Nix export, built by real ``nix-build`` (Debian's nix-bin) with a store under the test's
temporary folder, no substituters and the sandbox off, from files served on 127.0.0.1: every
shipped recipe builds and yields its published files; a wrong byte fails with Nix's own hash
mismatch; digits-mlp's rebuild reproduces the published bytes and passes ``--check``."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

import weightpkg
from weightpkg.core.digest import Digest
from weightpkg.core.recipe import DebSource, PypiSource, Recipe
from weightpkg.errors import UsageError
from weightpkg.exports.nix import (
    HELPER,
    deb_filename,
    nix_expression,
    nix_indented_string,
    nix_string,
    store_name,
    store_name_problem,
)

from .conftest import REPO, require_peer
from .servers import FileServer, SimpleIndex

RECIPES = REPO / "recipes"
SHIPPED = sorted(p.stem for p in RECIPES.glob("*.toml"))
WHEELHOUSE = REPO / "tests" / ".wheelhouse"
MISMATCH = "hash mismatch in fixed-output derivation"
#: nix-build's exit statuses for a hash mismatch and for a --check that found other bytes.
HASH_MISMATCH_EXIT = 102
NOT_DETERMINISTIC_EXIT = 104


# --- a Nix store of the test's own ----------------------------------------------------------------


@dataclass
class Nix:
    """nix-build and nix-instantiate on a store under ``root`` (nothing under /nix, no daemon)."""

    root: Path

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in ("NIX_REMOTE", "NIX_PATH")}
        env.update(
            NIX_STORE_DIR=str(self.root / "store"),
            NIX_STATE_DIR=str(self.root / "var"),
            NIX_LOG_DIR=str(self.root / "log"),
            NIX_CONF_DIR=str(self.root / "conf"),
            XDG_CACHE_HOME=str(self.root / "cache"),
        )
        return env

    def run(self, *argv: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return subprocess.run(argv, capture_output=True, text=True, env=self.env(), timeout=timeout)

    def build(self, expression: Path, *args: str) -> subprocess.CompletedProcess[str]:
        return self.run("nix-build", "--no-out-link", str(expression), *args)

    def built(self, expression: Path, *args: str) -> list[Path]:
        """The store paths a successful nix-build printed."""
        done = self.build(expression, *args)
        assert done.returncode == 0, done.stderr[-4000:]
        return [Path(line) for line in done.stdout.split()]

    def evaluate(self, expression: str) -> object:
        done = self.run("nix-instantiate", "--eval", "--strict", "--json", "-E", expression)
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)


def make_nix(root: Path) -> Nix:
    """A fresh store as real-clients.md §1c sets it up: sandbox off, no substituters."""
    require_peer("nix-build")
    (root / "conf").mkdir(parents=True)
    (root / "conf" / "nix.conf").write_text(
        "sandbox = false\nsubstituters =\nbuild-users-group =\nexperimental-features = nix-command\n"
    )
    return Nix(root)


@pytest.fixture(scope="module")
def nix(tmp_path_factory: pytest.TempPathFactory) -> Nix:
    """One store for the module: what one test fetched, the next need not fetch again."""
    return make_nix(tmp_path_factory.mktemp("nix"))


@pytest.fixture
def fresh_nix(tmp_path: Path) -> Nix:
    """A store of the test's own, where no valid path can stand in for a fetch (a fixed-output
    path already present is never fetched again)."""
    return make_nix(tmp_path / "nix")


# --- the files, served from 127.0.0.1 -------------------------------------------------------------


def archive_name(source: PypiSource | DebSource) -> str:
    name = source.wheel if isinstance(source, PypiSource) else deb_filename(source)
    assert name is not None
    return name


def shipped_archives() -> dict[str, str]:
    """File name → sha256 of every wheel and .deb a shipped recipe's files and inputs come from."""
    wanted: dict[str, str] = {}
    for name in SHIPPED:
        recipe = weightpkg.load_recipe(RECIPES / f"{name}.toml")
        for item in (*recipe.weights, *recipe.inputs):
            for source in item.sources:
                if isinstance(source, (PypiSource, DebSource)):
                    wanted[archive_name(source)] = source.sha256.hex
    return wanted


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


@pytest.fixture(scope="module")
def server() -> Iterator[FileServer]:
    """The shipped recipes' wheels under /pypi/, .debs under /debian/ (from tests/.wheelhouse,
    hash checked) and the recipes' folders under /recipes/."""
    missing = []
    served = FileServer()
    for name, pin in sorted(shipped_archives().items()):
        path = WHEELHOUSE / name
        if not path.is_file() or sha256_file(path) != pin:
            missing.append(name)
            continue
        served.files[f"/{'debian' if name.endswith('.deb') else 'pypi'}/{name}"] = path.read_bytes()
    if missing:
        message = (
            f"not in {WHEELHOUSE} with their pinned sha256: {', '.join(missing)}; "
            "run python tests/wheelhouse.py"
        )
        if os.environ.get("WEIGHTPKG_REQUIRE_PEERS") == "1":
            pytest.fail(message)
        pytest.skip(message)
    for path in sorted(RECIPES.rglob("*")):
        if path.is_file():
            served.files[f"/recipes/{path.relative_to(RECIPES).as_posix()}"] = path.read_bytes()
    served.start()
    yield served
    served.stop()


def export(
    recipe: Recipe, folder: Path, served: FileServer, *, path_base: bool = True, **options: str
) -> Path:
    """The recipe's expression, every archive (and, with ``path_base``, every file beside the
    recipe) from the loopback server; written to ``folder``."""
    text = nix_expression(
        recipe,
        recipe_dir=Path(recipe.origin).parent,
        pypi_base=f"{served.url}/pypi",
        debian_base=f"{served.url}/debian",
        path_base=f"{served.url}/recipes" if path_base else None,
        **options,
    )
    fetched = re.findall(r'\(fetch "[^"]*" "([^"]*)"', text)
    assert fetched
    for url in fetched:
        assert url.startswith((f"{served.url}/", "file:///")), url
    target = folder / f"{recipe.package.name}.nix"
    target.write_text(text)
    return target


def shipped(name: str) -> Recipe:
    return weightpkg.load_recipe(RECIPES / f"{name}.toml")


# --- every shipped recipe -------------------------------------------------------------------------


@pytest.mark.parametrize("name", SHIPPED)
def test_every_shipped_recipe_builds_with_nix(
    name: str, nix: Nix, server: FileServer, tmp_path: Path
) -> None:
    recipe = shipped(name)
    expression = export(recipe, tmp_path, server)
    [package] = nix.built(expression)
    found = sorted(p.relative_to(package).as_posix() for p in package.rglob("*") if p.is_file())
    assert found == sorted(w.path for w in recipe.weights)
    for weight in recipe.weights:
        assert (package / weight.path).stat().st_size == weight.size
        assert sha256_file(package / weight.path) == weight.sha256.hex, weight.path
    available = [i for i in recipe.inputs if i.available]
    if available:
        # One -A per input: nix-build skips attributes whose names hold a dot ("train.py").
        selected = [arg for i in available for arg in ("-A", f"inputs.{nix_string(i.name)}")]
        got = sorted(sha256_file(p) for p in nix.built(expression, *selected))
        assert got == sorted(i.sha256.hex for i in available if i.sha256)


@pytest.mark.parametrize(
    ("name", "path"),
    [
        ("all-minilm-l6-v2", "model.safetensors"),  # a zip inside the second wheel
        ("opencv-haarcascade-frontalface", "haarcascade_frontalface_default.xml"),  # a wheel after a .deb
    ],
)
def test_every_source_of_a_file_is_checked_by_nix(
    name: str, path: str, nix: Nix, server: FileServer, tmp_path: Path
) -> None:
    # All sources of a file share its output path, so once one is in the store the others are
    # not fetched: --check fetches each again and compares.
    recipe = shipped(name)
    [weight] = recipe.weights
    expression = export(recipe, tmp_path, server)
    [first] = nix.built(expression, "-A", f'files."{path}"')
    for index in range(len(weight.sources)):
        [again] = nix.built(expression, "-A", f'sources."{path}".{index}', "--check")
        assert again == first
    assert sha256_file(first) == weight.sha256.hex


# --- wrong bytes ----------------------------------------------------------------------------------


def assert_mismatch(
    done: subprocess.CompletedProcess[str], drv_name: str, specified: Digest, got: Digest | None = None
) -> None:
    """Nix's own refusal: its exit status, the derivation named, the pin and what really came."""
    log = done.stderr[-3000:]
    assert done.returncode == HASH_MISMATCH_EXIT, log
    assert re.search(rf"{MISMATCH} '[^']*-{re.escape(drv_name)}\.drv'", done.stderr), log
    assert re.search(rf"specified: +{re.escape(specified.sri)}", done.stderr), log
    if got is not None:
        assert re.search(rf"got: +{re.escape(got.sri)}", done.stderr), log


def sha256_bytes(data: bytes) -> Digest:
    return Digest(hashlib.sha256(data).digest())


def corrupt(data: bytes) -> bytes:
    middle = len(data) // 2
    return data[:middle] + bytes([data[middle] ^ 0x01]) + data[middle + 1 :]


def test_a_corrupted_file_beside_the_recipe_fails_with_nixs_hash_mismatch(
    fresh_nix: Nix, file_server: FileServer, tmp_path: Path
) -> None:
    recipe = shipped("digits-mlp")
    bad = corrupt((RECIPES / "digits-mlp" / "digits-mlp.safetensors").read_bytes())
    file_server.files["/recipes/digits-mlp/digits-mlp.safetensors"] = bad
    done = fresh_nix.build(export(recipe, tmp_path, file_server))
    assert_mismatch(done, "digits-mlp.safetensors", recipe.weights[0].sha256, sha256_bytes(bad))


def test_a_corrupted_deb_fails_before_its_member_is_extracted(
    fresh_nix: Nix, server: FileServer, file_server: FileServer, tmp_path: Path
) -> None:
    recipe = shipped("opencv-haarcascade-frontalface")
    deb = recipe.weights[0].sources[0]
    assert isinstance(deb, DebSource)
    name = archive_name(deb)
    bad = corrupt(server.files[f"/debian/{name}"])
    file_server.files[f"/debian/{name}"] = bad
    done = fresh_nix.build(export(recipe, tmp_path, file_server))
    assert_mismatch(done, store_name(name), deb.sha256, sha256_bytes(bad))
    assert "haarcascade_frontalface_default.xml.drv'..." not in done.stderr  # never started


def test_a_member_that_differs_from_its_pin_fails_although_the_wheel_is_right(
    fresh_nix: Nix, server: FileServer, tmp_path: Path
) -> None:
    # The wheel matches its pin; the recipe pins another member: the extraction is refused.
    text = (RECIPES / "silero-vad.toml").read_text()
    real = shipped("silero-vad").weights[0].sha256.hex
    (tmp_path / "silero-vad.toml").write_text(text.replace(real, "0" * 64))
    recipe = weightpkg.load_recipe(tmp_path / "silero-vad.toml")
    done = fresh_nix.build(export(recipe, tmp_path, server))
    assert re.search(r"building '[^']*-silero_vad-6\.2\.3-py3-none-any\.whl\.drv'", done.stderr)
    assert_mismatch(done, "silero_vad_16k.safetensors", Digest.from_hex("0" * 64), Digest.from_hex(real))


# --- the rebuild ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def digits_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An interpreter holding exactly digits-mlp's pinned requirements (numpy), made the way
    ``weightpkg rebuild`` makes it (pip, hashes required), from the wheelhouse on loopback."""
    from weightpkg.builder import ensure_environment
    from weightpkg.store import Store

    recipe = shipped("digits-mlp")
    assert recipe.build is not None
    wheels = sorted(WHEELHOUSE.glob("numpy-*.whl"))
    if not wheels:
        pytest.skip(f"no numpy wheel in {WHEELHOUSE}: run python tests/wheelhouse.py")
    index = SimpleIndex().start()
    try:
        for wheel in wheels:
            index.add_wheel(wheel)
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("PIP_INDEX_URL", f"{index.url}/simple")
            store = Store(tmp_path_factory.mktemp("weightpkg") / "store")
            return ensure_environment(store, recipe.build.requirements, lambda line: None)
    finally:
        index.stop()


def test_the_rebuild_of_digits_mlp_reproduces_the_published_bytes(
    nix: Nix, server: FileServer, digits_python: Path, tmp_path: Path
) -> None:
    recipe = shipped("digits-mlp")
    [weight] = recipe.weights
    # Files beside the recipe as file:// URLs this time (the default).
    expression = export(recipe, tmp_path, server, path_base=False)
    assert f'"{(RECIPES / "digits-mlp" / "train.py").as_uri()}"' in expression.read_text()
    python = ("--argstr", "python", str(digits_python))
    [rebuild] = nix.built(expression, "-A", "rebuild", *python)
    assert sha256_file(rebuild / weight.path) == weight.sha256.hex
    assert sorted(p.name for p in rebuild.iterdir()) == [weight.path]
    # Nix runs the build again and compares bit for bit.
    done = nix.build(expression, "-A", "build", "--check", *python)
    assert done.returncode == 0, done.stderr[-4000:]
    assert "checking outputs of" in done.stderr
    assert done.stderr.count('"test_accuracy": 0.925926}') == 1, done.stderr[-4000:]
    # The published file and the rebuilt one are the same bytes under two names.
    [published] = nix.built(expression, "-A", f'files."{weight.path}"')
    assert published.read_bytes() == (rebuild / weight.path).read_bytes()


def test_a_rebuild_that_differs_from_the_published_file_fails_in_nix(
    nix: Nix, server: FileServer, digits_python: Path, tmp_path: Path
) -> None:
    # Publish other bytes under the recipe: the build itself still runs, and Nix refuses its
    # output because it is not what was published.
    text = (RECIPES / "digits-mlp.toml").read_text()
    published = shipped("digits-mlp").weights[0].sha256.hex
    (tmp_path / "digits-mlp").mkdir()
    for name in ("train.py", "digits-mlp.safetensors"):
        shutil.copy(RECIPES / "digits-mlp" / name, tmp_path / "digits-mlp" / name)
    (tmp_path / "digits-mlp.toml").write_text(text.replace(published, "1" * 64))
    recipe = weightpkg.load_recipe(tmp_path / "digits-mlp.toml")
    done = nix.build(
        export(recipe, tmp_path, server, path_base=False),
        "-A",
        "rebuild",
        "--argstr",
        "python",
        str(digits_python),
    )
    assert_mismatch(
        done, "rebuilt-digits-mlp.safetensors", Digest.from_hex("1" * 64), Digest.from_hex(published)
    )


def test_the_rebuild_without_an_interpreter_says_how_to_give_one(
    nix: Nix, server: FileServer, tmp_path: Path
) -> None:
    expression = export(shipped("digits-mlp"), tmp_path, server)
    done = nix.build(expression, "-A", "rebuild")
    assert done.returncode != 0
    assert (
        "digits-mlp.toml: the build needs an interpreter holding the recipe's requirements: "
        "pass --argstr python /abs/path/bin/python" in done.stderr
    )
    silero = export(shipped("silero-vad"), tmp_path, server)
    attributes = nix.evaluate(f"builtins.attrNames (import {silero} {{}})")
    assert isinstance(attributes, list) and "files" in attributes and "rebuild" not in attributes


def test_check_catches_a_build_that_is_not_deterministic(fresh_nix: Nix, tmp_path: Path) -> None:
    # A "training" that writes fresh random bytes: each run differs, and --check says so.
    script = b"import os\nopen('w.bin', 'wb').write(os.urandom(64))\n"
    (tmp_path / "train.py").write_bytes(script)
    (tmp_path / "w.bin").write_bytes(b"published")
    (tmp_path / "noisy.toml").write_text(
        f"""schema = 1
[package]
name = "noisy"
version = "1"
summary = "a build that is not deterministic"
[license]
weights = "MIT"
upstream = "MIT"
[[weights]]
path = "w.bin"
sha256 = "{hashlib.sha256(b"published").hexdigest()}"
size = 9
format = "numpy"
[[weights.sources]]
kind = "path"
path = "w.bin"
[[inputs]]
name = "train.py"
role = "code"
path = "train.py"
sha256 = "{hashlib.sha256(script).hexdigest()}"
size = {len(script)}
license = "MIT"
available = true
[[inputs.sources]]
kind = "path"
path = "train.py"
[build]
command = ["python", "train.py"]
outputs = ["w.bin"]
[reproducibility]
level = "bit-identical"
"""
    )
    recipe = weightpkg.load_recipe(tmp_path / "noisy.toml")
    (tmp_path / "noisy.nix").write_text(nix_expression(recipe, recipe_dir=tmp_path))
    python = ("--argstr", "python", str(Path(sys.executable).resolve()))
    fresh_nix.built(tmp_path / "noisy.nix", "-A", "build", *python)
    done = fresh_nix.build(tmp_path / "noisy.nix", "-A", "build", "--check", *python)
    assert done.returncode == NOT_DETERMINISTIC_EXIT, done.stderr[-3000:]
    assert re.search(r"derivation '[^']*-noisy-1-build\.drv' may not be deterministic", done.stderr)


# --- mirrors, URLs and where no URL can be formed -----------------------------------------------------


def write_recipe(folder: Path, sources: str, data: bytes) -> Recipe:
    (folder / "w.bin").write_bytes(data)
    (folder / "tiny.toml").write_text(
        f"""schema = 1
[package]
name = "tiny"
version = "0.1~rc1"
summary = "a \\"quoted\\" ${{summary}} with a backslash \\\\ and ''two quotes''"
[license]
weights = "MIT"
upstream = "MIT"
[[weights]]
path = "sub dir/w.bin"
sha256 = "{hashlib.sha256(data).hexdigest()}"
size = {len(data)}
format = "numpy"
{sources}
"""
    )
    return weightpkg.load_recipe(folder / "tiny.toml")


def test_a_mirror_stands_in_for_a_url_that_fails(
    fresh_nix: Nix, file_server: FileServer, tmp_path: Path
) -> None:
    data = b"weights\x00" * 1000
    file_server.files["/mirror/w.bin"] = data
    url = f"{file_server.url}/gone/w.bin"
    recipe = write_recipe(
        tmp_path,
        f'[[weights.sources]]\nkind = "url"\nurl = "{url}"\nmirrors = ["{file_server.url}/mirror/w.bin"]\n',
        data,
    )
    expression = export(recipe, tmp_path, file_server)
    done = fresh_nix.build(expression)
    assert done.returncode != 0 and f"unable to download '{url}'" in done.stderr, done.stderr
    [mirror] = fresh_nix.built(expression, "-A", 'sources."sub dir/w.bin".1')
    assert mirror.read_bytes() == data
    asked = len(file_server.requests)
    [package] = fresh_nix.built(expression)  # the mirror's fetch stands for the failing URL
    assert file_server.requests[asked:] == []
    assert (package / "sub dir" / "w.bin").read_bytes() == data
    assert package.name.endswith("-tiny-0.1-rc1")  # "~" is no character of Nix names
    assert "# Named tiny-0.1-rc1 in Nix" in expression.read_text()
    meta = fresh_nix.evaluate(f"(import {expression} {{}}).meta.description")
    assert meta == recipe.package.summary


def test_a_nested_member_of_a_deb_from_its_own_urls(
    fresh_nix: Nix, file_server: FileServer, tmp_path: Path
) -> None:
    # A zip inside a .deb's data.tar: built here with dpkg-style ar and tar layouts by hand.
    import io
    import tarfile
    import zipfile

    data = b"inner weights" * 100
    inner = io.BytesIO()
    with zipfile.ZipFile(inner, "w") as archive:
        archive.writestr("w.bin", data)
    tar = io.BytesIO()
    with tarfile.open(fileobj=tar, mode="w:xz") as archive:
        info = tarfile.TarInfo("./usr/share/tiny/w.zip")
        info.size = len(inner.getvalue())
        archive.addfile(info, io.BytesIO(inner.getvalue()))
    deb = b"!<arch>\n"
    for name, body in (
        (b"debian-binary", b"2.0\n"),
        (b"control.tar.xz", b""),
        (b"data.tar.xz", tar.getvalue()),
    ):
        deb += name.ljust(16) + b"0".ljust(12) + b"0".ljust(6) + b"0".ljust(6) + b"100644".ljust(8)
        deb += str(len(body)).encode().ljust(10) + b"`\n" + body + (b"\n" if len(body) % 2 else b"")
    file_server.files["/pool/tiny_1~0_all.deb"] = deb
    recipe = write_recipe(
        tmp_path,
        f"""[[weights.sources]]
kind = "deb"
package = "tiny"
version = "1~0"
sha256 = "{hashlib.sha256(deb).hexdigest()}"
urls = ["{file_server.url}/pool/tiny_1~0_all.deb"]
member = ["usr/share/tiny/w.zip", "w.bin"]
""",
        data,
    )
    text = nix_expression(recipe, recipe_dir=tmp_path)  # no debian_base: the source's own URL
    (tmp_path / "tiny.nix").write_text(text)
    [package] = fresh_nix.built(tmp_path / "tiny.nix")
    assert (package / "sub dir" / "w.bin").read_bytes() == data


def test_hub_files_at_a_commit_from_a_hub_endpoint(
    fresh_nix: Nix, file_server: FileServer, tmp_path: Path
) -> None:
    if not hasattr(weightpkg.core.recipe, "HfSource"):
        pytest.skip("this recipe model has no hf sources")
    data = b"hub weights" * 100
    revision = "0123456789abcdef0123456789abcdef01234567"
    file_server.files[f"/datasets/acme/tiny/resolve/{revision}/w.bin"] = data
    recipe = write_recipe(
        tmp_path,
        f'[[weights.sources]]\nkind = "hf"\nrepo = "acme/tiny"\nrepo-type = "dataset"\n'
        f'revision = "{revision}"\npath = "w.bin"\n',
        data,
    )
    text = nix_expression(recipe, recipe_dir=tmp_path, hf_endpoint=file_server.url)
    (tmp_path / "tiny.nix").write_text(text)
    [package] = fresh_nix.built(tmp_path / "tiny.nix")
    assert (package / "sub dir" / "w.bin").read_bytes() == data


def test_a_file_beside_the_recipe_whose_name_needs_quoting(fresh_nix: Nix, tmp_path: Path) -> None:
    data = b"beside the recipe"
    (tmp_path / "my dir").mkdir()
    (tmp_path / "my dir" / "a+b ${x}.bin").write_bytes(data)
    recipe = write_recipe(
        tmp_path, '[[weights.sources]]\nkind = "path"\npath = "my dir/a+b ${x}.bin"\n', data
    )
    text = nix_expression(recipe, recipe_dir=tmp_path)
    assert (tmp_path / "my dir" / "a+b ${x}.bin").as_uri() in text
    (tmp_path / "tiny.nix").write_text(text)
    [package] = fresh_nix.built(tmp_path / "tiny.nix")
    assert (package / "sub dir" / "w.bin").read_bytes() == data


def test_no_url_is_a_usage_error_naming_recipe_file_and_source(tmp_path: Path) -> None:
    digits = shipped("digits-mlp")
    with pytest.raises(UsageError) as caught:
        nix_expression(digits, recipe_dir=RECIPES)
    assert str(caught.value) == (
        f"{digits.origin}: input 'digits.csv.gz': no source gives a URL Nix can fetch:\n"
        "  pypi scikit-learn==1.9.1 (sklearn/datasets/data/digits.csv.gz) needs a PyPI files base URL "
        "(--pypi-base, or pypi for PyPI itself) to fetch "
        "scikit_learn-1.9.1-cp311-cp311-manylinux_2_27_x86_64.manylinux_2_28_x86_64.whl"
    )
    opencv = shipped("opencv-haarcascade-frontalface")
    with pytest.raises(UsageError) as caught:
        nix_expression(opencv, recipe_dir=RECIPES)
    message = str(caught.value)
    assert message.startswith(f"{opencv.origin}: weights 'haarcascade_frontalface_default.xml': no source")
    assert (
        "deb opencv-data 4.6.0+dfsg-12 (usr/share/opencv4/haarcascades/haarcascade_frontalface_default.xml)"
        " has no urls; it needs a Debian base URL (--debian-base) to fetch opencv-data_4.6.0+dfsg-12_all.deb"
        in message
    )
    assert "pypi opencv-python-headless==4.6.0.66" in message
    # Every file without a URL is named at once, each line beginning with the recipe.
    fashion = shipped("fashion-mnist-mlp")
    with pytest.raises(UsageError) as caught:
        nix_expression(fashion, recipe_dir=RECIPES)
    firsts = [line for line in str(caught.value).splitlines() if not line.startswith("  ")]
    assert firsts == [
        f"{fashion.origin}: input {name!r}: no source gives a URL Nix can fetch:"
        for name in (i.name for i in fashion.inputs if i.name != "train.py")
    ]
    # One source with a URL is enough; the other is noted in the expression.
    text = nix_expression(opencv, recipe_dir=RECIPES, debian_base="http://127.0.0.1:9/debian")
    assert "# skipped: pypi opencv-python-headless==4.6.0.66" in text
    recipe = write_recipe(
        tmp_path,
        '[[weights.sources]]\nkind = "pypi"\npackage = "x"\nversion = "1"\nmember = "w.bin"\n'
        f'sha256 = "{"a" * 64}"\n',
        b"w",
    )
    with pytest.raises(UsageError, match=r"pypi x==1 \(w.bin\) names no wheel file \(key 'wheel'\)"):
        nix_expression(recipe, recipe_dir=tmp_path, pypi_base="http://127.0.0.1:9/")
    with pytest.raises(UsageError, match=r"unknown placeholder \{project\}"):
        nix_expression(digits, recipe_dir=RECIPES, pypi_base="https://example.org/{project}/{filename}")
    with pytest.raises(UsageError, match="not an http, https or file URL"):
        nix_expression(digits, recipe_dir=RECIPES, pypi_base="ftp://example.org/")


def test_pypi_and_debian_urls_from_templates(tmp_path: Path) -> None:
    from weightpkg.exports.nix import PYPI_FILES

    text = nix_expression(
        shipped("opencv-haarcascade-frontalface"),
        recipe_dir=RECIPES,
        pypi_base=PYPI_FILES,
        debian_base="http://127.0.0.1:9/pool/{package}/{filename}",
    )
    assert (
        '"https://files.pythonhosted.org/packages/cp36/o/opencv-python-headless/'
        'opencv_python_headless-4.6.0.66-cp36-abi3-manylinux_2_17_x86_64.manylinux2014_x86_64.whl"'
    ) in text
    assert '"http://127.0.0.1:9/pool/opencv-data/opencv-data_4.6.0+dfsg-12_all.deb"' in text


# --- the text itself ------------------------------------------------------------------------------


def test_the_export_is_deterministic() -> None:
    options = {"pypi_base": "http://127.0.0.1:9/pypi", "debian_base": "http://127.0.0.1:9/debian"}
    for name in SHIPPED:
        first = nix_expression(shipped(name), recipe_dir=RECIPES, **options)
        again = nix_expression(weightpkg.load_recipe(RECIPES / f"{name}.toml"), recipe_dir=RECIPES, **options)
        assert first == again
        assert re.search(r"20[0-9][0-9]-[01][0-9]-[0-3][0-9]", first) is None  # no dates


TRICKY = [
    "",
    'a "quoted" word',
    "back\\slash at the end\\",
    "${not.interpolated} and $plain and $${double}",
    "''two quotes'' and '''three''' and ''${",
    "line\nbreaks\r\nand\ttabs",
    "\x01\x1f control, ünïcödé, 🦙",
]


def test_nix_reads_every_string_as_written(nix: Nix) -> None:
    listed = " ".join(nix_string(s) for s in TRICKY)
    assert nix.evaluate(f"[ {listed} ]") == TRICKY
    blocks = [s + "\n" for s in TRICKY if "\r" not in s] + ["\n  indented\n\n    more\n", "  \n x\n"]
    listed = " ".join(nix_indented_string(s, "    ") for s in blocks)
    assert nix.evaluate(f"[ {listed} ]") == blocks
    with pytest.raises(UsageError, match="NUL"):
        nix_string("a\x00b")


def test_the_helper_reaches_the_builder_as_written(nix: Nix, server: FileServer, tmp_path: Path) -> None:
    expression = export(shipped("digits-mlp"), tmp_path, server)
    assert nix.evaluate(f"builtins.readFile (import {expression} {{}}).helper") == HELPER


def test_store_names_are_ones_nix_accepts(nix: Nix) -> None:
    names = [
        "dataset-fashion-mnist_0.0~git20200523.55506a9-1_all.deb",
        ".hidden",
        "sub dir/w.bin",
        "é" * 300,
        "",
    ]
    for raw in names:
        name = store_name(raw)
        assert store_name_problem(name) is None, name
        drv = nix.evaluate(
            f'(derivation {{ name = {nix_string(name)}; system = "x"; builder = "/bin/sh"; }}).drvPath'
        )
        assert isinstance(drv, str) and drv.endswith(f"-{name}.drv")
    assert store_name_problem("x" * 207) is None
    # The rule is Nix's: 208 characters are one too many once ".drv" is added.
    for bad in ("a~b", "a b", "x" * 208, ""):
        assert store_name_problem(bad) is not None
        done = nix.run(
            "nix-instantiate",
            "--eval",
            "--strict",
            "-E",
            f'(derivation {{ name = {nix_string(bad)}; system = "x"; builder = "/bin/sh"; }}).drvPath',
        )
        assert done.returncode != 0, bad


def test_unavailable_inputs_are_named_not_fetched() -> None:
    text = nix_expression(shipped("silero-vad"), recipe_dir=RECIPES, pypi_base="http://127.0.0.1:9/")
    assert "#   training-corpora (data): the training data is not published" in text
    assert "No rebuild: training data and training code are not public." in text
    assert "rebuild =" not in text and "build = derivation" not in text


def test_the_cli_exports_an_expression_nix_builds(nix: Nix, server: FileServer, tmp_path: Path, cli) -> None:
    out = tmp_path / "silero.nix"
    silero = str(RECIPES / "silero-vad.toml")
    bases = ["--pypi-base", f"{server.url}/pypi", "--debian-base", f"{server.url}/debian"]
    done = cli("export", "nix", *bases, "--path-base", f"{server.url}/recipes", "-o", str(out), silero)
    assert done.returncode == 0, done.stderr
    [package] = nix.built(out)
    recipe = shipped("silero-vad")
    for weight in recipe.weights:
        assert sha256_file(package / weight.path) == weight.sha256.hex
    again = cli("export", "nix", *bases, "--path-base", f"{server.url}/recipes", silero)
    assert again.stdout == out.read_text()  # deterministic, stdout or file
    no_base = cli("export", "nix", silero)
    assert no_base.returncode == 2 and "Traceback" not in no_base.stderr
    assert "pypi_base" in no_base.stderr or "--pypi-base" in no_base.stderr
    pypi = cli("export", "nix", "--pypi-base", "pypi", silero)
    assert pypi.returncode == 0 and "https://files.pythonhosted.org/packages/py3/s/silero-vad/" in pypi.stdout
