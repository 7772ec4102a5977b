"""When to try a URL again: bounded attempts, exponential backoff, and the server's Retry-After.

A transient failure (a dropped connection, a stall past the read timeout, HTTP 408/429/5xx) is
retried on the same URL; an attempt that brought bytes resets the count of fruitless ones, so a
flaky link still finishes, while a server that keeps failing is given up within seconds and the
next mirror is tried. Nothing here sleeps: the caller does, so the policy stays pure.
"""

from __future__ import annotations

import email.utils
import re
import time
from dataclasses import dataclass

#: Attempts on one URL, whatever each brought.
MAX_ATTEMPTS = 12
#: Attempts in a row that brought no bytes before the URL is given up.
MAX_FRUITLESS = 4
#: The first wait after a fruitless attempt, doubled after each further one, up to BACKOFF_MAX_S.
BACKOFF_FIRST_S = 0.5
BACKOFF_MAX_S = 8.0
#: The longest Retry-After honoured; a server asking for more is given up (say so, try a mirror).
RETRY_AFTER_MAX_S = 30.0
#: Statuses that say "not now" rather than "not here".
TRANSIENT_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})

#: What a 206 answer says it holds, and what a 416 says the whole file is: how a resumed download
#: checks that the server resumes where the bytes held end.
CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")
UNSATISFIED_RANGE = re.compile(r"bytes \*/(\d+)")


class Unavailable(Exception):
    """The server answered a status in TRANSIENT_STATUSES: it may answer later."""

    def __init__(self, reason: str, retry_after: float | None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after


def raise_if_unavailable(status: int, reason: str, retry_after: str | None) -> None:
    """Unavailable (with the Retry-After it asks for) when ``status`` says "not now"."""
    if status in TRANSIENT_STATUSES:
        raise Unavailable(reason, retry_after_seconds(retry_after))


class Received:
    """Bytes one attempt brought: an attempt that brought some is progress, retried at once."""

    def __init__(self) -> None:
        self.bytes = 0


def retry_after_seconds(value: str | None, now: float | None = None) -> float | None:
    """Seconds a Retry-After header asks for (delta-seconds or an HTTP date); None if absent or
    unreadable, in which case the backoff decides."""
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


@dataclass
class Retries:
    """The attempts made on one URL so far, and the wait before the next."""

    attempts: int = 0
    fruitless: int = 0

    def start(self) -> None:
        self.attempts += 1

    def wait_before_next(self, progressed: bool, retry_after: float | None = None) -> float | None:
        """Seconds to wait before trying again, or None when the URL should be given up."""
        self.fruitless = 0 if progressed else self.fruitless + 1
        if self.attempts >= MAX_ATTEMPTS or self.fruitless >= MAX_FRUITLESS:
            return None
        if retry_after is not None:
            return retry_after if retry_after <= RETRY_AFTER_MAX_S else None
        if progressed:
            return 0.0
        return min(BACKOFF_MAX_S, BACKOFF_FIRST_S * 2 ** (self.fruitless - 1))

    def given_up(self, failure: str, held: int, retry_after: float | None = None) -> str:
        """The one-line reason, with how hard it was tried and what is kept for resuming."""
        if retry_after is not None and retry_after > RETRY_AFTER_MAX_S:
            failure += (
                f"; the server asks to retry after {retry_after:g} s, "
                f"longer than weightpkg waits ({RETRY_AFTER_MAX_S:g} s)"
            )
        if self.attempts > 1:
            kept = f", {held} bytes kept for resuming" if held else ""
            failure += f" (after {self.attempts} attempts{kept})"
        return failure
