"""Training lines composed from one writer's word samples (`hwr.synth.lines_from_words`,
`hwr data compose-lines`): one hand per line, IAM-OnDB-like word gaps, traceable, reproducible."""

import numpy as np
import pytest
from conftest import synthetic_line

from hwr import synth
from hwr.cli import main as hwr_main
from hwr.ink import Ink, Stroke
from hwr.store import Sample, Store, StoreWriter


def bar(text: str) -> Ink:
    """A one-stroke word: a box 100 wide (x) and 100 tall, so a line's word gaps can be read off."""
    x = np.array([0.0, 100.0, 100.0, 0.0, 0.0])
    y = np.array([0.0, 0.0, 100.0, 100.0, 0.0])
    pts = np.stack([x, y, 10.0 * np.arange(5), np.full(5, np.nan)], axis=1)
    return Ink([Stroke(pts, "pen")], text)


def test_lines_are_one_writers_distinct_words_with_gaps_like_iam_ondb():
    words = {"a": [bar(f"a{i}") for i in range(10)], "b": [bar(f"b{i}") for i in range(30)]}
    rng = np.random.default_rng(0)
    gaps, writers = [], []
    for writer, picks, ink in synth.lines_from_words(words, 400, rng, words_per_line=(3, 8)):
        writers.append(writer)
        labels = ink.text.split(" ")
        assert labels == [words[writer][i].text for i in picks]
        assert 3 <= len(picks) <= 8 and len(set(picks)) == len(picks)
        assert all(t.startswith(writer) for t in labels)  # never two hands in one line
        assert len(ink.strokes) == len(picks)
        t = ink.points()[:, 2]
        assert (np.diff(t) >= 0).all()  # written left to right, in time order
        boxes = [(s.points[:, 0].min(), s.points[:, 0].max(), np.ptp(s.points[:, 1])) for s in ink.strokes]
        gaps += [(nxt[0] - cur[1]) / ((cur[2] + nxt[2]) / 2) for cur, nxt in zip(boxes, boxes[1:])]
    gaps = np.array(gaps)
    # IAM-OnDB's spaces (MODEL_CARD.md): median 0.99 heights, 6 % under 0.4, 51 % under 1.0
    assert 0.8 < np.median(gaps) < 1.1
    assert 0.02 < (gaps < 0.4).mean() < 0.12 and 0.4 < (gaps < 1.0).mean() < 0.65
    # writers in proportion to their words: b has three times a's
    assert 2.0 < writers.count("b") / writers.count("a") < 4.5


def test_lines_from_words_refuses_what_it_cannot_compose():
    with pytest.raises(ValueError, match="no writer"):
        list(synth.lines_from_words({"a": [bar("x")]}, 1, np.random.default_rng(0), words_per_line=(2, 3)))
    with pytest.raises(ValueError, match="words per line"):
        list(synth.lines_from_words({"a": [bar("x")]}, 1, np.random.default_rng(0), words_per_line=(3, 2)))


def word_store(path, with_unknown_writer: bool = True):
    samples = [Sample(synthetic_line(t, seed=i)[0], id=f"w{i}", writer=f"writer{i % 2}")
               for i, t in enumerate(["abc", "cab", "bad", "dab", "ace", "bead", "cad", "fab"])]
    samples.append(Sample(synthetic_line("ab cd", seed=9)[0], id="text9", writer="writer0"))  # not one word
    if with_unknown_writer:
        samples.append(Sample(synthetic_line("face", seed=10)[0], id="anon10", writer=""))
    with StoreWriter(path) as w:
        w.add(samples)
    return path


def test_compose_lines_store_traces_every_word_and_repeats_with_its_seed(tmp_path):
    src = word_store(tmp_path / "words.h5")
    summary = synth.compose_lines_store(src, tmp_path / "lines.h5", 25, seed=3, words_per_line=(2, 4),
                                        progress=False)
    assert summary == {"lines": 25, "writers": 2, "words": 8, "words_without_writer": 1}
    with Store(src) as s:
        by_id = {s.meta["id"][i]: (s.meta["text"][i], s.meta["writer"][i]) for i in range(len(s))}
    with Store(tmp_path / "lines.h5") as s:
        assert len(s) == 25
        for i in range(len(s)):
            sample = s[i]
            word_ids = sample.id.split(":", 1)[1].split("|")
            assert [by_id[w][0] for w in word_ids] == sample.text.split(" ")  # each word traced to its sample
            assert {by_id[w][1] for w in word_ids} == {sample.writer}
            assert "text9" not in word_ids and "anon10" not in word_ids
            assert sample.source == "lines-of-words" and sample.split == ""
        texts = list(s.meta["text"])
    synth.compose_lines_store(src, tmp_path / "again.h5", 25, seed=3, words_per_line=(2, 4), progress=False)
    with Store(tmp_path / "again.h5") as s:
        assert list(s.meta["text"]) == texts
        assert np.array_equal(s.ink(7).points(), Store(tmp_path / "lines.h5").ink(7).points(), equal_nan=True)


def test_cli_compose_lines(tmp_path, capsys):
    src = word_store(tmp_path / "words.h5")
    assert hwr_main(["data", "compose-lines", str(src), "--out", str(tmp_path / "l.h5"), "--lines", "5"]) == 0
    assert "5 lines from 8 words of 2 writers" in capsys.readouterr().out
    with StoreWriter(tmp_path / "texts.h5") as w:
        w.add([Sample(synthetic_line("ab cd")[0], id="t", writer="x")])
    assert hwr_main(["data", "compose-lines", str(tmp_path / "texts.h5"), "--out", str(tmp_path / "n.h5")]) != 0
    err = capsys.readouterr().err
    assert "no single-word samples with a writer" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "n.h5").exists()
