"""Real weightpkg processes for the crash, concurrency and full-disk tests: started in the
background, killed with real signals, waited for with timeouts so that no test can hang."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from .conftest import REPO

#: The longest any one weightpkg process in these tests may take before the test fails.
PROCESS_TIMEOUT_S = 120.0


#: Runs weightpkg, SIGKILLing itself at one exact step: ``os.<call>`` with a path (first or
#: second argument) ending with ``<suffix>``, ``before`` or ``after`` the call
#: (``WEIGHTPKG_TEST_KILL_AT=call:suffix:when``). Where a random time cannot aim (a step of a
#: millisecond), the kill is aimed at the code.
_KILL_AT = """
import os, runpy, signal, sys
call, suffix, when = os.environ.pop("WEIGHTPKG_TEST_KILL_AT").split(":")
real = getattr(os, call)
def aimed(*args, **kwargs):
    hit = any(str(arg).endswith(suffix) for arg in args[:2])
    if hit and when == "before":
        os.kill(os.getpid(), signal.SIGKILL)
    result = real(*args, **kwargs)
    if hit and when == "after":
        os.kill(os.getpid(), signal.SIGKILL)
    return result
setattr(os, call, aimed)
sys.argv[0] = "weightpkg"
runpy.run_module("weightpkg", run_name="__main__", alter_sys=True)
"""


def start(*args: str, env: dict[str, str] | None = None, kill_at: str | None = None) -> subprocess.Popen[str]:
    """``python -m weightpkg ARGS`` in the background, its output captured; ``kill_at``
    (``call:suffix:before|after``) makes it SIGKILL itself at that step."""
    head = ["-c", _KILL_AT] if kill_at else ["-m", "weightpkg"]
    extra = {"WEIGHTPKG_TEST_KILL_AT": kill_at} if kill_at else {}
    return subprocess.Popen(
        [sys.executable, *head, *args],
        cwd=REPO,
        env={**os.environ, **(env or {}), **extra},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(process: subprocess.Popen[str], timeout: float = PROCESS_TIMEOUT_S) -> tuple[int, str, str]:
    """Exit status, stdout and stderr once ``process`` ends; killed (and the test failed) if it
    does not end within ``timeout`` seconds."""
    try:
        out, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        out, err = process.communicate(timeout=30)
        raise AssertionError(f"{process.args} did not finish in {timeout} s:\n{out}\n{err}") from None
    return process.returncode, out, err


def sigkill(process: subprocess.Popen[str]) -> bool:
    """SIGKILL ``process`` and reap it; False when it had already ended by itself."""
    if process.poll() is not None:
        finish(process)
        return False
    os.kill(process.pid, signal.SIGKILL)
    code, _, _ = finish(process, timeout=30)
    return code == -signal.SIGKILL


def wait_until(condition: Callable[[], bool], timeout: float, interval: float = 0.002) -> bool:
    """Poll ``condition`` until it holds (True) or ``timeout`` seconds pass (False)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(interval)
    return condition()


Condition = Callable[[], bool]


def any_of(*conditions: Condition) -> Condition:
    return lambda: any(condition() for condition in conditions)


def ended(process: subprocess.Popen[str]) -> Condition:
    return lambda: process.poll() is not None


def exists(path: Path) -> Condition:
    return path.exists


def grown_to(path: Path, size: int) -> Condition:
    """``path`` holds at least ``size`` bytes."""
    return lambda: file_size(path) >= size


def has_entries(store: Path) -> Condition:
    """Something is in ``store/entries/``."""
    folder = store / "entries"
    return lambda: folder.is_dir() and any(folder.iterdir())


def cli(*args: str, timeout: float = PROCESS_TIMEOUT_S) -> subprocess.CompletedProcess[str]:
    """Run weightpkg to completion (with a timeout) in the foreground."""
    return subprocess.run(
        [sys.executable, "-m", "weightpkg", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


def store_verify(store: Path) -> subprocess.CompletedProcess[str]:
    return cli("--store", str(store), "store", "verify")


def file_size(path: Path) -> int:
    """Size of ``path``, 0 when it is not there."""
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def alive(pid: int) -> bool:
    """Whether ``pid`` is a live process (a zombie waiting to be reaped counts as dead)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    state = next((line.split()[1] for line in status.splitlines() if line.startswith("State:")), "?")
    return state not in ("Z", "X")


def working_in(root: Path) -> list[int]:
    """Live processes whose working directory is under ``root`` (a build and what it started,
    seen from outside any namespace it runs in)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cwd = os.readlink(entry / "cwd")
        except OSError:
            continue
        if (cwd == str(root) or cwd.startswith(f"{root}/")) and alive(int(entry.name)):
            found.append(int(entry.name))
    return sorted(found)


def no_traceback(stderr: str) -> bool:
    """No Python traceback of weightpkg's own (a build's output is echoed indented)."""
    return not any(line.startswith("Traceback") for line in stderr.splitlines())
