"""Training data: samples from stores, length-bucketed batches, padding, CTC feasibility.

Batches are drawn deterministically from (seed, epoch) and each sample's augmentation from
(seed, epoch, sample), so a resumed run sees exactly the batches and distortions that an
uninterrupted run would have seen.
"""

from __future__ import annotations

import collections
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from .errors import ConfigError
from .alphabet import Alphabet
from .features import AugmentConfig, FeatureConfig, ink_features
from .ink import Ink
from .store import Store


@dataclass
class Item:
    id: str
    ink: Ink
    text: str
    labels: list[int] | None  # None: the text has characters outside the alphabet (validation only)
    writer: str = ""
    length: int = 0  # resampled points without augmentation (for bucketing)
    source: int = 0  # which --data file it came from


def load_split(paths: Sequence[str], split: str | None) -> list[tuple[str, Ink, str, str, str]]:
    """(id, ink, text, writer, split) for every sample of `split` (None: all) in the given stores."""
    out = []
    for p in paths:
        with Store(p) as s:
            for i in s.indices(split):
                out.append((s.meta["id"][i], s.ink(int(i)), s.meta["text"][i], s.meta["writer"][i],
                            s.meta["split"][i]))
    return out


def splits_in(path: str) -> dict[str, int]:
    with Store(path) as s:
        return s.splits()


def resolve_split(paths: Sequence[str], wanted: str | None, fallbacks: Sequence[str]) -> str | None:
    """The split name to use: `wanted`, else the first fallback present in the stores."""
    present: collections.Counter = collections.Counter()
    for p in paths:
        with Store(p) as s:
            present.update(s.splits())
    if wanted:
        if wanted not in present:
            raise ConfigError(f"split {wanted!r} not found; the data has: {', '.join(sorted(present)) or 'none'}")
        return wanted
    for f in fallbacks:
        if f in present:
            return f
    return None


def make_items(rows, alphabet: Alphabet, fcfg: FeatureConfig, report: collections.Counter,
               sources: Sequence[int] | None = None, keep_unknown: bool = False) -> list[Item]:
    """Items whose text the alphabet can encode; unknown characters are counted in `report`.

    `keep_unknown` keeps the lines with unknown characters too, with `labels` None: validation
    scores them as `hwr evaluate` does (the model cannot write those characters), the loss cannot."""
    items = []
    for k, (id_, ink, text, writer, _split) in enumerate(rows):
        unknown = alphabet.unknown(text)
        if unknown:
            report.update(unknown)
            if not keep_unknown:
                continue
        if not text:
            report["<empty label>"] += 1
            continue
        n = len(ink_features(ink, fcfg).values)
        labels = None if unknown else alphabet.encode(text)
        items.append(Item(id_, ink, text, labels, writer, n, sources[k] if sources else 0))
    return items


def ctc_min_frames(labels: Sequence[int]) -> int:
    """Frames CTC needs for a label: one per symbol plus a blank between repeated symbols."""
    return len(labels) + sum(1 for a, b in zip(labels, labels[1:]) if a == b)


def make_batches(lengths: np.ndarray, batch_size: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Indices grouped by similar length (little padding), batches in random order."""
    noisy = lengths * rng.uniform(0.9, 1.1, len(lengths))
    order = np.argsort(noisy, kind="stable")
    batches = [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
    return [batches[i] for i in rng.permutation(len(batches))]


def collate(feats: list[np.ndarray], labels: list[list[int]] | None = None):
    """Pad to (B, T, F); returns x, lengths, and (targets, target_lengths) when labels are given."""
    lengths = torch.tensor([len(f) for f in feats], dtype=torch.long)
    x = torch.zeros(len(feats), int(lengths.max()), feats[0].shape[1])
    for i, f in enumerate(feats):
        x[i, :len(f)] = torch.from_numpy(f)
    if labels is None:
        return x, lengths
    targets = torch.tensor([c for lab in labels for c in lab], dtype=torch.long)
    target_lengths = torch.tensor([len(lab) for lab in labels], dtype=torch.long)
    return x, lengths, targets, target_lengths


def batch_features(items: Sequence[Item], fcfg: FeatureConfig, augment: AugmentConfig | None,
                   seed: int, epoch: int, index: Sequence[int]) -> list[np.ndarray]:
    out = []
    for item, i in zip(items, index):
        rng = np.random.default_rng([seed, epoch, int(i)]) if augment is not None else None
        out.append(ink_features(item.ink, fcfg, augment, rng).values)
    return out
