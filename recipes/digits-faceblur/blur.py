"""Derive a face-blur-style variant of the UCI digits: blur one fixed region of every image.

ImageNet was re-released with the faces in its images blurred: the same photos, other bytes,
slightly different accuracy for every model trained on them. This does the same to the 8×8
digits so the story can be told for real: a fixed rectangle of each image (the "face") is
replaced by a 3×3 box blur of the original, in integer arithmetic, and the labels are kept.

    python blur.py DIGITS_CSV_GZ OUT.csv --rows 2:6 --cols 2:6 [--passes 1]

Deterministic by construction: standard library only, integer arithmetic (sum of the clipped
3×3 neighbourhood, divided by its size, rounded half up), and an uncompressed CSV with "\n" line
endings, so the output bytes depend on nothing but the input and the arguments.
"""

from __future__ import annotations

import argparse
import gzip
import sys

SIDE = 8


def read_rows(path: str) -> list[list[int]]:
    with open(path, "rb") as handle:
        magic = handle.read(2)
    opener = gzip.open if magic == b"\x1f\x8b" else open
    with opener(path, "rt", encoding="ascii") as handle:  # type: ignore[operator]
        return [[int(float(value)) for value in line.split(",")] for line in handle if line.strip()]


def span(text: str) -> range:
    start, _, stop = text.partition(":")
    first, last = int(start), int(stop)
    if not 0 <= first < last <= SIDE:
        raise SystemExit(f"blur.py: {text!r} is not a span START:STOP within 0:{SIDE}")
    return range(first, last)


def blur_region(pixels: list[int], rows: range, cols: range) -> list[int]:
    """One pass: each pixel of the region becomes the mean of its 3×3 neighbourhood (clipped)."""
    out = list(pixels)
    for r in rows:
        for c in cols:
            total = count = 0
            for dr in (-1, 0, 1):
                for dc in (-1, 0, 1):
                    rr, cc = r + dr, c + dc
                    if 0 <= rr < SIDE and 0 <= cc < SIDE:
                        total += pixels[rr * SIDE + cc]
                        count += 1
            out[r * SIDE + c] = (2 * total + count) // (2 * count)
    return out


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source")
    parser.add_argument("output")
    parser.add_argument("--rows", type=span, required=True, help="START:STOP of the rows to blur")
    parser.add_argument("--cols", type=span, required=True, help="START:STOP of the columns to blur")
    parser.add_argument("--passes", type=int, default=1, help="how many times to blur the region")
    args = parser.parse_args(argv[1:])
    rows = read_rows(args.source)
    changed = 0
    with open(args.output, "w", encoding="ascii", newline="\n") as out:
        for row in rows:
            pixels, label = row[: SIDE * SIDE], row[SIDE * SIDE]
            blurred = pixels
            for _ in range(args.passes):
                blurred = blur_region(blurred, args.rows, args.cols)
            changed += sum(1 for a, b in zip(pixels, blurred, strict=True) if a != b)
            out.write(",".join(str(v) for v in (*blurred, label)) + "\n")
    print(f"{len(rows)} images, {changed} pixel values changed", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
