"""A Hugging Face Hub look-alike on 127.0.0.1, for the real huggingface_hub client.

Built on :class:`tests.servers.FileServer`, which serves the file bodies (HEAD, GET, Range, and its
faults: cut a body short, ignore Range); this adds what the client requires of a Hub
(research/real-clients.md §5): ``/{repo}/resolve/{revision}/{path}`` answering with
``X-Repo-Commit``, ``ETag`` (and for LFS files ``X-Linked-Etag`` and ``X-Linked-Size``), 404s with
``X-Error-Code``, 401s for private and gated repositories, and optionally a 302 to a separate "CDN"
(another FileServer, so another origin), the way the Hub hands out large files.
"""

from __future__ import annotations

import hashlib
import urllib.parse
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler

from .servers import FileServer

COMMIT = "0123456789abcdef0123456789abcdef01234567"


def git_blob_sha1(data: bytes) -> str:
    """The ETag the Hub gives a file kept in git rather than LFS."""
    return hashlib.sha1(b"blob %d\x00" % len(data) + data).hexdigest()


@dataclass
class HubFile:
    """One file of a repository; ``etag`` is what the Hub claims, whatever the bytes are."""

    data: bytes
    etag: str
    lfs: bool = True


@dataclass
class HubRepo:
    """A repository at one commit. ``token``: private (or ``gated``) and readable with this token only."""

    repo_id: str
    repo_type: str = "model"
    commit: str = COMMIT
    files: dict[str, HubFile] = field(default_factory=dict)
    token: str | None = None
    gated: bool = False
    answer_commit: str | None = None  # a misbehaving mirror: X-Repo-Commit other than the asked commit


@dataclass
class HubRequest:
    """A request the Hub front saw (bodies it served are also in ``requests``, with their Range)."""

    method: str
    path: str
    authorization: str | None


@dataclass
class HubServer(FileServer):
    """The Hub's resolve route in front of FileServer's body serving; ``cdn`` takes LFS bodies."""

    repos: dict[tuple[str, str], HubRepo] = field(default_factory=dict)
    cdn: FileServer | None = None  # a HubServer holding no repositories records its callers too
    calls: list[HubRequest] = field(default_factory=list)

    def add_file(
        self,
        repo_id: str,
        path: str,
        data: bytes,
        *,
        repo_type: str = "model",
        commit: str = COMMIT,
        etag: str | None = None,
        lfs: bool = True,
    ) -> HubRepo:
        """Publish ``data`` as ``path`` of the repository at ``commit``; ``etag`` may lie."""
        repo = self.repos.setdefault((repo_type, repo_id), HubRepo(repo_id, repo_type, commit))
        claimed = etag or (hashlib.sha256(data).hexdigest() if lfs else git_blob_sha1(data))
        repo.files[path] = HubFile(data, claimed, lfs)
        self.files[self.resolve_path(repo, path)] = data
        if self.cdn is not None:
            self.cdn.files[self.cdn_path(repo, path)] = data
        return repo

    @staticmethod
    def resolve_path(repo: HubRepo, path: str) -> str:
        prefix = "" if repo.repo_type == "model" else f"{repo.repo_type}s/"
        return f"/{prefix}{repo.repo_id}/resolve/{repo.commit}/{path}"

    @staticmethod
    def cdn_path(repo: HubRepo, path: str) -> str:
        return f"/cdn/{repo.repo_type}/{repo.repo_id}/{repo.commit}/{path}"

    def body_gets(self, repo_id: str, path: str, repo_type: str = "model") -> list[str | None]:
        """The Range header of each GET that served this file's bytes, from the Hub or its CDN."""
        repo = self.repos[(repo_type, repo_id)]
        wanted = {self.resolve_path(repo, path)}
        found = [rng for method, p, rng in self.requests if method == "GET" and p in wanted]
        if self.cdn is not None:
            cdn = self.cdn_path(repo, path)
            found += [rng for method, p, rng in self.cdn.requests if method == "GET" and p == cdn]
        return found

    def start(self) -> HubServer:
        super().start()
        assert self._server is not None
        owner = self
        Files = self._server.RequestHandlerClass

        class HubHandler(Files):  # type: ignore[misc, valid-type]
            extra: dict[str, str]

            def do_HEAD(self) -> None:
                self._hub(body=False)

            def do_GET(self) -> None:
                self._hub(body=True)

            def end_headers(self) -> None:
                for key, value in getattr(self, "extra", {}).items():
                    self.send_header(key, value)
                super().end_headers()

            def _hub(self, body: bool) -> None:
                self.extra = {}
                path = urllib.parse.unquote(self.path.split("?", 1)[0])
                owner.calls.append(HubRequest(self.command, path, self.headers.get("Authorization")))
                answer = owner.answer(path, self.headers.get("Authorization"))
                if answer is None:  # the bytes: FileServer serves them, with Range and faults
                    self.extra = owner.file_headers(path)
                    self._serve(body=body)
                    return
                status, headers = answer
                self._error(status, headers, body)

            def _error(self, status: int, headers: dict[str, str], body: bool) -> None:
                text = headers.get("X-Error-Message", "").encode()
                BaseHTTPRequestHandler.send_response(self, status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(text)))
                BaseHTTPRequestHandler.end_headers(self)
                if body:
                    self.wfile.write(text)

        self._server.RequestHandlerClass = HubHandler
        return self

    def _locate(self, path: str) -> tuple[HubRepo | None, str, str, str]:
        """(repository, repo id as asked, revision, file) of a resolve path."""
        parts = path.lstrip("/").split("/")
        repo_type = "model"
        if parts and parts[0] in ("datasets", "spaces"):
            repo_type = parts.pop(0)[:-1]
        if len(parts) < 5 or parts[2] != "resolve":
            return None, "", "", ""
        repo_id = "/".join(parts[:2])
        return self.repos.get((repo_type, repo_id)), repo_id, parts[3], "/".join(parts[4:])

    def answer(self, path: str, authorization: str | None) -> tuple[int, dict[str, str]] | None:
        """The Hub's answer other than bytes (status and headers), or None to serve the file."""
        repo, repo_id, revision, name = self._locate(path)
        if repo is None and path in self.files:
            return None  # a plain file: a HubServer can be the CDN too, and record who asked
        if repo is None:
            message = "Repository not found" if repo_id else "Not found"
            return 404, {"X-Error-Code": "RepoNotFound", "X-Error-Message": message}
        if repo.token is not None and authorization != f"Bearer {repo.token}":
            if repo.gated:
                message = f"Access to model {repo_id} is restricted. You must have access to it."
                return 401, {"X-Error-Code": "GatedRepo", "X-Error-Message": message}
            return 401, {"X-Error-Code": "RepoNotFound", "X-Error-Message": "Invalid username or password."}
        commit = repo.answer_commit or repo.commit
        if revision != repo.commit:
            return 404, {"X-Error-Code": "RevisionNotFound", "X-Error-Message": "Invalid rev id"}
        if name not in repo.files:
            return 404, {
                "X-Error-Code": "EntryNotFound",
                "X-Error-Message": "Entry not found",
                "X-Repo-Commit": commit,
            }
        if self.cdn is not None and repo.files[name].lfs:
            headers = self.file_headers(path)
            headers["Location"] = self.cdn.url + self.cdn_path(repo, name)
            return 302, headers
        return None

    def file_headers(self, path: str) -> dict[str, str]:
        """What the Hub sends with a file: its commit and ETag, and for LFS the linked ETag and size."""
        repo, _, _, name = self._locate(path)
        if repo is None or name not in repo.files:
            return {}
        item = repo.files[name]
        headers = {"X-Repo-Commit": repo.answer_commit or repo.commit, "ETag": f'"{item.etag}"'}
        if item.lfs:
            headers["X-Linked-Etag"] = f'"{item.etag}"'
            headers["X-Linked-Size"] = str(len(item.data))
        return headers
