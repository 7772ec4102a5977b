"""Real HTTP servers on 127.0.0.1 for the tests: static files with Range, and a PEP 503 index.

Each server runs in a daemon thread on an ephemeral port; behaviour can be changed per path
(``faults``): cut or reset a body, announce a wrong length, answer an error status, stall,
redirect, serve other bytes, ignore Range, or trickle at a set rate.
"""

from __future__ import annotations

import hashlib
import html
import re
import socket
import struct
import sys
import threading
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


@dataclass
class Fault:
    """How to misbehave on one path, for the next ``times`` requests (then it behaves).

    ``status``: answer with this status (and ``retry_after`` as Retry-After) instead of the file;
    ``redirect``: answer 302 to this URL; ``body``: serve these bytes instead of the file's;
    ``content_length``: announce this length whatever is sent; ``cut_after``: send this many body
    bytes then close (``reset``: with a TCP reset instead of a clean close); ``stall``: after
    ``cut_after`` bytes (or before the body), wait this many seconds first; ``hang``: wait this
    many seconds before answering at all (then answer normally); ``ignore_range``:
    answer 200 with the whole file to a range request; ``rate``: send at most this many bytes
    per second (the path keeps its rate however many requests come).
    """

    cut_after: int | None = None
    ignore_range: bool = False
    times: int = 1_000_000
    status: int | None = None
    retry_after: str | None = None
    redirect: str | None = None
    body: bytes | None = None
    content_length: int | None = None
    reset: bool = False
    stall: float | None = None
    hang: float | None = None
    rate: int | None = None


@dataclass
class FileServer:
    """Serves ``files`` (URL path → bytes) with HEAD, GET and single-range requests."""

    files: dict[str, bytes] = field(default_factory=dict)
    faults: dict[str, Fault] = field(default_factory=dict)
    requests: list[tuple[str, str, str | None]] = field(default_factory=list)
    #: Body bytes sent per path, over all requests (what a client had to download).
    sent: dict[str, int] = field(default_factory=dict)
    host: str = "127.0.0.1"
    port: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    stopping: threading.Event = field(default_factory=threading.Event)
    _server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> FileServer:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def do_HEAD(self) -> None:
                self._serve(body=False)

            def do_GET(self) -> None:
                self._serve(body=True)

            def _serve(self, body: bool) -> None:
                path = urllib.parse.unquote(self.path.split("?", 1)[0])  # pip quotes "+" in torch's name
                self.path_key = path
                range_header = self.headers.get("Range")
                owner.requests.append((self.command, path, range_header))
                route = owner.route(path)
                if route is not None:
                    status, content_type, data = route
                    self._send(status, data, content_type, body)
                    return
                data = owner.files.get(path)
                if data is None:
                    self._send(404, b"not found\n", "text/plain", body)
                    return
                fault = owner.faults.get(path)
                if fault is not None and fault.times > 0:
                    if fault.rate is None:
                        fault.times -= 1
                else:
                    fault = None
                if fault and fault.hang is not None:
                    owner.stopping.wait(fault.hang)
                if fault and fault.status is not None:
                    headers = {"Retry-After": fault.retry_after} if fault.retry_after is not None else {}
                    self._send(fault.status, b"try later\n", "text/plain", body, headers)
                    return
                if fault and fault.redirect is not None:
                    self._send(302, b"moved\n", "text/plain", body, {"Location": fault.redirect})
                    return
                if fault and fault.body is not None:
                    data = fault.body
                start = 0
                match = re.fullmatch(r"bytes=(\d+)-", range_header or "")
                if match and not (fault and fault.ignore_range):
                    start = int(match.group(1))
                    if start >= len(data):
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{len(data)}")
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                else:
                    self.send_response(200)
                length = len(data) - start
                if fault and fault.content_length is not None:
                    length = fault.content_length
                self.send_header("Accept-Ranges", "bytes")
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Content-Length", str(length))
                self.end_headers()
                if not body:
                    return
                payload = memoryview(data)[start:]
                if fault and fault.cut_after is not None:
                    payload = payload[: fault.cut_after]
                if fault and fault.stall is not None:
                    self._write(payload if fault.cut_after is not None else b"", None)
                    owner.stopping.wait(fault.stall)
                    if fault.cut_after is None:
                        self._write(payload, None)
                else:
                    self._write(payload, fault.rate if fault else None)
                if fault and (fault.cut_after is not None or fault.content_length is not None):
                    if fault.reset:  # SO_LINGER 0: close() sends RST, not FIN
                        self.connection.setsockopt(
                            socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
                        )
                    self.close_connection = True

            def _write(self, payload: memoryview | bytes, rate: int | None) -> None:
                """Send ``payload`` (at ``rate`` bytes/s if set), counting what went out."""
                step = max(1, rate // 50) if rate else len(payload) or 1
                for offset in range(0, len(payload), step):
                    piece = payload[offset : offset + step]
                    try:
                        self.wfile.write(piece)
                        self.wfile.flush()
                    except OSError:
                        self.close_connection = True
                        return
                    with owner.lock:
                        owner.sent[self.path_key] = owner.sent.get(self.path_key, 0) + len(piece)
                    if rate and owner.stopping.wait(len(piece) / rate):
                        return

            def _send(self, status: int, data: bytes, content_type: str, body: bool,
                      headers: dict[str, str] | None = None) -> None:
                self.send_response(status)
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if body:
                    self.wfile.write(data)

        self._server = _QuietServer((self.host, 0), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def route(self, path: str) -> tuple[int, str, bytes] | None:
        """Dynamic pages (overridden by the index); None means 'serve from files'."""
        return None

    def stop(self) -> None:
        self.stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()


class _QuietServer(ThreadingHTTPServer):
    """A client hanging up mid-answer is what the fault tests do on purpose: not worth a traceback."""

    def handle_error(self, request: object, client_address: object) -> None:
        if isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            return
        super().handle_error(request, client_address)  # type: ignore[arg-type]


def _normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


@dataclass
class SimpleIndex(FileServer):
    """A PEP 503 simple index: ``/simple/<project>/`` lists wheels with their sha256 fragments."""

    def add_wheel(self, path: Path) -> str:
        data = path.read_bytes()
        self.files[f"/files/{path.name}"] = data
        return f"{self.url}/files/{path.name}"

    def route(self, path: str) -> tuple[int, str, bytes] | None:
        if not path.startswith("/simple"):
            return None
        projects: dict[str, list[str]] = {}
        for url_path in self.files:
            name = url_path.rsplit("/", 1)[-1]
            if name.endswith(".whl"):
                projects.setdefault(_normalize(name.split("-", 1)[0]), []).append(url_path)
        parts = [p for p in path.split("/") if p]
        if len(parts) == 1:
            links = "".join(f'<a href="/simple/{p}/">{p}</a>\n' for p in sorted(projects))
            return 200, "text/html", f"<!DOCTYPE html><html><body>\n{links}</body></html>".encode()
        project = _normalize(parts[1])
        if project not in projects:
            return 404, "text/plain", b"no such project\n"
        links = ""
        for url_path in sorted(projects[project]):
            digest = hashlib.sha256(self.files[url_path]).hexdigest()
            name = html.escape(url_path.rsplit("/", 1)[-1])
            links += f'<a href="{url_path}#sha256={digest}">{name}</a>\n'
        return 200, "text/html", f"<!DOCTYPE html><html><body>\n{links}</body></html>".encode()


def closed_port() -> int:
    """A loopback port nothing listens on (bound for a moment, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


Starter = Callable[..., FileServer]
