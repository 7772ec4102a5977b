#!/usr/bin/env python3
"""Benchmark: ``weightpkg fetch`` of a big file over loopback HTTP against curl and hf_hub_download.

The goals (issue 9, docs/performance.md), each judged on the median of per-pair ratios measured in
the same run, on a warm page cache for the served file:

1. ``weightpkg --store S fetch RECIPE`` of a ``kind = "url"`` source (download, sha256 while
   downloading, add to a fresh store) takes at most 1.1 x the time of ``curl -s -o NEWFILE URL``
   from the same server;
2. ``weightpkg --store S fetch RECIPE`` of a ``kind = "hf"`` source from a Hub-compatible server
   takes at most 0.5 x the time of ``huggingface_hub.hf_hub_download`` of the same file, from the
   same server, into a fresh cache (in a child process).

Run by hand, never as a test::

    python benchmarks/fetch_loopback.py                 # 1 GiB, 7 pairs per row
    python benchmarks/fetch_loopback.py --breakdown     # where the time goes
    python benchmarks/fetch_loopback.py --json          # one JSON object on stdout

The file server is nginx when it is installed (``apt-get install nginx-light``; sendfile, one
worker), else a threaded Python server that answers with ``socket.sendfile``; the Hub is always
the Python server (the resolve route with the headers huggingface_hub needs). Both listen on
127.0.0.1 only. The random file is written once under --workdir and reused; --clean deletes it
and everything else this script made. Child-process timing, peak RSS and machine facts come from
hash_file.py beside this script.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from hash_file import (
    GiB,
    add_child_options,
    capture,
    ensure_file,
    log_facts,
    machine_facts,
    parse_size,
    prepare_children,
    rss_facts,
    run_child,
    size_label,
    summary,
    warm_page_cache,
)

CURL_GOAL = 1.1  # weightpkg fetch (url) / curl -o NEWFILE
HF_GOAL = 0.5  # weightpkg fetch (hf) / hf_hub_download
SUBDIR = "fetch-loopback"  # everything this script makes, but the shared random file, lies here
FILE_NAME = "model.bin"
TINY_NAME = "tiny.bin"
REPO_ID = "bench/fetch-loopback"
COMMIT = "0123456789abcdef0123456789abcdef01234567"

_HF_CHILD = """
import sys
from huggingface_hub import hf_hub_download
print(hf_hub_download(sys.argv[1], sys.argv[2], revision=sys.argv[3], cache_dir=sys.argv[4]))
"""


# ----------------------------------------------------------------------------- servers


class _Handler(BaseHTTPRequestHandler):
    """Plain files and the Hub's ``/{repo}/resolve/{commit}/{path}``, bodies sent with sendfile."""

    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, *args: object) -> None:
        pass

    def do_HEAD(self) -> None:
        self._serve(body=False)

    def do_GET(self) -> None:
        self._serve(body=True)

    def _serve(self, body: bool) -> None:
        path = urllib.parse.unquote(self.path.split("?", 1)[0])
        route = self.server.routes.get(path)
        if route is None:
            self.send_response(404)
            self.send_header("X-Error-Code", "EntryNotFound")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        file, extra = route
        size = os.stat(file).st_size
        start = 0
        match = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range", ""))
        if match and int(match[1]) < size:
            start = int(match[1])
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{size - 1}/{size}")
        else:
            self.send_response(200)
        for key, value in extra.items():
            self.send_header(key, value)
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(size - start))
        self.end_headers()
        if not body:
            return
        cpu = time.thread_time()
        with open(file, "rb") as handle:
            self.connection.sendfile(handle, start, size - start)
        if size - start > 1 << 20:
            self.server.body_cpu_s.append(time.thread_time() - cpu)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    routes: dict[str, tuple[Path, dict[str, str]]]
    body_cpu_s: list[float]

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # a client that hangs up early is not the benchmark's business


def start_python_server(routes: dict[str, tuple[Path, dict[str, str]]]) -> _Server:
    server = _Server(("127.0.0.1", 0), _Handler)
    server.routes = routes
    server.body_cpu_s = []
    threading.Thread(target=server.serve_forever, name="bench-http", daemon=True).start()
    return server


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


NGINX_CONF = """\
# Written by benchmarks/fetch_loopback.py: loopback only, sendfile, one worker.
{user}worker_processes 1;
daemon off;
pid {root}/nginx.pid;
error_log {root}/error.log warn;
events {{ worker_connections 64; }}
http {{
  access_log off;
  client_body_temp_path {root}/cbt;
  proxy_temp_path {root}/pt;
  fastcgi_temp_path {root}/ft;
  uwsgi_temp_path {root}/ut;
  scgi_temp_path {root}/st;
  sendfile on;
  tcp_nopush on;
  server {{
    listen 127.0.0.1:{port};
    root {srv};
    location / {{ }}
  }}
}}
"""


def start_nginx(nginx: str, root: Path, srv: Path, log) -> tuple[subprocess.Popen, str]:
    """nginx in the foreground (``daemon off``) as a child of this script; (process, base URL)."""
    root.mkdir(parents=True, exist_ok=True)
    port = free_port()
    user = "user root;\n" if os.geteuid() == 0 else ""  # workers as root: they read the test file
    conf = root / "nginx.conf"
    conf.write_text(NGINX_CONF.format(user=user, root=root, srv=srv, port=port))
    proc = subprocess.Popen(
        [nginx, "-e", "stderr", "-p", str(root), "-c", str(conf)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=open(root / "stderr.log", "wb"),
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            break
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return proc, url
        except OSError:
            time.sleep(0.05)
    stop_nginx(proc)
    raise SystemExit(f"nginx did not start: {(root / 'stderr.log').read_text(errors='replace').strip()}")


def stop_nginx(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGQUIT)  # graceful: the master stops its worker
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def head_length(url: str) -> int:
    request = urllib.request.Request(url, method="HEAD")
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(request, timeout=10) as answer:
        return int(answer.headers["Content-Length"])


# ----------------------------------------------------------------------------- files and recipes


def file_sha256(path: Path) -> str:
    """The file's sha256, kept beside it keyed by size and mtime, so 1 GiB is hashed once."""
    info = path.stat()
    pin = path.with_name(path.name + ".sha256")
    key = f"{info.st_size} {info.st_mtime_ns}"
    if pin.is_file():
        saved_key, _, digest = pin.read_text().strip().rpartition(" ")
        if saved_key == key:
            return digest
    digest = sha256_of(path)
    pin.write_text(f"{key} {digest}\n")
    return digest


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    buf = bytearray(8 << 20)
    view = memoryview(buf)
    with open(path, "rb", buffering=0) as handle:
        while n := handle.readinto(buf):
            digest.update(view[:n])
    return digest.hexdigest()


def link_into(srv: Path, source: Path, name: str) -> Path:
    """``srv/name`` as a hard link to ``source`` (a symlink across file systems), made fresh."""
    srv.mkdir(parents=True, exist_ok=True)
    target = srv / name
    if target.exists() and os.path.samefile(target, source):
        return target
    if target.exists() or target.is_symlink():
        target.unlink()
    try:
        os.link(source, target)
    except OSError:
        target.symlink_to(source.resolve())
    return target


def recipe_text(name: str, file_name: str, sha256: str, size: int, source: dict[str, str]) -> str:
    lines = [
        "# Written by benchmarks/fetch_loopback.py: random bytes, nothing to publish.",
        "schema = 1",
        "",
        "[package]",
        f'name = "{name}"',
        'version = "1.0"',
        'summary = "Random bytes for benchmarks/fetch_loopback.py"',
        "",
        "[license]",
        'weights = "MIT"',
        'upstream = "MIT"',
        "",
        "[[weights]]",
        f'path = "{file_name}"',
        f'sha256 = "{sha256}"',
        f"size = {size}",
        'format = "other"',
        "",
        "[[weights.sources]]",
        *(f"{key} = {json.dumps(value)}" for key, value in source.items()),
    ]
    return "\n".join(lines) + "\n"


def write_recipes(root: Path, label: str, file_name: str, sha256: str, size: int, file_url: str) -> dict:
    """The url and hf recipes of one file; {"url": path, "hf": path}."""
    folder = root / "recipes"
    folder.mkdir(parents=True, exist_ok=True)
    sources = {
        "url": {"kind": "url", "url": file_url},
        "hf": {"kind": "hf", "repo": REPO_ID, "revision": COMMIT, "path": file_name},
    }
    out = {}
    for kind, source in sources.items():
        path = folder / f"fetch-{kind}-{label}.toml"
        path.write_text(recipe_text(f"bench-fetch-{kind}-{label}", file_name, sha256, size, source))
        out[kind] = path
    return out


def hub_headers(sha256: str, size: int) -> dict[str, str]:
    """What the Hub sends with an LFS file: the commit, the sha256 ETag, the linked size."""
    return {
        "X-Repo-Commit": COMMIT,
        "ETag": f'"{sha256}"',
        "X-Linked-Etag": f'"{sha256}"',
        "X-Linked-Size": str(size),
    }


def child_environment(root: Path, hub_url: str) -> None:
    """Every child points at the loopback Hub, with an empty home: no token, no user cache, no proxy."""
    home = root / "hf-home"
    (home / "hub").mkdir(parents=True, exist_ok=True)
    for name in (
        "HF_TOKEN",
        "HUGGING_FACE_HUB_TOKEN",
        "HF_HUB_OFFLINE",
        "TRANSFORMERS_OFFLINE",
        "HUGGINGFACE_HUB_CACHE",
        "XDG_CACHE_HOME",
        "HF_HUB_DISABLE_IMPLICIT_TOKEN",
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "ALL_PROXY",
        "http_proxy",
        "https_proxy",
        "all_proxy",
    ):
        os.environ.pop(name, None)
    os.environ.update(
        {
            "HF_ENDPOINT": hub_url,
            "HF_HOME": str(home),
            "HF_HUB_CACHE": str(home / "hub"),  # weightpkg looks here first: it stays empty
            "HF_TOKEN_PATH": str(home / "no-token"),
            "HF_HUB_DISABLE_TELEMETRY": "1",
            "HF_HUB_DISABLE_PROGRESS_BARS": "1",  # weightpkg shows none either when stderr is no tty
            "HF_HUB_DISABLE_UPDATE_CHECK": "1",
            "NO_PROXY": "127.0.0.1,localhost",
            "no_proxy": "127.0.0.1,localhost",
        }
    )


def remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


# ----------------------------------------------------------------------------- the commands


class Commands:
    """The four timed commands of one file; each makes its output fresh and checks it after."""

    def __init__(
        self,
        weightpkg: list[str],
        python: str,
        curl: str,
        root: Path,
        recipes: dict,
        file_url: str,
        file_name: str,
        size: int,
    ) -> None:
        self.weightpkg, self.python, self.curl = weightpkg, python, curl
        self.root, self.recipes, self.file_url = root, recipes, file_url
        self.file_name, self.size = file_name, size
        self.store = root / "store"
        self.curl_out = root / "curl-out" / file_name
        self.hf_cache = root / "hf-cache"
        self.user_cache = Path(os.environ["HF_HUB_CACHE"])  # set by child_environment

    def _fresh(self, *paths: Path) -> None:
        for path in paths:
            remove(path)

    def weightpkg_fetch(self, kind: str) -> tuple[dict, Path]:
        self._fresh(self.store)
        if kind == "hf" and any(self.user_cache.iterdir()):
            raise SystemExit(f"{self.user_cache} is not empty: weightpkg would copy from it")
        result = run_child([*self.weightpkg, "--store", str(self.store), "fetch", str(self.recipes[kind])])
        entries = [p for p in (self.store / "entries").glob(f"*{self.file_name}") if p.is_file()]
        if len(entries) != 1 or entries[0].stat().st_size != self.size:
            raise SystemExit(f"weightpkg fetch ({kind}) left {entries} in the store: {result['stdout']}")
        return result, entries[0]

    def curl_fetch(self) -> tuple[dict, Path]:
        self._fresh(self.curl_out)
        self.curl_out.parent.mkdir(parents=True, exist_ok=True)
        result = run_child([self.curl, "-s", "-o", str(self.curl_out), self.file_url])
        if self.curl_out.stat().st_size != self.size:
            raise SystemExit(f"curl wrote {self.curl_out.stat().st_size} bytes, not {self.size}")
        return result, self.curl_out

    def hf_fetch(self) -> tuple[dict, Path]:
        self._fresh(self.hf_cache)
        argv = [self.python, "-c", _HF_CHILD, REPO_ID, self.file_name, COMMIT, str(self.hf_cache)]
        result = run_child(argv)
        path = Path(result["stdout"].strip().splitlines()[-1])
        if path.stat().st_size != self.size:
            raise SystemExit(f"hf_hub_download gave {path} of {path.stat().st_size} bytes, not {self.size}")
        return result, path

    def clean(self) -> None:
        self._fresh(self.store, self.curl_out, self.hf_cache)


# ----------------------------------------------------------------------------- measurements


def _strip(result: dict) -> dict:
    return {k: v for k, v in result.items() if k != "stdout"}


def bench_pairs(cmds: Commands, sha256: str, runs: int, log) -> dict:
    """Row 1 (url, curl) and row 2 (hf, hf_hub_download), interleaved: A B A' B' per round."""
    rows = {
        "url": ("weightpkg fetch (url)", lambda: cmds.weightpkg_fetch("url"), "curl -o", cmds.curl_fetch),
        "hf": ("weightpkg fetch (hf)", lambda: cmds.weightpkg_fetch("hf"), "hf_hub_download", cmds.hf_fetch),
    }
    log("warm-up round (not counted): every output is checked against the pin")
    for name, (_, wp, _, peer) in rows.items():
        for label, run in (("weightpkg", wp), ("peer", peer)):
            result, path = run()
            if sha256_of(path) != sha256:
                raise SystemExit(f"{name} row, {label}: {path} does not match the pin {sha256}")
            log(f"  {name:>3} {label:<9} {result['wall_s']:7.3f} s  sha256 ok")
        cmds.clean()  # each run starts right after a delete, like the timed ones

    pairs: dict[str, list[dict]] = {name: [] for name in rows}
    log(f"{runs} rounds; each: weightpkg url, curl, weightpkg hf, hf_hub_download (wall seconds):")
    header = ("round", "row", "weightpkg", "peer", "ratio", "wp RSS MiB", "wp user+sys", "peer RSS")
    log("  {:>5}  {:>3}  {:>9}  {:>9}  {:>6}  {:>10}  {:>11}  {:>8}".format(*header))
    for i in range(1, runs + 1):
        for name, (_, wp, _, peer) in rows.items():
            a, _ = wp()
            cmds.clean()
            b, _ = peer()
            cmds.clean()
            pair = {"weightpkg": _strip(a), "peer": _strip(b), "ratio": a["wall_s"] / b["wall_s"]}
            pairs[name].append(pair)
            log(
                f"  {i:>5}  {name:>3}  {a['wall_s']:>9.3f}  {b['wall_s']:>9.3f}  {pair['ratio']:>6.3f}"
                f"  {a['maxrss_mib']:>10.1f}  {a['user_s'] + a['sys_s']:>11.3f}  {b['maxrss_mib']:>8.1f}"
            )

    out = {}
    for name, (wp_label, _, peer_label, _) in rows.items():
        got = pairs[name]
        wp_wall = summary([p["weightpkg"]["wall_s"] for p in got])
        peer_wall = summary([p["peer"]["wall_s"] for p in got])
        ratio = summary([p["ratio"] for p in got])
        goal = CURL_GOAL if name == "url" else HF_GOAL
        out[name] = {
            "weightpkg_label": wp_label,
            "peer_label": peer_label,
            "pairs": got,
            "weightpkg_wall_s": wp_wall,
            "peer_wall_s": peer_wall,
            "weightpkg_cpu_s": summary([p["weightpkg"]["user_s"] + p["weightpkg"]["sys_s"] for p in got]),
            "peer_cpu_s": summary([p["peer"]["user_s"] + p["peer"]["sys_s"] for p in got]),
            "median_paired_ratio": ratio["median"],
            "paired_ratio": ratio,
            "ratio_of_medians": wp_wall["median"] / peer_wall["median"],
            "weightpkg_peak_rss_mib": max(p["weightpkg"]["maxrss_mib"] for p in got),
            "peer_peak_rss_mib": max(p["peer"]["maxrss_mib"] for p in got),
            "goal": goal,
            "goal_met": ratio["median"] <= goal,
        }
    return out


def bench_breakdown(cmds: Commands, tiny: Commands, openssl: str, served: Path, runs: int, log) -> dict:
    """Median whole-process cost of the parts of a fetch, interleaved round by round."""
    sink = cmds.root / "curl-out" / "synced.bin"
    sink.parent.mkdir(parents=True, exist_ok=True)
    py = cmds.python
    steps = {
        "python -c pass": lambda: run_child([py, "-c", "pass"]),
        "python -c 'import requests'": lambda: run_child([py, "-c", "import requests"]),
        "python -c 'import huggingface_hub (download path)'": lambda: run_child(
            [py, "-c", "from huggingface_hub import get_hf_file_metadata, hf_hub_download"]
        ),
        "weightpkg --version": lambda: run_child([*cmds.weightpkg, "--version"]),
        "weightpkg fetch (url), 1 KiB file": lambda: tiny.weightpkg_fetch("url")[0],
        "weightpkg fetch (hf), 1 KiB file": lambda: tiny.weightpkg_fetch("hf")[0],
        "hf_hub_download, 1 KiB file": lambda: tiny.hf_fetch()[0],
        "curl -s -o /dev/null (transfer only)": lambda: run_child(
            [cmds.curl, "-s", "-o", os.devnull, cmds.file_url]
        ),
        "curl -s -o NEWFILE, then sync NEWFILE (fsync)": lambda: run_child(
            [
                "sh",
                "-c",
                'rm -f "$1" && "$2" -s -o "$1" "$3" && sync "$1"',
                "sh",
                str(sink),
                cmds.curl,
                cmds.file_url,
            ]
        ),
        "openssl dgst -sha256 (hash only, warm)": lambda: run_child(
            [openssl, "dgst", "-sha256", str(served)]
        ),
    }
    log(f"breakdown, {runs} interleaved rounds after one warm-up (median whole-process wall s):")
    walls: dict[str, list[float]] = {name: [] for name in steps}
    rss: dict[str, float] = dict.fromkeys(steps, 0.0)
    for round_ in range(runs + 1):
        for name, step in steps.items():
            result = step()
            cmds.clean()
            tiny.clean()
            remove(sink)
            if round_:
                walls[name].append(result["wall_s"])
                rss[name] = max(rss[name], result["maxrss_mib"])
    out = {name: {"wall_s": summary(v), "maxrss_mib": rss[name]} for name, v in walls.items()}
    for name, value in out.items():
        log(f"  {name:<52} {value['wall_s']['median']:8.3f}  {value['maxrss_mib']:6.1f} MiB")
    return out


# ----------------------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--workdir",
        type=Path,
        default=Path("/tmp/weightpkg-bench"),
        help="scratch folder for the served file, stores and caches (default: %(default)s)",
    )
    parser.add_argument("--size", type=parse_size, default=GiB, help="file size: 1G (default), 512M, 32M")
    parser.add_argument("--runs", type=int, default=7, help="timed rounds after the warm-up (default: 7)")
    parser.add_argument("--breakdown", action="store_true", help="also time the parts of a fetch")
    parser.add_argument(
        "--server",
        choices=("auto", "nginx", "python"),
        default="auto",
        help="file server for the url row: nginx if installed (auto), or force one",
    )
    parser.add_argument(
        "--nginx",
        default=shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin"),
        help="the nginx binary (default: the one on PATH or in /usr/sbin)",
    )
    add_child_options(parser, pycache=False)
    parser.add_argument("--curl", default=shutil.which("curl") or "curl")
    parser.add_argument("--openssl", default=shutil.which("openssl") or "openssl")
    parser.add_argument(
        "--clean", action="store_true", help="delete the test file and all this made, at the end"
    )
    args = parser.parse_args()
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    if args.server == "nginx" and not args.nginx:
        parser.error("--server nginx: no nginx found (apt-get install nginx-light, or --nginx PATH)")

    def log(text: str) -> None:
        print(text, file=sys.stderr if args.json else sys.stdout, flush=True)

    weightpkg, python = prepare_children(args, log)
    root = args.workdir / SUBDIR
    srv = root / "srv"
    use_nginx = args.server == "nginx" or (args.server == "auto" and bool(args.nginx))

    data = ensure_file(args.workdir, args.size, log)
    tiny_data = args.workdir / "tiny-1KiB.bin"
    if not tiny_data.is_file() or tiny_data.stat().st_size != 1024:
        tiny_data.write_bytes(os.urandom(1024))
    served = link_into(srv, data, FILE_NAME)
    tiny_served = link_into(srv, tiny_data, TINY_NAME)
    log(f"sha256 of {data.name} ...")
    sha256, tiny_sha256 = file_sha256(data), file_sha256(tiny_data)

    routes: dict[str, tuple[Path, dict[str, str]]] = {}
    for path, digest in ((served, sha256), (tiny_served, tiny_sha256)):
        size = path.stat().st_size
        routes[f"/{path.name}"] = (path, {})
        routes[f"/{REPO_ID}/resolve/{COMMIT}/{path.name}"] = (path, hub_headers(digest, size))
    hub = start_python_server(routes)
    hub_url = f"http://127.0.0.1:{hub.server_address[1]}"
    nginx_proc = None
    try:
        if use_nginx:
            nginx_proc, file_base = start_nginx(args.nginx, root / "nginx", srv, log)
            version = subprocess.run([args.nginx, "-v"], capture_output=True, text=True).stderr.strip()
            server_fact = f"nginx ({version.removeprefix('nginx version: ') or '?'}, sendfile) at {file_base}"
        else:
            file_base = hub_url
            server_fact = f"Python ThreadingHTTPServer + socket.sendfile at {file_base}"
        for path in (served, tiny_served):
            if head_length(f"{file_base}/{path.name}") != path.stat().st_size:
                raise SystemExit(f"{file_base}/{path.name}: the server announces another size")
        child_environment(root, hub_url)

        facts = machine_facts(args.openssl, weightpkg, python, args.workdir)
        facts["curl"] = capture([args.curl, "--version"]).splitlines()[0]
        facts["huggingface_hub"] = capture(
            [python, "-c", "import huggingface_hub as h; print(h.__version__)"]
        )
        facts["file_server"] = server_fact
        facts["hub_server"] = f"Python ThreadingHTTPServer + socket.sendfile at {hub_url} (resolve route)"
        facts.update(rss_facts())
        log_facts(facts, log)
        if not use_nginx:
            log("  (no nginx: the url row uses the Python server; apt-get install nginx-light for nginx)")

        recipes = write_recipes(root, "big", FILE_NAME, sha256, args.size, f"{file_base}/{FILE_NAME}")
        tiny_recipes = write_recipes(root, "tiny", TINY_NAME, tiny_sha256, 1024, f"{file_base}/{TINY_NAME}")
        cmds = Commands(
            weightpkg,
            python,
            args.curl,
            root / "run",
            recipes,
            f"{file_base}/{FILE_NAME}",
            FILE_NAME,
            args.size,
        )
        tiny = Commands(
            weightpkg,
            python,
            args.curl,
            root / "run-tiny",
            tiny_recipes,
            f"{file_base}/{TINY_NAME}",
            TINY_NAME,
            1024,
        )
        log(f"warming the page cache: {warm_page_cache(data):.2f} s to read {size_label(args.size)}")
        hub.body_cpu_s.clear()
        result = bench_pairs(cmds, sha256, args.runs, log)
        hub_cpu = list(hub.body_cpu_s)
        breakdown = (
            bench_breakdown(cmds, tiny, args.openssl, served, args.runs, log) if args.breakdown else None
        )
        cmds.clean()
        tiny.clean()
    finally:
        hub.shutdown()
        hub.server_close()
        if nginx_proc is not None:
            stop_nginx(nginx_proc)
        if args.clean:
            for leftover in (
                root,
                data,
                data.with_name(data.name + ".sha256"),
                tiny_data,
                tiny_data.with_name(tiny_data.name + ".sha256"),
            ):
                if leftover.exists():
                    remove(leftover)
                    log(f"deleted {leftover}")

    gb = args.size / 1e9
    log(f"results, {size_label(args.size)}, medians of {args.runs} rounds:")
    for name, row in result.items():
        for side, label in (("weightpkg", row["weightpkg_label"]), ("peer", row["peer_label"])):
            wall, cpu = row[f"{side}_wall_s"], row[f"{side}_cpu_s"]
            rss = row[f"{side}_peak_rss_mib"]
            log(
                f"  {label:<24} {wall['median']:.3f} s ({gb / wall['median']:.2f} GB/s)"
                f"  [{wall['min']:.3f}-{wall['max']:.3f}]  cpu {cpu['median']:.3f} s  peak RSS {rss:.1f} MiB"
            )
        verdict = "met" if row["goal_met"] else "MISSED"
        spread = row["paired_ratio"]
        log(
            f"  ratio {name:<3} weightpkg/{row['peer_label']:<16} {row['median_paired_ratio']:.3f} "
            f"(median of paired ratios, range {spread['min']:.3f}-{spread['max']:.3f};"
            f" ratio of medians {row['ratio_of_medians']:.3f}); goal <= {row['goal']}: {verdict}"
        )
    if hub_cpu:
        cpu = summary(hub_cpu)
        spread_s = f"[{cpu['min']:.3f}-{cpu['max']:.3f}]"
        log(f"  Python server CPU per body sent: median {cpu['median']:.3f} s {spread_s}")

    if args.json:
        report = {
            "machine": facts,
            "size_bytes": args.size,
            "runs": args.runs,
            "sha256": sha256,
            "rows": result,
            "python_server_body_cpu_s": summary(hub_cpu) if hub_cpu else None,
        }
        if breakdown is not None:
            report["breakdown"] = breakdown
        print(json.dumps(report, indent=2, sort_keys=True))


if __name__ == "__main__":
    main()
