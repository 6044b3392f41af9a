"""Line segmentation (hwr.layout) on pages composed from real word inks (hwr.synth)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from hwr import synth
from hwr.ink import Ink, InkError, Stroke
from hwr.layout import segment_lines

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(scope="module")
def words() -> list[Ink]:
    rows = [json.loads(x) for x in (FIXTURES / "golden.jsonl").read_text().splitlines()]
    return [Ink.from_json_dict(r["ink"]) for r in rows]


def lines_of(words: list[Ink], n: int, per_line: int = 3) -> list[Ink]:
    return [synth.line_of_words([words[(i * per_line + k) % len(words)] for k in range(per_line)])
            for i in range(n)]


def truth(src: np.ndarray) -> list[list[int]]:
    """Stroke indices of each source line (lines top to bottom)."""
    return [np.nonzero(src == i)[0].tolist() for i in range(int(src.max()) + 1)]


def test_every_word_and_line_alone_is_one_line(words):
    for w in words + lines_of(words, 4):
        assert segment_lines(w) == [list(range(len(w)))]


@pytest.mark.parametrize("spacing", [1.6, 2.0, 3.0])
def test_stacked_lines_come_out_in_order(words, spacing):
    page, src = synth.stack(lines_of(words, 4), spacing=spacing)
    assert segment_lines(page) == truth(src)


def test_sloping_lines_of_different_lengths(words):
    lines = [synth.line_of_words(words[i:i + n]) for i, n in ((0, 4), (4, 2), (6, 3), (9, 1))]
    page, src = synth.stack(lines, spacing=2.2, slopes=[0.05, -0.04, 0.06, 0.0], indent=[0, 0.5, 0, 1.0])
    assert segment_lines(page) == truth(src)


@pytest.mark.parametrize("after_page", [False, True])
def test_dots_and_crosses_written_late_find_their_line(words, after_page):
    page, src = synth.stack(lines_of(words, 3), spacing=2.0)
    late, late_src = synth.delay_small_strokes(page, src, share=1.0, after_page=after_page)
    moved = sum(1 for a, b in zip(page.strokes, late.strokes) if a.points[0, 2] != b.points[0, 2])
    assert moved > 0, "the fixture has small strokes to move"
    assert segment_lines(late) == truth(late_src)


def test_a_line_squeezed_in_later_is_read_in_place(words):
    page, src = synth.stack(lines_of(words, 3), spacing=2.5, order=[0, 2, 1])  # the middle line written last
    got = segment_lines(page)
    assert got == truth(src)
    assert [int(src[line[0]]) for line in got] == [0, 1, 2]


def test_superimposed_lines_are_told_apart_by_time(words):
    page, src = synth.superimposed(lines_of(words, 2, per_line=4))
    assert segment_lines(page) == truth(src)


def test_bad_pages_give_a_result_or_one_clear_error(words):
    with pytest.raises(InkError, match="empty"):
        segment_lines(Ink([]))
    assert segment_lines(Ink([Stroke([[5.0, 5.0, 0.0]])])) == [[0]]
    page, src = synth.stack(lines_of(words, 100, per_line=1), spacing=2.0)
    got = segment_lines(page)
    assert len(got) == 100 and got == truth(src)
    rng = np.random.default_rng(0)
    shuffled = page.points().copy()
    lengths = page.stroke_lengths()
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    for k in range(len(lengths)):  # every stroke at a random time
        shuffled[starts[k]:starts[k] + lengths[k], 2] = rng.random() * 1e6 + np.arange(lengths[k])
    got = segment_lines(Ink.from_arrays(shuffled, lengths))
    assert sorted(s for line in got for s in line) == list(range(len(page)))


def test_untimed_ink_uses_the_stroke_order(words):
    page, src = synth.stack(lines_of(words, 3), spacing=2.0)
    pts = page.points().copy()
    pts[:, 2] = np.nan
    assert segment_lines(Ink.from_arrays(pts, page.stroke_lengths())) == truth(src)
