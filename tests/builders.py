"""Build real artefacts for the tests: wheels (with nested zips), .debs (with dpkg-deb),
and safetensors files."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import shutil
import stat
import struct
import subprocess
import zipfile
from collections.abc import Sequence
from pathlib import Path


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def zip_bytes(members: dict[str, bytes], compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buffer.getvalue()


def build_wheel(folder: Path, name: str, version: str, members: dict[str, bytes],
                tag: str = "py3-none-any", metadata_extra: str = "") -> Path:
    """A valid wheel (METADATA, WHEEL, RECORD with hashes) holding ``members``; ``metadata_extra``
    is appended to METADATA (header lines such as ``License-Expression: MIT``)."""
    dist = f"{name.replace('-', '_')}-{version}"
    info = f"{dist}.dist-info"
    files = dict(members)
    files[f"{info}/METADATA"] = (
        f"Metadata-Version: 2.4\nName: {name}\nVersion: {version}\n{metadata_extra}".encode()
    )
    files[f"{info}/WHEEL"] = (
        f"Wheel-Version: 1.0\nGenerator: weightpkg-tests\nRoot-Is-Purelib: true\nTag: {tag}\n".encode()
    )
    record = ""
    for path, data in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record += f"{path},sha256={digest},{len(data)}\n"
    record += f"{info}/RECORD,,\n"
    files[f"{info}/RECORD"] = record.encode()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{dist}-{tag}.whl"
    path.write_bytes(zip_bytes(files))
    return path


def build_deb(folder: Path, package: str, version: str, files: dict[str, bytes]) -> Path:
    """A real .deb built by dpkg-deb, holding ``files`` (paths relative to /)."""
    if shutil.which("dpkg-deb") is None:
        raise RuntimeError("dpkg-deb is not installed")
    root = folder / f"{package}-root"
    (root / "DEBIAN").mkdir(parents=True, exist_ok=True)
    (root / "DEBIAN" / "control").write_text(
        f"Package: {package}\nVersion: {version}\nArchitecture: all\n"
        "Maintainer: weightpkg tests <tests@weightpkg.invalid>\nDescription: test data\n"
    )
    for rel, data in files.items():
        target = root / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    out = folder / f"{package}_{version}_all.deb"
    subprocess.run(
        ["dpkg-deb", "--root-owner-group", "-Zxz", "--build", str(root), str(out)],
        check=True, capture_output=True,
    )
    return out


def safetensors_bytes(tensors: dict[str, tuple[str, list[int], bytes]],
                      metadata: dict[str, str] | None = None) -> bytes:
    """A safetensors file from (dtype, shape, raw bytes) per name, laid out in name order."""
    header: dict[str, object] = {}
    offset = 0
    blobs = []
    for name in sorted(tensors):
        dtype, shape, raw = tensors[name]
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + len(raw)]}
        offset += len(raw)
        blobs.append(raw)
    if metadata:
        header["__metadata__"] = metadata
    text = json.dumps(header, sort_keys=True).encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + b"".join(blobs)


def recipe_text(weights: list[dict], *, name: str = "test-pkg", extra: str = "") -> str:
    """A minimal valid recipe publishing ``weights`` (each: path, sha256, size, format, sources,
    and optionally content-sha256)."""
    out = [
        "schema = 1",
        "[package]",
        f'name = "{name}"',
        'version = "1.0"',
        'summary = "a test package"',
        "[license]",
        'weights = "MIT"',
        'upstream = "MIT"',
    ]
    for w in weights:
        out += [
            "[[weights]]",
            f'path = "{w["path"]}"',
            f'sha256 = "{w["sha256"]}"',
            f"size = {w['size']}",
            f'format = "{w.get("format", "other")}"',
        ]
        if "content-sha256" in w:
            out.append(f'content-sha256 = "{w["content-sha256"]}"')
        for source in w["sources"]:
            out.append("[[weights.sources]]")
            for key, value in source.items():
                out.append(f"{key} = {json.dumps(value)}")
    return "\n".join(out) + "\n" + extra


def write_recipe(folder: Path, weights: list[dict], *, file: str = "pkg.toml", extra: str = "") -> Path:
    """``recipe_text(weights)`` written to ``folder/file``; returns the recipe's path."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / file
    path.write_text(recipe_text(weights, extra=extra))
    return path


def pinned(path: str, data: bytes, sources: list[dict], fmt: str = "other") -> dict:
    """One ``[[weights]]`` entry for recipe_text, pinned to ``data``."""
    return {"path": path, "sha256": sha256(data), "size": len(data), "format": fmt, "sources": sources}


SYMLINK_ATTR = (stat.S_IFLNK | 0o777) << 16


def patch_zip_member(path: Path, member: str, *, external_attr: int | None = None,
                     flag_bits: int | None = None) -> None:
    """Rewrite one member's external attributes and/or general-purpose flags in place, in both
    its local header and the central directory (zipfile itself resets flag_bits when writing)."""
    data = bytearray(path.read_bytes())
    end = data.rfind(b"PK\x05\x06")
    count = struct.unpack_from("<H", data, end + 10)[0]
    position = struct.unpack_from("<I", data, end + 16)[0]
    found = False
    for _ in range(count):
        assert data[position:position + 4] == b"PK\x01\x02", "not a central directory entry"
        name_len, extra_len, comment_len = struct.unpack_from("<HHH", data, position + 28)
        name = bytes(data[position + 46:position + 46 + name_len]).decode()
        if name == member:
            found = True
            local = struct.unpack_from("<I", data, position + 42)[0]
            if flag_bits is not None:
                struct.pack_into("<H", data, position + 8, flag_bits)
                struct.pack_into("<H", data, local + 6, flag_bits)
            if external_attr is not None:
                struct.pack_into("<I", data, position + 38, external_attr)
        position += 46 + name_len + extra_len + comment_len
    if not found:
        raise KeyError(member)
    path.write_bytes(bytes(data))


def report_lines(stdout: str) -> list[str]:
    """verify's lines without the ML-Policy class line (tests/test_policy.py covers that)."""
    return [line for line in stdout.splitlines() if ": ML-Policy class: " not in line]


def input_tables(
    files: dict[str, tuple[str, bytes]], *, folder: str = "", pins: dict[str, str] | None = None
) -> str:
    """``[[inputs]]`` tables for files beside a recipe (path sources under ``folder``), each
    given as name → (role, bytes) and pinned to its bytes unless ``pins`` names another sha256."""
    out = ""
    for name, (role, data) in files.items():
        pin = (pins or {}).get(name) or hashlib.sha256(data).hexdigest()
        out += (
            f'\n[[inputs]]\nname = "{name}"\nrole = "{role}"\npath = "{name}"\nlicense = "MIT"\n'
            f'sha256 = "{pin}"\nsize = {len(data)}\navailable = true\n'
            f'[[inputs.sources]]\nkind = "path"\npath = "{folder}{name}"\n'
        )
    return out


def toy_build_recipe(
    folder: Path,
    *,
    script: str,
    data: bytes,
    published: bytes,
    data_pin: str | None = None,
    requirements: Sequence[str] = (),
    outputs: Sequence[str] = ("out.bin",),
    env: dict[str, str] | None = None,
) -> Path:
    """``folder/toy.toml``: a bit-identical recipe publishing ``published`` as out.bin, whose
    build runs ``script`` (build.py) over ``data`` (data.txt), both pinned inputs under src/."""
    (folder / "src").mkdir(parents=True, exist_ok=True)
    (folder / "src" / "build.py").write_text(script)
    (folder / "src" / "data.txt").write_bytes(data)
    (folder / "src" / "out.bin").write_bytes(published)
    inputs = input_tables(
        {"data.txt": ("data", data), "build.py": ("code", script.encode())},
        folder="src/",
        pins={"data.txt": data_pin} if data_pin else None,
    )
    env_table = "[build.env]\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in env.items()) if env else ""
    recipe = folder / "toy.toml"
    recipe.write_text(
        f"""\
schema = 1
[package]
name = "toy"
version = "1.0"
summary = "a toy build"
[license]
weights = "MIT"
upstream = "MIT"
[[weights]]
path = "out.bin"
sha256 = "{sha256(published)}"
size = {len(published)}
format = "other"
[[weights.sources]]
kind = "path"
path = "src/out.bin"
{inputs}
[build]
command = ["python", "build.py"]
outputs = {json.dumps(list(outputs))}
requirements = {json.dumps(list(requirements))}
{env_table}[reproducibility]
level = "bit-identical"
"""
    )
    return recipe
