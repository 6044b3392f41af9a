"""Property-based tests of the HDF5 store (Hypothesis): whatever valid ink goes in comes out, and
appends keep what was there. Budget: 30 + 12 examples (each writes an HDF5 file), under a minute."""

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hwr.ink import POINTER_TYPES, Ink, Stroke
from hwr.store import Sample, Store, StoreWriter, append_samples

# coordinates the store's float32 holds exactly, within the range Ink.validate accepts
coord = st.integers(-2**20, 2**20).map(float)
# no lone surrogates (not UTF-8) and no NUL (HDF5 strings cannot hold it: refused, see below)
label = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=40)


@st.composite
def strokes(draw):
    n = draw(st.integers(1, 30))
    xy = np.array([[draw(coord), draw(coord)] for _ in range(n)])
    pts = np.full((n, 4), np.nan)
    pts[:, :2] = xy
    if draw(st.booleans()):  # time in ms, never backwards; exact in float32 relative to the ink's start
        pts[:, 2] = np.cumsum([draw(st.integers(0, 10_000)) for _ in range(n)]).astype(float)
    if draw(st.booleans()):
        pts[:, 3] = [draw(st.integers(0, 1024)) / 1024 for _ in range(n)]
    return pts


@st.composite
def samples(draw):
    raw = draw(st.lists(strokes(), min_size=1, max_size=6))
    timed = all(not np.isnan(p[:, 2]).any() for p in raw)
    if timed:  # strokes follow each other in time
        offset = 0.0
        for p in raw:
            p[:, 2] += offset - p[0, 2]
            offset = p[-1, 2] + draw(st.integers(0, 1000))
    else:
        for p in raw:
            p[:, 2] = np.nan
    types = [draw(st.sampled_from(POINTER_TYPES)) for _ in raw]
    ink = Ink([Stroke(p, t) for p, t in zip(raw, types)], draw(st.none() | label))
    return Sample(ink, id=draw(label), writer=draw(label), split=draw(st.sampled_from(["", "train", "val"])),
                  source=draw(label))


def same(a: Sample, b: Sample) -> bool:
    pa, pb = a.ink.points(), b.ink.points()
    return (np.array_equal(pa, pb, equal_nan=True) and list(a.ink.stroke_lengths()) == list(b.ink.stroke_lengths())
            and [s.pointer_type for s in a.ink.strokes] == [s.pointer_type for s in b.ink.strokes]
            and a.text == b.text and (a.id, a.writer, a.split, a.source) == (b.id, b.writer, b.split, b.source))


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(samples(), min_size=1, max_size=5))
def test_what_goes_in_comes_out(tmp_path, batch):
    path = tmp_path / "p.h5"
    path.unlink(missing_ok=True)
    with StoreWriter(path) as w:
        w.add(batch)
    with Store(path) as s:
        assert len(s) == len(batch)
        for i, want in enumerate(batch):
            assert same(s[i], want), i


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(samples(), min_size=1, max_size=3), st.lists(samples(), min_size=1, max_size=3))
def test_an_append_keeps_what_was_there(tmp_path, first, second):
    path = tmp_path / "a.h5"
    path.unlink(missing_ok=True)
    append_samples(path, first)
    assert append_samples(path, second) == len(first) + len(second)
    with Store(path) as s:
        for i, want in enumerate(first + second):
            assert same(s[i], want), i


def test_a_nul_in_any_string_is_refused_per_sample(tmp_path):
    import pytest

    from hwr.ink import InkError
    ink = Ink([Stroke([[0, 0], [1, 1]])], "ab")
    for field in ("id", "writer", "source"):
        with pytest.raises(InkError, match="NUL"):
            Sample(ink, **{field: "a\x00b"}).validate()
    with pytest.raises(InkError, match="NUL"):
        Sample(Ink(ink.strokes, "a\x00b")).validate()
    with pytest.raises(InkError, match="NUL"), StoreWriter(tmp_path / "s.h5") as w:
        w.add([Sample(ink, id="fine"), Sample(ink, writer="bad\x00")])
    assert not (tmp_path / "s.h5").exists()  # all or nothing
