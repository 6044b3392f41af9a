"""The alphabet: characters <-> CTC labels, with blank = 0 and characters from 1."""

from __future__ import annotations

import collections
from collections.abc import Iterable

BLANK = 0


class UnknownCharacterError(ValueError):
    """A text holds characters the alphabet does not know."""


class Alphabet:
    """Owns the label space of a model. `len(alphabet)` counts characters (blank excluded)."""

    def __init__(self, chars: Iterable[str]):
        self.chars = list(chars)
        if len(set(self.chars)) != len(self.chars) or any(len(c) != 1 for c in self.chars):
            raise ValueError("alphabet characters must be distinct single characters")
        self.index = {c: i + 1 for i, c in enumerate(self.chars)}

    @classmethod
    def from_texts(cls, texts: Iterable[str], min_count: int = 1) -> Alphabet:
        counts = collections.Counter()
        for t in texts:
            counts.update(t)
        return cls(sorted(c for c, n in counts.items() if n >= min_count))

    def __len__(self) -> int:
        return len(self.chars)

    @property
    def num_classes(self) -> int:
        """Output width of a model over this alphabet: characters + blank."""
        return len(self.chars) + 1

    def __eq__(self, other) -> bool:
        return isinstance(other, Alphabet) and self.chars == other.chars

    def unknown(self, text: str) -> collections.Counter:
        """Characters of `text` outside the alphabet, with counts."""
        return collections.Counter(c for c in text if c not in self.index)

    def encode(self, text: str) -> list[int]:
        """Labels (1..N) of `text`; raise `UnknownCharacterError` naming what is missing."""
        try:
            return [self.index[c] for c in text]
        except KeyError:
            missing = "".join(sorted(self.unknown(text)))
            raise UnknownCharacterError(f"characters not in the model's alphabet: {missing!r}") from None

    def decode(self, labels: Iterable[int]) -> str:
        """Text of labels (blank skipped; no CTC collapsing here, see decode.py)."""
        return "".join(self.chars[i - 1] for i in labels if i != BLANK)

    def to_list(self) -> list[str]:
        return list(self.chars)
