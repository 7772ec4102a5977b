"""Plain URLs and their mirrors: streamed in 1 MiB chunks, resumed with Range after a drop,
retried with bounded backoff while the failure looks transient."""

from __future__ import annotations

import os
import stat
import time
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from ..core.digest import CHUNK_SIZE
from ..core.recipe import UrlSource
from ..errors import FetchError
from . import Candidate, FetchContext, Sink, copy_into
from .retry import (
    CONTENT_RANGE,
    MAX_ATTEMPTS,
    UNSATISFIED_RANGE,
    Received,
    Retries,
    Unavailable,
    raise_if_unavailable,
)


def candidates(source: UrlSource, ctx: FetchContext) -> list[Candidate]:
    return [Candidate(f"url {u}", _fetcher(u, ctx)) for u in source.urls]


def _fetcher(url: str, ctx: FetchContext):
    def fetch(sink: Sink) -> None:
        download(url, sink, ctx)

    return fetch


def download(url: str, sink: Sink, ctx: FetchContext) -> None:
    """Bring the bytes at ``url`` into ``sink``, resuming from ``sink.offset`` when it can.

    Transient failures (a dropped connection, a short body, a stall, HTTP 408/429/5xx) are
    retried on this URL with bounded backoff, honouring Retry-After; a refused connection, an
    unknown host, a redirect loop or another status fail at once, so the next mirror is tried.
    FetchError says which URL failed and why, in one line.
    """
    if url.startswith("file://"):
        _copy_file_url(url, sink, ctx)
        return
    import requests
    import urllib3

    retries = Retries()
    while True:
        retries.start()
        start = sink.offset
        received = Received()
        asked: float | None = None
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
            if retries.attempts >= MAX_ATTEMPTS:
                raise FetchError(url, ["server keeps rejecting range requests"]) from None
            continue
        except Unavailable as exc:
            failure, asked = exc.reason, exc.retry_after
        except requests.exceptions.TooManyRedirects:
            raise FetchError(url, [f"too many redirects (more than {ctx.session.max_redirects})"]) from None
        except requests.exceptions.ConnectTimeout:
            failure = f"no connection within {ctx.connect_timeout:g} s (the connect timeout)"
        except (requests.exceptions.Timeout, urllib3.exceptions.ReadTimeoutError):
            failure = f"stalled: nothing received for {ctx.read_timeout:g} s (the read timeout)"
        except _ShortBody as exc:
            failure = str(exc)
        except (
            requests.exceptions.ConnectionError,
            requests.exceptions.ChunkedEncodingError,
            urllib3.exceptions.HTTPError,
        ) as exc:
            failure = _reason(exc)
            if failure in _NOT_THERE:
                raise FetchError(url, [failure]) from None
        except requests.exceptions.RequestException as exc:
            raise FetchError(url, [_reason(exc)]) from None
        wait = retries.wait_before_next(bool(received.bytes), asked)
        if wait is None:
            raise FetchError(url, [retries.given_up(failure, sink.offset, asked)])
        if wait:
            time.sleep(wait)


#: Causes that mean nothing answers at this address: retrying would only delay the next mirror.
_NOT_THERE = ("connection refused", "host name could not be resolved")


class _RangeRejected(Exception):
    """What we hold does not fit what the server has now; start again from zero."""


class _ShortBody(Exception):
    """The server closed the body before the length it announced."""


def _receive(url: str, response: Any, sink: Sink, start: int, received: Received, ctx: FetchContext) -> None:
    import urllib3

    status = response.status_code
    expected = getattr(sink, "expected_size", None)
    if status == 416 and start:
        match = UNSATISFIED_RANGE.fullmatch(response.headers.get("Content-Range", ""))
        if match and int(match.group(1)) == start:
            return  # we already hold the whole file
        raise _RangeRejected
    if status not in (200, 206):
        reason = f"HTTP {status} {response.reason or ''}".strip()
        raise_if_unavailable(status, reason, response.headers.get("Retry-After"))
        raise FetchError(url, [reason])
    total: int | None
    if status == 206 and start:
        match = CONTENT_RANGE.fullmatch(response.headers.get("Content-Range", ""))
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
    try:
        for chunk in response.raw.stream(CHUNK_SIZE, decode_content=False):
            if chunk:
                sink.write(chunk)
                received.bytes += len(chunk)
                ctx.report(label, sink.offset, total)
    except urllib3.exceptions.ProtocolError as exc:
        # Said in the file's terms: urllib3 counts this attempt's bytes only.
        cause = "" if "IncompleteRead" in str(exc) else f" ({_reason(exc)})"
        of = f" of {total}" if total is not None else ""
        raise _ShortBody(f"body ended after {sink.offset}{of} bytes{cause}") from None
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
