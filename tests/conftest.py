"""Shared fixtures: synthetic handwriting made in code, never downloaded.

`synthetic_line(text)` writes each character as its own distinctive pen trajectory (a
seeded random walk of 2-3 smooth strokes) inside a known box, so tests know exactly which
strokes belong to which character and a small model can learn to read them.
"""

from __future__ import annotations

import os
import zlib
from pathlib import Path

import numpy as np
import pytest

from hwr.ink import Ink, Stroke
from hwr.store import Sample, StoreWriter

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
if os.environ.get("HWR_SHARED_DATA"):
    SHARED = Path(os.environ["HWR_SHARED_DATA"])

GLYPH_WIDTH = 60.0


@pytest.fixture(scope="session", autouse=True)
def _own_cache(tmp_path_factory):
    """ONNX graphs exported on first use go to a cache of the test session's own, not the user's."""
    os.environ.setdefault("HWR_CACHE_DIR", str(tmp_path_factory.mktemp("hwr-cache")))


@pytest.fixture(autouse=True)
def _torch_threads():
    """A training run sets torch's thread count for its process (`TrainConfig.threads`), and a
    recognizer made afterwards sizes its workers by it: each test leaves the count as it found it,
    so no test depends on which ran before it."""
    import torch
    n = torch.get_num_threads()
    yield
    torch.set_num_threads(n)


def glyph(ch: str) -> list[np.ndarray]:
    """A fixed, character-specific set of strokes in a 50 x 100 box (y down)."""
    rng = np.random.default_rng(zlib.crc32(ch.encode()))
    if ch == " ":
        return []
    strokes = []
    for _ in range(int(rng.integers(1, 3))):
        n = 12
        ctrl = rng.uniform([0, 0], [50, 100], size=(4, 2))
        u = np.linspace(0, 1, n)[:, None]
        # cubic Bezier through random control points: smooth, distinct per character
        pts = ((1 - u) ** 3 * ctrl[0] + 3 * (1 - u) ** 2 * u * ctrl[1] + 3 * (1 - u) * u ** 2 * ctrl[2]
               + u ** 3 * ctrl[3])
        strokes.append(pts)
    return strokes


def synthetic_line(text: str, t0: float = 0.0, jitter: float = 0.0, seed: int = 0,
                   with_time: bool = True) -> tuple[Ink, list[tuple[int, int]]]:
    """(ink, char_strokes): char_strokes[i] = (first, last+1) stroke index of character i."""
    rng = np.random.default_rng(seed)
    strokes, spans = [], []
    t = t0
    for i, ch in enumerate(text):
        first = len(strokes)
        for g in glyph(ch):
            pts = g + [i * GLYPH_WIDTH, 0.0] + rng.normal(0, jitter, g.shape)
            arr = np.full((len(pts), 4), np.nan)
            arr[:, :2] = pts
            if with_time:
                arr[:, 2] = t + 10.0 * np.arange(len(pts))
                t = arr[-1, 2] + 50.0
            strokes.append(Stroke(arr, "pen"))
        spans.append((first, len(strokes)))
    return Ink(strokes, text), spans


@pytest.fixture
def line():
    return synthetic_line("hello world")[0]


def write_store(path, texts, split="train", writer="w1") -> Path:
    with StoreWriter(path) as w:
        w.add(Sample(synthetic_line(t, seed=i)[0], id=f"s{i}", writer=writer, split=split)
              for i, t in enumerate(texts))
    return Path(path)


@pytest.fixture
def small_store(tmp_path):
    p = tmp_path / "small.h5"
    with StoreWriter(p) as w:
        w.add([Sample(synthetic_line(t, seed=i)[0], id=f"s{i}", writer=f"w{i % 2}", split=sp)
               for i, (t, sp) in enumerate([("abc", "train"), ("cab", "train"), ("ba", "val"), ("cc a", "test")])])
    return p


needs_shared = pytest.mark.skipif(not SHARED.is_dir(), reason="../shared/data is not present")


TINY_ALPHABET = "abcde "


def tiny_texts(n: int, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    texts = ["".join(rng.choice(list(TINY_ALPHABET), size=rng.integers(3, 9))) for _ in range(n)]
    return [" ".join(t.split()) or "a" for t in texts]  # no double spaces: a gap is a gap


def tiny_train_config(data, epochs: int, **over):
    from hwr.train import TrainConfig
    base = dict(data=[str(data)], epochs=epochs, batch_size=16, lr=5e-3, warmup_steps=20, threads=1, log_every=10,
                model={"hidden": 48, "layers": 2, "conv_channels": 32, "dropout": 0.0},
                augment={"enabled": False})
    base.update(over)
    return TrainConfig(**base)


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory) -> Path:
    """200 training + 40 validation synthetic lines over the alphabet 'abcde '."""
    p = tmp_path_factory.mktemp("tiny") / "tiny.h5"
    with StoreWriter(p) as w:
        w.add(Sample(synthetic_line(t, seed=i, jitter=1.0)[0], id=f"s{i}", writer=f"w{i % 3}",
                     split="train" if i < 200 else "val") for i, t in enumerate(tiny_texts(240)))
    return p


@pytest.fixture(scope="session")
def tiny_model(tiny_data, tmp_path_factory) -> Path:
    """A small recognizer trained to read the synthetic lines (about 30 s on 2 CPU cores)."""
    from hwr.train import train
    run = tmp_path_factory.mktemp("tinyrun") / "run"
    result = train(tiny_train_config(tiny_data, 60, lr_decay=0.98, patience=100), run, progress=False)
    assert result["best_val_cer"] < 0.05, result
    return run / "best.pt"
