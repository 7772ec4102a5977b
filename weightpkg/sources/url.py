"""Plain URLs and their mirrors: streamed in 1 MiB chunks, resumed with Range after a drop."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urlsplit

from ..core.digest import CHUNK_SIZE
from ..core.recipe import UrlSource
from ..errors import FetchError
from . import Candidate, FetchContext, Sink
from .path import copy_into

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

    FetchError says which URL failed and why, in one line.
    """
    if url.startswith("file://"):
        _copy_file_url(url, sink, ctx)
        return
    import requests
    import urllib3

    attempts = 0
    failures: list[str] = []
    while True:
        attempts += 1
        start = sink.offset
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
                total = _receive(url, response, sink, start, ctx)
                if total is not None and sink.offset < total:
                    raise FetchError(url, [f"body ended after {sink.offset} of {total} bytes"])
                return
        except _RangeRejected:
            sink.restart()
            if attempts >= MAX_ATTEMPTS:
                raise FetchError(url, ["server keeps rejecting range requests"]) from None
            continue
        except requests.exceptions.Timeout as exc:
            failures.append(f"timed out ({_reason(exc)})")
        except requests.exceptions.TooManyRedirects:
            raise FetchError(url, ["too many redirects"]) from None
        except urllib3.exceptions.ReadTimeoutError as exc:
            failures.append(f"timed out ({_reason(exc)})")
        except (
            requests.exceptions.ConnectionError,
            requests.exceptions.ChunkedEncodingError,
            urllib3.exceptions.HTTPError,
        ) as exc:
            failures.append(_reason(exc))
        except requests.exceptions.RequestException as exc:
            raise FetchError(url, [_reason(exc)]) from None
        progressed = sink.offset > start
        if not progressed or attempts >= MAX_ATTEMPTS:
            detail = failures[-1]
            if attempts > 1:
                detail += f" (after {attempts} attempts, {sink.offset} bytes kept for resuming)"
            raise FetchError(url, [detail])


class _RangeRejected(Exception):
    """416: what we hold does not fit what the server has now; start again from zero."""


def _receive(url: str, response, sink: Sink, start: int, ctx: FetchContext) -> int | None:
    status = response.status_code
    if status == 416 and start:
        raise _RangeRejected
    if status not in (200, 206):
        reason = f"HTTP {status} {response.reason or ''}".strip()
        raise FetchError(url, [reason])
    length = response.headers.get("Content-Length")
    total: int | None = None
    if status == 206 and start:
        content_range = response.headers.get("Content-Range", "")
        if not content_range.startswith(f"bytes {start}-"):
            raise _RangeRejected
        size = content_range.rpartition("/")[2]
        total = int(size) if size.isdigit() else None
    else:
        if start:
            sink.restart()  # the server ignored Range: take the whole body again
        total = int(length) if length and length.isdigit() else None
    label = f"url {url}"
    # Read the raw stream (we asked for identity encoding): urllib3 hands over what arrived
    # before a dropped connection, where iter_content would lose up to a whole chunk.
    for chunk in response.raw.stream(CHUNK_SIZE, decode_content=False):
        if chunk:
            sink.write(chunk)
            ctx.report(label, sink.offset, total)
    return total


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
        with open(path, "rb", buffering=0) as handle:
            copy_into(handle, sink, f"url {url}", ctx, path.stat().st_size)
    except FileNotFoundError:
        raise FetchError(url, ["no such file"]) from None
    except OSError as exc:
        raise FetchError(url, [exc.strerror or str(exc)]) from None
