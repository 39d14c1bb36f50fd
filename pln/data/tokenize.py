"""Sentence tokenisation (SPEC section 2).

A sentence is lower-cased and split into words. With ``strip_punctuation`` (the default,
``data.strip_punctuation``) every character that is not a letter or a digit separates words, so
``"shelf."`` becomes ``"shelf"`` and ``"person's"`` becomes ``"person", "s"`` (both GloVe words).
Without it the sentence is split on white space only, which is what 2D-TAN does; tokens such as
``"shelf."`` are then unknown to GloVe and get a zero vector.
"""

from __future__ import annotations

import re

_WORD = re.compile(r"[^\W_]+", re.UNICODE)


def tokenize(sentence: str, strip_punctuation: bool = True) -> list[str]:
    """``"A person opens the door."`` -> ``["a", "person", "opens", "the", "door"]``."""
    text = sentence.lower()
    if strip_punctuation:
        return _WORD.findall(text)
    return text.split()
