"""A 64-64-10 ReLU MLP on the UCI optical digits shipped in scikit-learn, in numpy only.

Deterministic by construction: a fixed split (first 1500 rows train, last 297 test), a seeded
PCG64 generator for initialisation and shuffling, float64 arithmetic throughout, and float32
export written by a small safetensors writer with sorted header keys and no timestamps; float64
training keeps BLAS and SIMD differences (~1e-15) far below float32 rounding, so the exported
file is bit-identical across thread counts and CPU code paths.

    python train.py train DIGITS_CSV_GZ OUT.safetensors
    python train.py evaluate DIGITS_CSV_GZ WEIGHTS.safetensors     # prints {"test_accuracy": …}
"""

from __future__ import annotations

import gzip
import json
import struct
import sys

import numpy as np

SEED = 20240601
HIDDEN = 64
LEARNING_RATE = 0.1
EPOCHS = 60
BATCH = 50
TRAIN_ROWS = 1500


def load(path: str) -> tuple[np.ndarray, np.ndarray]:
    with gzip.open(path, "rt") as handle:
        table = np.loadtxt(handle, delimiter=",", dtype=np.float64)
    return table[:, :64] / 16.0, table[:, 64].astype(np.int64)


def train(x: np.ndarray, y: np.ndarray) -> dict[str, np.ndarray]:
    rng = np.random.Generator(np.random.PCG64(SEED))
    w1 = rng.standard_normal((64, HIDDEN)) * np.sqrt(2.0 / 64)
    b1 = np.zeros(HIDDEN)
    w2 = rng.standard_normal((HIDDEN, 10)) * np.sqrt(2.0 / HIDDEN)
    b2 = np.zeros(10)
    targets = np.eye(10)[y]
    for _ in range(EPOCHS):
        order = rng.permutation(len(x))
        for start in range(0, len(x), BATCH):
            idx = order[start : start + BATCH]
            xb, tb = x[idx], targets[idx]
            h = np.maximum(xb @ w1 + b1, 0.0)
            z = h @ w2 + b2
            z -= z.max(axis=1, keepdims=True)
            p = np.exp(z)
            p /= p.sum(axis=1, keepdims=True)
            g = (p - tb) / len(idx)
            gh = (g @ w2.T) * (h > 0)
            w2 -= LEARNING_RATE * (h.T @ g)
            b2 -= LEARNING_RATE * g.sum(0)
            w1 -= LEARNING_RATE * (xb.T @ gh)
            b1 -= LEARNING_RATE * gh.sum(0)
    return {"fc1.weight": w1.T, "fc1.bias": b1, "fc2.weight": w2.T, "fc2.bias": b2}


def predict(tensors: dict[str, np.ndarray], x: np.ndarray) -> np.ndarray:
    h = np.maximum(x @ tensors["fc1.weight"].T + tensors["fc1.bias"], 0.0)
    return (h @ tensors["fc2.weight"].T + tensors["fc2.bias"]).argmax(1)


def write_safetensors(path: str, tensors: dict[str, np.ndarray]) -> None:
    """Float32, C order, little-endian, names sorted, header padded with spaces to 8 bytes."""
    header: dict[str, object] = {}
    blobs = []
    offset = 0
    for name in sorted(tensors):
        data = np.ascontiguousarray(tensors[name], dtype="<f4").tobytes()
        header[name] = {
            "dtype": "F32",
            "shape": list(tensors[name].shape),
            "data_offsets": [offset, offset + len(data)],
        }
        blobs.append(data)
        offset += len(data)
    text = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as out:
        out.write(struct.pack("<Q", len(text)))
        out.write(text)
        for blob in blobs:
            out.write(blob)


def read_safetensors(path: str) -> dict[str, np.ndarray]:
    with open(path, "rb") as handle:
        raw = handle.read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + n])
    header.pop("__metadata__", None)
    out = {}
    for name, info in header.items():
        begin, end = info["data_offsets"]
        assert info["dtype"] == "F32", f"{name}: expected F32, got {info['dtype']}"
        chunk = raw[8 + n + begin : 8 + n + end]
        out[name] = np.frombuffer(chunk, dtype="<f4").reshape(info["shape"]).astype(np.float64)
    return out


def main(argv: list[str]) -> int:
    if len(argv) != 4 or argv[1] not in ("train", "evaluate"):
        print(__doc__, file=sys.stderr)
        return 2
    x, y = load(argv[2])
    if argv[1] == "train":
        tensors = train(x[:TRAIN_ROWS], y[:TRAIN_ROWS])
        write_safetensors(argv[3], tensors)
        tensors = read_safetensors(argv[3])  # score what was written, not what is in memory
    else:
        tensors = read_safetensors(argv[3])
    accuracy = float((predict(tensors, x[TRAIN_ROWS:]) == y[TRAIN_ROWS:]).mean())
    print(json.dumps({"test_accuracy": round(accuracy, 6)}, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
