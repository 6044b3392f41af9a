"""The package functions behind the app: data folder, personal runs, SVG rendering, corrections."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from conftest import synthetic_line

from hwr.errors import InputError
from hwr.feedback import apply_picks, labelled_lines
from hwr.ink import Ink, Stroke
from hwr.paths import data_dir, feedback_store, personal_root
from hwr.personal import LOG_TAIL_CHARS, PersonalConfig, personal_models, run_progress
from hwr.svg import FADED, HIGHLIGHT, INK, PALETTE, PLAIN_TEXT, colored_text, ink_svg

SVG = "{http://www.w3.org/2000/svg}"


# ---------------------------------------------------------------- data folder
def test_data_dir_prefers_hwr_data_dir_then_xdg_then_home(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("HWR_DATA_DIR", raising=False)
    monkeypatch.delenv("XDG_DATA_HOME", raising=False)
    assert data_dir() == tmp_path / "home" / ".local" / "share" / "hwr"
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert data_dir() == tmp_path / "xdg" / "hwr"
    monkeypatch.setenv("HWR_DATA_DIR", str(tmp_path / "mine"))
    assert data_dir() == tmp_path / "mine"
    assert feedback_store() == tmp_path / "mine" / "feedback.h5"
    assert personal_root() == tmp_path / "mine" / "personal"
    monkeypatch.setenv("HWR_DATA_DIR", "")  # set but empty: as if unset
    assert data_dir() == tmp_path / "xdg" / "hwr"
    assert not (tmp_path / "xdg").exists()  # asking creates nothing


# ---------------------------------------------------------------- personal runs
def _run(root: Path, name: str, weights: bool = True) -> Path:
    run = root / name
    run.mkdir(parents=True)
    if weights:
        (run / "best.pt").write_bytes(b"weights")
    return run


def test_personal_models_lists_runs_with_weights_newest_first(tmp_path):
    assert personal_models(tmp_path / "none") == {}
    _run(tmp_path, "run-20250101-090000")
    _run(tmp_path, "run-20250301-120000")
    _run(tmp_path, "run-20250201-100000", weights=False)  # just started: nothing to pick yet
    _run(tmp_path, "notes")                               # not a run folder
    models = personal_models(tmp_path)
    assert list(models) == ["personal (20250301-120000)", "personal (20250101-090000)"]
    assert models["personal (20250101-090000)"] == tmp_path / "run-20250101-090000" / "best.pt"


def _epoch_row(epoch: int) -> str:
    return json.dumps({"kind": "epoch", "epoch": epoch, "step": 10 * epoch, "val_cer": 0.1})


def test_run_progress_through_a_runs_life(tmp_path):
    run = _run(tmp_path, "run-20250101-090000", weights=False)
    p = run_progress(run)  # launched, the trainer has written nothing yet
    assert (p.epochs_done, p.epochs_total, p.state, p.log_tail) == (0, PersonalConfig.epochs, "running", "")
    assert p.fraction == 0.0
    (run / "config.json").write_text(json.dumps({"epochs": 4, "lr": 5e-4}))
    (run / "metrics.jsonl").write_text("\n".join([
        json.dumps({"kind": "train", "epoch": 1, "step": 5, "loss": 3.0}), _epoch_row(1),
        json.dumps({"kind": "train", "epoch": 2, "step": 15, "loss": 2.0}), _epoch_row(2),
        '{"kind": "epoch", "epo']))  # the trainer is writing this line right now
    p = run_progress(run)
    assert (p.epochs_done, p.epochs_total, p.state, p.fraction) == (2, 4, "running", 0.5)
    (run / "done").touch()
    assert run_progress(run).state == "done"


def test_run_progress_of_a_failed_run_keeps_the_end_of_the_log(tmp_path):
    run = _run(tmp_path, "run-1")
    (run / "config.json").write_text('{"epochs": 3')  # cut: fall back to the default
    (run / "train.log").write_text("x" * 1000 + "\nValueError: no samples the alphabet can encode")
    (run / "failed").touch()
    p = run_progress(run)
    assert p.state == "failed" and p.epochs_total == PersonalConfig.epochs
    assert len(p.log_tail) == LOG_TAIL_CHARS and p.log_tail.endswith("the alphabet can encode")


@pytest.mark.slow
def test_run_progress_reads_a_real_training_run(tiny_model):
    """The parser against the files train.py really writes (the app's tests train this run anyway)."""
    run = tiny_model.parent
    total = json.loads((run / "config.json").read_text())["epochs"]
    p = run_progress(run)
    assert p.epochs_done == p.epochs_total == total and p.fraction == 1.0
    assert p.state == "running"  # train() was called directly: no background wrapper wrote a marker
    assert personal_models(run.parent) == {}  # "run", not "run-*": not a personal run


# ---------------------------------------------------------------- SVG and coloured text
def _svg(ink, **kw) -> ET.Element:
    root = ET.fromstring(ink_svg(ink, **kw))
    assert root.tag == f"{SVG}svg"
    return root


def test_ink_svg_draws_one_path_per_stroke_in_the_owners_colours():
    ink, spans = synthetic_line("ab")
    owner = np.full(len(ink), -1)
    first_a, end_a = spans[0]
    owner[first_a:end_a] = 0
    owner[spans[1][0]] = 1  # the first stroke of "b" claimed, any others not
    root = _svg(ink, owner=owner, height=80)
    paths = root.findall(f"{SVG}path")
    assert len(paths) == len(ink)
    colors = [p.get("stroke") for p in paths]
    assert colors[first_a:end_a] == [PALETTE[0]] * (end_a - first_a)
    assert colors[spans[1][0]] == PALETTE[1]
    assert colors[spans[1][0] + 1:] == [INK] * (len(ink) - spans[1][0] - 1)
    assert root.get("height") == "80"
    # every point is inside the viewBox, with the 5 px margin
    _, _, vw, vh = (float(v) for v in root.get("viewBox").split())
    for p in paths:
        xy = np.array([c[1:].split(",") for c in p.get("d").split() if c[0] in "ML"], float)
        assert (xy >= 4.9).all() and (xy[:, 0] <= vw - 4.9).all() and (xy[:, 1] <= vh - 4.9).all()


def test_ink_svg_highlight_fades_other_characters_and_draws_dots():
    ink, spans = synthetic_line("ab")
    owner = np.array([0 if k < spans[0][1] else 1 for k in range(len(ink))])
    paths = _svg(ink, owner=owner, highlight=1).findall(f"{SVG}path")
    assert {p.get("stroke") for p in paths[:spans[0][1]]} == {FADED}
    assert {p.get("stroke") for p in paths[spans[1][0]:]} == {HIGHLIGHT}
    assert float(paths[-1].get("stroke-width")) > float(paths[0].get("stroke-width"))
    plain = _svg(ink).findall(f"{SVG}path")
    assert {p.get("stroke") for p in plain} == {INK}
    dot = Ink([Stroke([[3, 4]]), Stroke([[0, 0], [10, 10]])])
    assert _svg(dot).findall(f"{SVG}path")[0].get("d").endswith("l0.1,0.1")  # visible, not zero length


def test_colored_text_escapes_and_colours_claimed_characters():
    text = "<b>&x\ny z"
    root = ET.fromstring(f"<div>{colored_text(text, claimed={1, 4, 8})}</div>")  # well-formed XML
    spans = [e for e in root if e.tag == "span"]
    assert [e.tag for e in root].count("br") == 1 and len(spans) == len(text) - 1
    assert "".join(e.text for e in spans) == "<b>&xy\u00a0z"  # escaped on the way in, read back as typed
    colors = [e.get("style").removeprefix("color:") for e in spans]
    chars = [i for i, c in enumerate(text) if c != "\n"]
    assert colors == [PALETTE[i % len(PALETTE)] if i in {1, 4, 8} else PLAIN_TEXT for i in chars]
    assert "<script>" not in colored_text("<script>", set())


# ---------------------------------------------------------------- corrections of a page
def _word(start: int, end: int) -> SimpleNamespace:
    return SimpleNamespace(start=start, end=end)


def test_apply_picks_replaces_words_and_keeps_lines():
    text = "the cat\nsat on"
    words = [_word(8, 11), _word(0, 3), _word(4, 7), _word(12, 14)]  # any order
    assert apply_picks(text, words, ["sat", "the", "cat", "on"]) == text
    assert apply_picks(text, words, ["set", "a", "coat", "in"]) == "a coat\nset in"
    assert apply_picks(text, [], []) == text
    with pytest.raises(ValueError):
        apply_picks(text, [_word(0, 5), _word(4, 7)], ["x", "y"])  # overlapping spans
    with pytest.raises(ValueError):
        apply_picks(text, words, ["only one"])


def test_labelled_lines_label_each_written_line_with_its_line_of_text():
    ink = synthetic_line("abcd")[0]
    n = len(ink)
    lines = [SimpleNamespace(strokes=list(range(n // 2))), SimpleNamespace(strokes=list(range(n // 2, n))[::-1])]
    inks = labelled_lines(ink, lines, "ab \n cd\n")  # outer spaces and a trailing newline do not count
    assert [i.text for i in inks] == ["ab", "cd"]
    assert inks[1].strokes == ink.strokes[n // 2:]  # writing order, whatever order the line lists
    assert [i.text for i in labelled_lines(ink, lines, "\ncd")] == ["cd"]  # an emptied line is not saved
    assert [i.text for i in labelled_lines(ink, lines, "ab\n")] == ["ab"]
    with pytest.raises(InputError, match="2 written lines"):
        labelled_lines(ink, lines, "ab cd")


def test_feedback_samples_are_what_a_personal_fine_tuning_reads(tmp_path):
    from hwr.feedback import feedback_samples
    from hwr.ink import Ink, Stroke
    from hwr.store import Store, append_samples
    inks = [Ink([Stroke([[0.0, 0.0, 0.0], [5.0, 5.0, 10.0]])], "a"), Ink([Stroke([[1.0, 0.0, 0.0], [5.0, 9.0, 10.0]])], "b")]
    samples = feedback_samples(inks)
    assert len({s.id for s in samples}) == 2 and all(s.writer == "me" and s.split == "" for s in samples)
    assert append_samples(tmp_path / "f.h5", samples) == 2
    with Store(tmp_path / "f.h5") as s:
        assert [x.text for x in s] == ["a", "b"] and s.splits() == {"": 2}


def test_merge_strokes_keeps_every_stroke_whatever_the_board_held():
    """The board is given the strokes only when mounted; what it sends back at a pen-up is kept
    exactly, and a board that lost them (mounted without) loses nothing in the tab."""
    from hwr.canvas import merge_strokes
    a, b, c = ({"points": [[i, i, float(i), 0.5]], "pointer_type": "mouse"} for i in range(3))
    assert merge_strokes([], [a]) == ([a], True)
    assert merge_strokes([a, b], [a, b, c]) == ([a, b, c], True)  # the usual pen-up
    assert merge_strokes([a, b], [c]) == ([a, b, c], False)  # mounted empty: append, remount with all
    assert merge_strokes([a, b], [b, c]) == ([a, b, b, c], False)  # not a prefix: nothing dropped


def test_remember_choice_keeps_the_newest_and_ignores_what_is_not_a_choice():
    from hwr.canvas import CHOICES_KEPT, remember_choice
    choices: dict = {}
    for bad in (None, "x", {"value": 1}, {"key": 3, "value": 1}):
        remember_choice(choices, bad)
    assert choices == {}
    remember_choice(choices, {"key": "alt-1", "value": "cab"})
    remember_choice(choices, {"key": "hl-1", "value": 2})
    remember_choice(choices, {"key": "alt-1", "value": "bad"})  # chosen again: its value, now the newest
    assert list(choices.items()) == [("hl-1", 2), ("alt-1", "bad")]
    remember_choice(choices, {"key": "hl-1", "value": None})  # a highlight switched off
    assert choices["hl-1"] is None
    for k in range(CHOICES_KEPT + 10):
        remember_choice(choices, {"key": f"w{k}", "value": k})
    assert len(choices) == CHOICES_KEPT and "alt-1" not in choices and choices[f"w{CHOICES_KEPT + 9}"] == CHOICES_KEPT + 9
