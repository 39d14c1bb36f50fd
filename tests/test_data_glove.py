"""Tokenisation and word vectors (GloVe text format with its binary cache; the built-in table)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pln.data import glove
from pln.data.glove import WordVectors, binary_cache_path
from pln.data.tokenize import tokenize
from pln.errors import DataError


def test_tokenize() -> None:
    assert tokenize("A person opens the Door.", True) == ["a", "person", "opens", "the", "door"]
    assert tokenize("A person's door, then.", False) == ["a", "person's", "door,", "then."]
    assert tokenize("  ", True) == []


def test_load_text_and_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "tiny.txt"
    path.write_text("the 1 0 0\nperson 0 1 0\nopens 0 0 1.5\n")
    wv = WordVectors.load_text(path)
    assert wv.dim == 3 and len(wv) == 3
    np.testing.assert_array_equal(wv.encode("The person xyzzy opens."),
                                  [[1, 0, 0], [0, 1, 0], [0, 0, 0], [0, 0, 1.5]])
    assert binary_cache_path(path).is_file()

    def fail(*args: object) -> None:
        raise AssertionError("the text file was parsed again")

    monkeypatch.setattr(glove, "parse_glove_text", fail)
    again = WordVectors.load_text(path)
    assert again.words == ["the", "person", "opens"]
    np.testing.assert_array_equal(again.vectors, wv.vectors)


def test_bad_word_vectors(tmp_path: Path) -> None:
    bad = tmp_path / "bad.txt"
    bad.write_text("the 1 0 0\nperson 0 x 0\n")
    with pytest.raises(DataError, match=r"bad.txt:2"):
        WordVectors.load_text(bad)
    short = tmp_path / "short.txt"
    short.write_text("the 1 0 0\nperson 0 1\n")
    with pytest.raises(DataError, match=r"short.txt:2"):
        WordVectors.load_text(short)
    with pytest.raises(DataError, match="nlp.stanford.edu"):
        WordVectors.load_text(tmp_path / "glove.6B.300d.txt")


def test_encode_refuses_empty_and_unknown(tmp_path: Path) -> None:
    wv = WordVectors(["the"], np.ones((1, 2), np.float32), "tiny")
    with pytest.raises(DataError, match="no words"):
        wv.encode(" ... ")
    with pytest.raises(DataError, match="vocabulary"):
        wv.encode("xyzzy plugh")


def test_builtin_glove() -> None:
    wv = WordVectors.load_builtin()
    assert wv.dim == 50 and len(wv) == 400000 and wv.index["the"] == 0
    vecs = wv.encode("A person cuts the carrot.")
    assert vecs.shape == (5, 50) and (np.abs(vecs).sum(axis=1) > 0).all()
    # GloVe knows that carrots are closer to onions than to doors
    c, o, d = (wv.vectors[wv.index[w]] for w in ("carrot", "onion", "door"))
    assert c @ o / np.linalg.norm(o) > c @ d / np.linalg.norm(d)
