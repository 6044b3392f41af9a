"""Reading pages with the shipped model: lines in order, one-line inks unchanged, LM context,
per-word alternatives, the line cache, and page results in transcribe rows."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from hwr import synth
from hwr.ink import Ink, InkError, Stroke
from hwr.recognizer import LineCache, Recognizer

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(scope="module")
def rec() -> Recognizer:
    return Recognizer.load()


@pytest.fixture(scope="module")
def words() -> dict[str, Ink]:
    rows = [json.loads(x) for x in (FIXTURES / "golden.jsonl").read_text().splitlines()]
    return {r["beam"]: Ink.from_json_dict(r["ink"]) for r in rows}


LINES = [["church", "like"], ["shame", "wide"], ["never", "after"]]


@pytest.fixture(scope="module")
def page(words) -> tuple[Ink, np.ndarray]:
    return synth.stack([synth.line_of_words([words[w] for w in line], gap=1.0) for line in LINES], spacing=2.5)


def test_a_page_reads_line_by_line_in_order(rec, page):
    ink, src = page
    r = rec.recognize(ink)
    assert r.text == "\n".join(" ".join(line) for line in LINES)
    assert [line.text for line in r.lines] == r.text.split("\n")
    assert [sorted(line.strokes) for line in r.lines] == [np.nonzero(src == i)[0].tolist() for i in range(3)]
    # page stroke indices in the character spans: each character's strokes are in its own line
    chars = [s for s in r.char_spans]
    assert "".join(s.char for s in chars) == r.text
    for line in r.lines:
        for s in line.char_spans:
            assert set(s.strokes) <= set(line.strokes)
    assert r.candidates[0].text == r.text and len(r.candidates) == rec.decoder_config.nbest
    assert abs(r.score - sum(line.score for line in r.lines)) < 1e-6


def test_a_one_line_ink_reads_exactly_as_a_line(rec, words):
    line = synth.line_of_words([words["vacuum"], words["bath"]], gap=1.0)
    for ink in (line, words["potsdam"]):
        a, b = rec.recognize(ink), rec.recognize(ink, layout="line")
        assert len(a.lines) == 1 and a.lines[0].strokes == list(range(len(ink)))
        assert (a.text, a.score, a.char_spans) == (b.text, b.score, b.char_spans)
        assert [h.text for h in a.candidates] == [h.text for h in b.candidates]


def test_context_primes_the_language_model(rec, words):
    ink = words["church"]
    plain = rec.recognize(ink)
    primed = rec.recognize(ink, context="the bells of the old")
    assert primed.text == plain.text == "church"
    assert primed.score != plain.score  # the LM scored the word after the context, not at a sentence start
    greedy = replace(rec.decoder_config, kind="greedy")
    assert rec.recognize(ink, decoder=greedy, context="anything").text == rec.recognize(ink, decoder=greedy).text


def test_context_frames_are_not_the_inks(rec, words):
    ink = words["potsdam"]
    plain, primed = rec.recognize(ink), rec.recognize(ink, context="a visit to")
    assert [s.strokes for s in primed.char_spans] == [s.strokes for s in plain.char_spans]


def test_word_alternatives_point_into_the_text(rec, page):
    r = rec.recognize(page[0])
    assert [w.text for w in r.words] == r.text.split()
    for w in r.words:
        assert r.text[w.start:w.end] == w.text
        assert w.alternatives[0].text == w.text
        assert [a.score for a in w.alternatives] == sorted((a.score for a in w.alternatives), reverse=True)
        assert r.lines[w.line].text.split().count(w.text) >= 1
    assert any(len(w.alternatives) > 1 for w in r.words), "a beam search offers other readings of some word"


def test_the_cache_reads_only_the_line_that_changed(rec, page, monkeypatch):
    ink, src = page
    cache = LineCache()
    first = rec.recognize(ink, cache=cache)
    calls = []  # lines on their way to the network (features are made for uncached lines only)
    real = rec.features
    monkeypatch.setattr(rec, "features", lambda k: calls.append(k.num_points) or real(k))
    again = rec.recognize(ink, cache=cache)
    assert calls == [] and again.text == first.text
    # one more stroke on the last line: only that line goes through the network
    last = [ink.strokes[k] for k in np.nonzero(src == 2)[0]]
    dot = last[-1].points[-1:].copy()
    dot[:, 2] += 500.0
    grown = Ink(ink.strokes + [Stroke(dot, last[-1].pointer_type)])
    rec.recognize(grown, cache=cache)
    assert len(calls) == 1


def test_a_caller_changing_its_result_leaves_the_cache_alone(rec, page):
    ink, _ = page
    cache = LineCache()
    first = rec.recognize(ink, cache=cache)
    want = (first.text, [list(h.frames) for h in first.lines[0].candidates], [list(c.strokes) for c in first.char_spans])
    for h in first.lines[0].candidates:
        h.frames.append(-1)
    for line in first.lines:
        for c in line.char_spans:
            c.strokes.append(-1)
    again = rec.recognize(ink, cache=cache)
    assert (again.text, [list(h.frames) for h in again.lines[0].candidates],
            [list(c.strokes) for c in again.char_spans]) == want


def test_bad_pages_get_a_result_or_one_line_error(rec, words):
    with pytest.raises(InkError):
        rec.recognize(Ink([]))
    assert isinstance(rec.recognize(Ink([Stroke([[1.0, 1.0, 0.0]])])).text, str)
    many = synth.stack([synth.line_of_words([words["wide"]]) for _ in range(100)], spacing=2.5)[0]
    r = rec.recognize(many, decoder=replace(rec.decoder_config, kind="greedy"))
    assert len(r.lines) == 100
    with pytest.raises(Exception, match="layout"):
        rec.recognize(many, layout="column")


def test_transcribe_rows_carry_lines(rec, page, tmp_path):
    from hwr.transcribe import transcribe
    ink, _ = page
    src = tmp_path / "page.json"
    src.write_text(ink.to_json())
    out = tmp_path / "out.jsonl"
    counts = transcribe([str(src)], out, rec, progress=False)
    assert counts["written"] == 1
    row = json.loads(out.read_text())
    assert row["text"].count("\n") == 2 and len(row["lines"]) == 3
    assert [line["text"] for line in row["lines"]] == row["text"].split("\n")
    assert row["words"][0]["alternatives"][0]["text"] == row["text"].split()[0]


def test_context_with_a_word_list_decoder_reads_without_priming(rec, page, tmp_path):
    """A lexicon search can only spell its words and its LM is over words: context is not used,
    and a page under --lexicon still reads (it crashed before)."""
    words = tmp_path / "words.txt"
    words.write_text("church like shame wide never after the bells of")
    cfg = replace(rec.decoder_config, lexicon=str(words))
    r = rec.recognize(page[0], decoder=cfg, context="the bells of")
    assert r.text == "\n".join(" ".join(line) for line in LINES)


def test_contexts_the_model_cannot_write_are_harmless(rec, words):
    ink = words["church"]
    for context in ("zzzq", "ll", "café — 12", "\n\n", "x" * 500):
        assert rec.recognize(ink, context=context).text == "church"


def test_scribbles_and_non_finite_points(rec):
    assert rec.recognize([]) == []
    rng = np.random.default_rng(0)
    scribble = Ink([Stroke(np.c_[rng.random(5) * 1000, rng.random(5) * 1000, np.zeros(5)]) for _ in range(2000)])
    from hwr.layout import segment_lines
    assert sorted(s for line in segment_lines(scribble) for s in line) == list(range(2000))
    bad = Ink([Stroke([[0.0, 0.0, 0.0], [1.0, 1.0, 1.0]]), Stroke([[np.nan, 5.0, 2.0], [3.0, 3.0, 3.0]])])
    with pytest.raises(InkError, match="non-finite"):
        rec.recognize(bad)


def test_stroke_owner_on_a_page_lights_only_its_line(rec, page):
    """The app colours strokes by `stroke_owner`; on a page each character owns strokes of its own line."""
    from hwr.recognizer import stroke_owner
    ink, src = page
    r = rec.recognize(ink)
    owner = stroke_owner(r.char_spans, len(ink))
    line_of_char = np.cumsum([c == "\n" for c in r.text])  # line index of each character of the text
    claimed = owner >= 0
    assert claimed.sum() >= len(ink) * 0.8
    assert (line_of_char[owner[claimed]] == src[claimed]).all()


def test_the_package_exports_and_the_decoder_checks_its_input(rec):
    import torch
    from hwr import Ink as I, Recognizer as R
    assert R is Recognizer and I is Ink
    wrong = torch.zeros(5, 1, len(rec.alphabet) + 3)
    with pytest.raises(ValueError, match="alphabet"):
        rec.decoder()(wrong, torch.tensor([5]))
