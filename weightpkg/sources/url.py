"""Plain URLs and their mirrors: streamed in 1 MiB chunks, resumed with Range after a drop."""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from ..core.digest import CHUNK_SIZE
from ..core.recipe import UrlSource
from ..errors import FetchError
from . import Candidate, FetchContext, Sink, copy_into

#: Attempts on one URL while each attempt makes progress (a dropped connection is resumed).
MAX_ATTEMPTS = 5


def candidates(source: UrlSource, ctx: FetchContext) -> list[Candidate]:
    return [Candidate(f"url {u}", _fetcher(u, ctx)) for u in source.urls]


def _fetcher(url: str, ctx: FetchContext):
    def fetch(sink: Sink) -> None:
        download(url, sink, ctx)

    return fetch


def download(url: str, sink: Sink, ctx: FetchContext) -> None:
    """Bring the bytes at ``url`` into ``sink``, resuming from ``sink.offset`` when it can.

    A dropped connection or a short body is retried (resuming) while each attempt brings
    bytes; FetchError says which URL failed and why, in one line.
    """
    if url.startswith("file://"):
        _copy_file_url(url, sink, ctx)
        return
    import requests
    import urllib3

    attempts = 0
    while True:
        attempts += 1
        start = sink.offset
        received = _Counter()
        headers = {"Accept-Encoding": "identity"}
        if start:
            headers["Range"] = f"bytes={start}-"
        try:
            with ctx.session.get(
                url,
                headers=headers,
                stream=True,
                timeout=(ctx.connect_timeout, ctx.read_timeout),
            ) as response:
                _receive(url, response, sink, start, received, ctx)
                return
        except _RangeRejected:
            sink.restart()
            if attempts >= MAX_ATTEMPTS:
                raise FetchError(url, ["server keeps rejecting range requests"]) from None
            continue
        except requests.exceptions.TooManyRedirects:
            raise FetchError(url, ["too many redirects"]) from None
        except (requests.exceptions.Timeout, urllib3.exceptions.ReadTimeoutError) as exc:
            failure = f"timed out ({_reason(exc)})"
        except _ShortBody as exc:
            failure = str(exc)
        except (
            requests.exceptions.ConnectionError,
            requests.exceptions.ChunkedEncodingError,
            urllib3.exceptions.HTTPError,
        ) as exc:
            failure = _reason(exc)
        except requests.exceptions.RequestException as exc:
            raise FetchError(url, [_reason(exc)]) from None
        if not received.bytes or attempts >= MAX_ATTEMPTS:
            if attempts > 1:
                failure += f" (after {attempts} attempts, {sink.offset} bytes kept for resuming)"
            raise FetchError(url, [failure])


class _RangeRejected(Exception):
    """What we hold does not fit what the server has now; start again from zero."""


class _ShortBody(Exception):
    """The server closed the body before the length it announced."""


class _Counter:
    def __init__(self) -> None:
        self.bytes = 0


_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")
_UNSATISFIED_RANGE = re.compile(r"bytes \*/(\d+)")


def _receive(url: str, response: Any, sink: Sink, start: int, received: _Counter, ctx: FetchContext) -> None:
    status = response.status_code
    expected = getattr(sink, "expected_size", None)
    if status == 416 and start:
        match = _UNSATISFIED_RANGE.fullmatch(response.headers.get("Content-Range", ""))
        if match and int(match.group(1)) == start:
            return  # we already hold the whole file
        raise _RangeRejected
    if status not in (200, 206):
        reason = f"HTTP {status} {response.reason or ''}".strip()
        raise FetchError(url, [reason])
    total: int | None
    if status == 206 and start:
        match = _CONTENT_RANGE.fullmatch(response.headers.get("Content-Range", ""))
        if not match or int(match.group(1)) != start:
            raise _RangeRejected
        total = int(match.group(3)) if match.group(3) != "*" else None
        if total is not None and (int(match.group(2)) != total - 1 or total != (expected or total)):
            raise _RangeRejected
    else:
        if start:
            sink.restart()  # the server ignored Range: take the whole body again
        length = response.headers.get("Content-Length")
        total = int(length) if length and length.isdigit() else None
    label = f"url {url}"
    # Read the raw stream (we asked for identity encoding): urllib3 hands over what arrived
    # before a dropped connection, where iter_content would lose up to a whole chunk.
    for chunk in response.raw.stream(CHUNK_SIZE, decode_content=False):
        if chunk:
            sink.write(chunk)
            received.bytes += len(chunk)
            ctx.report(label, sink.offset, total)
    if total is not None and sink.offset < total:
        raise _ShortBody(f"body ended after {sink.offset} of {total} bytes")


def _reason(exc: Exception) -> str:
    """The innermost cause, without urllib3's object reprs."""
    seen = exc
    while True:
        inner = seen.__context__ or seen.__cause__
        args = getattr(seen, "args", ())
        if args and isinstance(args[0], Exception):
            inner = args[0]
        reason = getattr(seen, "reason", None)
        if isinstance(reason, Exception):
            inner = reason
        if inner is None or inner is seen:
            break
        seen = inner
    text = str(seen) or type(seen).__name__
    if "Connection refused" in text:
        return "connection refused"
    if "Read timed out" in text:
        return "read timed out"
    if "IncompleteRead" in text or "Connection broken" in text:
        return f"connection broken: {text.split(':', 1)[-1].strip()}"
    if "Name or service not known" in text or "Failed to resolve" in text or "nodename" in text:
        return "host name could not be resolved"
    if "Connection reset" in text:
        return "connection reset by peer"
    return text.replace("\n", " ")[:300]


def _copy_file_url(url: str, sink: Sink, ctx: FetchContext) -> None:
    parts = urlsplit(url)
    if parts.netloc not in ("", "localhost"):
        raise FetchError(url, ["file:// URLs must name a local file"])
    path = Path(unquote(parts.path))
    if sink.offset:
        sink.restart()
    try:
        if not stat.S_ISREG(path.stat().st_mode):  # before open: opening a FIFO would block
            raise FetchError(url, ["not a regular file"])
        with open(path, "rb", buffering=0) as handle:
            info = os.fstat(handle.fileno())
            if not stat.S_ISREG(info.st_mode):
                raise FetchError(url, ["not a regular file"])
            copy_into(handle, sink, f"url {url}", ctx, info.st_size)
    except FileNotFoundError:
        raise FetchError(url, ["no such file"]) from None
    except OSError as exc:
        raise FetchError(url, [exc.strerror or str(exc)]) from None
