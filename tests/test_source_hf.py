"""The hf source, driven through the real huggingface_hub client against a Hub look-alike on 127.0.0.1.

Every address is loopback: HF_ENDPOINT names the test's HubServer, and HF_HOME/HF_HUB_CACHE lie
under the test's tmp_path, so neither the user's token nor their cache is ever read.
"""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import weightpkg
from weightpkg.sources.retry import MAX_ATTEMPTS

from .builders import pinned, report_lines, sha256, write_recipe
from .conftest import REPO
from .hub_server import COMMIT, HubServer
from .servers import Fault, FileServer, closed_port

MIB = 1 << 20
BIG = os.urandom(3 * MIB + 321)  # several chunks, so a drop mid-body keeps bytes
SMALL = os.urandom(70_000)
REPO_ID = "acme/tiny-mlp"
NAME = "model.safetensors"


@pytest.fixture(scope="module", autouse=True)
def client_imported_pointing_nowhere(tmp_path_factory: pytest.TempPathFactory) -> None:
    """huggingface_hub reads HF_ENDPOINT, HF_HOME and the offline switch once, when imported.

    Import it here, pointed at a closed loopback port and an empty home, so that no test's server
    or folder is baked into the client; weightpkg reads those variables at each fetch.
    """
    if "huggingface_hub.constants" in sys.modules:
        return
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{closed_port()}")
        patch.setenv("HF_HOME", str(tmp_path_factory.mktemp("hf-import-home")))
        patch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
        for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"):
            patch.delenv(name, raising=False)
        importlib.import_module("huggingface_hub.file_download")


def hub_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, server: HubServer) -> None:
    """The client pointed at ``server``, with a home and cache of the test's own."""
    monkeypatch.setenv("HF_ENDPOINT", server.url)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf-home" / "hub"))
    for name in ("HF_HUB_DISABLE_TELEMETRY", "HF_HUB_DISABLE_UPDATE_CHECK", "HF_HUB_DISABLE_PROGRESS_BARS"):
        monkeypatch.setenv(name, "1")
    for name in (
        "HF_HUB_OFFLINE",
        "TRANSFORMERS_OFFLINE",
        "HF_TOKEN",
        "HUGGING_FACE_HUB_TOKEN",
        "HF_TOKEN_PATH",
        "HUGGINGFACE_HUB_CACHE",
        "XDG_CACHE_HOME",
        "HF_HUB_DISABLE_IMPLICIT_TOKEN",
    ):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[HubServer]:
    """A Hub that serves every file itself."""
    server = HubServer().start()
    hub_env(monkeypatch, tmp_path, server)
    yield server
    server.stop()


@pytest.fixture
def cdn_hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[HubServer]:
    """A Hub that 302s LFS files to a CDN on another port (another origin), as the real Hub does."""
    cdn = HubServer().start()
    server = HubServer(cdn=cdn).start()
    hub_env(monkeypatch, tmp_path, server)
    yield server
    server.stop()
    cdn.stop()


def hf(path: str = NAME, repo: str = REPO_ID, revision: str = COMMIT) -> dict:
    return {"kind": "hf", "repo": repo, "revision": revision, "path": path}


def resolve_url(server: HubServer, path: str = NAME, repo: str = REPO_ID, revision: str = COMMIT) -> str:
    return f"{server.url}/{repo}/resolve/{revision}/{path}"


def entries(store_root: Path) -> list[Path]:
    folder = store_root / "entries"
    return sorted(folder.iterdir()) if folder.is_dir() else []


def partials(store_root: Path) -> list[Path]:
    folder = store_root / "tmp"
    return sorted(folder.glob("*.partial")) if folder.is_dir() else []


def assert_stored(store_root: Path, data: bytes, name: str = NAME) -> None:
    found = entries(store_root)
    assert [p.name.split("-", 1)[1] for p in found] == [name]
    assert found[0].read_bytes() == data
    assert partials(store_root) == []


def ok_line(recipe: Path, data: bytes, source: str, name: str = NAME) -> str:
    return f"{recipe}: {name}: ok (sha256 {sha256(data)[:12]}…, {len(data)} bytes; from {source})"


def fill_user_cache(tmp_path: Path, path: str = NAME, repo: str = REPO_ID) -> Path:
    """Download with the real client into the user's cache, as the user's own tools would."""
    from huggingface_hub import hf_hub_download

    cache = str(tmp_path / "hf-home" / "hub")
    endpoint = os.environ["HF_ENDPOINT"]  # the client read it once, at import (see the fixture above)
    return Path(hf_hub_download(repo, path, revision=COMMIT, cache_dir=cache, endpoint=endpoint))


# --- fetching -----------------------------------------------------------------------------------


def test_an_hf_source_fetches_into_the_store_and_verifies(
    tmp_path: Path, store_root: Path, hub: HubServer, cli
) -> None:
    hub.add_file(REPO_ID, "config.json", SMALL, lfs=False)  # a git file: served by the Hub itself
    recipe = write_recipe(tmp_path, [pinned("config.json", SMALL, [hf("config.json")])])
    done = cli("--store", str(store_root), "verify", str(recipe))
    assert done.returncode == 0, done.stdout + done.stderr
    url = resolve_url(hub, "config.json")
    assert report_lines(done.stdout) == [
        ok_line(recipe, SMALL, f"source 1 (hf {url})", "config.json"),
        f"{recipe}: verified: test-pkg 1.0 (1 file)",
    ]
    assert done.stderr == ""
    assert_stored(store_root, SMALL, "config.json")
    assert hub.body_gets(REPO_ID, "config.json") == [None]
    head = [c for c in hub.calls if c.method == "HEAD"]
    assert [c.path for c in head] == [f"/{REPO_ID}/resolve/{COMMIT}/config.json"]

    hub.calls.clear()
    again = cli("--store", str(store_root), "verify", str(recipe))
    assert again.returncode == 0, again.stdout + again.stderr
    assert [c for c in hub.calls if not c.path.startswith("/api/")] == []  # the store answered


def test_an_lfs_file_comes_from_the_cdn_and_the_token_stays_on_the_hub(
    tmp_path: Path, store_root: Path, cdn_hub: HubServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = cdn_hub.add_file(REPO_ID, NAME, BIG)
    repo.token = "hf_private_token"
    monkeypatch.setenv("HF_TOKEN", "hf_private_token")
    source = hf()
    source["declared-license"] = "Apache-2.0"
    recipe = write_recipe(tmp_path, [pinned(NAME, BIG, [source])])
    [report] = weightpkg.fetch([recipe], weightpkg.open_store(store_root))
    assert report.ok, report.to_json()
    [f] = report.files
    assert f.source == f"source 1 (hf {resolve_url(cdn_hub)})"
    assert_stored(store_root, BIG)
    head = [c for c in cdn_hub.calls if c.method == "HEAD"]
    assert [c.authorization for c in head] == ["Bearer hf_private_token"]
    cdn = cdn_hub.cdn
    assert isinstance(cdn, HubServer)
    assert [(c.method, c.authorization) for c in cdn.calls] == [("GET", None)]  # no token to the CDN
    assert cdn_hub.body_gets(REPO_ID, NAME) == [None]


def test_a_dataset_repository_is_asked_under_its_prefix(
    tmp_path: Path, store_root: Path, hub: HubServer
) -> None:
    hub.add_file("acme/digits", "train.csv", SMALL, repo_type="dataset", lfs=False)
    source = hf("train.csv", "acme/digits")
    source["repo-type"] = "dataset"
    recipe = write_recipe(tmp_path, [pinned("train.csv", SMALL, [source], "csv")])
    [report] = weightpkg.fetch([recipe], weightpkg.open_store(store_root))
    assert report.ok, report.to_json()
    url = f"{hub.url}/datasets/acme/digits/resolve/{COMMIT}/train.csv"
    assert report.files[0].source == f"source 1 (hf {url})"
    assert_stored(store_root, SMALL, "train.csv")


# --- wrong bytes never get in -------------------------------------------------------------------


def test_wrong_bytes_under_the_right_etag_are_refused_before_the_store(
    tmp_path: Path, store_root: Path, cdn_hub: HubServer, cli
) -> None:
    other = os.urandom(len(BIG))
    cdn_hub.add_file(REPO_ID, NAME, other, etag=sha256(BIG))  # the Hub claims the pinned sha256
    # The client itself accepts them: it does not check the bytes against the ETag.
    cached = fill_user_cache(tmp_path / "elsewhere")
    assert cached.read_bytes() == other and cached.resolve().name == sha256(BIG)

    recipe = write_recipe(tmp_path, [pinned(NAME, BIG, [hf()])])
    done = cli("--store", str(store_root), "verify", str(recipe))
    assert done.returncode == 1, done.stdout + done.stderr
    assert report_lines(done.stdout) == [
        f"{recipe}: {NAME}: FAILED: sha256 mismatch: expected {sha256(BIG)}, got {sha256(other)} "
        f"(from source 1 (hf {resolve_url(cdn_hub)}))",
        f"{recipe}: FAILED: test-pkg 1.0 (1 of 1 file failed)",
    ]
    assert "Traceback" not in done.stderr
    assert entries(store_root) == []
    assert list((store_root / "tmp").iterdir()) == []
    assert not (store_root / "packages" / "test-pkg-1.0.json").exists()


# --- dropped connections ------------------------------------------------------------------------


def test_a_dropped_connection_is_resumed_with_a_range_request(
    tmp_path: Path, store_root: Path, cdn_hub: HubServer, cli
) -> None:
    repo = cdn_hub.add_file(REPO_ID, NAME, BIG)
    cut = 1_500_000
    assert cdn_hub.cdn is not None
    cdn_hub.cdn.faults[cdn_hub.cdn_path(repo, NAME)] = Fault(cut_after=cut, times=1)
    recipe = write_recipe(tmp_path, [pinned(NAME, BIG, [hf()])])
    done = cli("--store", str(store_root), "verify", str(recipe))
    assert done.returncode == 0, done.stdout + done.stderr
    first, second = cdn_hub.body_gets(REPO_ID, NAME)
    assert first is None
    assert second is not None and second.startswith("bytes=")
    assert 0 < int(second.removeprefix("bytes=").removesuffix("-")) <= cut
    assert_stored(store_root, BIG)


def test_a_download_that_keeps_dropping_fails_cleanly_and_the_next_run_resumes(
    tmp_path: Path, store_root: Path, hub: HubServer
) -> None:
    repo = hub.add_file(REPO_ID, NAME, BIG)
    step = 100_000
    # The client's metadata HEAD (no body to cut), then as many cut GETs as weightpkg attempts.
    hub.faults[hub.resolve_path(repo, NAME)] = Fault(cut_after=step, times=1 + MAX_ATTEMPTS)
    recipe = write_recipe(tmp_path, [pinned(NAME, BIG, [hf()])])
    [report] = weightpkg.fetch([recipe], weightpkg.open_store(store_root))
    assert not report.ok
    [f] = report.files
    url = resolve_url(hub)
    assert f.notes == [
        f"source 1 (hf {url}): body ended after {MAX_ATTEMPTS * step} of {len(BIG)} bytes "
        f"(after {MAX_ATTEMPTS} attempts, {MAX_ATTEMPTS * step} bytes kept for resuming)"
    ]
    assert entries(store_root) == []
    [partial] = partials(store_root)
    assert partial.read_bytes() == BIG[: MAX_ATTEMPTS * step]  # what arrived, and only that

    [report] = weightpkg.fetch([recipe], weightpkg.open_store(store_root))
    assert report.ok, report.to_json()
    assert hub.body_gets(REPO_ID, NAME)[-1] == f"bytes={MAX_ATTEMPTS * step}-"
    assert_stored(store_root, BIG)


# --- the user's Hugging Face cache --------------------------------------------------------------


def test_the_users_cache_is_read_and_the_hub_not_asked(
    tmp_path: Path, store_root: Path, cdn_hub: HubServer
) -> None:
    cdn_hub.add_file(REPO_ID, NAME, BIG)
    cached = fill_user_cache(tmp_path)
    assert cached.is_symlink()  # snapshots/<commit>/<path> → blobs/<sha256>
    cdn_hub.calls.clear()
    assert cdn_hub.cdn is not None
    cdn_hub.cdn.calls.clear()
    cdn_hub.cdn.requests.clear()

    recipe = write_recipe(tmp_path, [pinned(NAME, BIG, [hf()])])
    [report] = weightpkg.fetch([recipe], weightpkg.open_store(store_root))
    assert report.ok, report.to_json()
    assert report.files[0].source == f"source 1 (hf cache {cached})"
    assert report.files[0].notes == []
    assert cdn_hub.calls == [] and cdn_hub.cdn.calls == []  # not even the metadata request
    assert cdn_hub.body_gets(REPO_ID, NAME) == []
    assert_stored(store_root, BIG)
    assert not entries(store_root)[0].samefile(cached)  # a copy: the store owns its entry


def test_a_tampered_cached_blob_is_refused_and_the_file_fetched_afresh(
    tmp_path: Path, store_root: Path, cdn_hub: HubServer
) -> None:
    cdn_hub.add_file(REPO_ID, NAME, BIG)
    cached = fill_user_cache(tmp_path)
    tampered = bytearray(BIG)
    tampered[12345] ^= 0xFF
    blob = cached.resolve()
    blob.chmod(0o644)
    blob.write_bytes(bytes(tampered))
    before = len(cdn_hub.body_gets(REPO_ID, NAME))

    recipe = write_recipe(tmp_path, [pinned(NAME, BIG, [hf()])])
    [report] = weightpkg.fetch([recipe], weightpkg.open_store(store_root))
    assert report.ok, report.to_json()
    [f] = report.files
    assert f.source == f"source 1 (hf {resolve_url(cdn_hub)})"
    assert f.notes == [
        f"source 1 (hf cache {cached}): {NAME}: sha256 mismatch: expected {sha256(BIG)}, "
        f"got {sha256(bytes(tampered))}"
    ]
    assert cdn_hub.body_gets(REPO_ID, NAME)[before:] == [None]
    assert_stored(store_root, BIG)
    assert blob.read_bytes() == bytes(tampered)  # the user's cache is theirs: read, never written


def test_offline_mode_reads_the_cache_only(
    tmp_path: Path, store_root: Path, hub: HubServer, monkeypatch: pytest.MonkeyPatch, cli
) -> None:
    hub.add_file(REPO_ID, NAME, SMALL)
    recipe = write_recipe(tmp_path, [pinned(NAME, SMALL, [hf()])])
    cache = tmp_path / "hf-home" / "hub"
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    done = cli("--store", str(store_root), "fetch", str(recipe))
    assert done.returncode == 1, done.stdout + done.stderr
    assert report_lines(done.stdout) == [
        f"{recipe}: {NAME}: note: source 1 (hf {resolve_url(hub)}): HF_HUB_OFFLINE is set and the "
        f"Hugging Face cache ({cache}) does not hold the file",
        f"{recipe}: {NAME}: FAILED: no source delivered it",
        f"{recipe}: FAILED: test-pkg 1.0 (1 of 1 file failed)",
    ]
    assert hub.calls == []

    monkeypatch.delenv("HF_HUB_OFFLINE")
    cached = fill_user_cache(tmp_path)
    hub.calls.clear()
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    done = cli("--store", str(store_root), "fetch", str(recipe))
    assert done.returncode == 0, done.stdout + done.stderr
    assert report_lines(done.stdout)[0] == ok_line(recipe, SMALL, f"source 1 (hf cache {cached})")
    assert hub.calls == []
    assert_stored(store_root, SMALL)


# --- what the Hub refuses -----------------------------------------------------------------------


OTHER_COMMIT = "f" * 40


@pytest.mark.parametrize(
    ("source", "note"),
    [
        (
            hf(repo="acme/nope"),
            "repository acme/nope not found (HTTP 404) (if it is private, set HF_TOKEN "
            "to a token that can read it) (the server says: Repository not found)",
        ),
        (
            hf(revision=OTHER_COMMIT),
            f"{REPO_ID} has no revision {OTHER_COMMIT} (HTTP 404) (the server says: Invalid rev id)",
        ),
        (
            hf("missing.bin"),
            f"{REPO_ID} has no file missing.bin at {COMMIT} (HTTP 404) (the server says: Entry not found)",
        ),
    ],
    ids=["repository", "revision", "file"],
)
def test_a_404_gives_a_clear_note(
    tmp_path: Path, store_root: Path, hub: HubServer, cli, source: dict, note: str
) -> None:
    hub.add_file(REPO_ID, NAME, SMALL)
    recipe = write_recipe(tmp_path, [pinned(NAME, SMALL, [source])])
    done = cli("--store", str(store_root), "verify", str(recipe))
    assert done.returncode == 1, done.stdout + done.stderr
    url = resolve_url(hub, source["path"], source["repo"], source["revision"])
    assert report_lines(done.stdout) == [
        f"{recipe}: {NAME}: note: source 1 (hf {url}): {note}",
        f"{recipe}: {NAME}: FAILED: no source delivered it",
        f"{recipe}: FAILED: test-pkg 1.0 (1 of 1 file failed)",
    ]
    assert done.stderr == ""
    assert entries(store_root) == [] and partials(store_root) == []


@pytest.mark.parametrize(
    ("gated", "token", "note"),
    [
        (
            False,
            None,
            "HTTP 401 Unauthorized: acme/tiny-mlp is private, gated or missing; no token was "
            "sent: set HF_TOKEN or run `hf auth login` (the server says: Invalid username or password.)",
        ),
        (
            False,
            "hf_wrong",
            "HTTP 401 Unauthorized: acme/tiny-mlp is private, gated or missing; the token "
            "sent (HF_TOKEN or `hf auth login`) was refused (the server says: Invalid username or password.)",
        ),
        (
            True,
            None,
            "acme/tiny-mlp is a gated repository (HTTP 401): accept its conditions on the Hub "
            "with an account whose token weightpkg can use; no token was sent: set HF_TOKEN or run "
            "`hf auth login` (the server says: Access to model acme/tiny-mlp is restricted. You must have "
            "access to it.)",
        ),
    ],
    ids=["private-no-token", "private-wrong-token", "gated-no-token"],
)
def test_a_401_gives_a_clear_note_and_the_right_token_gets_through(
    tmp_path: Path,
    store_root: Path,
    hub: HubServer,
    monkeypatch: pytest.MonkeyPatch,
    cli,
    gated: bool,
    token: str | None,
    note: str,
) -> None:
    repo = hub.add_file(REPO_ID, NAME, SMALL)
    repo.token, repo.gated = "hf_right", gated
    if token:
        monkeypatch.setenv("HF_TOKEN", token)
    recipe = write_recipe(tmp_path, [pinned(NAME, SMALL, [hf()])])
    done = cli("--store", str(store_root), "fetch", str(recipe))
    assert done.returncode == 1, done.stdout + done.stderr
    assert report_lines(done.stdout)[0] == f"{recipe}: {NAME}: note: source 1 (hf {resolve_url(hub)}): {note}"
    assert done.stderr == ""
    assert entries(store_root) == []

    monkeypatch.setenv("HF_TOKEN", "hf_right")
    done = cli("--store", str(store_root), "fetch", str(recipe))
    assert done.returncode == 0, done.stdout + done.stderr
    assert hub.calls[-1].authorization == "Bearer hf_right"
    assert_stored(store_root, SMALL)


def test_the_token_saved_by_hf_auth_login_is_used(
    tmp_path: Path, store_root: Path, hub: HubServer, cli
) -> None:
    repo = hub.add_file(REPO_ID, NAME, SMALL)
    repo.token = "hf_saved"
    (tmp_path / "hf-home").mkdir()
    (tmp_path / "hf-home" / "token").write_text("hf_saved\n")  # where `hf auth login` keeps it
    recipe = write_recipe(tmp_path, [pinned(NAME, SMALL, [hf()])])
    done = cli("--store", str(store_root), "fetch", str(recipe))
    assert done.returncode == 0, done.stdout + done.stderr
    assert {c.authorization for c in hub.calls if "/resolve/" in c.path} == {"Bearer hf_saved"}
    assert_stored(store_root, SMALL)


def test_a_hub_answering_for_another_commit_is_refused(
    tmp_path: Path, store_root: Path, hub: HubServer
) -> None:
    repo = hub.add_file(REPO_ID, NAME, SMALL)
    repo.answer_commit = OTHER_COMMIT
    recipe = write_recipe(tmp_path, [pinned(NAME, SMALL, [hf()])])
    [report] = weightpkg.fetch([recipe], weightpkg.open_store(store_root))
    assert not report.ok
    assert report.files[0].notes == [
        f"source 1 (hf {resolve_url(hub)}): the Hub answered for commit {OTHER_COMMIT}, "
        f"not the pinned {COMMIT}"
    ]
    assert hub.body_gets(REPO_ID, NAME) == []


def test_a_closed_port_is_connection_refused(
    tmp_path: Path, store_root: Path, hub: HubServer, monkeypatch: pytest.MonkeyPatch, cli
) -> None:
    endpoint = f"http://127.0.0.1:{closed_port()}"
    monkeypatch.setenv("HF_ENDPOINT", endpoint)
    recipe = write_recipe(tmp_path, [pinned(NAME, SMALL, [hf()])])
    done = cli("--store", str(store_root), "fetch", str(recipe))
    assert done.returncode == 1
    url = f"{endpoint}/{REPO_ID}/resolve/{COMMIT}/{NAME}"
    assert report_lines(done.stdout)[0] == f"{recipe}: {NAME}: note: source 1 (hf {url}): connection refused"
    assert done.stderr == ""


# --- verify --all-sources -----------------------------------------------------------------------


def test_all_sources_an_hf_source_and_a_url_mirror_agree(
    tmp_path: Path, store_root: Path, cdn_hub: HubServer, file_server: FileServer, cli
) -> None:
    cdn_hub.add_file(REPO_ID, NAME, BIG)
    file_server.files["/mirror/model.safetensors"] = BIG
    mirror = f"{file_server.url}/mirror/model.safetensors"
    recipe = write_recipe(tmp_path, [pinned(NAME, BIG, [hf(), {"kind": "url", "url": mirror}])])
    done = cli("--store", str(store_root), "verify", "--all-sources", str(recipe))
    assert done.returncode == 0, done.stdout + done.stderr
    head = f"{recipe}: {NAME}"
    assert report_lines(done.stdout) == [
        ok_line(recipe, BIG, f"source 1 (hf {resolve_url(cdn_hub)})"),
        f"{head}: source 1 (hf {REPO_ID}@{COMMIT} ({NAME})): agrees: sha256 {sha256(BIG)}",
        f"{head}: source 2 (url {mirror}): agrees: sha256 {sha256(BIG)}",
        f"{recipe}: verified: test-pkg 1.0 (1 file)",
    ]
    assert cdn_hub.body_gets(REPO_ID, NAME) == [None, None]  # the store's fetch, then the comparison


def test_all_sources_reports_an_hf_source_serving_other_bytes(
    tmp_path: Path, store_root: Path, hub: HubServer, file_server: FileServer, cli
) -> None:
    other = os.urandom(len(SMALL))
    hub.add_file(REPO_ID, NAME, other, etag=sha256(SMALL))
    file_server.files["/w"] = SMALL
    recipe = write_recipe(
        tmp_path, [pinned(NAME, SMALL, [{"kind": "url", "url": f"{file_server.url}/w"}, hf()])]
    )
    done = cli("--store", str(store_root), "verify", "--all-sources", str(recipe))
    assert done.returncode == 1, done.stdout + done.stderr
    detail = f"sha256 {sha256(other)} and {len(other)} bytes, expected {sha256(SMALL)} and {len(SMALL)}"
    assert f"{recipe}: {NAME}: source 2 (hf {REPO_ID}@{COMMIT} ({NAME})): differs: {detail}" in report_lines(
        done.stdout
    )


# --- recipes ------------------------------------------------------------------------------------


def hf_recipe_text(**source: str) -> str:
    fields = {"repo": REPO_ID, "revision": COMMIT, "path": NAME, **source}
    lines = "\n".join(f'{k} = "{v}"' for k, v in fields.items())
    return (
        'schema = 1\n[package]\nname = "p"\nversion = "1"\nsummary = "s"\n'
        '[license]\nweights = "MIT"\nupstream = "MIT"\n'
        f'[[weights]]\npath = "m.bin"\nsha256 = "{"0" * 64}"\nsize = 1\nformat = "other"\n'
        f'[[weights.sources]]\nkind = "hf"\n{lines}\n'
    )


@pytest.mark.parametrize(
    ("revision", "message"),
    [
        (
            "main",
            "'main' is not a commit id: a branch or tag moves, so it is not a pin; write the 40 "
            "lower-case hexadecimal digits of the commit it points to now",
        ),
        (
            "v1.0",
            "'v1.0' is not a commit id: a branch or tag moves, so it is not a pin; write the 40 "
            "lower-case hexadecimal digits of the commit it points to now",
        ),
        (
            "0123abc",
            "'0123abc' looks like an abbreviated commit id; write all 40 lower-case hexadecimal digits",
        ),
        (COMMIT.upper(), f"commit id {COMMIT.upper()!r} must be written in lower case: {COMMIT!r}"),
    ],
    ids=["branch", "tag", "abbreviated", "upper-case"],
)
def test_a_revision_that_is_not_a_commit_is_a_lint_error(
    tmp_path: Path, cli, revision: str, message: str
) -> None:
    recipe = tmp_path / "r.toml"
    recipe.write_text(hf_recipe_text(revision=revision))
    line = recipe.read_text().splitlines().index(f'revision = "{revision}"') + 1
    done = cli("lint", str(recipe))
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.splitlines() == [f"{recipe}:{line}: weights[0].sources[0].revision: {message}"]


@pytest.mark.parametrize(
    ("source", "line"),
    [
        (
            {"repo": "tiny-mlp"},
            "weights[0].sources[0].repo: 'tiny-mlp' is not a Hub repository id; expected "
            "'org/name': letters, digits and - _ ., neither '--' nor '..', at most 96 characters each",
        ),
        (
            {"repo": "acme/a--b"},
            "weights[0].sources[0].repo: 'acme/a--b' is not a Hub repository id; "
            "expected 'org/name': letters, digits and - _ ., neither '--' nor '..', at most 96 characters "
            "each, not ending in .git",
        ),
        (
            {"repo-type": "models"},
            "weights[0].sources[0].repo-type: must be one of 'model', 'dataset', 'space'; got 'models'",
        ),
        (
            {"path": "../model.bin"},
            "weights[0].sources[0].path: path '../model.bin' contains '..' and would escape its folder",
        ),
        (
            {"branch": "main"},
            "weights[0].sources[0].branch: unknown key for a hf source; known keys: "
            "declared-license, kind, path, repo, repo-type, revision",
        ),
    ],
    ids=["no-org", "double-dash", "repo-type", "dotdot", "unknown-key"],
)
def test_other_hf_source_mistakes_are_lint_errors(tmp_path: Path, cli, source: dict, line: str) -> None:
    recipe = tmp_path / "r.toml"
    recipe.write_text(hf_recipe_text(**source))
    done = cli("lint", str(recipe))
    assert done.returncode == 2
    [problem] = done.stderr.splitlines()
    assert problem.split(": ", 1)[1] == line
    assert "Traceback" not in done.stderr


def test_a_valid_hf_source_lints_clean_and_loads(tmp_path: Path, cli) -> None:
    recipe = tmp_path / "r.toml"
    recipe.write_text(hf_recipe_text(**{"repo-type": "dataset", "declared-license": "apache-2.0"}))
    done = cli("lint", str(recipe))
    assert done.returncode == 0, done.stderr
    [source] = weightpkg.load_recipe(recipe).weights[0].sources
    assert (source.kind, source.repo, source.revision, source.path) == ("hf", REPO_ID, COMMIT, NAME)
    assert (source.repo_type, source.declared_license) == ("dataset", "Apache-2.0")
    assert source.describe() == f"hf datasets/{REPO_ID}@{COMMIT} ({NAME})"


def test_verifying_a_stored_hf_file_does_not_import_the_client(
    tmp_path: Path, store_root: Path, hub: HubServer
) -> None:
    hub.add_file(REPO_ID, NAME, SMALL)
    recipe = write_recipe(tmp_path, [pinned(NAME, SMALL, [hf()])])
    [report] = weightpkg.fetch([recipe], weightpkg.open_store(store_root))
    assert report.ok, report.to_json()
    code = (
        "import sys\n"
        "from weightpkg.cli import main\n"
        f"sys.argv = ['weightpkg', '--store', {str(store_root)!r}, 'verify', {str(recipe)!r}]\n"
        "try:\n"
        "    main()\n"
        "except SystemExit as exit:\n"
        "    assert not exit.code, exit.code\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in {'huggingface_hub', 'httpx2', 'httpx'}),\n"
        "      file=sys.stderr)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stderr.strip() == "[]"


def test_all_sources_asks_the_hub_itself_even_when_the_users_cache_holds_the_file(
    tmp_path: Path, store_root: Path, cdn_hub: HubServer, file_server: FileServer
) -> None:
    cdn_hub.add_file(REPO_ID, NAME, BIG)
    cached = fill_user_cache(tmp_path)
    before = len(cdn_hub.body_gets(REPO_ID, NAME))
    file_server.files["/mirror/model.safetensors"] = BIG
    mirror = {"kind": "url", "url": f"{file_server.url}/mirror/model.safetensors"}
    recipe = write_recipe(tmp_path, [pinned(NAME, BIG, [hf(), mirror])])
    [report] = weightpkg.verify([recipe], weightpkg.open_store(store_root), all_sources=True)
    assert report.ok, report.to_json()
    assert report.files[0].source == f"source 1 (hf cache {cached})"  # the store's copy: the cache
    assert [s.status for s in report.files[0].sources] == ["agrees", "agrees"]
    assert len(cdn_hub.body_gets(REPO_ID, NAME)) == before + 1  # the comparison: the Hub itself


def test_init_writes_a_recipe_from_a_hub_repository_at_a_commit(
    tmp_path: Path, store_root: Path, hub: HubServer, cli
) -> None:
    from weightpkg.load import tomllib

    from .builders import safetensors_bytes

    model = safetensors_bytes({"w": ("F32", [2], bytes(8))})
    hub.add_file(REPO_ID, NAME, model)
    hub.add_file(REPO_ID, "README.md", b"---\nlicense: apache-2.0\ntags:\n- tiny\n---\n# A tiny model\n")
    recipe = tmp_path / "tiny.toml"
    done = cli("init", f"hf:{REPO_ID}@{COMMIT}", "--member", NAME, "-o", str(recipe))
    assert done.returncode == 0, done.stderr
    data = tomllib.loads(recipe.read_text())
    [weights] = data["weights"]
    assert (weights["sha256"], weights["format"]) == (sha256(model), "safetensors")
    assert weights["sources"] == [
        {"kind": "hf", "repo": REPO_ID, "revision": COMMIT, "path": NAME, "declared-license": "Apache-2.0"}
    ]
    assert data["license"]["weights"] == "Apache-2.0" and data["package"]["name"] == "tiny-mlp"
    fetched = cli("--store", str(store_root), "fetch", str(recipe))
    assert fetched.returncode == 0, fetched.stdout + fetched.stderr
    # This Hub serves files only, not the listing API: without --member, init says what to do.
    unlisted = cli("init", f"hf:{REPO_ID}@{COMMIT}")
    assert unlisted.returncode == 2 and "name them with --member" in unlisted.stderr
    missing = cli("init", f"hf:{REPO_ID}@{COMMIT}", "--member", "nope.safetensors")
    assert missing.returncode == 2 and "cannot be fetched" in missing.stderr
    assert "Traceback" not in missing.stderr


def test_the_clients_connections_read_a_mebibyte_at_a_time(monkeypatch: pytest.MonkeyPatch) -> None:
    # httpcore's 64 KiB socket reads made a 1 GiB download take twice as long (docs/performance.md).
    from huggingface_hub.utils import get_session

    from weightpkg.sources import hf as hf_source

    get_session()  # imports the client's HTTP stack
    modules = [sys.modules.get(n) for n in ("httpcore2._sync.http11", "httpcore._sync.http11")]
    [connection] = [m.HTTP11Connection for m in modules if m is not None][:1]
    monkeypatch.setattr(connection, "READ_NUM_BYTES", 64 * 1024)
    hf_source._read_in_larger_pieces()
    assert connection.READ_NUM_BYTES == hf_source.HUB_READ_SIZE == 1 << 20
