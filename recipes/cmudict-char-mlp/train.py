"""A character-level MLP language model over English words (PyTorch, CPU), after Bengio et al. 2003
and Karpathy's makemore: from the previous 4 characters it predicts the next one.

Data: the head words of the CMU Pronouncing Dictionary (cmudict.dict); only the spelling is used,
not the pronunciations. Alternate pronunciations ("word(2)") are folded into their word, and words
that are not plain a-z (apostrophes, digits, dots, hyphens, accented letters) are dropped: 117,493
distinct words. The vocabulary is 27 symbols, "." (start padding and end of word) and a-z. Each
word gives one example per character plus one for its end.

Split: a word is held out for evaluation when the first byte of sha256(word) is below 26 (about
10%: 11,936 words, 100,568 next-character predictions). The split depends only on the word
itself, not on a random generator or on the rest of the list. The metric is the mean
cross-entropy of the next character on the held-out words, in nats (lower is better).

Model: embedding 27×16, then 64→256 tanh, then 256→27 (24,011 parameters).

Determinism:
- torch.manual_seed(SEED) fixes the initialisation; a separate torch.Generator seeded with SEED
  draws the shuffling order of every epoch.
- Training runs in float64 (Adam, lr 3e-3, batch 512, 2 epochs) and the weights are exported as
  float32. Thread count and CPU vector width change the float64 results only around 1e-15, far
  below float32 rounding, so the exported bytes do not depend on them (float32 training gave
  different bytes for AVX2 and AVX-512 kernels).
- torch.use_deterministic_algorithms(True) is set; harmless on CPU, an error instead of silent
  nondeterminism elsewhere.
- Saved with safetensors.torch.save_file and exactly one metadata key, "weightpkg", whose value is
  JSON with sorted keys: safetensors 0.8.0 writes two or more metadata keys in a per-process random
  order (upstream issue #584). The metadata holds the vocabulary and context length, which the
  evaluation reads back from the file.

    python train.py train cmudict.dict OUT.safetensors
    python train.py evaluate cmudict.dict WEIGHTS.safetensors    # prints {"test_loss_nats": …}

Thread count: OMP_NUM_THREADS (default 1), passed to torch.set_num_threads.
"""

from __future__ import annotations

import hashlib
import json
import os
import string
import sys

import torch
from torch import nn

SEED = 20240601
CONTEXT = 4
EMBED = 16
HIDDEN = 256
EPOCHS = 2
BATCH = 512
LEARNING_RATE = 3e-3
VOCAB = "." + string.ascii_lowercase


def read_words(path: str) -> list[str]:
    words = set()
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            head = line.split(" ", 1)[0].split("(", 1)[0]
            if head.isascii() and head.isalpha() and head.islower():
                words.add(head)
    return sorted(words)


def is_test(word: str) -> bool:
    return hashlib.sha256(word.encode("ascii")).digest()[0] < 26


def examples(words: list[str], vocab: str, context: int) -> tuple[torch.Tensor, torch.Tensor]:
    index = {ch: i for i, ch in enumerate(vocab)}
    xs, ys = [], []
    for word in words:
        window = [0] * context
        for ch in word + ".":
            xs.append(window)
            ys.append(index[ch])
            window = [*window[1:], index[ch]]
    return torch.tensor(xs, dtype=torch.int64), torch.tensor(ys, dtype=torch.int64)


class CharMLP(nn.Module):
    def __init__(self, vocab_size: int, context: int) -> None:
        super().__init__()
        self.emb = nn.Embedding(vocab_size, EMBED)
        self.fc1 = nn.Linear(EMBED * context, HIDDEN)
        self.fc2 = nn.Linear(HIDDEN, vocab_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(torch.tanh(self.fc1(self.emb(x).flatten(1))))


def train(x: torch.Tensor, y: torch.Tensor) -> CharMLP:
    torch.manual_seed(SEED)
    shuffle = torch.Generator().manual_seed(SEED)
    model = CharMLP(len(VOCAB), CONTEXT).to(torch.float64)
    optimiser = torch.optim.Adam(model.parameters(), lr=LEARNING_RATE)
    loss_fn = nn.CrossEntropyLoss()
    for _ in range(EPOCHS):
        order = torch.randperm(len(x), generator=shuffle)
        for start in range(0, len(x), BATCH):
            batch = order[start: start + BATCH]
            optimiser.zero_grad(set_to_none=True)
            loss_fn(model(x[batch]), y[batch]).backward()
            optimiser.step()
    return model


def test_loss(weights_path: str, words: list[str]) -> float:
    """Mean next-character cross-entropy (nats) of the file's float32 weights, computed in float64."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    with safe_open(weights_path, "pt") as handle:
        meta = json.loads(handle.metadata()["weightpkg"])
    vocab, context = meta["vocab"], meta["context"]
    model = CharMLP(len(vocab), context).to(torch.float64)
    model.load_state_dict({k: v.to(torch.float64) for k, v in load_file(weights_path).items()})
    x, y = examples([w for w in words if is_test(w)], vocab, context)
    with torch.no_grad():
        return float(nn.functional.cross_entropy(model(x), y))


def main(argv: list[str]) -> int:
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    torch.use_deterministic_algorithms(True)
    if len(argv) != 4 or argv[1] not in ("train", "evaluate"):
        print(__doc__, file=sys.stderr)
        return 2
    command, dict_path, weights_path = argv[1:]
    words = read_words(dict_path)
    if command == "train":
        from safetensors.torch import save_file

        model = train(*examples([w for w in words if not is_test(w)], VOCAB, CONTEXT))
        tensors = {k: v.detach().to(torch.float32).contiguous() for k, v in model.state_dict().items()}
        with open(dict_path, "rb") as handle:
            data_sha256 = hashlib.sha256(handle.read()).hexdigest()
        metadata = {
            "architecture": (
                f"emb {len(VOCAB)}x{EMBED}, fc1 {EMBED * CONTEXT}->{HIDDEN} tanh, fc2 {HIDDEN}->{len(VOCAB)}"
            ),
            "context": CONTEXT,
            "data_sha256": data_sha256,
            "split": "a word is test data when sha256(word)[0] < 26",
            "training": (
                f"float64 Adam lr={LEARNING_RATE} batch={BATCH} epochs={EPOCHS} seed={SEED}; float32 export"
            ),
            "vocab": VOCAB,
        }
        save_file(tensors, weights_path,
                  metadata={"weightpkg": json.dumps(metadata, sort_keys=True, separators=(",", ":"))})
    loss = test_loss(weights_path, words)  # what the file holds, not what is in memory
    print(json.dumps({"test_loss_nats": round(loss, 6)}, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
