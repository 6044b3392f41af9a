"""`hwr data show` on a page: each line's strokes and text in its own colour (hwr.render), read back
from the PNG, on pages composed from real word inks (hwr.synth)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import matplotlib.colors as mcolors
import matplotlib.image as mimage
import numpy as np
import pytest

from hwr import synth
from hwr.ink import Ink
from hwr.render import UNPLACED, line_color, render_page, render_sample
from hwr.results import LineResult, Result
from hwr.store import Sample, StoreWriter

FIXTURES = Path(__file__).parent / "fixtures"
TEXTS = ["first line", "second line", "third line"]


@pytest.fixture(scope="module")
def page() -> tuple[Ink, np.ndarray]:
    rows = [json.loads(x) for x in (FIXTURES / "golden.jsonl").read_text().splitlines()]
    words = [Ink.from_json_dict(r["ink"]) for r in rows]
    lines = [synth.line_of_words([words[(i * 3 + k) % len(words)] for k in range(3)]) for i in range(3)]
    return synth.stack(lines, spacing=2.2, slopes=[0.03, -0.02, 0.0], indent=[0, 0.4, 0])


def lines_of(src: np.ndarray) -> list[list[int]]:
    return [np.nonzero(src == i)[0].tolist() for i in range(int(src.max()) + 1)]


def pixels(png: Path, color: str, tol: float = 0.06) -> tuple[np.ndarray, np.ndarray]:
    """(rows, columns) of the pixels of `color` (antialiased edges left out)."""
    im = mimage.imread(png)[..., :3]
    return np.nonzero(np.abs(im - np.array(mcolors.to_rgb(color))).max(-1) < tol)


def test_each_line_and_its_text_in_its_own_colour_in_its_own_band(page, tmp_path):
    ink, src = page
    out = tmp_path / "page.png"
    render_page(ink, lines_of(src), TEXTS, out)  # no title: its antialiased black has greys
    found = [pixels(out, line_color(i)) for i in range(3)]
    assert len({line_color(i) for i in range(3)}) == 3
    assert all(len(rows) > 500 for rows, _ in found), [len(r) for r, _ in found]
    assert len(pixels(out, UNPLACED)[0]) == 0  # every stroke is in a line
    # the texts stand in a column left of the ink: the widest empty gap between coloured columns
    cols = np.unique(np.concatenate([c for _, c in found]))
    gap = int(np.argmax(np.diff(cols)))
    ink_left = cols[gap + 1]
    assert cols[gap + 1] - cols[gap] > 15
    # page y -> pixel row, from the ink's top and bottom rows
    ink_rows = np.concatenate([r[c >= ink_left] for r, c in found])
    y = ink.points()[:, 1]
    scale = (ink_rows.max() - ink_rows.min()) / np.ptp(y)
    for i, (rows, cols_i) in enumerate(found):
        ly = np.concatenate([ink.strokes[k].points[:, 1] for k in lines_of(src)[i]])
        top, bottom = ink_rows.min() + (ly.min() - y.min()) * scale, ink_rows.min() + (ly.max() - y.min()) * scale
        inside = (rows >= top - 3) & (rows <= bottom + 3)
        assert inside.all(), f"line {i}: {np.sum(~inside)} pixels of its colour outside rows {top:.0f}-{bottom:.0f}"
        text = cols_i < ink_left
        assert text.sum() > 20, f"line {i}: no text in its colour beside it"
        others = [np.median(r) for j, (r, _) in enumerate(found) if j != i]
        assert all(abs(np.median(rows[text]) - (top + bottom) / 2) < abs(o - (top + bottom) / 2) for o in others)


def test_sample_lines_as_stored_found_or_read(page, tmp_path):
    ink, src = page
    stored = Sample(Ink(ink.strokes, "\n".join(TEXTS)), id="p1", split="test", stroke_lines=src.astype(np.int32))
    assert render_sample(stored, tmp_path / "stored.png") == 3
    assert render_sample(Sample(ink, id="p2"), tmp_path / "found.png") == 3  # hwr.layout's lines
    read = Result("a\nb", 0.0, [], lines=[LineResult("a", 0.0, [], s) for s in lines_of(src)[:2]])
    assert render_sample(Sample(ink, id="p3"), tmp_path / "read.png", read) == 2
    # the strokes of no line (the third, here) are grey
    assert len(pixels(tmp_path / "read.png", UNPLACED)[0]) > 500
    assert len(pixels(tmp_path / "read.png", line_color(2))[0]) == 0


def test_a_one_line_ink_keeps_the_plain_picture(page, tmp_path):
    ink, src = page
    line = Ink([s for s, i in zip(ink.strokes, src) if i == 0], "first line")
    assert render_sample(Sample(line, id="l1"), tmp_path / "line.png") == 1
    assert all(len(pixels(tmp_path / "line.png", line_color(i))[0]) == 0 for i in range(3))
    assert len(pixels(tmp_path / "line.png", "black", tol=0.02)[0]) > 200


def test_data_show_cli_draws_a_page(page, tmp_path):
    ink, src = page
    store = tmp_path / "pages.h5"
    with StoreWriter(store) as w:
        w.add([Sample(Ink(ink.strokes, "\n".join(TEXTS)), id="p1", split="test", stroke_lines=src)])
    for args in ([], ["--read", "--decoder", "greedy", "--threads", "1"]):
        out = tmp_path / f"show{len(args)}.png"
        r = subprocess.run([sys.executable, "-m", "hwr.cli", "data", "show", store, "0", "--out", out, *args],
                           capture_output=True, text=True)
        assert r.returncode == 0, r.stderr[-2000:]
        assert "(3 lines)" in r.stdout and out.stat().st_size > 5000
        assert all(len(pixels(out, line_color(i))[0]) > 500 for i in range(3))
