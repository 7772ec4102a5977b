"""Multinomial logistic regression (scikit-learn) predicting penguin species from 4 measurements.

Data: palmerpenguins' penguins.csv (344 birds, 3 species). Rows with NA in any of the four
measurements are dropped (2 rows), leaving 342. Fixed split by row index among those 342: every
fifth row (index % 5 == 4) is held out for evaluation (68 rows), the other 274 are for training.
The file is sorted by species and island, so this split keeps each class in proportion, which a
"last N rows" split would not.

Features are standardised with the training rows' mean and population standard deviation, and
the model is scikit-learn's LogisticRegression (lbfgs, multinomial, C=1) fitted to a very tight
tolerance. The problem is convex with a unique optimum, and the tight tolerance lands every run
on it to ~1e-10; the float64 results are then rounded to float32 for export, so differences in
BLAS kernels or thread counts (~1e-15) do not reach the published bytes.

The file holds coef (3×4), intercept (3), and the standardisation x_mean and x_scale (4 each),
all float32, so the evaluation needs only this file and the CSV. It is written with
safetensors.numpy.save_file and exactly one metadata key, "weightpkg", whose value is JSON with
sorted keys: safetensors 0.8.0 writes two or more metadata keys in a per-process random order
(upstream issue #584), which would make the bytes differ from run to run.

    python train.py train penguins.csv OUT.safetensors
    python train.py evaluate penguins.csv WEIGHTS.safetensors   # prints {"test_accuracy": …}

Thread count: OMP_NUM_THREADS (default 1) caps the BLAS thread pools through threadpoolctl.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import sys

import numpy as np

FEATURES = ("bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g")
CLASSES = ("Adelie", "Chinstrap", "Gentoo")
SPLIT = "rows without NA in the 4 features, in file order; index % 5 == 4 is test, the rest train"
C = 1.0
TOL = 1e-12
MAX_ITER = 10000


def load(path: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return features (float64), class indices and a test mask for the rows without NA."""
    xs, ys = [], []
    with open(path, newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            if any(row[name] == "NA" for name in FEATURES):
                continue
            xs.append([float(row[name]) for name in FEATURES])
            ys.append(CLASSES.index(row["species"]))
    x = np.array(xs, dtype=np.float64)
    y = np.array(ys, dtype=np.int64)
    test = np.arange(len(y)) % 5 == 4
    return x, y, test


def sha256_of(path: str) -> str:
    with open(path, "rb") as handle:
        return hashlib.sha256(handle.read()).hexdigest()


def train(x: np.ndarray, y: np.ndarray) -> dict[str, np.ndarray]:
    from sklearn.linear_model import LogisticRegression

    mean = x.mean(axis=0)
    scale = x.std(axis=0)
    model = LogisticRegression(C=C, tol=TOL, max_iter=MAX_ITER)
    model.fit((x - mean) / scale, y)
    assert list(model.classes_) == list(range(len(CLASSES))), model.classes_
    # scikit-learn 1.9's coef_ is Fortran-ordered, and safetensors 0.8.0's numpy save_file writes
    # a non-C-contiguous array's memory in Fortran order under a C-order shape, so the file
    # silently loads back scrambled (upstream issue #825). Make every array C-contiguous first.
    return {
        "coef": np.ascontiguousarray(model.coef_, dtype=np.float32),
        "intercept": np.ascontiguousarray(model.intercept_, dtype=np.float32),
        "x_mean": np.ascontiguousarray(mean, dtype=np.float32),
        "x_scale": np.ascontiguousarray(scale, dtype=np.float32),
    }


def predict(tensors: dict[str, np.ndarray], x: np.ndarray) -> np.ndarray:
    t = {name: value.astype(np.float64) for name, value in tensors.items()}
    z = ((x - t["x_mean"]) / t["x_scale"]) @ t["coef"].T + t["intercept"]
    return z.argmax(axis=1)


def main(argv: list[str]) -> int:
    if len(argv) != 4 or argv[1] not in ("train", "evaluate"):
        print(__doc__, file=sys.stderr)
        return 2
    from safetensors import safe_open
    from safetensors.numpy import load_file, save_file
    from threadpoolctl import threadpool_limits

    command, csv_path, weights_path = argv[1:]
    x, y, test = load(csv_path)
    with threadpool_limits(limits=int(os.environ.get("OMP_NUM_THREADS", "1"))):
        if command == "train":
            tensors = train(x[~test], y[~test])
            metadata = {
                "classes": list(CLASSES),
                "data_sha256": sha256_of(csv_path),
                "features": list(FEATURES),
                "model": "multinomial logistic regression on standardised features",
                "split": SPLIT,
            }
            save_file(tensors, weights_path,
                      metadata={"weightpkg": json.dumps(metadata, sort_keys=True, separators=(",", ":"))})
        # Score what is in the file, not what is in memory (this also catches a scrambled save).
        tensors = load_file(weights_path)
        with safe_open(weights_path, "np") as handle:
            classes = json.loads(handle.metadata()["weightpkg"])["classes"]
        assert tuple(classes) == CLASSES, classes
        accuracy = float((predict(tensors, x[test]) == y[test]).mean())
    print(json.dumps({"test_accuracy": round(accuracy, 6)}, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
