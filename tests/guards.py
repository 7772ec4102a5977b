"""Guards for tests of code that might loop forever or raise the wrong thing."""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import weightpkg
from weightpkg.core.keypath import render
from weightpkg.errors import RecipeError

HANG_SECONDS = 5.0


class Hang(BaseException):
    """Raised by the alarm; a BaseException so that no ``except Exception`` in the code swallows it."""


@contextlib.contextmanager
def deadline(seconds: float = HANG_SECONDS) -> Iterator[None]:
    """Fail instead of hanging forever (POSIX main thread only; elsewhere unguarded)."""
    if not hasattr(signal, "setitimer") or threading.current_thread() is not threading.main_thread():
        yield  # pragma: no cover
        return

    def on_alarm(signum: int, frame: Any) -> None:
        raise Hang

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    except Hang:
        pytest.fail(f"did not return within {seconds} s (an endless loop)")
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def recipe_error(path: Path) -> RecipeError:
    """What ``load_recipe`` raises for ``path``; any other outcome fails the test in one line."""
    other = "nothing"
    with deadline():
        try:
            weightpkg.load_recipe(path)
        except RecipeError as exc:
            return exc
        except Exception as exc:  # reported below, outside the handler, without its long traceback
            other = f"{type(exc).__name__}: {str(exc)[:200]}"
    pytest.fail(f"load_recipe({path}) raised {other}, not RecipeError", pytrace=False)


def key_paths(value: Any, parts: tuple[Any, ...] = ()) -> Iterator[str]:
    """Every key path of parsed TOML, rendered as lint shows it."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield render([*parts, key])
            yield from key_paths(item, (*parts, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield render([*parts, index])
            yield from key_paths(item, (*parts, index))
