"""A file of a Hugging Face Hub repository at one commit, fetched through the Hub's own client.

huggingface_hub does what only it knows: the file's URL (``HF_ENDPOINT``, dataset and space
prefixes), the user's token (``HF_TOKEN`` or ``hf auth login``), the metadata request that follows
Hub redirects and stops at a CDN, and its error classes (gated, private, missing revision or file).
The bytes then stream through the client's own HTTP session straight into the sink, which hashes
them as they arrive; a dropped connection is resumed with Range, like a url source.

``hf_hub_download`` is not used for the bytes: it writes them into its cache first and does not
check them against the sha256 ETag (research/real-clients.md §5), so wrong bytes would land in the
user's cache and then be copied a second time. A file the user's Hugging Face cache already holds
for that repository and commit is offered first, and hashed like any other bytes: never trusted.

huggingface_hub is imported here only, and only when an hf source is fetched.
"""

from __future__ import annotations

import importlib
import os
import stat
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

from ..core.recipe import HfSource
from ..errors import FetchError, WeightpkgError
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

_TRUE = {"1", "ON", "YES", "TRUE"}


def hub_endpoint() -> str:
    """The Hub to ask, read now: huggingface_hub reads HF_ENDPOINT once, when first imported."""
    from huggingface_hub import constants

    return (os.environ.get("HF_ENDPOINT") or constants.ENDPOINT).rstrip("/")


def hub_cache_dir() -> Path:
    """The user's Hugging Face hub cache, by the client's own rules, read now (not at import)."""
    env = os.environ
    explicit = env.get("HF_HUB_CACHE") or env.get("HUGGINGFACE_HUB_CACHE")
    if explicit:
        return Path(os.path.expandvars(os.path.expanduser(explicit)))
    home = env.get("HF_HOME") or os.path.join(env.get("XDG_CACHE_HOME", "~/.cache"), "huggingface")
    return Path(os.path.expandvars(os.path.expanduser(home))) / "hub"


def offline() -> bool:
    """Whether the user asked huggingface_hub to stay off the network (HF_HUB_OFFLINE)."""
    from huggingface_hub import constants

    value = os.environ.get("HF_HUB_OFFLINE") or os.environ.get("TRANSFORMERS_OFFLINE") or ""
    return value.upper() in _TRUE or bool(constants.HF_HUB_OFFLINE)


def candidates(source: HfSource, ctx: FetchContext) -> list[Candidate]:
    """The user's Hugging Face cache when it holds the file, then the Hub."""
    try:
        from huggingface_hub import hf_hub_url
    except ImportError:
        return [Candidate(source.describe(), _missing_client(source))]
    found: list[Candidate] = []
    cached = cached_file(source) if ctx.local_caches else None
    if cached is not None:
        label = f"hf cache {cached}"
        found.append(Candidate(label, _cache_fetcher(cached, label, ctx)))
    endpoint = hub_endpoint()
    url = hf_hub_url(
        source.repo, source.path, repo_type=source.repo_type, revision=source.revision, endpoint=endpoint
    )
    label = f"hf {url}"

    def fetch(sink: Sink) -> None:
        download(source, url, sink, ctx, label)

    found.append(Candidate(label, fetch))
    return found


def _missing_client(source: HfSource) -> Any:
    def fetch(sink: Sink) -> None:
        why = "huggingface_hub is not installed (pip install huggingface_hub)"
        raise FetchError(source.describe(), [why])

    return fetch


def cached_file(source: HfSource) -> Path | None:
    """The file in the user's Hugging Face cache for exactly this repository, commit and path."""
    from huggingface_hub import try_to_load_from_cache

    try:
        found = try_to_load_from_cache(
            source.repo,
            source.path,
            cache_dir=str(hub_cache_dir()),
            revision=source.revision,
            repo_type=source.repo_type,
        )
    except (ValueError, OSError):
        return None
    return Path(found) if isinstance(found, str) else None


def _cache_fetcher(path: Path, label: str, ctx: FetchContext) -> Any:
    def fetch(sink: Sink) -> None:
        if sink.offset:
            sink.restart()
        try:
            # The snapshot entry is a symlink to a blob: whatever it points at must be a plain
            # file (a FIFO would block), and what it holds is hashed by the sink like any bytes.
            if not stat.S_ISREG(path.stat().st_mode):
                raise FetchError(label, ["not a regular file"])
            with open(path, "rb", buffering=0) as handle:
                info = os.fstat(handle.fileno())
                if not stat.S_ISREG(info.st_mode):
                    raise FetchError(label, ["not a regular file"])
                copy_into(handle, sink, label, ctx, info.st_size)
        except FileNotFoundError:
            raise FetchError(label, ["no longer in the cache"]) from None
        except OSError as exc:
            raise FetchError(label, [f"cannot read it: {exc.strerror or exc}"]) from None

    return fetch


def download(source: HfSource, url: str, sink: Sink, ctx: FetchContext, label: str) -> None:
    """Resolve ``url`` with the client, check the commit it answers for, stream the bytes into ``sink``."""
    from huggingface_hub import get_hf_file_metadata
    from huggingface_hub.utils import build_hf_headers, get_session

    from .. import __version__

    if offline():
        raise FetchError(
            label,
            [f"HF_HUB_OFFLINE is set and the Hugging Face cache ({hub_cache_dir()}) does not hold the file"],
        )
    session = get_session()
    http = _http_module(session)
    _read_in_larger_pieces()
    headers = build_hf_headers(library_name="weightpkg", library_version=__version__)
    token_sent = any(k.lower() == "authorization" for k in headers)
    try:
        meta = get_hf_file_metadata(
            url,
            timeout=max(ctx.connect_timeout, 10.0),
            library_name="weightpkg",
            library_version=__version__,
            endpoint=hub_endpoint(),
        )
    except Exception as exc:  # the client's errors, mapped below; anything else is re-raised
        raise FetchError(label, [hub_failure(exc, source, token_sent, http)]) from None
    if meta.commit_hash is None:
        raise FetchError(
            label,
            [
                "the answer has no X-Repo-Commit header, so this is not a Hugging Face Hub endpoint "
                "(check HF_ENDPOINT)"
            ],
        )
    if meta.commit_hash != source.revision:
        answered = f"the Hub answered for commit {meta.commit_hash}, not the pinned {source.revision}"
        raise FetchError(label, [answered])
    location = urljoin(url, meta.location or url)
    get_headers = {
        k: v for k, v in headers.items() if k.lower() != "authorization" or _same_origin(url, location)
    }
    get_headers["Accept-Encoding"] = "identity"  # the pin is of the file's bytes, not of an encoding
    _stream(location, get_headers, meta.size, sink, ctx, label, source, token_sent, session, http)


def _http_module(session: Any) -> Any:
    """The HTTP library behind the client's session (httpx2 in huggingface_hub 2.x, httpx in 1.x)."""
    name = type(session).__module__.split(".")[0]
    if not hasattr(session, "stream"):
        from huggingface_hub import __version__ as version

        why = f"version {version} is too old for hf sources (1.0 or later streams through httpx)"
        raise FetchError("huggingface_hub", [why])
    return importlib.import_module(name)


#: httpcore reads the socket 64 KiB at a time, so a body of gigabytes makes 16,000 trips per GiB
#: through its parser and the Python above it. With 1 MiB reads, a loopback download of 1 GiB
#: took about half the time (docs/performance.md, fetch).
HUB_READ_SIZE = 1 << 20


def _read_in_larger_pieces() -> None:
    """Have the client's HTTP/1.1 connections (this process's only) read up to HUB_READ_SIZE
    bytes at a time, where its httpcore has that setting."""
    for name in ("httpcore2._sync.http11", "httpcore._sync.http11"):
        connection = getattr(sys.modules.get(name), "HTTP11Connection", None)
        if isinstance(getattr(connection, "READ_NUM_BYTES", None), int):
            connection.READ_NUM_BYTES = max(connection.READ_NUM_BYTES, HUB_READ_SIZE)


def _same_origin(a: str, b: str) -> bool:
    """Whether the token may go to ``b``: only the Hub's own origin, never a CDN it redirects to."""
    pa, pb = urlsplit(a), urlsplit(b)
    default = {"http": 80, "https": 443}
    return (pa.scheme, pa.hostname, pa.port or default.get(pa.scheme)) == (
        pb.scheme,
        pb.hostname,
        pb.port or default.get(pb.scheme),
    )


class _Restart(Exception):
    """What the sink held does not fit what the server sends now; the sink starts from zero."""


class _Short(Exception):
    """The body ended before the length the server announced."""


def _stream(
    url: str,
    headers: dict[str, str],
    size: int | None,
    sink: Sink,
    ctx: FetchContext,
    label: str,
    source: HfSource,
    token_sent: bool,
    session: Any,
    http: Any,
) -> None:
    """GET ``url`` into ``sink`` through the client's session, resuming from ``sink.offset``.

    A dropped connection or a short body is retried, resuming, while each attempt brings bytes.
    """
    retries = Retries()
    while True:
        retries.start()
        received = Received()
        asked: float | None = None
        try:
            _attempt(url, headers, size, sink, ctx, label, session, http, received)
            return
        except _Restart as exc:
            sink.restart()
            if retries.attempts >= MAX_ATTEMPTS:
                raise FetchError(label, [f"{exc} (after {retries.attempts} attempts)"]) from None
            continue
        except WeightpkgError:
            raise  # the sink's own refusal (too many bytes), or a failure already worded
        except _Short as exc:
            failure = str(exc)
        except Unavailable as exc:
            failure, asked = exc.reason, exc.retry_after
        except Exception as exc:  # the client's and its HTTP library's errors, worded by hub_failure
            failure = hub_failure(exc, source, token_sent, http)
            if not isinstance(exc, (http.TimeoutException, http.NetworkError, http.RemoteProtocolError)):
                raise FetchError(label, [failure]) from None
            if isinstance(exc, http.ConnectError):
                raise FetchError(label, [failure]) from None  # nothing answers there: next mirror
        wait = retries.wait_before_next(bool(received.bytes), asked)
        if wait is None:
            raise FetchError(label, [retries.given_up(failure, sink.offset, asked)])
        if wait:
            time.sleep(wait)


def _attempt(
    url: str,
    headers: dict[str, str],
    size: int | None,
    sink: Sink,
    ctx: FetchContext,
    label: str,
    session: Any,
    http: Any,
    received: Received,
) -> None:
    """One GET, from the bytes the sink holds."""
    from huggingface_hub.utils import hf_raise_for_status

    start = sink.offset
    request = dict(headers)
    if start:
        request["Range"] = f"bytes={start}-"
    timeout = http.Timeout(ctx.read_timeout, connect=ctx.connect_timeout)
    with session.stream("GET", url, headers=request, timeout=timeout, follow_redirects=True) as response:
        status = response.status_code
        total: int | None
        if status == 416 and start:
            match = UNSATISFIED_RANGE.fullmatch(response.headers.get("Content-Range", ""))
            if match and int(match.group(1)) == start:
                return  # the bytes held already are the whole file
            raise _Restart("the server cannot resume from the bytes held")
        if status >= 400:
            reason = f"HTTP {status} {response.reason_phrase or ''}".strip()
            raise_if_unavailable(status, reason, response.headers.get("Retry-After"))
            hf_raise_for_status(response)
        if status == 206 and start:
            match = CONTENT_RANGE.fullmatch(response.headers.get("Content-Range", ""))
            if not match or int(match.group(1)) != start:
                raise _Restart("the server resumed at another offset")
            total = int(match.group(3)) if match.group(3) != "*" else size
        elif status == 200:
            if start:
                sink.restart()  # Range ignored: the whole body comes again
            length = response.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else size
        else:
            raise FetchError(label, [f"unexpected HTTP {status} {response.reason_phrase}".strip()])
        broken = False
        try:
            for chunk in response.iter_raw():
                if chunk:
                    sink.write(chunk)
                    received.bytes += len(chunk)
                    ctx.report(label, sink.offset, total)
        except (http.RemoteProtocolError, http.ReadError):
            broken = True  # said below in the file's terms (httpx counts this attempt's bytes only)
        if total is not None and sink.offset < total:
            raise _Short(f"body ended after {sink.offset} of {total} bytes")
        if broken:
            raise _Short(f"the connection closed after {sink.offset} bytes")


def hub_failure(exc: Exception, source: HfSource, token_sent: bool, http: Any = None) -> str:
    """One line saying why the Hub did not deliver, and what the user can do about it."""
    from huggingface_hub import errors

    repo = source.repo_ref
    token = (
        "the token sent (HF_TOKEN or `hf auth login`) was refused"
        if token_sent
        else "no token was sent: set HF_TOKEN or run `hf auth login`"
    )
    if isinstance(exc, errors.OfflineModeIsEnabled):
        return "HF_HUB_OFFLINE is set, so the Hub was not asked"
    if isinstance(exc, errors.HfHubHTTPError):
        response = getattr(exc, "response", None)
        status = getattr(response, "status_code", None)
        said = response.headers.get("X-Error-Message") if response is not None else None
        server = f" (the server says: {said})" if said else ""
        if isinstance(exc, errors.GatedRepoError):
            return (
                f"{repo} is a gated repository (HTTP {status}): accept its conditions on the Hub with an "
                f"account whose token weightpkg can use; {token}{server}"
            )
        if isinstance(exc, errors.RevisionNotFoundError):
            return f"{repo} has no revision {source.revision} (HTTP {status}){server}"
        if isinstance(exc, errors.EntryNotFoundError):
            return f"{repo} has no file {source.path} at {source.revision} (HTTP {status}){server}"
        if status == 401:
            return f"HTTP 401 Unauthorized: {repo} is private, gated or missing; {token}{server}"
        if isinstance(exc, errors.RepositoryNotFoundError):
            hint = "" if token_sent else " (if it is private, set HF_TOKEN to a token that can read it)"
            return f"repository {repo} not found (HTTP {status}){hint}{server}"
        if status == 403:
            return f"HTTP 403 Forbidden: the token cannot read {repo}{server}"
        return f"HTTP {status}{server}" if status else str(exc).splitlines()[0]
    if http is not None and isinstance(exc, http.TimeoutException):
        return f"timed out ({type(exc).__name__})"
    if http is not None and isinstance(exc, http.TooManyRedirects):
        return "too many redirects"
    if http is not None and isinstance(exc, http.HTTPError):
        text = str(exc) or type(exc).__name__
        if "refused" in text.lower():
            return "connection refused"
        if isinstance(exc, http.RemoteProtocolError):
            return f"connection broken: {text}"
        return text.replace("\n", " ")[:300]
    if isinstance(exc, (OSError, ValueError)):
        return (str(exc) or type(exc).__name__).splitlines()[0][:300]
    raise exc
