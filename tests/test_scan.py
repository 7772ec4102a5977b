"""weightpkg.scan over real files: the picklescan and modelscan corpora, checkpoints written by
torch/numpy/joblib here, zip evasions built byte by byte, and the limits (huge files, bad paths).

Nothing is loaded: no pickle.load, torch.load, np.load(allow_pickle=True) or joblib.load anywhere.
"""

from __future__ import annotations

import collections
import importlib.util
import io
import json
import os
import pickle
import struct
import subprocess
import sys
import tarfile
import time
import types
import warnings
import zipfile
from pathlib import Path

import pytest

from weightpkg.core import pickles
from weightpkg.errors import UsageError
from weightpkg.scan import FileScan, scan_file, scan_paths

from .builders import zip_bytes
from .conftest import CORPORA

PICKLESCAN = CORPORA / "picklescan" / "tests"
MODELSCAN = CORPORA / "modelscan" / "tests" / "data"
CORPUS_DIRS = [PICKLESCAN / "data", PICKLESCAN / "data2", MODELSCAN]


class Touch:
    """Pickles as ``os.system("touch PATH")``: loading it would create PATH."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):
        return (os.system, (f"touch {self.path}",))


def names(scan: FileScan) -> set[str]:
    return {g.dotted for g in scan.globals}


def rules(scan: FileScan) -> set[str]:
    return {f.rule for f in scan.findings}


# --------------------------------------------------------------------------------------------
# The corpora. Classification, decided from the corpus README and each file's opcodes:
#
#   safe       benign pickles and checkpoints: benign0_v{0,3,4}.pkl, pytorch_model.bin (legacy torch),
#              new_pytorch_model.bin (zip torch), and numpy's int/object .npy/.npz (object arrays
#              of plain dicts pickle only numpy's reconstruct globals)
#   malformed  cannot be judged: the two password-protected zips (an encrypted member cannot be read,
#              so it is reported, never passed as safe), bad_pytorch.pt (a PNG header) and
#              not_a_pickle.bin (not pickles at all)
#   dangerous  everything else, each for the globals or constructs named below; the zip evasions
#              also carry the error finding for the trick they use (flag bits, CRC, name mismatch),
#              and malicious1.7z, which cannot be opened, is reported unreadable and its embedded
#              (stored) pickle found anyway.
#
# Each entry: verdict, globals that must be listed, rules that must be among the findings.

S, M, D = "safe", "malformed", "dangerous"
CORPUS: dict[str, tuple[str, set[str], set[str]]] = {
    # picklescan tests/data
    "benign0_v0.pkl": (S, set(), set()),
    "benign0_v3.pkl": (S, set(), set()),
    "benign0_v4.pkl": (S, set(), set()),
    "pytorch_model.bin": (S, {"torch._utils._rebuild_tensor_v2", "collections.OrderedDict"}, set()),
    "new_pytorch_model.bin": (S, {"torch._utils._rebuild_tensor_v2", "collections.OrderedDict"}, set()),
    "benign_password_protected.zip": (M, set(), {"zip-encrypted-member"}),
    "bad_pytorch.pt": (M, set(), {"not-a-pickle"}),
    "not_a_pickle.bin": (M, set(), {"not-a-pickle"}),
    "broken_model.pkl": (D, {"builtins.exec"}, {"malformed-pickle"}),
    "malicious-invalid-bytes.pkl": (D, {"os.system"}, set()),
    "malicious0.pkl": (D, {"__builtin__.eval", "__builtin__.compile", "__builtin__.apply",
                           "__builtin__.getattr", "__builtin__.globals"}, set()),
    "malicious1.7z": (D, {"builtins.eval"}, {"archive-unreadable"}),
    "malicious1.zip": (D, {"builtins.eval"}, set()),
    "malicious1_0x1.zip": (D, {"builtins.eval"}, {"zip-encrypted-flag"}),
    "malicious1_0x20.zip": (D, {"builtins.eval"}, {"zip-unusual-flags"}),
    "malicious1_0x40.zip": (D, {"builtins.eval"}, {"zip-unusual-flags"}),
    "malicious1_central_directory.zip": (D, {"builtins.eval"}, {"zip-name-mismatch"}),
    "malicious1_wrong_ext.zip": (D, {"builtins.eval"}, {"zip-disguised-pickle"}),
    "malicious1_v0.pkl": (D, {"__builtin__.eval"}, set()),
    "malicious1_v3.pkl": (D, {"builtins.eval"}, set()),
    "malicious1_v4.pkl": (D, {"builtins.eval"}, set()),
    "malicious2_v0.pkl": (D, {"posix.system"}, set()),
    "malicious2_v3.pkl": (D, {"posix.system"}, set()),
    "malicious2_v4.pkl": (D, {"posix.system"}, set()),
    "malicious3.pkl": (D, {"httplib.HTTPSConnection"}, set()),
    "malicious4.pickle": (D, {"requests.api.get"}, set()),
    "malicious5.pickle": (D, {"aiohttp.client.ClientSession"}, set()),
    "malicious6.pkl": (D, {"requests.api.get"}, set()),  # the second of two pickles
    "malicious7.pkl": (D, {"socket.create_connection"}, set()),
    "malicious8.pkl": (D, {"subprocess.run"}, set()),
    "malicious9.pkl": (D, {"sys.exit"}, set()),
    "malicious10.pkl": (D, {"__builtin__.exec"}, set()),
    "malicious11.pkl": (D, {"os.system"}, set()),  # names hidden in the memo
    "malicious12.pkl": (D, {"operator.attrgetter", "builtins.__import__"}, set()),
    "malicious13a.pkl": (D, {"pickle.loads"}, set()),
    "malicious13b.pkl": (D, {"_pickle.loads"}, set()),
    "malicious14.pkl": (D, {"runpy._run_code"}, set()),
    "malicious15a.pkl": (D, {"bdb.Bdb", "__builtin__.getattr"}, set()),
    "malicious15b.pkl": (D, {"bdb.Bdb.run"}, set()),
    "malicious16.pkl": (D, {"pip.main"}, set()),
    "malicious17.pkl": (D, {"torch._inductor.codecache.compile_file"}, set()),
    "malicious18.pkl": (D, {"pydoc.pipepager"}, set()),
    "malicious19.pkl": (D, {"torch.serialization.load", "functools.partial"}, set()),
    "malicious20.pkl": (D, {"venv.create"}, set()),
    "pytorch_magic_bypass.pt": (D, {"__builtin__.eval", "posix.system"}, set()),
    "sys_module_override_sploit.pkl": (D, {"torch._utils"}, {"global-mutation", "unresolved-global"}),
    # picklescan tests/data2
    "GHSA-3gf5-cxq9-w223.pkl": (D, {"idlelib.pyshell.ModifiedInterpreter.runcode"}, set()),
    "GHSA-3vg9-h568-4w9m.pkl": (D, {"idlelib.debugobj.ObjectTreeItem.SetText"}, set()),
    "GHSA-4675-36f9-wf6r.pkl": (D, {"ctypes.CDLL"}, set()),
    "GHSA-46h3-79wf-xr6c.pkl": (D, {"_operator.attrgetter", "builtins.__import__"}, set()),
    "GHSA-49gj-c84q-6qm9.pkl": (D, {"cProfile.run"}, set()),
    "GHSA-4r9r-ch6f-vxmx.pkl": (D, {"torch.utils.bottleneck.__main__.run_cprofile"}, set()),
    "GHSA-4whj-rm5r-c2v8.pkl": (D, {"torch.utils.bottleneck.__main__.run_autograd_prof"}, set()),
    "GHSA-5qwp-399c-mjwf.pkl": (D, {"trace.Trace.run"}, set()),
    "GHSA-6vqj-c2q5-j97w.pkl": (D, {"profile.Profile.runctx"}, set()),
    "GHSA-6w4w-5w54-rjvr.pkl": (D, {"idlelib.autocomplete.AutoComplete.get_entity"}, set()),
    "GHSA-7cq8-mj8x-j263.pkl": (D, {"idlelib.autocomplete.AutoComplete.fetch_completions"}, set()),
    "GHSA-7wx9-6375-f5wh.pkl": (D, {"profile.run"}, set()),
    "GHSA-84r2-jw7c-4r5q.pkl": (D, {"operator.methodcaller", "pydoc.locate"}, set()),
    "GHSA-86cj-95qr-2p4f.pkl": (D, {"torch._dynamo.guards.GuardBuilder.get"}, set()),
    "GHSA-8r4j-24qv-fmq9.pkl": (D, {"idlelib.calltip.Calltip.fetch_tip"}, set()),
    "GHSA-955r-x9j8-7rhh.pkl": (D, {"_operator.methodcaller", "builtins.__import__"}, set()),
    "GHSA-9w88-8rmg-7g2p.pkl": (D, {"cProfile.runctx"}, set()),
    "GHSA-9xph-j2h6-g47v.pkl": (D, {"idlelib.calltip.get_entity"}, set()),
    "GHSA-cj3c-v495-4xqh.pkl": (D, {"code.InteractiveInterpreter.runcode"}, set()),
    "GHSA-f4x7-rfwp-v3xw.pkl": (
        D, {"torch.fx.experimental.symbolic_shapes.ShapeEnv.evaluate_guards_expression"}, set()
    ),
    "GHSA-f54q-57x4-jg88.pkl": (D, {"lib2to3.pgen2.grammar.Grammar.loads"}, set()),
    "GHSA-f745-w6jp-hpxx.pkl": (D, {"torch.utils.collect_env.run"}, set()),
    "GHSA-fqq6-7vqf-w3fg.pkl": (D, {"doctest.debug_script"}, set()),
    "GHSA-g344-hcph-8vgg.pkl": (D, {"trace.Trace.runctx"}, set()),
    "GHSA-g38g-8gr9-h9xp-aix-support.pkl": (D, {"_aix_support._read_cmd_output"}, set()),
    "GHSA-g38g-8gr9-h9xp-imaplib.pkl": (D, {"imaplib.IMAP4_stream"}, set()),
    "GHSA-g38g-8gr9-h9xp-osx-support.pkl": (D, {"_osx_support._read_output"}, set()),
    "GHSA-g38g-8gr9-h9xp-pyrepl-pager.pkl": (D, {"_pyrepl.pager.pipe_pager"}, set()),
    "GHSA-g38g-8gr9-h9xp-test.pkl": (D, {"test.support.script_helper.assert_python_ok"}, set()),
    "GHSA-g38g-8gr9-h9xp-uuid.pkl": (D, {"uuid._get_command_stdout"}, set()),
    "GHSA-h3qp-7fh3-f8h4.pkl": (D, {"torch.utils.data.datapipes.utils.decoder.basichandlers"}, set()),
    "GHSA-j343-8v2j-ff7w.pkl": (D, {"idlelib.pyshell.ModifiedInterpreter.runcommand"}, set()),
    "GHSA-jgw4-cr84-mqxg.bin": (D, {"asyncio.unix_events._UnixSubprocessTransport._start"}, set()),
    "GHSA-jhph-76pp-mggw.pkl": (D, {"torch.utils.collect_env.run_and_read_all"}, set()),
    "GHSA-m273-6v24-x4m4.pkl": (D, {"distutils.file_util.write_file"}, set()),
    "GHSA-m869-42cg-3xwr.pkl": (D, {"idlelib.run.Executive.runcode"}, set()),
    "GHSA-p9w7-82w4-7q8m.pkl": (D, {"lib2to3.pgen2.pgen.ParserGenerator.make_label"}, set()),
    "GHSA-q77w-mwjj-7mqx.pkl": (D, {"asyncio.unix_events._UnixSubprocessTransport._start"}, set()),
    "GHSA-r8g5-cgf2-4m4m.pkl": (D, {"numpy.f2py.crackfortran.getlincoef"}, set()),
    "GHSA-vqmv-47xg-9wpr.pkl": (D, {"pty.spawn"}, set()),
    "GHSA-vr7h-p6mm-wpmh.pkl": (D, {"torch.jit.unsupported_tensor_ops.execWrapper"}, set()),
    "GHSA-vv6j-3g6g-2pvj.pkl": (D, {"torch.utils._config_module.ConfigModule.load_config"}, set()),
    "GHSA-vvpj-8cmc-gx39.pkl": (D, {"pkgutil.resolve_name"}, set()),
    "GHSA-x696-vm39-cp64.pkl": (D, {"profile.Profile.run"}, set()),
    "GHSA-xp4f-hrf8-rxw7.pkl": (D, {"ensurepip._run_pip"}, set()),
    "cloudpickle_codeinjection.pkl": (D, {"cloudpickle.cloudpickle._make_function"}, set()),
    "dns_exfiltration.npy": (D, {"ssl.get_server_certificate"}, set()),
    "int_array.npy": (S, set(), set()),
    "int_arrays.npz": (S, set(), set()),
    "int_arrays_compressed.npz": (S, set(), set()),
    "object_array.npy": (S, {"numpy.core.multiarray._reconstruct"}, set()),
    "object_arrays.npz": (S, {"numpy.core.multiarray._reconstruct"}, set()),
    "object_arrays_compressed.npz": (S, {"numpy.core.multiarray._reconstruct"}, set()),
    "io_FileIO.pkl": (D, {"_io.FileIO"}, set()),
    "keyerror-exploit.pkl": (D, {"os.system"}, {"memo-missing"}),
    "logging_FileHandler.pkl": (D, {"logging.FileHandler"}, set()),
    "malicious1_crc.zip": (D, {"builtins.eval"}, {"zip-bad-crc"}),
    "malicious21.pkl": (D, {"timeit.timeit"}, set()),
    "malicious22.pkl": (D, {"numpy.testing._private.utils.runstring"}, set()),
    "malicious23.pkl": (D, {"os.system"}, set()),
    "type-confusion-exploit.pkl": (D, {"os.system"}, {"unresolved-global"}),
    "types_CodeType.pkl": (D, {"types.CodeType"}, set()),
    "urllib_request_urlopen.pkl": (D, {"urllib.request.urlopen"}, set()),
    # modelscan tests/data
    "unsafe_zip_pytorch.pt": (D, {"posix.system", "collections.OrderedDict"}, set()),
    "password_protected.zip": (M, set(), {"zip-encrypted-member"}),
}


def corpus_files() -> list[Path]:
    found = (p for d in CORPUS_DIRS if d.is_dir() for p in d.iterdir())
    return sorted(p for p in found if p.is_file() and p.name != "LICENSE")


needs_corpora = pytest.mark.skipif(
    not all(d.is_dir() for d in CORPUS_DIRS), reason=f"the bad-input corpora are not at {CORPORA}"
)


@needs_corpora
def test_every_corpus_file_is_classified() -> None:
    on_disk = {p.name for p in corpus_files()}
    assert on_disk == set(CORPUS), f"unclassified: {on_disk - set(CORPUS)}; gone: {set(CORPUS) - on_disk}"


@needs_corpora
@pytest.mark.parametrize("path", corpus_files(), ids=lambda p: p.name)
def test_corpus_file(path: Path) -> None:
    verdict, expected_globals, expected_rules = CORPUS[path.name]
    scan = scan_file(path)
    assert scan.verdict == verdict, scan.lines()
    assert expected_globals <= names(scan), scan.lines()
    assert expected_rules <= rules(scan), scan.lines()
    if verdict == "dangerous":
        assert any(f.severity == "error" for f in scan.findings)
        assert any(g.verdict == "dangerous" for g in scan.globals) or rules(scan) & pickles.DANGEROUS_RULES
    if verdict == "safe":
        assert all(g.verdict == "safe" for g in scan.globals), scan.lines()
        assert not [f for f in scan.findings if f.severity == "error"]


@needs_corpora
def test_the_corpora_as_a_whole(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # broken_model.pkl's payload would write my_file.txt here
    started = time.monotonic()
    scans = scan_paths(CORPUS_DIRS)
    assert time.monotonic() - started < 10
    assert list(tmp_path.iterdir()) == [], "a sample was executed"
    counts = collections.Counter(s.verdict for s in scans)
    assert counts == {"dangerous": 96, "safe": 11, "malformed": 4}
    tricks = {"zip-encrypted-flag", "zip-unusual-flags", "zip-name-mismatch", "zip-bad-crc",
              "archive-unreadable"}
    evasions = [s for s in scans if rules(s) & tricks]
    assert len(evasions) == 6
    # Every global any corpus sample imports is judged: never "unknown" for a malicious sample.
    for scan in scans:
        if scan.verdict == "dangerous":
            assert all(g.verdict != "unknown" or g.dotted in ("functools.partial", "torch._utils")
                       for g in scan.globals), scan.lines()


# --------------------------------------------------------------------------------------------
# Files made here


def test_a_payload_file_is_flagged_and_nothing_runs(tmp_path: Path) -> None:
    target = tmp_path / "PWNED"
    for protocol in (0, 2, 4, 5):
        path = tmp_path / f"evil{protocol}.pkl"
        path.write_bytes(pickle.dumps(Touch(target), protocol=protocol))
        scan = scan_file(path)
        assert scan.verdict == "dangerous" and names(scan) == {"posix.system"}
        assert scan.failed
    assert not target.exists(), "scanning executed the payload"


def test_plain_pickles_of_every_protocol_are_safe(tmp_path: Path) -> None:
    for protocol in range(pickle.HIGHEST_PROTOCOL + 1):
        path = tmp_path / f"data{protocol}.pkl"
        path.write_bytes(pickle.dumps({"a": [1, 2.5, "x", b"y", {1}, None]}, protocol=protocol))
        scan = scan_file(path)
        assert (scan.verdict, scan.format) == ("safe", "pickle"), scan.lines()


def _zip(members: dict[str, bytes], compression: int = zipfile.ZIP_STORED) -> bytes:
    """Members stored uncompressed unless asked, so tests can patch their bytes in place."""
    return zip_bytes(members, compression)


def _headers(data: bytes) -> tuple[int, int]:
    """Offsets of the first local header and the first central-directory entry."""
    return data.index(b"PK\x03\x04"), data.index(b"PK\x01\x02")


EVIL = pickle.dumps(Touch(Path("/nonexistent/x")), protocol=4)


def _evasion(tmp_path: Path, name: str, data: bytes) -> FileScan:
    path = tmp_path / name
    path.write_bytes(data)
    return scan_file(path)


@pytest.mark.parametrize("bits", [0x1, 0x20, 0x40, 0x2000])
def test_zip_flag_bits_are_reported_and_the_member_scanned(tmp_path: Path, bits: int) -> None:
    data = bytearray(_zip({"model/config.pkl": EVIL}))
    local, central = _headers(data)
    for at in (local + 6, central + 8):
        struct.pack_into("<H", data, at, bits)
    scan = _evasion(tmp_path, f"flags{bits:x}.zip", bytes(data))
    assert scan.verdict == "dangerous"
    assert "posix.system" in names(scan)
    expected = "zip-encrypted-flag" if bits == 0x1 else "zip-unusual-flags"
    assert expected in rules(scan)


def test_a_really_encrypted_member_cannot_be_scanned_and_says_so(tmp_path: Path) -> None:
    data = bytearray(_zip({"data.pkl": pickle.dumps([1], protocol=4)}))
    local, central = _headers(data)
    for at in (local + 6, central + 8):
        struct.pack_into("<H", data, at, 0x1)
    data[local + 30 + len("data.pkl") + 3] ^= 0x55  # ciphertext: the CRC no longer matches
    scan = _evasion(tmp_path, "secret.zip", bytes(data))
    assert scan.verdict == "malformed"
    assert "zip-encrypted-member" in rules(scan)


def test_a_bad_crc_is_reported_and_the_member_scanned(tmp_path: Path) -> None:
    data = bytearray(_zip({"archive/data.pkl": EVIL}))
    at = bytes(data).index(b"nonexistent")
    data[at] = ord("N")
    scan = _evasion(tmp_path, "crc.pt", bytes(data))
    assert scan.verdict == "dangerous"
    assert {"zip-bad-crc"} <= rules(scan)
    assert scan.format == "torch-zip"


def test_a_central_directory_name_that_differs_from_the_local_header(tmp_path: Path) -> None:
    data = bytearray(_zip({"data.pkl": EVIL}))
    local, _ = _headers(data)
    data[local + 30:local + 38] = b"datap.kl"
    scan = _evasion(tmp_path, "names.zip", bytes(data))
    assert scan.verdict == "dangerous"
    assert "zip-name-mismatch" in rules(scan)


def test_a_zip_without_its_central_directory_is_read_from_local_headers(tmp_path: Path) -> None:
    data = _zip({"a.txt": b"hello", "archive/data.pkl": EVIL})
    _, central = _headers(data)
    scan = _evasion(tmp_path, "cut.zip", data[:central])
    assert scan.verdict == "dangerous"
    assert "zip-no-central-directory" in rules(scan)
    assert "posix.system" in names(scan)


def test_a_pickle_under_another_name_is_still_scanned(tmp_path: Path) -> None:
    protocol0 = pickle.dumps(Touch(Path("/nonexistent/x")), protocol=0)
    data = _zip({"notes.txt": EVIL, "README": protocol0, "weights.bin": b"\x00" * 64})
    scan = _evasion(tmp_path, "innocent.zip", data)
    assert scan.verdict == "dangerous"
    assert set(scan.members) == {"notes.txt", "README"}
    assert {f.member for f in scan.findings if f.rule == "zip-disguised-pickle"} == {"notes.txt", "README"}


def test_duplicate_member_names_are_reported(tmp_path: Path) -> None:
    with pytest.warns(UserWarning, match="Duplicate name"):
        data = _zip({"data.pkl": pickle.dumps([1])} | {}) + b""
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as archive:
            archive.writestr("data.pkl", pickle.dumps([1]))
            archive.writestr("data.pkl", EVIL)
        data = buffer.getvalue()
    scan = _evasion(tmp_path, "twice.zip", data)
    assert {"zip-duplicate-name"} <= rules(scan)
    assert scan.verdict == "dangerous"


def test_compressed_members_are_inflated_and_checked(tmp_path: Path) -> None:
    for method in (zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2):
        scan = _evasion(tmp_path, f"c{method}.zip", _zip({"x/data.pkl": EVIL, "x/version": b"3\n"}, method))
        assert scan.verdict == "dangerous" and "posix.system" in names(scan)
        assert not rules(scan) & {"zip-bad-crc", "zip-bad-member"}


def test_a_decompression_bomb_claim_is_refused(tmp_path: Path) -> None:
    data = bytearray(_zip({"data.pkl": pickle.dumps([0] * 1000)}, zipfile.ZIP_DEFLATED))
    local, central = _headers(data)
    for at in (local + 22, central + 24):
        struct.pack_into("<I", data, at, 0xFFFFFFF0)
    scan = _evasion(tmp_path, "bomb.zip", bytes(data))
    assert scan.verdict == "malformed"
    assert "zip-size-mismatch" in rules(scan)


def test_npz_and_npy_with_object_arrays(tmp_path: Path) -> None:
    np = pytest.importorskip("numpy")
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    np.save(tmp_path / "evil.npy", np.array([Touch(tmp_path / "PWNED")], dtype=object), allow_pickle=True)
    np.save(tmp_path / "plain.npy", np.arange(12.0).reshape(3, 4))
    np.savez_compressed(tmp_path / "mixed.npz", a=np.arange(3), b=np.array([{"x": (1, 2)}], dtype=object))
    np.savez(tmp_path / "evil.npz", ok=np.arange(3), bad=np.array([Touch(tmp_path / "PWNED")], dtype=object))
    scans = {Path(s.path).name: s for s in scan_paths([tmp_path])}
    assert {k: (s.verdict, s.format) for k, s in scans.items()} == {
        "obj.npy": ("safe", "npy"),
        "evil.npy": ("dangerous", "npy"),
        "plain.npy": ("safe", "npy"),
        "mixed.npz": ("safe", "npz"),
        "evil.npz": ("dangerous", "npz"),
    }
    assert scans["evil.npz"].members == ("bad.npy",)
    assert not (tmp_path / "PWNED").exists()


def test_broken_npy_files(tmp_path: Path) -> None:
    np = pytest.importorskip("numpy")
    np.save(tmp_path / "a.npy", np.arange(100.0))
    data = (tmp_path / "a.npy").read_bytes()
    (tmp_path / "short.npy").write_bytes(data[:-8])
    (tmp_path / "header.npy").write_bytes(data[:10] + b"{'descr': os.system}".ljust(len(data) - 10))
    assert "npy-size-mismatch" in rules(scan_file(tmp_path / "short.npy"))
    assert "npy-malformed" in rules(scan_file(tmp_path / "header.npy"))
    assert scan_file(tmp_path / "short.npy").verdict == "malformed"


class _Wrapper:
    """Stands in for joblib.numpy_pickle.NumpyArrayWrapper when writing joblib's format by hand."""

    __module__ = "joblib.numpy_pickle"
    __qualname__ = "NumpyArrayWrapper"

    def __init__(self, shape, dtype, alignment):
        self.subclass, self.shape, self.order, self.dtype = None, shape, "C", dtype
        self.allow_mmap, self.numpy_array_alignment_bytes = True, alignment


def _joblib_by_hand(obj, path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """joblib's on-disk format without joblib: after the BUILD of each array's wrapper, the raw
    bytes (or, for an object array, a whole pickle) follow inline (joblib/numpy_pickle.py)."""
    np = pytest.importorskip("numpy")
    module = types.ModuleType("joblib.numpy_pickle")
    module.NumpyArrayWrapper = _Wrapper  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "joblib", types.ModuleType("joblib"))
    monkeypatch.setitem(sys.modules, "joblib.numpy_pickle", module)

    class Pickler(pickle._Pickler):  # type: ignore[name-defined]
        def save(self, o, save_persistent_id=True):
            if not isinstance(o, np.ndarray):
                return super().save(o, save_persistent_id)
            self.framer.commit_frame(force=True)
            super().save(_Wrapper(o.shape, o.dtype, None if o.dtype.hasobject else 16))
            self.framer.commit_frame(force=True)
            if o.dtype.hasobject:
                pickle.dump(o, self.file_handle, protocol=5)
            else:
                pad = 16 - (self.file_handle.tell() + 1) % 16
                self.file_handle.write(bytes([pad]) + b"\xff" * pad + o.tobytes())
            return None

    with open(path, "wb") as handle:
        pickler = Pickler(handle, protocol=4)
        pickler.file_handle = handle
        pickler.dump(obj)


def test_joblib_format_by_hand(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    np = pytest.importorskip("numpy")
    obj = {"w": np.arange(10.0), "s": "text after the array", "o": np.array([{"k": 1}], dtype=object),
           "u": np.array(["ab", "c"]), "end": [1, 2, 3]}
    _joblib_by_hand(obj, tmp_path / "model.joblib", monkeypatch)
    scan = scan_file(tmp_path / "model.joblib")
    assert (scan.verdict, scan.format) == ("safe", "joblib"), scan.lines()
    assert "joblib.numpy_pickle.NumpyArrayWrapper" in names(scan)
    evil = {"w": np.arange(10.0), "after": Touch(tmp_path / "PWNED")}
    _joblib_by_hand(evil, tmp_path / "evil.joblib", monkeypatch)
    scan = scan_file(tmp_path / "evil.joblib")
    assert scan.verdict == "dangerous" and "posix.system" in names(scan)
    evil_inside = {"o": np.array([Touch(tmp_path / "PWNED")], dtype=object)}
    _joblib_by_hand(evil_inside, tmp_path / "evil2.joblib", monkeypatch)
    assert scan_file(tmp_path / "evil2.joblib").verdict == "dangerous"
    assert not (tmp_path / "PWNED").exists()


def test_real_joblib_files(tmp_path: Path) -> None:
    joblib = pytest.importorskip("joblib", reason="joblib is not installed (pip install joblib)")
    np = pytest.importorskip("numpy")
    obj = {"a": np.arange(10.0), "o": np.array([{"x": 1}], dtype=object), "s": "hi"}
    for compress in (0, 3, ("gzip", 3), ("bz2", 3), ("xz", 3), ("lzma", 3)):
        name = f"m-{compress if isinstance(compress, int) else compress[0]}.joblib"
        joblib.dump(obj, tmp_path / name, compress=compress)
        scan = scan_file(tmp_path / name)
        assert scan.verdict == "safe", scan.lines()
        assert scan.format.startswith("joblib")
    for protocol in range(pickle.HIGHEST_PROTOCOL + 1):
        joblib.dump(obj, tmp_path / f"p{protocol}.joblib", protocol=protocol)
        assert scan_file(tmp_path / f"p{protocol}.joblib").verdict == "safe", protocol
    joblib.dump({"a": np.arange(3), "evil": Touch(tmp_path / "PWNED")}, tmp_path / "evil.joblib", compress=3)
    assert scan_file(tmp_path / "evil.joblib").verdict == "dangerous"
    assert not (tmp_path / "PWNED").exists()


def test_compressed_and_unreadable_containers(tmp_path: Path) -> None:
    import bz2
    import gzip
    import lzma
    import zlib

    for name, data in {
        "a.gz": gzip.compress(EVIL), "a.bz2": bz2.compress(EVIL), "a.xz": lzma.compress(EVIL),
        "a.zlib": zlib.compress(EVIL),
    }.items():
        assert scan_file(_write(tmp_path / name, data)).verdict == "dangerous", name
    noise = bytes(range(256)) * 64
    truncated = scan_file(_write(tmp_path / "cut.gz", gzip.compress(EVIL + noise)[:-100]))
    assert truncated.verdict == "dangerous"  # the pickle before the cut is read and judged
    broken = scan_file(_write(tmp_path / "broken.gz", gzip.compress(EVIL)[:12]))
    assert (broken.verdict, rules(broken)) == ("malformed", {"malformed-pickle"})
    lz4 = scan_file(_write(tmp_path / "a.lz4", b"\x04\x22\x4d\x18" + b"\x00" * 20))
    assert (lz4.verdict, rules(lz4)) == ("malformed", {"archive-unreadable"})
    fake7z = b"7z\xbc\xaf\x27\x1c\x00\x04" + b"\x00" * 24 + b"\x01\x00\x32" + EVIL + b"\x00" * 40
    seven = scan_file(_write(tmp_path / "a.7z", fake7z))
    assert seven.verdict == "dangerous" and "archive-unreadable" in rules(seven)


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def test_tar_members_are_scanned(tmp_path: Path) -> None:
    path = tmp_path / "old.tar"
    with tarfile.open(path, "w") as archive:
        members = {"sys_info": pickle.dumps({"a": 1}, protocol=2), "pickle": EVIL,
                   "storages": pickle.dumps(0, protocol=2), "tensors/0": b"\x00" * 100}
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    scan = scan_file(path)
    assert (scan.verdict, scan.format) == ("dangerous", "tar")
    assert set(scan.members) == {"sys_info", "pickle", "storages"}


def test_safetensors_files_are_checked(tmp_path: Path) -> None:
    np = pytest.importorskip("numpy")
    save_file = pytest.importorskip("safetensors.numpy").save_file
    save_file({"w": np.arange(6, dtype=np.float32)}, str(tmp_path / "ok.safetensors"))
    scan = scan_file(tmp_path / "ok.safetensors")
    assert (scan.verdict, scan.format, scan.findings) == ("safe", "safetensors", ())
    data = (tmp_path / "ok.safetensors").read_bytes()
    (tmp_path / "cut.safetensors").write_bytes(data[:-4])
    scan = scan_file(tmp_path / "cut.safetensors")
    assert scan.verdict == "malformed"
    assert all(r.startswith("safetensors-") for r in rules(scan))
    (tmp_path / "renamed.bin").write_bytes(data)
    assert scan_file(tmp_path / "renamed.bin").format == "safetensors"
    # a header length whose first bytes read as a gzip magic number is still safetensors
    header = b'{"w":{"dtype":"U8","shape":[0],"data_offsets":[0,0]}}'.ljust(0x8B1F)
    gzip_like = scan_file(_write(tmp_path / "g.safetensors", struct.pack("<Q", len(header)) + header))
    assert (gzip_like.verdict, gzip_like.format) == ("safe", "safetensors"), gzip_like.lines()
    disguised = scan_file(_write(tmp_path / "model.safetensors", EVIL))
    assert disguised.verdict == "dangerous" and "posix.system" in names(disguised)


def test_a_huge_legacy_checkpoint_is_not_read_past_its_pickles(tmp_path: Path) -> None:
    """The pickles of a legacy torch file come first; 8 GiB of (sparse) storages follow unread."""
    parts = [pickles.TORCH_LEGACY_MAGIC, 1001, {"little_endian": True},
             collections.OrderedDict(w=1), ["0"]]
    path = tmp_path / "big.pt"
    with open(path, "wb") as handle:
        for part in parts:
            handle.write(pickle.dumps(part, protocol=2))
        handle.truncate(8 << 30)
    started = time.monotonic()
    scan = scan_file(path)
    assert time.monotonic() - started < 2
    assert (scan.verdict, scan.format) == ("safe", "torch-legacy")


def test_memory_stays_flat_on_large_archives(tmp_path: Path) -> None:
    """A 256 MiB zip member is CRC-checked and a legacy file's storages skipped in a few MiB of RSS."""
    big = tmp_path / "big.pt"
    with zipfile.ZipFile(big, "w") as archive:
        archive.writestr("big/data.pkl", pickle.dumps(collections.OrderedDict(w=1), protocol=2))
        with archive.open("big/data/0", "w", force_zip64=True) as member:
            block = b"\x00" * (1 << 20)
            for _ in range(256):
                member.write(block)
    code = (
        "import resource, sys; from weightpkg.scan import scan_file\n"
        "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "scan = scan_file(sys.argv[1])\n"
        "grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before\n"
        "print(scan.verdict, scan.format, grown // 1024)\n"
    )
    done = subprocess.run([sys.executable, "-c", code, str(big)], capture_output=True, text=True, check=True)
    verdict, fmt, grown_mib = done.stdout.split()
    assert (verdict, fmt) == ("safe", "torch-zip")
    assert int(grown_mib) < 32, f"RSS grew by {grown_mib} MiB scanning a 256 MiB archive"


def test_a_hostile_length_in_a_file_costs_nothing(tmp_path: Path) -> None:
    path = _write(tmp_path / "liar.pkl", b"\x80\x05\x8e" + struct.pack("<Q", 2**63) + b"x" * 100)
    scan = scan_file(path)
    assert scan.verdict == "malformed"


def test_other_files(tmp_path: Path) -> None:
    readme = scan_file(_write(tmp_path / "README.md", b"class Net:\n  pass\n"))
    assert (readme.verdict, readme.format, rules(readme)) == ("safe", "other", {"not-scanned"})
    config = scan_file(_write(tmp_path / "config.json", b'{"hidden": 1}'))
    assert config.format == "other"
    empty = scan_file(_write(tmp_path / "empty.pt", b""))
    assert (empty.verdict, rules(empty)) == ("malformed", {"empty-file"})
    fake = scan_file(_write(tmp_path / "weights.pt", b"GGUF\x03\x00\x00\x00"))
    assert (fake.verdict, rules(fake)) == ("malformed", {"not-a-pickle"})


def test_paths_directories_and_errors(tmp_path: Path) -> None:
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "z.pkl").write_bytes(pickle.dumps(1))
    (tmp_path / "b" / "a.pkl").write_bytes(EVIL)
    (tmp_path / "c.pkl").write_bytes(pickle.dumps(2))
    scans = scan_paths([tmp_path / "c.pkl", tmp_path, tmp_path / "b" / "a.pkl"])
    assert [Path(s.path).relative_to(tmp_path).as_posix() for s in scans] == ["c.pkl", "b/a.pkl", "b/z.pkl"]
    with pytest.raises(UsageError) as caught:
        scan_paths([tmp_path / "missing.pkl", tmp_path / "c.pkl", tmp_path / "gone"])
    assert str(caught.value).splitlines() == [
        f"{tmp_path / 'missing.pkl'}: no such file or directory",
        f"{tmp_path / 'gone'}: no such file or directory",
    ]
    assert caught.value.exit_code == 2
    with pytest.raises(UsageError, match="cannot read"):
        scan_file(tmp_path / "missing.pkl")
    with pytest.raises(UsageError):
        scan_file(tmp_path / "b")


def test_json_and_lines_are_deterministic(tmp_path: Path) -> None:
    path = _write(tmp_path / "evil.zip", _zip({"a/data.pkl": EVIL, "a/notes.txt": EVIL}))
    first = json.dumps(scan_file(path).to_json(), sort_keys=True)
    assert first == json.dumps(scan_file(path).to_json(), sort_keys=True)
    doc = json.loads(first)
    assert doc["verdict"] == "dangerous"
    assert doc["globals"] == [{"global": "posix.system", "verdict": "dangerous",
                               "reason": "runs shell commands or programs"}]
    assert {f["member"] for f in doc["findings"]} == {"a/data.pkl", "a/notes.txt"}
    assert all(f["file"] == str(path) for f in doc["findings"])
    lines = scan_file(path).lines()
    assert lines[0] == f"{path}: dangerous (torch-zip): posix.system"
    assert all(line.startswith(str(path)) for line in lines)


# --------------------------------------------------------------------------------------------
# Real PyTorch files


@pytest.fixture(scope="module")
def torch_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    torch = pytest.importorskip("torch", reason="torch is not installed (pip install torch==2.13.0)")
    root = tmp_path_factory.mktemp("torch")
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU(), torch.nn.Linear(3, 2))
    torch.save(model.state_dict(), root / "zip.pt")
    torch.save(model.state_dict(), root / "legacy.pt", _use_new_zipfile_serialization=False)
    torch.save(model, root / "whole.pt")
    torch.save({"i": torch.arange(5), "h": torch.ones(2, dtype=torch.float16),
                "p": torch.nn.Parameter(torch.ones(2)), "b": torch.zeros(3, dtype=torch.bfloat16)},
               root / "mixed.pt")

    class Tiny(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.linear = torch.nn.Linear(3, 1)

        def forward(self, x):
            return torch.relu(self.linear(x))

    with warnings.catch_warnings():  # torch.jit is deprecated upstream, and still what ships
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.save(torch.jit.script(Tiny()), root / "script.pt")
    return {p.stem: p for p in root.iterdir()}


def test_real_torch_checkpoints(torch_files: dict[str, Path]) -> None:
    expected = {
        "zip": ("safe", "torch-zip"),
        "legacy": ("safe", "torch-legacy"),
        "mixed": ("safe", "torch-zip"),
        "whole": ("unknown", "torch-zip"),  # a pickled nn.Module: its classes are for a policy to judge
        "script": ("safe", "torchscript"),
    }
    got = {k: (scan_file(p).verdict, scan_file(p).format) for k, p in torch_files.items()}
    assert got == expected
    whole = scan_file(torch_files["whole"])
    assert "torch.nn.modules.linear.Linear" in names(whole)
    script = scan_file(torch_files["script"])
    assert "torchscript-code" in rules(script)
    assert any(n.startswith("__torch__.") for n in names(script))


def test_the_silero_vad_torchscript_model() -> None:
    """The real Silero VAD v6 TorchScript file, from the silero-vad wheel if it is installed."""
    spec = importlib.util.find_spec("silero_vad")  # located, not imported (its __init__ needs torchaudio)
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("silero-vad is not installed (pip install --no-deps silero-vad==6.2.3)")
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / "silero_vad.jit"
    if not path.is_file():
        pytest.skip(f"{path} is missing")
    scan = scan_file(path)
    assert (scan.verdict, scan.format) == ("safe", "torchscript"), scan.lines()
    assert "torch._utils._rebuild_tensor_v2" in names(scan)
    assert len(scan.members) > 40
