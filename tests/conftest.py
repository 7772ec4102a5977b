"""Fixtures: real loopback servers, an isolated store and pip configuration, the CLI runner."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from .figures import summary_lines
from .servers import FileServer, SimpleIndex

REPO = Path(__file__).resolve().parent.parent
CORPORA = REPO.parent / "shared" / "corpora"


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """The hardening figures (docs/threat-model.md), for the tests that ran."""
    if lines := summary_lines():
        terminalreporter.section("hardening figures")
        for line in lines:
            terminalreporter.write_line(line)


def require_peer(name: str) -> str:
    """Path of a real third-party program; skip if absent, fail if WEIGHTPKG_REQUIRE_PEERS=1."""
    found = shutil.which(name)
    if found is None:
        message = f"{name} is not installed (apt-get install the package that provides it)"
        if os.environ.get("WEIGHTPKG_REQUIRE_PEERS") == "1":
            pytest.fail(f"required peer missing: {message}")
        pytest.skip(message)
    return found


WHEELHOUSE = REPO / "tests" / ".wheelhouse"


def wheelhouse_files(pattern: str) -> list[Path]:
    """Real packages tests/wheelhouse.py downloaded (README's test command); skip when there
    are none, fail instead if WEIGHTPKG_REQUIRE_PEERS=1."""
    found = sorted(WHEELHOUSE.glob(pattern))
    if not found:
        message = f"no {pattern} in {WHEELHOUSE}: run python tests/wheelhouse.py (README's test command)"
        if os.environ.get("WEIGHTPKG_REQUIRE_PEERS") == "1":
            pytest.fail(f"required peer missing: {message}")
        pytest.skip(message)
    return found


def serve_wheels(simple_index: SimpleIndex, monkeypatch: pytest.MonkeyPatch, *wheels: Path) -> None:
    """pip pointed at a loopback index holding ``wheels``."""
    for wheel in wheels:
        simple_index.add_wheel(wheel)
    monkeypatch.setenv("PIP_INDEX_URL", simple_index.url + "/simple")


@pytest.fixture
def file_server() -> Iterator[FileServer]:
    server = FileServer().start()
    yield server
    server.stop()


@pytest.fixture
def simple_index() -> Iterator[SimpleIndex]:
    server = SimpleIndex().start()
    yield server
    server.stop()


@pytest.fixture
def store_root(tmp_path: Path) -> Path:
    return tmp_path / "store"


@pytest.fixture(autouse=True)
def isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No test touches the user's store or pip configuration, or anything off loopback."""
    monkeypatch.setenv("WEIGHTPKG_STORE", str(tmp_path / "default-store"))
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("PIP_CACHE_DIR", str(tmp_path / "pip-cache"))
    monkeypatch.setenv("PIP_INDEX_URL", "http://127.0.0.1:9/simple")  # closed port unless a test serves one
    monkeypatch.delenv("PIP_EXTRA_INDEX_URL", raising=False)
    monkeypatch.delenv("PIP_FIND_LINKS", raising=False)
    monkeypatch.setenv("PIP_NO_INPUT", "1")
    monkeypatch.setenv("PIP_RETRIES", "0")
    monkeypatch.setenv("PIP_TIMEOUT", "10")
    monkeypatch.setenv("PIP_DISABLE_PIP_VERSION_CHECK", "1")
    for proxy in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(proxy, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")


def run_cli(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None,
            timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """Run the real ``weightpkg`` entry point in a subprocess (as a distro build would)."""
    full_env = dict(os.environ)
    if env:
        full_env.update(env)
    return subprocess.run(
        [sys.executable, "-m", "weightpkg", *args],
        capture_output=True, text=True, env=full_env, cwd=cwd or REPO, timeout=timeout,
    )


@pytest.fixture
def cli():
    return run_cli
