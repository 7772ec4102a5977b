"""A 784-256-10 ReLU MLP on Fashion-MNIST (PyTorch, CPU), trained so a rebuild gives the same bytes.

Data: the four IDX files of Fashion-MNIST as Debian's dataset-fashion-mnist package ships them
(gzip-compressed): the standard 60,000 training and 10,000 test images. Pixels are scaled to
[0, 1]; there is no augmentation and no validation split. Evaluation is accuracy on the 10,000
test images.

Determinism:
- torch.manual_seed(seed) fixes the initialisation; a separate torch.Generator seeded with the
  same seed draws the shuffling order of every epoch, so nothing else that consumes random
  numbers can shift it.
- Training runs in float64 (Adam, lr 1e-3, batch 128, 6 epochs) and the weights are exported as
  float32. Thread count and CPU vector width change the float64 results only around 1e-15,
  far below float32 rounding, so the exported bytes do not depend on them (float32 training,
  by contrast, gave different bytes for 1 and 2 threads and for AVX2 and AVX-512 kernels).
- torch.use_deterministic_algorithms(True) is set; it has no visible effect on CPU here, but
  turns a silently nondeterministic kernel into an error.
- Saved with safetensors.torch.save_file and exactly one metadata key, "weightpkg", whose value
  is JSON with sorted keys: safetensors 0.8.0 writes two or more metadata keys in a per-process
  random order (upstream issue #584).

    python train.py train TRAIN_IMAGES TRAIN_LABELS T10K_IMAGES T10K_LABELS OUT.safetensors
    python train.py evaluate T10K_IMAGES T10K_LABELS WEIGHTS.safetensors [--corrupt NAME [--severity 1-5]]

Both print {"per_class_accuracy": {"Ankle boot": …, …}, "test_accuracy": …} for the 10,000
test images (per-class accuracy keyed by class name).

Seed: WEIGHTPKG_SEED (default 20240601, the seed of the published weights) seeds both the
initialisation and the shuffling generator.

--corrupt evaluates on a deterministic corruption of the test images, in the manner of
ImageNet-C (Hendrycks & Dietterich 2019; the noise uses its severity constants). The random
draws come from a numpy generator of their own (CORRUPTION_SEED), so every model is scored on
the same corrupted images whatever seed it was trained with:
  gaussian-noise  add N(0, sigma²) to each pixel (0–1 scale), clip to [0, 1]
  blur            3×3 box blur of each 28×28 image, edges replicated (severity = passes)
  contrast        pull each pixel toward its image's mean: mean + (x − mean) × factor; milder
                  than ImageNet-C's (0.4 … 0.05), whose mildest level already leaves this MLP on
                  raw pixels at 0.26–0.41 accuracy

Thread count: OMP_NUM_THREADS (default 1), passed to torch.set_num_threads.
Device: WEIGHTPKG_DEVICE, "cpu" (default) or "cuda". The model is initialised on the CPU with the
CPU generator and the shuffling order is drawn there too, so a CUDA run trains from the same start
in the same order; TF32 is switched off and deterministic kernels are required. On the CPU the
device plumbing changes nothing. Evaluation always runs on the CPU.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import sys

import numpy as np
import torch
from torch import nn

SEED = 20240601
HIDDEN = 256
EPOCHS = 6
BATCH = 128
LEARNING_RATE = 1e-3
CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
           "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
CORRUPTION_SEED = 0x5EED_C0DE
#: Severity 1…5 → strength; the noise is ImageNet-C's constants.
NOISE_SIGMA = (0.08, 0.12, 0.18, 0.26, 0.38)
BLUR_PASSES = (1, 2, 3, 4, 5)
CONTRAST_FACTOR = (0.8, 0.7, 0.6, 0.5, 0.4)
CORRUPTIONS = ("gaussian-noise", "blur", "contrast")


def training_seed() -> int:
    text = os.environ.get("WEIGHTPKG_SEED", str(SEED))
    try:
        seed = int(text)
    except ValueError:
        raise SystemExit(f"WEIGHTPKG_SEED={text!r}: expected a non-negative integer") from None
    if seed < 0:
        raise SystemExit(f"WEIGHTPKG_SEED={text!r}: expected a non-negative integer")
    return seed


def read_idx(path: str, magic: int) -> np.ndarray:
    """Read a gzip-compressed IDX file (big-endian header: magic, then one uint32 per dimension)."""
    with gzip.open(path, "rb") as handle:
        raw = handle.read()
    found = int.from_bytes(raw[:4], "big")
    if found != magic:
        raise SystemExit(f"{path}: IDX magic {found:#x}, expected {magic:#x}")
    ndim = raw[3]
    shape = [int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


def load(
    images_path: str, labels_path: str, corruption: str | None = None, severity: int = 3
) -> tuple[torch.Tensor, torch.Tensor]:
    images = read_idx(images_path, 0x803)
    labels = read_idx(labels_path, 0x801)
    assert images.shape[0] == labels.shape[0] and images.shape[1:] == (28, 28), images.shape
    pixels = images.astype(np.float64) / 255.0
    if corruption is not None:
        pixels = corrupt(pixels, corruption, severity)
    x = torch.from_numpy(np.ascontiguousarray(pixels.reshape(len(images), 784)))
    return x, torch.from_numpy(labels.astype(np.int64))


def corrupt(images: np.ndarray, name: str, severity: int) -> np.ndarray:
    """A deterministic corruption of N×28×28 images (pixels on the 0–1 scale)."""
    rng = np.random.Generator(np.random.PCG64(CORRUPTION_SEED))
    level = severity - 1
    if name == "gaussian-noise":
        return np.clip(images + rng.standard_normal(images.shape) * NOISE_SIGMA[level], 0.0, 1.0)
    if name == "blur":
        for _ in range(BLUR_PASSES[level]):
            padded = np.pad(images, ((0, 0), (1, 1), (1, 1)), mode="edge")
            images = sum(padded[:, i: i + 28, j: j + 28] for i in range(3) for j in range(3)) / 9.0
        return images
    if name == "contrast":
        mean = images.mean(axis=(1, 2), keepdims=True)
        return mean + (images - mean) * CONTRAST_FACTOR[level]
    raise SystemExit(f"--corrupt {name!r}: expected one of {', '.join(CORRUPTIONS)}")


class MLP(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(784, HIDDEN)
        self.fc2 = nn.Linear(HIDDEN, len(CLASSES))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(torch.relu(self.fc1(x)))


def training_device() -> torch.device:
    """Where WEIGHTPKG_DEVICE says to train; a CUDA build on a machine without CUDA stops here."""
    name = os.environ.get("WEIGHTPKG_DEVICE", "cpu")
    if name not in ("cpu", "cuda"):
        raise SystemExit(f"WEIGHTPKG_DEVICE={name!r}: expected cpu or cuda")
    if name == "cuda":
        if not torch.cuda.is_available():
            raise SystemExit(f"WEIGHTPKG_DEVICE=cuda, but this torch {torch.__version__} sees no CUDA device")
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
        torch.backends.cudnn.benchmark = False
    return torch.device(name)


def train(x: torch.Tensor, y: torch.Tensor, device: torch.device, seed: int) -> MLP:
    torch.manual_seed(seed)
    shuffle = torch.Generator().manual_seed(seed)
    model = MLP().to(torch.float64).to(device)  # initialised on the CPU, then moved
    x, y = x.to(device), y.to(device)
    optimiser = torch.optim.Adam(model.parameters(), lr=LEARNING_RATE)
    loss_fn = nn.CrossEntropyLoss()
    for _ in range(EPOCHS):
        order = torch.randperm(len(x), generator=shuffle).to(device)
        for start in range(0, len(x), BATCH):
            batch = order[start: start + BATCH]
            optimiser.zero_grad(set_to_none=True)
            loss_fn(model(x[batch]), y[batch]).backward()
            optimiser.step()
    return model


def scores(weights_path: str, x: torch.Tensor, y: torch.Tensor) -> dict[str, object]:
    """Test accuracy, overall and per class, of the file's float32 weights, computed in float64."""
    from safetensors.torch import load_file

    model = MLP().to(torch.float64)
    model.load_state_dict({k: v.to(torch.float64) for k, v in load_file(weights_path).items()})
    with torch.no_grad():
        right = model(x).argmax(1) == y
    per_class = {
        name: round(float(right[y == c].double().mean()), 6)
        for c, name in enumerate(CLASSES)
        if bool((y == c).any())
    }
    return {"per_class_accuracy": per_class, "test_accuracy": round(float(right.double().mean()), 6)}


def sha256_of(path: str) -> str:
    with open(path, "rb") as handle:
        return hashlib.sha256(handle.read()).hexdigest()


def main(argv: list[str]) -> int:
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    torch.use_deterministic_algorithms(True)
    corruption, severity = None, 3
    if len(argv) > 5 and argv[1] == "evaluate":
        options, argv = argv[5:], argv[:5]
        while options:
            if len(options) >= 2 and options[0] == "--corrupt":
                corruption = options[1]
            elif len(options) >= 2 and options[0] == "--severity" and options[1] in ("1", "2", "3", "4", "5"):
                severity = int(options[1])
            else:
                print(__doc__, file=sys.stderr)
                return 2
            options = options[2:]
        if corruption is not None and corruption not in CORRUPTIONS:
            raise SystemExit(f"--corrupt {corruption!r}: expected one of {', '.join(CORRUPTIONS)}")
    if len(argv) == 7 and argv[1] == "train":
        from safetensors.torch import save_file

        train_images, train_labels, test_images, test_labels, out = argv[2:]
        device = training_device()  # before the data is read: a CUDA build without CUDA stops at once
        seed = training_seed()
        model = train(*load(train_images, train_labels), device, seed)
        tensors = {k: v.detach().cpu().to(torch.float32).contiguous() for k, v in model.state_dict().items()}
        metadata = {
            "architecture": "fc1 784->256, ReLU, fc2 256->10; input = pixels / 255, row-major 28x28",
            "classes": list(CLASSES),
            "data_sha256": {os.path.basename(p): sha256_of(p) for p in argv[2:6]},
            "training": (
                f"float64 Adam lr={LEARNING_RATE} batch={BATCH} epochs={EPOCHS} seed={seed}; float32 export"
            ),
        }
        text = json.dumps(metadata, sort_keys=True, separators=(",", ":"))
        save_file(tensors, out, metadata={"weightpkg": text})
        weights = out
    elif len(argv) == 5 and argv[1] == "evaluate":
        test_images, test_labels, weights = argv[2:]
    else:
        print(__doc__, file=sys.stderr)
        return 2
    result = scores(weights, *load(test_images, test_labels, corruption, severity))  # the file, not memory
    print(json.dumps(result, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
