"""Static pickle scanning: walk the opcodes, list every global a load would import, never unpickle.

A pickle is a program for a small stack machine; ``GLOBAL``/``STACK_GLOBAL``/``INST`` import any
attribute of any module and ``REDUCE``/``NEWOBJ``/``OBJ``/``BUILD`` call or mutate what was
imported. So a pickle-bearing weight file is code. This module interprets the opcodes
symbolically (strings, memo, marks, containers; never a real object), resolves every import —
including names hidden behind memo references, the known scanner bypass — and judges each one
against two tables: globals a real checkpoint needs (``SAFE_GLOBALS``, each with the reason it
cannot run code) and globals that can run code or touch the system (``DANGEROUS``).

Pure: the caller hands in bytes, a memoryview (e.g. of an mmap) or an open binary stream; memory
stays bounded whatever the input claims (long strings are skipped, not read; containers, memo and
stack have hard limits, past which the scan degrades conservatively and says so).
"""

from __future__ import annotations

import _compat_pickle
import codecs
import contextlib
import io
import math
import pickletools
import re
import struct
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import BinaryIO, Literal

Severity = Literal["error", "warning", "info"]
Verdict = Literal["safe", "unknown", "dangerous", "malformed"]
GlobalVerdict = Literal["safe", "unknown", "dangerous"]
Source = bytes | bytearray | memoryview | BinaryIO

#: A pickle string longer than this is never a module or class name: it is skipped, not kept.
MAX_KEPT_STRING = 4096
#: Strings and bytes up to this size are read and checked for a nested pickle.
MAX_NESTED_SCAN = 16 * 1024 * 1024
#: How deep nested pickles (pickles inside pickle strings) are followed.
MAX_NESTED_DEPTH = 4
#: Bounds on the symbolic machine: past them the scan degrades (conservatively) instead of growing.
MAX_STACK = 100_000
MAX_MEMO = 1_000_000
MAX_RETAINED = 2_000_000
MAX_CONTAINER_ITEMS = 4096
#: Newline-terminated arguments (protocol 0) longer than this are malformed.
MAX_LINE = 1 << 20

#: A legacy (non-zip) ``torch.save`` file starts with a pickle of this number, then four more pickles
#: (protocol version, system info, the object, the storage keys); raw tensor storages follow.
TORCH_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
TORCH_LEGACY_PICKLES = 5

#: Rules that make a file dangerous; any other error makes it malformed (cannot be judged safe).
DANGEROUS_RULES = frozenset({"dangerous-global", "unresolved-global", "global-mutation", "extension-code"})


# --------------------------------------------------------------------------------------------
# What is safe, and what is dangerous


def _torch_safe() -> dict[str, str]:
    """What ``torch.load(weights_only=True)`` itself accepts (torch/_weights_only_unpickler.py)."""
    table: dict[str, str] = {}
    rebuild = (
        "_rebuild_tensor _rebuild_tensor_v2 _rebuild_tensor_v3 _rebuild_parameter "
        "_rebuild_parameter_with_state _rebuild_qtensor _rebuild_sparse_tensor "
        "_rebuild_meta_tensor_no_storage _rebuild_nested_tensor _rebuild_wrapper_subclass "
        "_rebuild_device_tensor_from_numpy _rebuild_device_tensor_from_cpu_tensor"
    ).split()
    for name in rebuild:
        table[f"torch._utils.{name}"] = "rebuilds a tensor from a storage and its shape/stride"
    table["torch._tensor._rebuild_from_type_v2"] = (
        "rebuilds a tensor subclass; the function and type it is handed are globals scanned themselves"
    )
    kinds = "Double Float Half BFloat16 Long Int Short Char Byte Bool ComplexDouble ComplexFloat".split()
    quant = "QUInt8 QInt8 QInt32 QUInt4x2 QUInt2x4".split()
    for kind in kinds + quant:
        table[f"torch.{kind}Storage"] = "legacy storage class: names the element type of tensor bytes"
        table[f"torch.cuda.{kind}Storage"] = "legacy CUDA storage class: names the element type"
    for kind in "Double Float Half BFloat16 Long Int Short Char Byte Bool".split():
        for where in ("torch", "torch.cuda", "torch.sparse", "torch.cuda.sparse"):
            table[f"{where}.{kind}Tensor"] = "legacy tensor type: names the element type"
    table["torch.storage.TypedStorage"] = "storage class: holds tensor bytes"
    table["torch.storage.UntypedStorage"] = "storage class: holds tensor bytes"
    dtypes = (
        "float16 float32 float64 bfloat16 complex32 complex64 complex128 bool "
        "uint8 uint16 uint32 uint64 int8 int16 int32 int64 qint8 quint8 qint32 quint4x2 quint2x4 "
        "float8_e4m3fn float8_e4m3fnuz float8_e5m2 float8_e5m2fnuz float8_e8m0fnu float4_e2m1fn_x2 "
        "bits8 bits16 bits1x8 bits2x4 bits4x2 half float double long int short cfloat cdouble"
    ).split()
    dtypes += [f"uint{n}" for n in range(1, 8)] + [f"int{n}" for n in range(1, 8)]
    for name in dtypes:
        table[f"torch.{name}"] = "a dtype constant"
    for name in (
        "per_tensor_affine per_tensor_symmetric per_channel_affine per_channel_symmetric "
        "per_channel_affine_float_qparams"
    ).split():
        table[f"torch.{name}"] = "a quantization-scheme constant"
    table["torch.Size"] = "a tuple of ints (a shape)"
    table["torch.device"] = "a device name; constructing it touches nothing"
    table["torch.Tensor"] = "the tensor type, used with _rebuild_from_type_v2"
    table["torch.nn.parameter.Parameter"] = "wraps a tensor as a trainable parameter"
    table["torch.serialization._get_layout"] = (
        "looks a tensor layout up by name in torch's own table (the one torch.serialization function "
        "weights_only loading allows; the rest of the module is dangerous)"
    )
    return table


def _numpy_safe() -> dict[str, str]:
    table: dict[str, str] = {}
    for core in ("numpy.core", "numpy._core"):
        table[f"{core}.multiarray._reconstruct"] = "allocates an empty ndarray of a given type and shape"
        table[f"{core}.multiarray.scalar"] = "builds a numpy scalar from a dtype and its raw bytes"
        table[f"{core}.numeric._frombuffer"] = "views raw bytes as an array (protocol-5 arrays)"
    table["numpy.ndarray"] = "the array type; its state is data (shape, dtype, raw bytes)"
    table["numpy.dtype"] = "a dtype from its type string; structured fields are scanned themselves"
    return table


def _python_safe() -> dict[str, str]:
    return {
        "collections.OrderedDict": "a dict that keeps insertion order (every state_dict is one)",
        "collections.Counter": "a dict of counts",
        "collections.deque": "a sequence container",
        "collections.defaultdict": "a dict; its default factory is a global scanned itself",
        "builtins.set": "a set of pickled values",
        "builtins.frozenset": "a frozenset of pickled values",
        "builtins.slice": "a slice of ints",
        "builtins.complex": "a complex number",
        "builtins.bytearray": "a bytearray",
        "builtins.range": "a range of ints",
        "builtins.object": "the base type, used by copyreg._reconstructor for plain objects",
        **{
            f"builtins.{t}": "the plain value type; calling it builds a value from pickled data"
            for t in ("dict", "list", "tuple", "int", "float", "str", "bytes", "bool")
        },
        "_codecs.encode": "turns a str into bytes (how protocols 0-2 pickle bytes); no I/O",
        "copyreg._reconstructor": (
            "object.__new__ of a class that is itself a global in the pickle and scanned on its own"
        ),
        "copyreg.__newobj__": "cls.__new__(cls); cls is a global in the pickle and scanned on its own",
        "joblib.numpy_pickle.NumpyArrayWrapper": "joblib's record of an array's shape and dtype (data)",
        "torch.jit._pickle.build_intlist": "TorchScript pickle helper: a list of ints",
        "torch.jit._pickle.build_doublelist": "TorchScript pickle helper: a list of floats",
        "torch.jit._pickle.build_boollist": "TorchScript pickle helper: a list of bools",
        "torch.jit._pickle.build_tensorlist": "TorchScript pickle helper: a list of tensors",
        "torch.jit._pickle.build_tensor_from_id": "TorchScript pickle helper: a tensor by table index",
        "torch.jit._pickle.restore_type_tag": "TorchScript pickle helper: tags a container with a type",
    }


#: Exact ``module.name`` → why loading it cannot run code or touch the system.
SAFE_GLOBALS: dict[str, str] = {**_torch_safe(), **_numpy_safe(), **_python_safe()}

#: In a TorchScript archive the C++ unpickler resolves ``__torch__.*`` to classes compiled from the
#: archive's own ``code/`` (TorchScript, not Python): no Python module is imported.
TORCHSCRIPT_SAFE_PREFIXES = ("__torch__.",)

_RUNS_CODE = "runs arbitrary Python code"
_SHELL = "runs shell commands or programs"
_FILES = "reads or writes files"
_NET = "opens network connections"
_LOADER = "loads another pickle, model or compiled code (code inside code)"
_IMPORT = "imports or reaches arbitrary modules and attributes"
_INSTALL = "installs packages or creates environments"
_DEBUG = "runs code under a debugger, profiler or interpreter"
_MEMORY = "calls native code or touches raw memory"
_PROCESS = "controls the interpreter or its processes"


def _table(reason: str, names: str) -> dict[str, str]:
    return dict.fromkeys(names.split(), reason)


#: ``module`` or ``module.name`` prefixes → why importing or calling them is dangerous. A global
#: matches an entry when its dotted path equals it or starts with it followed by a dot. Every
#: global used by the picklescan and modelscan corpora is covered (tests/test_scan.py checks).
DANGEROUS: dict[str, str] = {
    **_table(_RUNS_CODE, """
        builtins.eval builtins.exec builtins.execfile builtins.compile builtins.apply builtins.breakpoint
        runpy code codeop types marshal timeit doctest unittest test idlelib lib2to3 distutils setuptools
        pkg_resources numpy.f2py numpy.distutils numpy.testing numpy.lib.utils cloudpickle dill operator
        _operator functools.reduce string.Formatter jinja2 mako IPython jupyter_client
        _xxsubinterpreters _interpreters inspect dis
        copyreg.add_extension copyreg.pickle copyreg.constructor
    """),
    **_table(_IMPORT, """
        builtins.__import__ builtins.getattr builtins.setattr builtins.delattr builtins.globals
        builtins.locals builtins.vars builtins.reload builtins.__builtins__ builtins.__loader__
        builtins.__spec__ importlib imp zipimport pkgutil
    """),
    **_table(_FILES, """
        builtins.open builtins.file builtins.input builtins.raw_input builtins.help
        shutil tempfile io _io codecs.open codecs.EncodedFile zipfile tarfile shelve dbm sqlite3 mmap glob
        logging.FileHandler logging.handlers logging.config logging.basicConfig logging.setLoggerClass
        fileinput linecache filecmp lzma.open gzip.open bz2.open netrc mailbox cgi
        cgitb tkinter turtle numpy.load numpy.save numpy.savez numpy.savez_compressed numpy.savetxt
        numpy.loadtxt numpy.genfromtxt numpy.fromfile numpy.memmap numpy.core.memmap numpy._core.memmap
        numpy.lib.npyio numpy.lib._npyio_impl numpy.lib.format numpy.lib._datasource numpy.DataSource
        torch.save
    """),
    **_table(_SHELL, """
        os posix nt subprocess _posixsubprocess pty commands popen2 platform _aix_support _osx_support
        uuid._get_command_stdout _winapi msvcrt winreg _pyrepl pydoc mailcap torch.distributed.run
        torch.distributed.launch torch.distributed.launcher torch.distributed.elastic
    """),
    **_table(_PROCESS, """
        builtins.exit builtins.quit builtins.copyright builtins.credits builtins.license
        sys signal _thread threading multiprocessing concurrent asyncio _asyncio atexit gc resource fcntl
        sched faulthandler tracemalloc site sysconfig
    """),
    **_table(_DEBUG, "pdb bdb trace profile cProfile _lsprof pstats"),
    **_table(_MEMORY, "ctypes _ctypes numpy.ctypeslib cffi"),
    **_table(_LOADER, """
        pickle _pickle cPickle joblib.load joblib.numpy_pickle.load joblib.numpy_pickle.NumpyUnpickler
        torch.load torch.serialization torch.hub torch.jit torch.package torch._inductor torch._dynamo
        torch.fx torch.compile torch.export torch._export torch.utils.cpp_extension torch.utils.collect_env
        torch.utils._config_module torch.utils.bottleneck torch.utils.benchmark torch.utils.data.datapipes
        torch.utils._pytree torch.distributed.checkpoint.state_dict_loader
        torch.distributed.checkpoint.filesystem torch.distributed.checkpoint.load torch.testing
        torch.ops torch._ops torch.classes torch._classes
        torch._C torch.cuda.memory torch.onnx torch.library torch._higher_order_ops torch._functorch
        torch.overrides keras tensorflow tf_keras
    """),
    **_table(_INSTALL, "pip ensurepip venv virtualenv conda"),
    **_table(_NET, """
        socket _socket socketserver ssl _ssl http httplib urllib urllib2 urllib3 requests httpx aiohttp
        ftplib smtplib smtpd imaplib poplib telnetlib nntplib xmlrpc xmlrpclib webbrowser select selectors
        wsgiref paramiko fsspec boto3 huggingface_hub torch.distributed.rpc
    """),
}

#: Inside a dangerous module, plain data types that construct nothing dangerous: judged unknown
#: (reported; a policy decides) rather than dangerous.
NOT_DANGEROUS = frozenset({
    "types.SimpleNamespace", "io.BytesIO", "_io.BytesIO", "io.StringIO", "_io.StringIO",
})

#: Modules whose classes are plain values (a path object touches nothing) but whose methods
#: (``pathlib.Path.write_text``) act: a reference to a method of theirs is dangerous.
_METHODS_ACT = ("pathlib",)

#: Names that, met inside a dotted name (``torch.serialization.os.system``), mean the path walks
#: through a dangerous module or callable by attribute access: the protocol-4 dotted-name bypass.
_DANGEROUS_SEGMENTS = frozenset("""
    os posix nt sys subprocess builtins __builtin__ __builtins__ importlib runpy pickle _pickle socket
    shutil ctypes eval exec execfile compile system popen __import__ getattr setattr open apply load loads
""".split())


@dataclass(frozen=True)
class GlobalRef:
    """One distinct global a load would import, with our judgement and the reason for it."""

    module: str
    name: str
    verdict: GlobalVerdict
    reason: str

    @property
    def dotted(self) -> str:
        return f"{self.module}.{self.name}"

    def __str__(self) -> str:
        return self.dotted


@dataclass(frozen=True)
class Finding:
    """One problem: a kebab-case ``rule``, a ``severity``, and a message naming what is involved.

    ``offset`` is the byte offset in the pickle stream; ``member`` is filled in by the caller that
    opened an archive.
    """

    rule: str
    severity: Severity
    message: str
    offset: int | None = None
    member: str | None = None

    def to_json(self) -> dict[str, object]:
        out: dict[str, object] = {"rule": self.rule, "severity": self.severity, "message": self.message}
        if self.offset is not None:
            out["offset"] = self.offset
        if self.member is not None:
            out["member"] = self.member
        return out


@dataclass(frozen=True)
class PickleScan:
    """What a pickle stream would do on load: the globals it imports, the problems, one verdict.

    ``pickles`` counts the pickles read in sequence (a legacy torch file has five); ``end`` is the
    offset just after the last one, where a legacy torch file's raw storages begin.
    """

    globals: tuple[GlobalRef, ...]
    findings: tuple[Finding, ...]
    verdict: Verdict
    pickles: int = 0
    opcodes: int = 0
    end: int = 0
    torch_legacy: bool = False


def classify_global(module: str, name: str, *, torchscript: bool = False) -> GlobalRef:
    """Judge one global: allowlisted → safe, known to run code or touch the system → dangerous,
    otherwise unknown (reported; a policy decides).

    Python 2 names are judged under the names Python 3's loader maps them to as well
    (``__builtin__`` → ``builtins``, ``httplib`` → ``http.client``): dangerous under either name is
    dangerous; otherwise the mapped name decides (the Python 2 module does not exist to import).
    """
    raw = _classify_one(module, name, torchscript)
    mapped_name = _compat_pickle.NAME_MAPPING.get((module, name))
    if mapped_name is None and module in _compat_pickle.IMPORT_MAPPING:
        mapped_name = (_compat_pickle.IMPORT_MAPPING[module], name)
    verdict, reason = raw
    if mapped_name is not None:
        mapped = _classify_one(*mapped_name, torchscript)
        if raw[0] != "dangerous":
            verdict, reason = mapped
    return GlobalRef(module=module, name=name, verdict=verdict, reason=reason)


def _classify_one(module: str, name: str, torchscript: bool) -> tuple[GlobalVerdict, str]:
    dotted = f"{module}.{name}"
    if dotted in SAFE_GLOBALS:
        return "safe", SAFE_GLOBALS[dotted]
    if torchscript and dotted.startswith(TORCHSCRIPT_SAFE_PREFIXES):
        return "safe", "a TorchScript class compiled from the archive's code/ (no Python import)"
    module_parts = module.split(".")
    name_parts = name.split(".")
    parts = dotted.split(".")
    if dotted not in NOT_DANGEROUS:
        for i in range(len(parts), 0, -1):
            reason = DANGEROUS.get(".".join(parts[:i]))
            if reason is not None:
                return "dangerous", reason
    if module_parts[0] in _METHODS_ACT and len(name_parts) > 1:
        return "dangerous", f"a method of {module}.{name_parts[0]}, which can touch files"
    if not module or not name or any(not p for p in module_parts + name_parts):
        return "dangerous", "an empty or malformed name"
    for part in name_parts:
        if part.startswith("__") and part.endswith("__") and len(part) > 4:
            return "dangerous", f"reaches the special attribute {part} (attribute-walk bypass)"
        if part in _DANGEROUS_SEGMENTS and len(name_parts) > 1:
            return "dangerous", f"walks through {part!r} by attribute access (dotted-name bypass)"
    if name_parts[-1] in {"eval", "exec", "execfile", "system", "popen", "__import__"}:
        return "dangerous", _RUNS_CODE
    return "unknown", "neither allowlisted nor known to be dangerous"


# --------------------------------------------------------------------------------------------
# Reading: bytes or a stream, bounded


def _seekable(stream: BinaryIO) -> bool:
    """Only plain files: seeking a compressed stream to its end would decompress all of it."""
    try:
        return isinstance(stream, (io.BufferedReader, io.FileIO, io.BytesIO)) and stream.seekable()
    except (OSError, ValueError):
        return False


class _Truncated(Exception):
    """The data ended inside an opcode or its argument."""


class _Malformed(Exception):
    """The bytes are not a valid pickle at this point."""


class _Reader:
    """Sequential reads over a buffer (zero-copy) or a stream (chunked, never a whole-file read)."""

    def __init__(self, source: Source) -> None:
        self._stream: BinaryIO | None = None
        if isinstance(source, (bytes, bytearray, memoryview)):
            self._view = (
                memoryview(source).cast("B") if isinstance(source, memoryview) else memoryview(source)
            )
            self._size = len(self._view)
        else:
            self._stream = source
            self._view = memoryview(b"")
            self._size = -1
        self._pos = 0  # stream mode: the absolute offset of _view[0]
        self._i = 0
        self.error: str | None = None

    # buffer mode keeps everything in _view and uses _i as the absolute offset; stream mode refills.

    def tell(self) -> int:
        return self._pos + self._i

    def _fill(self, need: int) -> bool:
        """Make at least ``need`` bytes available at _i; False if the data ends first (or the
        stream fails, e.g. corrupt compressed data: ``error`` then says why)."""
        if len(self._view) - self._i >= need:
            return True
        if self._stream is None or self.error is not None:
            return False
        rest = bytes(self._view[self._i:])
        chunks = [rest]
        have = len(rest)
        while have < need:
            try:
                chunk = self._stream.read(max(need - have, 1 << 16))
            except (OSError, EOFError) as exc:
                self.error = str(exc) or type(exc).__name__
                break
            if not chunk:
                break
            chunks.append(chunk)
            have += len(chunk)
        self._pos += self._i
        self._view = memoryview(b"".join(chunks))
        self._i = 0
        return have >= need

    def byte(self) -> int:
        """The next byte, or -1 at the end of the data."""
        i = self._i
        if i < len(self._view):
            self._i = i + 1
            return self._view[i]
        if not self._fill(1):
            return -1
        self._i += 1
        return self._view[self._i - 1]

    def peek(self, n: int) -> bytes:
        self._fill(n)
        return bytes(self._view[self._i : self._i + n])

    def read(self, n: int) -> bytes:
        if not self._fill(n):
            raise _Truncated(self.error or f"needs {n} bytes, {len(self._view) - self._i} remain")
        out = bytes(self._view[self._i : self._i + n])
        self._i += n
        return out

    def skip(self, n: int) -> None:
        """Move past ``n`` bytes without keeping them (a 4 GiB BINBYTES8 costs no memory)."""
        available = len(self._view) - self._i
        if n <= available:
            self._i += n
            return
        if self._stream is None:
            raise _Truncated(f"needs {n} bytes, {available} remain")
        left = n - available
        stream = self._stream
        if _seekable(stream):
            here = stream.tell()
            end = stream.seek(0, io.SEEK_END)
            if here + left > end:
                # Checked before the buffered bytes are dropped, so the offset the finding names is
                # where the argument starts, as in buffer mode (it was the end of the buffer).
                stream.seek(here)
                raise _Truncated(f"needs {n} bytes, {available + end - here} remain")
            self._pos += len(self._view) + left
            self._view = memoryview(b"")
            self._i = 0
            stream.seek(here + left)
            return
        self._pos += len(self._view)
        self._view = memoryview(b"")
        self._i = 0
        while left:
            try:
                chunk = stream.read(min(left, 1 << 20))
            except (OSError, EOFError) as exc:
                self.error = str(exc) or type(exc).__name__
                raise _Truncated(self.error) from None
            if not chunk:
                raise _Truncated(f"needs {n} bytes, {n - left} remain")
            left -= len(chunk)
            self._pos += len(chunk)

    def readline(self) -> bytes:
        """Bytes up to (not including) the next newline, within MAX_LINE; never copies the buffer."""
        window = 256
        while True:
            have = len(self._view) - self._i
            n = min(have, window)
            idx = bytes(self._view[self._i : self._i + n]).find(b"\n")
            if idx >= 0:
                out = bytes(self._view[self._i : self._i + idx])
                self._i += idx + 1
                return out
            if n >= MAX_LINE:
                raise _Malformed(f"no newline within {MAX_LINE} bytes")
            if n < window:
                if not self._fill(have + 1):
                    raise _Truncated("the data ends inside a newline-terminated argument")
            else:
                window *= 4

    def at_end(self) -> bool:
        return not self._fill(1)


# --------------------------------------------------------------------------------------------
# Symbolic values


class _Unknown:
    """A value the scan does not model (a call's result, a buffer, something past a limit)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "<unknown>"


UNKNOWN = _Unknown()


@dataclass(frozen=True)
class _Blob:
    """A string too long to keep; its length is known, its text is not."""

    kind: str
    length: int


@dataclass(frozen=True)
class _Global:
    module: str
    name: str


@dataclass(eq=False)
class _Call:
    """The result of calling or instantiating ``func`` (REDUCE, NEWOBJ, OBJ, INST)."""

    func: object
    args: object
    state: object = None


@dataclass(eq=False)
class _Container:
    kind: str  # list, dict, set
    items: list = field(default_factory=list)


@dataclass(frozen=True)
class _Persistent:
    pid: object


# --------------------------------------------------------------------------------------------
# The walker

_OPS = {op.code.encode("latin-1")[0]: op for op in pickletools.opcodes}
_PROTO_MAX = 5


class _Scanner:
    """Interprets one stream's opcodes symbolically, collecting globals and findings."""

    def __init__(self, torchscript: bool, depth: int = 0) -> None:
        self.torchscript = torchscript
        self.depth = depth
        self.findings: list[Finding] = []
        self.globals: dict[tuple[str, str], GlobalRef] = {}
        self.opcodes = 0
        self.retained = 0
        self.degraded = False
        self._seen_rules: set[tuple[str, str]] = set()

    # -- findings

    def find(self, rule: str, severity: Severity, message: str, offset: int | None, key: str = "") -> None:
        """Record a finding once per (rule, key)."""
        dedupe = (rule, key or message)
        if dedupe in self._seen_rules:
            return
        self._seen_rules.add(dedupe)
        self.findings.append(Finding(rule, severity, message, offset))

    def note_global(self, module: str, name: str, offset: int, via: str) -> None:
        key = (module, name)
        if key in self.globals:
            return
        ref = classify_global(module, name, torchscript=self.torchscript)
        self.globals[key] = ref
        if ref.verdict == "dangerous":
            self.find(
                "dangerous-global",
                "error",
                f"imports {ref.dotted} ({ref.reason}) via {via}",
                offset,
                ref.dotted,
            )
        elif ref.verdict == "unknown":
            self.find(
                "unknown-global",
                "warning",
                f"imports {ref.dotted}, which is not allowlisted",
                offset,
                ref.dotted,
            )

    def degrade(self, what: str, offset: int | None) -> None:
        if not self.degraded:
            self.degraded = True
            self.find(
                "scan-limit",
                "warning",
                f"{what}: later values are not tracked; any import they name is reported unresolved",
                offset,
            )

    # -- values

    def keep(self, value: object, cost: int = 1) -> object:
        """Count a container or string against the retention budget; past it, keep UNKNOWN instead
        (memory stays bounded; a name that is lost is later reported unresolved, never passed)."""
        self.retained += cost
        if self.retained > MAX_RETAINED:
            self.degrade(f"more than {MAX_RETAINED} values held", None)
            return UNKNOWN
        return value

    def text(self, raw: bytes, kind: str, offset: int) -> object:
        """A str/bytes constant: check it for a nested pickle, keep it if short."""
        value: object = raw
        if kind == "str":
            try:
                value = raw.decode("utf-8", "surrogatepass")
            except UnicodeDecodeError as exc:
                raise _Malformed(f"a string argument is not valid UTF-8 (byte {exc.start})") from None
        if len(raw) >= 4 and self.depth < MAX_NESTED_DEPTH:
            candidate = raw
            if isinstance(value, str) and not value.isascii():
                # a str becomes a pickle through _codecs.encode(s, "latin1")
                with contextlib.suppress(UnicodeEncodeError):
                    candidate = value.encode("latin-1")
            if _looks_like_pickle(candidate):
                self.nested(candidate, offset)
        if len(raw) > MAX_KEPT_STRING:
            return _Blob(kind, len(raw))
        if len(raw) <= 256:  # names: never dropped (the stack and memo limits bound how many are held)
            return value
        return self.keep(value, 1 + len(raw) // 64)

    def nested(self, raw: bytes, offset: int) -> None:
        inner = _Scanner(self.torchscript, self.depth + 1)
        inner.run_sequence(_Reader(raw), lenient=True)
        for (module, name), ref in inner.globals.items():
            if (module, name) not in self.globals:
                self.globals[(module, name)] = ref
                if ref.verdict != "safe":
                    rule = "dangerous-global" if ref.verdict == "dangerous" else "unknown-global"
                    severity: Severity = "error" if ref.verdict == "dangerous" else "warning"
                    self.find(
                        rule,
                        severity,
                        f"a pickle nested in a string at offset {offset} imports {ref.dotted} ({ref.reason})",
                        offset,
                        ref.dotted,
                    )
        for f in inner.findings:
            if f.rule in DANGEROUS_RULES and f.rule != "dangerous-global":
                self.find(f.rule, f.severity, f"in a pickle nested at offset {offset}: {f.message}", offset)
        self.opcodes += inner.opcodes

    # -- the machine

    def run_sequence(self, reader: _Reader, *, lenient: bool = False) -> tuple[int, bool, int]:
        """Scan pickles one after another, as a loader that calls ``load`` repeatedly would.

        Returns (pickles read, whether this is a legacy torch file, end offset). In ``lenient``
        mode (nested strings, trailing data) a parse failure is not a finding.
        """
        count = 0
        legacy = False
        end = 0
        head = reader.peek(2)
        starts_with_proto = head[:1] == b"\x80"
        while True:
            try:
                result = self.run_one(reader, first=count == 0, lenient=lenient)
            except _Truncated as exc:
                if lenient:
                    pass
                elif count == 0 and not self.globals and not starts_with_proto and reader.error is None:
                    self.find("not-a-pickle", "error", f"not a pickle: {exc} at offset {reader.tell()}",
                              reader.tell())
                else:
                    self.find(
                        "malformed-pickle",
                        "error",
                        f"pickle {count + 1} is truncated at offset {reader.tell()}: {exc}",
                        reader.tell(),
                    )
                return count, legacy, reader.tell()
            except _Malformed as exc:
                if not lenient:
                    if count == 0 and not self.globals and not starts_with_proto:
                        self.find(
                            "not-a-pickle",
                            "error",
                            f"not a pickle: {exc} at offset {reader.tell()}",
                            reader.tell(),
                        )
                    else:
                        self.find(
                            "malformed-pickle",
                            "error",
                            f"pickle {count + 1} is malformed at offset {reader.tell()}: {exc}",
                            reader.tell(),
                        )
                return count, legacy, reader.tell()
            count += 1
            end = reader.tell()
            if count == 1 and result == TORCH_LEGACY_MAGIC:
                legacy = True
            if legacy:
                if count == TORCH_LEGACY_PICKLES:
                    return count, legacy, end
                if reader.at_end():
                    self.find(
                        "malformed-pickle",
                        "error",
                        f"legacy torch file ends after {count} of {TORCH_LEGACY_PICKLES} pickles",
                        end,
                    )
                    return count, legacy, end
                continue
            if reader.at_end():
                return count, legacy, end
            head = reader.peek(2)
            if head[0] == 0x80 and len(head) == 2 and head[1] <= _PROTO_MAX:
                continue  # another pickle follows, as in legacy torch files: a repeated load reads it
            if lenient:
                return count, legacy, end
            self.trailing(reader, start=end)
            return count, legacy, end

    def trailing(self, reader: _Reader, start: int) -> None:
        """Bytes after the last pickle: a loader may read them as more pickles; look leniently."""
        before = set(self.globals)
        self.run_sequence(reader, lenient=True)
        added = sorted(f"{m}.{n}" for m, n in set(self.globals) - before)
        if added:
            self.find(
                "trailing-pickle",
                "warning",
                f"data after the pickle at offset {start} imports {', '.join(added)}",
                start,
            )
        else:
            self.find(
                "trailing-data",
                "info",
                f"data after the pickle at offset {start} is not a pickle; not scanned further",
                start,
            )

    def run_one(self, reader: _Reader, *, first: bool, lenient: bool) -> object:
        """Interpret one pickle up to its STOP; returns the top value (for the legacy magic check)."""
        stack: list = []
        metastack: list[list] = []
        memo: dict[int, object] = {}
        proto = 0

        def pop() -> object:
            if not stack:
                raise _Malformed("stack underflow")
            value = stack.pop()
            return value

        saved = 0  # items held in the frames MARK set aside, counted against MAX_STACK

        def pop_mark() -> list:
            nonlocal stack, saved
            if not metastack:
                raise _Malformed("no MARK on the stack")
            items = stack
            stack = metastack.pop()
            saved -= len(stack)
            return items

        def push(value: object) -> None:
            if saved + len(stack) + len(metastack) >= MAX_STACK:
                raise _Malformed(f"stack deeper than {MAX_STACK}")
            stack.append(value)

        def top() -> object:
            if not stack:
                raise _Malformed("stack underflow")
            return stack[-1]

        while True:
            offset = reader.tell()
            code = reader.byte()
            if code < 0:
                raise _Truncated(reader.error or "the data ends before STOP")
            name = _NAMES[code]
            if name is None:
                raise _Malformed(f"byte 0x{code:02x} is not a pickle opcode")
            self.opcodes += 1
            read_arg = _ARG_BY_CODE[code]
            arg = read_arg(self, reader, offset) if read_arg is not None else None

            # most frequent first: memo traffic and constants are most of a checkpoint's opcodes
            if name in _PUT_OPS:
                index = len(memo) if name == "MEMOIZE" else arg
                if len(memo) >= MAX_MEMO and index not in memo:
                    self.degrade(f"more than {MAX_MEMO} memo entries", offset)
                else:
                    memo[index] = top()
            elif name in _GET_OPS:
                if arg in memo:
                    push(memo[arg])
                else:
                    if not self.degraded:
                        self.find(
                            "memo-missing",
                            "error",
                            f"{name} {arg} at offset {offset} reads a memo entry never stored "
                            "(a load fails here, after running everything before)",
                            offset,
                            f"memo{arg}",
                        )
                    push(UNKNOWN)
            elif name in _CONST_OPS:
                push(arg)
            elif name == "PROTO":
                proto = arg
                if proto > _PROTO_MAX:
                    raise _Malformed(f"unsupported protocol {proto}")
            elif name == "STOP":
                return pop()
            elif name == "FRAME":
                pass
            elif name == "MARK":
                if saved + len(stack) + len(metastack) >= MAX_STACK:
                    raise _Malformed(f"stack deeper than {MAX_STACK}")
                saved += len(stack)
                metastack.append(stack)
                stack = []
            elif name == "POP":
                if stack:
                    stack.pop()
                else:
                    pop_mark()
            elif name == "POP_MARK":
                pop_mark()
            elif name == "DUP":
                push(top())
            elif name in ("EMPTY_LIST", "EMPTY_DICT", "EMPTY_SET"):
                push(self.keep(_Container(name[6:].lower())))
            elif name == "EMPTY_TUPLE":
                push(())
            elif name in ("TUPLE1", "TUPLE2", "TUPLE3"):
                n = int(name[-1])
                if len(stack) < n:
                    raise _Malformed("stack underflow")
                items = tuple(stack[-n:])
                del stack[-n:]
                push(items)
            elif name == "TUPLE":
                items = pop_mark()[:MAX_CONTAINER_ITEMS]
                push(self.keep(tuple(items), len(items)))
            elif name in ("LIST", "FROZENSET"):
                items = pop_mark()[:MAX_CONTAINER_ITEMS]
                push(self.keep(_Container("list" if name == "LIST" else "set", items), 1 + len(items)))
            elif name == "DICT":
                items = pop_mark()[:MAX_CONTAINER_ITEMS]
                push(self.keep(_Container("dict", items), 1 + len(items)))
            elif name == "APPEND":
                value = pop()
                self.extend(top(), [value])
            elif name in ("APPENDS", "ADDITEMS"):
                items = pop_mark()
                self.extend(top(), items)
            elif name == "SETITEM":
                value = pop()
                key = pop()
                self.extend(top(), [key, value])
            elif name == "SETITEMS":
                items = pop_mark()
                self.extend(top(), items)
            elif name == "GLOBAL" or name == "INST":
                module, _, attr = arg.partition(" ")
                self.note_global(module, attr, offset, name)
                value = _Global(module, attr)
                if name == "INST":
                    args = tuple(pop_mark())
                    push(_Call(value, args))
                else:
                    push(value)
            elif name == "STACK_GLOBAL":
                attr = pop()
                module = pop()
                if isinstance(module, str) and isinstance(attr, str):
                    self.note_global(module, attr, offset, "STACK_GLOBAL")
                    push(_Global(module, attr))
                else:
                    self.find(
                        "unresolved-global",
                        "error",
                        f"STACK_GLOBAL at offset {offset} imports a name computed at load time "
                        f"(module {_describe(module)}, name {_describe(attr)}): it cannot be checked",
                        offset,
                        f"sg{offset}",
                    )
                    push(UNKNOWN)
            elif name == "REDUCE":
                args = pop()
                func = pop()
                self.call(func, offset, name)
                push(_Call(func, args))
            elif name == "NEWOBJ":
                args = pop()
                cls = pop()
                self.call(cls, offset, name)
                push(_Call(cls, args))
            elif name == "NEWOBJ_EX":
                pop()
                args = pop()
                cls = pop()
                self.call(cls, offset, name)
                push(_Call(cls, args))
            elif name == "OBJ":
                items = pop_mark()
                if not items:
                    raise _Malformed("OBJ without a class")
                self.call(items[0], offset, name)
                push(_Call(items[0], tuple(items[1:MAX_CONTAINER_ITEMS])))
            elif name == "BUILD":
                state = pop()
                target = top()
                self.build(target, state, offset, reader, stack)
            elif name == "PERSID":
                push(_Persistent(arg))
            elif name == "BINPERSID":
                push(_Persistent(pop()))
            elif name in ("EXT1", "EXT2", "EXT4"):
                self.find(
                    "extension-code",
                    "error",
                    f"{name} {arg} at offset {offset} imports whatever the loading process registered "
                    "under that extension code: it cannot be checked",
                    offset,
                    f"ext{arg}",
                )
                push(UNKNOWN)
            elif name == "NEXT_BUFFER":
                push(UNKNOWN)
            elif name == "READONLY_BUFFER":
                top()
            else:  # pragma: no cover - every opcode in pickletools is handled above
                raise _Malformed(f"unhandled opcode {name}")

    def call(self, func: object, offset: int, how: str) -> None:
        if isinstance(func, _Global):
            return
        if isinstance(func, (_Container, tuple, str, bytes, int, float, type(None), _Blob)):
            self.find(
                "call-non-callable",
                "warning",
                f"{how} at offset {offset} calls a {_describe(func)} (a load fails here)",
                offset,
                f"nc{offset}",
            )
        else:
            self.find(
                "indirect-call",
                "warning",
                f"{how} at offset {offset} calls {_describe(func)}, not an imported global",
                offset,
                f"ic{offset}",
            )

    def extend(self, target: object, items: list) -> None:
        """APPEND(S)/SETITEM(S)/ADDITEMS: keep the first items of a container, within the budget."""
        if isinstance(target, _Container):
            room = MAX_CONTAINER_ITEMS - len(target.items)
            if room > 0 and self.keep(True, min(room, len(items))) is True:
                target.items.extend(items[:room])

    def build(self, target: object, state: object, offset: int, reader: _Reader, stack: list) -> None:
        if isinstance(target, _Global):
            self.find(
                "global-mutation",
                "error",
                f"BUILD at offset {offset} sets attributes on the imported {target.module}.{target.name} "
                "itself (rewrites a module or class for later imports)",
                offset,
                f"gm{offset}",
            )
            return
        if isinstance(target, _Call):
            target.state = state
            cls = target.func
            if (  # protocols 0-1 build plain objects with copyreg._reconstructor(cls, object, None)
                isinstance(cls, _Global)
                and (cls.module, cls.name) in (("copyreg", "_reconstructor"), ("copy_reg", "_reconstructor"))
                and isinstance(target.args, tuple)
                and target.args
            ):
                cls = target.args[0]
            if (
                isinstance(cls, _Global)
                and cls.name == "NumpyArrayWrapper"
                and cls.module.endswith("joblib.numpy_pickle")
            ):
                self.joblib_array(target, offset, reader)
                stack[-1] = UNKNOWN

    def joblib_array(self, wrapper: _Call, offset: int, reader: _Reader) -> None:
        """joblib writes an array's raw bytes (or a whole pickle, for object arrays) right after the
        BUILD of its NumpyArrayWrapper; move past them as joblib's loader would."""
        state = _dict_items(wrapper.state)
        shape = state.get("shape")
        dtype = state.get("dtype")
        if not (isinstance(shape, tuple) and all(isinstance(d, int) and d >= 0 for d in shape)):
            raise _Malformed(f"joblib array at offset {offset} has no readable shape")
        itemsize, has_object = _dtype_size(dtype)
        if has_object:
            inner = _Scanner(self.torchscript, self.depth)
            inner.run_one(reader, first=False, lenient=False)
            for key, ref in inner.globals.items():
                if key not in self.globals:
                    self.note_global(ref.module, ref.name, offset, "a joblib object array")
            self.findings.extend(
                f for f in inner.findings if f.rule not in ("dangerous-global", "unknown-global")
            )
            self.opcodes += inner.opcodes
            return
        if itemsize is None:
            raise _Malformed(f"joblib array at offset {offset} has a dtype whose size cannot be read")
        if state.get("numpy_array_alignment_bytes") is not None:
            padding = reader.byte()
            if padding < 0:
                raise _Truncated("the data ends inside a joblib array's padding")
            reader.skip(padding)
        reader.skip(math.prod(shape) * itemsize)


_CONST_OPS = frozenset(
    {
        "INT",
        "BININT",
        "BININT1",
        "BININT2",
        "LONG",
        "LONG1",
        "LONG4",
        "STRING",
        "BINSTRING",
        "SHORT_BINSTRING",
        "BINBYTES",
        "SHORT_BINBYTES",
        "BINBYTES8",
        "BYTEARRAY8",
        "UNICODE",
        "SHORT_BINUNICODE",
        "BINUNICODE",
        "BINUNICODE8",
        "NONE",
        "NEWTRUE",
        "NEWFALSE",
        "FLOAT",
        "BINFLOAT",
    }
)


def _dict_items(value: object) -> dict[str, object]:
    """The str-keyed entries of a symbolic dict (a state dict)."""
    if not isinstance(value, _Container) or value.kind != "dict":
        return {}
    items = value.items
    return {k: v for k, v in zip(items[0::2], items[1::2], strict=False) if isinstance(k, str)}


_DTYPE_STR = re.compile(r"^[<>|=]?([a-zA-Z?])(\d*)$")
_DTYPE_SIZES = {"?": 1, "b": 1, "B": 1, "h": 2, "H": 2, "e": 2, "f": 4, "d": 8, "g": 16, "O": 8}


def _dtype_size(dtype: object) -> tuple[int | None, bool]:
    """(itemsize, has_object) of a pickled ``numpy.dtype(str, ...)`` with its BUILD state."""
    if not (isinstance(dtype, _Call) and isinstance(dtype.args, tuple) and dtype.args):
        return None, False
    spec = dtype.args[0]
    state = dtype.state if isinstance(dtype.state, tuple) else ()
    flags = state[7] if len(state) > 7 and isinstance(state[7], int) else 0
    has_object = bool(flags & 1)
    if len(state) > 5 and isinstance(state[5], int) and state[5] > 0:
        return state[5], has_object
    if not isinstance(spec, str):
        return None, has_object
    match = _DTYPE_STR.match(spec)
    if not match:
        return None, has_object
    letter, digits = match.groups()
    if letter == "O":
        return 8, True
    if digits:
        size = int(digits)
        return (size * 4 if letter == "U" else size), has_object
    return _DTYPE_SIZES.get(letter), has_object


def _describe(value: object) -> str:
    if isinstance(value, str):
        return repr(value[:80])
    if isinstance(value, _Global):
        return f"the global {value.module}.{value.name}"
    if isinstance(value, _Call):
        return f"the result of calling {_describe(value.func)}"
    if isinstance(value, _Blob):
        return f"a {value.kind} of {value.length} characters"
    if isinstance(value, _Container):
        return f"a {value.kind}"
    if isinstance(value, _Persistent):
        return "a persistent id"
    if value is UNKNOWN:
        return "an untracked value"
    return type(value).__name__


def _looks_like_pickle(raw: bytes) -> bool:
    """A string that is itself a pickle (a nested ``pickle.loads`` payload)."""
    if raw[0] == 0x80 and raw[1] <= _PROTO_MAX:
        return True
    return raw[-1:] == b"." and raw[0] in _OPS and raw[0] not in b" \n\t."


# -- argument readers: bounded, and strings are checked for nested pickles as they are read


def _uint1(scanner: _Scanner, reader: _Reader, offset: int) -> int:
    value = reader.byte()
    if value < 0:
        raise _Truncated(reader.error or "needs 1 byte, 0 remain")
    return value


def _uint(size: int, signed: bool = False):
    def read(scanner: _Scanner, reader: _Reader, offset: int) -> int:
        return int.from_bytes(reader.read(size), "little", signed=signed)

    return read


def _counted(size: int, kind: str):
    """A length-prefixed string or bytes: kept, scanned, or skipped according to its length."""

    def read(scanner: _Scanner, reader: _Reader, offset: int) -> object:
        n = int.from_bytes(reader.read(size), "little", signed=(size == 4 and kind == "bytes-legacy"))
        if n < 0:
            raise _Malformed(f"negative length {n}")
        real_kind = "bytes" if kind == "bytes-legacy" else kind
        if n > MAX_NESTED_SCAN:
            reader.skip(n)
            return _Blob(real_kind, n)
        raw = reader.read(n)
        if kind == "bytes-legacy":  # BINSTRING/SHORT_BINSTRING: a Python 2 str, ASCII-decoded on load
            return scanner.text(raw, "str" if raw.isascii() else "bytes", offset)
        return scanner.text(raw, real_kind, offset)

    return read


def _long(size: int):
    def read(scanner: _Scanner, reader: _Reader, offset: int) -> object:
        n = int.from_bytes(reader.read(size), "little", signed=True)
        if n < 0:
            raise _Malformed(f"negative length {n}")
        if n > 1024:
            reader.skip(n)
            return UNKNOWN
        return int.from_bytes(reader.read(n), "little", signed=True)

    return read


def _line_text(scanner: _Scanner, reader: _Reader, offset: int) -> str:
    try:
        return reader.readline().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _Malformed(f"a name is not valid UTF-8 (byte {exc.start})") from None


def _read_pair(scanner: _Scanner, reader: _Reader, offset: int) -> str:
    module = _line_text(scanner, reader, offset)
    name = _line_text(scanner, reader, offset)
    return f"{module} {name}"


def _read_int_line(scanner: _Scanner, reader: _Reader, offset: int) -> object:
    """INT and LONG: decimal text (INT ``00``/``01`` are False/True), as ``int(text, 0)`` reads it."""
    line = reader.readline()
    if line in (b"00", b"01"):
        return line == b"01"
    try:
        return int(line[:-1] if line.endswith(b"L") else line, 0)
    except ValueError:
        raise _Malformed(f"{line[:40]!r} is not an integer") from None


def _read_index_line(scanner: _Scanner, reader: _Reader, offset: int) -> object:
    """PUT and GET: a decimal memo index."""
    line = reader.readline()
    try:
        return int(line)
    except ValueError:
        raise _Malformed(f"{line[:40]!r} is not a memo index") from None


def _read_float_line(scanner: _Scanner, reader: _Reader, offset: int) -> object:
    line = reader.readline()
    try:
        return float(line)
    except ValueError:
        raise _Malformed(f"{line[:40]!r} is not a float") from None


def _read_string_line(scanner: _Scanner, reader: _Reader, offset: int) -> object:
    """STRING: a quoted Python 2 string literal, unescaped as the loader does."""
    line = reader.readline()
    if not (len(line) >= 2 and line[0] == line[-1] and line[:1] in (b"'", b'"')):
        raise _Malformed("STRING argument is not quoted")
    try:
        # "\q" decodes to itself, as the loader does, with a DeprecationWarning we must not leak:
        # under -W error it escaped the scan as an exception (found by tests/test_fuzz.py).
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            raw = codecs.escape_decode(line[1:-1])[0]
    except ValueError:
        raise _Malformed("STRING argument has a bad escape") from None
    return scanner.text(raw, "str" if raw.isascii() else "bytes", offset)


def _read_unicode_line(scanner: _Scanner, reader: _Reader, offset: int) -> object:
    line = reader.readline()
    try:
        text = line.decode("raw-unicode-escape")
    except UnicodeDecodeError:
        raise _Malformed("UNICODE argument has a bad escape") from None
    return scanner.text(text.encode("utf-8", "surrogatepass"), "str", offset)


def _read_persid_line(scanner: _Scanner, reader: _Reader, offset: int) -> object:
    return reader.readline().decode("latin-1")


def _read_float8(scanner: _Scanner, reader: _Reader, offset: int) -> float:
    return struct.unpack(">d", reader.read(8))[0]


_ARG_READERS = {
    "uint1": _uint1,
    "uint2": _uint(2),
    "int4": _uint(4, signed=True),
    "uint4": _uint(4),
    "uint8": _uint(8),
    "long1": _long(1),
    "long4": _long(4),
    "string1": _counted(1, "bytes-legacy"),
    "string4": _counted(4, "bytes-legacy"),
    "bytes1": _counted(1, "bytes"),
    "bytes4": _counted(4, "bytes"),
    "bytes8": _counted(8, "bytes"),
    "bytearray8": _counted(8, "bytes"),
    "unicodestring1": _counted(1, "str"),
    "unicodestring4": _counted(4, "str"),
    "unicodestring8": _counted(8, "str"),
    "decimalnl_short": _read_int_line,
    "decimalnl_long": _read_int_line,
    "floatnl": _read_float_line,
    "float8": _read_float8,
    "stringnl": _read_string_line,
    "stringnl_noescape": _read_persid_line,
    "stringnl_noescape_pair": _read_pair,
    "unicodestringnl": _read_unicode_line,
}

_missing = {op.arg.name for op in pickletools.opcodes if op.arg is not None} - set(_ARG_READERS)
assert not _missing, f"no reader for pickle argument kinds {_missing}"

#: Per opcode byte: its name (None: not an opcode) and its argument reader (None: no argument).
_NAMES: list[str | None] = [None] * 256
_ARG_BY_CODE: list = [None] * 256
for _op in pickletools.opcodes:
    _code = _op.code.encode("latin-1")[0]
    _NAMES[_code] = _op.name
    if _op.name in ("PUT", "GET"):
        _ARG_BY_CODE[_code] = _read_index_line
    elif _op.arg is not None:
        _ARG_BY_CODE[_code] = _ARG_READERS[_op.arg.name]
_PUT_OPS = frozenset({"PUT", "BINPUT", "LONG_BINPUT", "MEMOIZE"})
_GET_OPS = frozenset({"GET", "BINGET", "LONG_BINGET"})


# --------------------------------------------------------------------------------------------
# Public API


def verdict_of(findings: Iterable[Finding]) -> Verdict:
    """dangerous > malformed (any other error: the file could not be judged) > unknown > safe."""
    findings = list(findings)
    if any(f.rule in DANGEROUS_RULES and f.severity == "error" for f in findings):
        return "dangerous"
    if any(f.severity == "error" for f in findings):
        return "malformed"
    if any(f.rule == "unknown-global" for f in findings):
        return "unknown"
    return "safe"


def scan_pickle(data: Source, *, torchscript: bool = False) -> PickleScan:
    """Scan a pickle stream (one pickle, or several in a row as in legacy torch files).

    ``data`` is bytes, a memoryview (zero-copy, e.g. of an mmap) or a binary stream positioned at
    the first opcode; a stream is read forward in chunks and never whole. ``torchscript`` allows the
    ``__torch__.*`` classes of a TorchScript archive. Never raises on bad input: a pickle that
    cannot be parsed yields a ``malformed-pickle`` (or ``not-a-pickle``) finding.
    """
    scanner = _Scanner(torchscript)
    reader = _Reader(data)
    if reader.at_end():
        if reader.error is not None:
            finding = Finding("malformed-pickle", "error", f"the data cannot be read: {reader.error}", 0)
        else:
            finding = Finding("not-a-pickle", "error", "empty: there is no pickle to read", 0)
        return PickleScan(globals=(), findings=(finding,), verdict="malformed")
    pickles, legacy, end = scanner.run_sequence(reader)
    if reader.error is not None and not any(f.rule == "malformed-pickle" for f in scanner.findings):
        scanner.find("malformed-pickle", "error", f"the data could not be read to its end: {reader.error}",
                     reader.tell())
    refs = tuple(sorted(scanner.globals.values(), key=lambda g: (g.module, g.name)))
    findings = tuple(scanner.findings)
    return PickleScan(
        globals=refs,
        findings=findings,
        verdict=verdict_of(findings),
        pickles=pickles,
        opcodes=scanner.opcodes,
        end=end,
        torch_legacy=legacy,
    )


_IDENTIFIER_PATH = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")


def sniff_pickle(prefix: bytes) -> bool:
    """Whether bytes start like a pickle: a PROTO opcode, or opcodes that parse up to a global
    whose module and name are Python identifiers (so text that happens to start with ``c`` or ``i``,
    the GLOBAL and INST opcodes, does not count).

    Used on archive members whatever their name, so a pickle stored as ``data.txt`` is still scanned.
    """
    if len(prefix) >= 2 and prefix[0] == 0x80 and prefix[1] <= _PROTO_MAX:
        return True
    if not prefix or prefix[0] not in _OPS:
        return False
    scanner = _Scanner(False, depth=MAX_NESTED_DEPTH)
    reader = _Reader(prefix)
    with contextlib.suppress(_Truncated, _Malformed):
        scanner.run_one(reader, first=True, lenient=True)
    return any(
        _IDENTIFIER_PATH.fullmatch(module) and _IDENTIFIER_PATH.fullmatch(name)
        for module, name in scanner.globals
    )
