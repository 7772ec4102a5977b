"""The canonical content digest of a safetensors file: what it holds, not how it is laid out.

Two writers can store the same tensors and metadata as different bytes (header key order, data
order, padding), so a sha256 pins a serialization, not a model. This digest pins the model; it
is defined in docs/content-digest.md precisely enough that another tool can recompute it, and the
test suite recomputes it from that page. Pure: it reads a whole-file buffer (in practice a
read-only mmap) and needs neither numpy nor the network.
"""

from __future__ import annotations

import hashlib
import mmap
import struct
from typing import TypeAlias

from .safetensors import SafetensorsLayout, header_length, parse_layout

#: What :func:`content_digest` hashes first: names the definition, so a v2 can never collide.
CONTENT_DIGEST_DOMAIN = b"weightpkg-safetensors-content-v1\0"

#: Tensor data is hashed this many bytes at a time, so no slice of a huge tensor is ever copied.
HASH_CHUNK_BYTES = 8 << 20

#: What the functions here read: a whole file, in practice a read-only mmap.
Buffer: TypeAlias = bytes | bytearray | memoryview | mmap.mmap

_U64 = struct.Struct("<Q")


def layout_of(buf: Buffer) -> SafetensorsLayout:
    """The strict parser over a whole-file buffer; raises SafetensorsError."""
    size = len(buf)
    n = header_length(bytes(buf[:8]), size)
    return parse_layout(bytes(buf[8 : 8 + n]), size)


def _text(value: str) -> bytes:
    raw = value.encode("utf-8")
    return _U64.pack(len(raw)) + raw


def content_digest(buf: Buffer) -> str:
    """sha256 (hex) of what a safetensors file holds, whatever its header or data order.

    A domain string, the tensor count, each tensor by name (UTF-8 byte order) as length-prefixed
    name and dtype, rank, dims, byte count and raw data, then the metadata count and each key and
    value, keys in UTF-8 byte order. Raises SafetensorsError for a malformed file.
    """
    layout = layout_of(buf)
    digest = hashlib.sha256(CONTENT_DIGEST_DOMAIN)
    digest.update(_U64.pack(len(layout.tensors)))
    with memoryview(buf) as view:
        for tensor in sorted(layout.tensors, key=lambda t: t.name.encode("utf-8")):
            fields = [_text(tensor.name), _text(tensor.dtype), _U64.pack(len(tensor.shape))]
            fields += [_U64.pack(dim) for dim in tensor.shape]
            fields.append(_U64.pack(tensor.end - tensor.begin))
            digest.update(b"".join(fields))
            begin, end = layout.data_start + tensor.begin, layout.data_start + tensor.end
            for at in range(begin, end, HASH_CHUNK_BYTES):
                with view[at : min(at + HASH_CHUNK_BYTES, end)] as part:
                    digest.update(part)
    digest.update(_U64.pack(len(layout.metadata)))
    for key in sorted(layout.metadata, key=lambda k: k.encode("utf-8")):
        digest.update(_text(key) + _text(layout.metadata[key]))
    return digest.hexdigest()
