"""A 64-64-10 ReLU MLP on the UCI optical digits shipped in scikit-learn, in numpy only.

Deterministic by construction: a fixed split (first 1500 rows train, last 297 test), a seeded
PCG64 generator for initialisation and shuffling, float64 arithmetic throughout, and float32
export written by a small safetensors writer with sorted header keys and no timestamps; float64
training keeps BLAS and SIMD differences (~1e-15) far below float32 rounding, so the exported
file is bit-identical across thread counts and CPU code paths.

    python train.py train DIGITS_CSV OUT.safetensors
    python train.py evaluate DIGITS_CSV WEIGHTS.safetensors [--corrupt NAME [--severity 1-5]]

Both print {"per_class_accuracy": {"0": …, …, "9": …}, "test_accuracy": …} for the 297 test rows.
DIGITS_CSV is scikit-learn's digits.csv.gz or the same 65 columns as plain text (gzip is told
by its magic bytes, not by the name).

The seed is read from WEIGHTPKG_SEED (default 20240601, the seed of the published weights).

--corrupt evaluates on a deterministic corruption of the test rows, in the manner of
ImageNet-C; its random draws come from a generator of their own (CORRUPTION_SEED), so every
model is scored on the same corrupted images whatever seed it was trained with:
  gaussian-noise  add N(0, sigma²) to each pixel (0–1 scale), clip to [0, 1]
  blur            3×3 box blur of each 8×8 image, edges replicated (severity = passes)
  contrast        pull each pixel toward its image's mean: mean + (x − mean) × factor
  dead-pixels     set a random fraction of each image's pixels to 0
"""

from __future__ import annotations

import gzip
import io
import json
import os
import struct
import sys

import numpy as np

SEED = 20240601
HIDDEN = 64
LEARNING_RATE = 0.1
EPOCHS = 60
BATCH = 50
TRAIN_ROWS = 1500
CORRUPTION_SEED = 0x5EED_C0DE
#: Severity 1…5 → the corruption's strength (noise and contrast as ImageNet-C's constants).
NOISE_SIGMA = (0.08, 0.12, 0.18, 0.26, 0.38)
BLUR_PASSES = (1, 2, 3, 4, 5)
CONTRAST_FACTOR = (0.4, 0.3, 0.2, 0.1, 0.05)
DEAD_FRACTION = (0.05, 0.1, 0.2, 0.3, 0.4)


def training_seed() -> int:
    text = os.environ.get("WEIGHTPKG_SEED", str(SEED))
    try:
        seed = int(text)
    except ValueError:
        raise SystemExit(f"WEIGHTPKG_SEED={text!r}: expected a non-negative integer") from None
    if seed < 0:
        raise SystemExit(f"WEIGHTPKG_SEED={text!r}: expected a non-negative integer")
    return seed


def load(path: str) -> tuple[np.ndarray, np.ndarray]:
    with open(path, "rb") as raw:
        data = raw.read()
    text = gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data
    table = np.loadtxt(io.StringIO(text.decode("ascii")), delimiter=",", dtype=np.float64, ndmin=2)
    if table.shape[1] != 65:
        raise SystemExit(
            f"{path}: expected 65 columns (64 pixel counts 0–16, then the label), got {table.shape[1]}"
        )
    return table[:, :64] / 16.0, table[:, 64].astype(np.int64)


def train(x: np.ndarray, y: np.ndarray, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.Generator(np.random.PCG64(seed))
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


def corrupt(x: np.ndarray, name: str, severity: int) -> np.ndarray:
    """A deterministic corruption of the rows ``x`` (pixels on the 0–1 scale)."""
    rng = np.random.Generator(np.random.PCG64(CORRUPTION_SEED))
    level = severity - 1
    if name == "gaussian-noise":
        return np.clip(x + rng.standard_normal(x.shape) * NOISE_SIGMA[level], 0.0, 1.0)
    if name == "blur":
        images = x.reshape(-1, 8, 8)
        for _ in range(BLUR_PASSES[level]):
            padded = np.pad(images, ((0, 0), (1, 1), (1, 1)), mode="edge")
            images = sum(padded[:, i : i + 8, j : j + 8] for i in range(3) for j in range(3)) / 9.0
        return images.reshape(-1, 64)
    if name == "contrast":
        mean = x.mean(axis=1, keepdims=True)
        return mean + (x - mean) * CONTRAST_FACTOR[level]
    if name == "dead-pixels":
        return np.where(rng.random(x.shape) < DEAD_FRACTION[level], 0.0, x)
    raise SystemExit(f"--corrupt {name!r}: expected one of {', '.join(CORRUPTIONS)}")


CORRUPTIONS = ("gaussian-noise", "blur", "contrast", "dead-pixels")


def predict(tensors: dict[str, np.ndarray], x: np.ndarray) -> np.ndarray:
    h = np.maximum(x @ tensors["fc1.weight"].T + tensors["fc1.bias"], 0.0)
    return (h @ tensors["fc2.weight"].T + tensors["fc2.bias"]).argmax(1)


def scores(tensors: dict[str, np.ndarray], x: np.ndarray, y: np.ndarray) -> dict[str, object]:
    right = predict(tensors, x) == y
    per_class = {str(c): round(float(right[y == c].mean()), 6) for c in range(10) if (y == c).any()}
    return {"per_class_accuracy": per_class, "test_accuracy": round(float(right.mean()), 6)}


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


def usage() -> int:
    print(__doc__, file=sys.stderr)
    return 2


def main(argv: list[str]) -> int:
    if len(argv) < 4 or argv[1] not in ("train", "evaluate"):
        return usage()
    options = argv[4:]
    corruption, severity = None, 3
    while options:
        if argv[1] != "evaluate" or len(options) < 2:
            return usage()
        if options[0] == "--corrupt":
            corruption = options[1]
        elif options[0] == "--severity" and options[1] in ("1", "2", "3", "4", "5"):
            severity = int(options[1])
        else:
            return usage()
        options = options[2:]
    if corruption is not None and corruption not in CORRUPTIONS:
        raise SystemExit(f"--corrupt {corruption!r}: expected one of {', '.join(CORRUPTIONS)}")
    x, y = load(argv[2])
    if argv[1] == "train":
        tensors = train(x[:TRAIN_ROWS], y[:TRAIN_ROWS], training_seed())
        write_safetensors(argv[3], tensors)
        tensors = read_safetensors(argv[3])  # score what was written, not what is in memory
    else:
        tensors = read_safetensors(argv[3])
    x_test, y_test = x[TRAIN_ROWS:], y[TRAIN_ROWS:]
    if corruption is not None:
        x_test = corrupt(x_test, corruption, severity)
    print(json.dumps(scores(tensors, x_test, y_test), sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
