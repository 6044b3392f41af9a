"""Logic tests of the Streamlit app with AppTest (ink injected through session state)."""

import ast
import json
import xml.etree.ElementTree as ET
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from conftest import synthetic_line

from hwr.canvas import MAX_STROKES, ink_from_canvas
from hwr.ink import InkError
from hwr.store import Store

APP = str(Path(__file__).resolve().parents[1] / "web" / "app.py")


def canvas_strokes(text: str, seed: int = 0) -> list[dict]:
    """What the browser component sends for a synthetic line (t in ms since the epoch)."""
    ink = synthetic_line(text, seed=seed, jitter=1.0, t0=1.76e12)[0]
    d = ink.to_json_dict()["strokes"]
    for s in d:
        s["pointer_type"] = "mouse"
        for p in s["points"]:
            p[3] = 0.5
    return d


# ---------------------------------------------------------------- the conversion function
def test_ink_from_canvas_accepts_browser_data_and_rejects_bad():
    assert ink_from_canvas(None) is None and ink_from_canvas([]) is None and ink_from_canvas({"strokes": []}) is None
    ink = ink_from_canvas(canvas_strokes("ab"))
    assert len(ink) == len(canvas_strokes("ab")) and ink.strokes[0].pointer_type == "mouse"
    dot = ink_from_canvas([{"points": [[10, 10, 1.76e12, 0.5]], "pointer_type": "pen"}])
    assert dot.num_points == 1
    # a repeated / out-of-order browser timestamp is clamped, not an error
    jittery = ink_from_canvas([{"points": [[0, 0, 100, 0.5], [1, 1, 99, 0.5], [2, 2, 101, 0.5]]}])
    assert (np.diff(jittery.points()[:, 2]) >= 0).all()
    # a stroke leaving the canvas has negative coordinates: still ink
    assert ink_from_canvas([{"points": [[-30, 5, 1, None], [5, 500, 2, None]]}]).num_points == 2
    with pytest.raises(InkError):
        ink_from_canvas([{"points": [[0, "x", 1, 0]]}])
    with pytest.raises(InkError, match="more than a page"):
        ink_from_canvas([{"points": [[i, i, i, 0.5]]} for i in range(MAX_STROKES + 1)])
    with pytest.raises(InkError):
        ink_from_canvas([{"points": [[float("nan"), 0, 1, 0.5]]}])


# ---------------------------------------------------------------- the app
@pytest.fixture
def app(tiny_model, tmp_path, monkeypatch):
    from streamlit.testing.v1 import AppTest
    monkeypatch.setenv("HWR_MODEL", str(tiny_model))
    monkeypatch.setenv("HWR_DATA_DIR", str(tmp_path / "data"))
    at = AppTest.from_file(APP, default_timeout=60)
    return at


def _view(at, i: int = 0) -> ET.Element:
    """The result panel the board (or the upload's panel) draws: the HTML in its data, which must
    be well-formed XML."""
    view = json.loads(at.get("bidi_component")[i].proto.json)["view"]
    return ET.fromstring(f"<div>{view}</div>")


def _result(at) -> ET.Element:
    return next(e for e in _view(at).iter() if "hwr-result" in e.get("class", "").split())


def _result_text(at) -> str:
    return "".join(_result(at).itertext()).strip()


def _groups(at, label: str) -> list[ET.Element]:
    """The panel's radio groups whose label starts with `label` (e.g. "Alternatives", "Readings of")."""
    return [e for e in _view(at).iter() if e.get("role") == "radiogroup" and e.get("aria-label", "").startswith(label)]


def _options(group: ET.Element) -> list[tuple[str, str]]:
    """(value, shown text) of each option of a radio group."""
    return [(json.loads(e.get("data-value")), "".join(e.itertext())) for e in group if e.get("role") == "radio"]


def _checked(group: ET.Element) -> str:
    return next(json.loads(e.get("data-value")) for e in group if e.get("aria-checked") == "true")


def _choose(at, group: ET.Element, value) -> None:
    """What a click on an option does: the panel sends {key: the group's data-pick, value}."""
    at.session_state["choices"] = {**(at.session_state["choices"] if "choices" in at.session_state else {}),
                                   group.get("data-pick"): value}
    at.run()


def _svg(at) -> ET.Element:
    return next(e for e in _view(at).iter() if e.tag == "{http://www.w3.org/2000/svg}svg")


def _fix(at):
    """The correction box, opened through its toggle."""
    if not at.toggle(key="fix_open").value:
        at.toggle(key="fix_open").set_value(True).run()
    return next(t for t in list(at.text_input) + list(at.text_area) if t.key and t.key.startswith("fix-"))


@pytest.mark.slow
def test_app_empty_canvas_then_ink_transcribed(app):
    at = app.run()
    assert not at.exception
    assert "Write a line" in _result_text(at)
    at.session_state["strokes"] = canvas_strokes("bad cab", seed=1000)
    at.run()
    assert not at.exception
    assert _result_text(at) == "bad cab" and _result(at).get("data-strokes") == str(len(at.session_state["strokes"]))
    alts = _groups(at, "Alternatives")
    assert alts and _options(alts[0])[0][1].startswith("'bad cab'") and _checked(alts[0]) == "bad cab"
    assert len(_svg(at).findall("{http://www.w3.org/2000/svg}path")) == len(at.session_state["strokes"])
    assert not [t for t in at.text_input if t.key and t.key.startswith("fix-")]  # the box waits for its toggle


@pytest.mark.slow
def test_app_undo_clear_and_save(app, tmp_path):
    at = app.run()
    strokes = canvas_strokes("bad cab", seed=1000)
    at.session_state["strokes"] = strokes
    at.run()
    at.button(key="undo").click().run()
    assert len(at.session_state["strokes"]) == len(strokes) - 1
    at.session_state["strokes"] = strokes
    at.run()
    _fix(at).set_value("bad cab").run()
    at.button(key="save").click().run()
    assert not at.exception
    store = tmp_path / "data" / "feedback.h5"
    with Store(store) as s:
        assert len(s) == 1 and s[0].text == "bad cab" and s[0].ink.num_points > 10
    at.button(key="clear").click().run()
    assert at.session_state["strokes"] == []
    assert "Write a line" in _result_text(at)
    # Undo stays enabled (strokes arrive in fragment reruns that do not redraw it): on an empty
    # board it changes nothing, not even the board; Clear starts a new page
    assert not at.button(key="undo").disabled
    version, cleared = at.session_state["board_version"], at.session_state["cleared"]
    at.button(key="undo").click().run()
    assert not at.exception and at.session_state["strokes"] == [] and "Write a line" in _result_text(at)
    assert at.session_state["board_version"] == version
    at.button(key="clear").click().run()
    assert at.session_state["cleared"] == cleared + 1


@pytest.mark.slow
def test_app_stroke_arriving_with_a_click_is_kept(app):
    """A stroke sent just before Undo or a mode switch reaches the server in the same rerun, and
    the click's callback runs first: the stroke must still count (Undo removes it, not the one
    before; a mode switch keeps it)."""
    at = app.run()
    strokes = canvas_strokes("bad cab", seed=1000)
    at.session_state["strokes"] = strokes[:-1]
    at.run()
    board = f"board-{at.session_state['board_version']}"
    at.session_state[board] = {"strokes": strokes}  # the board's pending value: all strokes, one new
    at.button(key="undo").click().run()
    assert at.session_state["strokes"] == strokes[:-1]
    version = at.session_state["board_version"]
    at.session_state[f"board-{version}"] = {"strokes": strokes}
    at.radio(key="mode").set_value("Page").run()
    assert at.session_state["strokes"] == strokes
    assert at.session_state["board_version"] == version + 1


@pytest.mark.slow
def test_app_bad_inputs_keep_the_session_working(app):
    at = app.run()
    at.session_state["strokes"] = [{"points": [[5, 5, 1.76e12, 0.5]], "pointer_type": "mouse"}]
    at.run()
    assert not at.exception  # a single dot is read (as something) without a traceback
    at.session_state["strokes"] = [{"points": [[i, i, i, 0.5]]} for i in range(MAX_STROKES + 5)]
    at.run()
    assert not at.exception and any("more than a page" in w.value for w in at.warning)
    at.session_state["strokes"] = [{"points": [[0, 1e9, 1, 0.5]]}]
    at.run()
    assert not at.exception and at.warning
    at.session_state["strokes"] = canvas_strokes("ace", seed=4)
    at.run()
    assert _result_text(at) == "ace"


def test_upload_reader_rejects_bad_files():
    from hwr.canvas import MAX_UPLOAD_BYTES, ink_from_upload
    from hwr.exporters import ink_to_inkml
    ink = synthetic_line("ab")[0]
    assert ink_from_upload("x.json", ink.to_json().encode()).num_points == ink.num_points
    assert ink_from_upload("x.inkml", ink_to_inkml(ink).encode()).num_points == ink.num_points
    for name, data in [("x.json", b"{nope"), ("x.inkml", b"<ink><trace>1 2, 3"),
                       ("x.inkml", b'<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><ink>&e;</ink>'),
                       ("x.json", b'{"strokes": []}'), ("big.json", b" " * (MAX_UPLOAD_BYTES + 1))]:
        with pytest.raises(InkError):
            ink_from_upload(name, data)


@pytest.mark.slow
def test_app_reads_an_ink_once_however_often_the_page_reruns(app, monkeypatch):
    """Picking an alternative, highlighting a character and typing a correction rerun the script;
    only new strokes may run the recognizer."""
    from hwr.recognizer import Recognizer
    calls = []
    real = Recognizer.recognize
    monkeypatch.setattr(Recognizer, "recognize", lambda self, ink, **kw: calls.append(1) or real(self, ink, **kw))
    at = app.run()
    at.session_state["strokes"] = canvas_strokes("bad cab", seed=1000)
    at.run()
    first = len(calls)
    assert first >= 1 and _result_text(at) == "bad cab"
    alts = _groups(at, "Alternatives")[0]
    _choose(at, alts, _options(alts)[-1][0])
    colored = next(e for e in _view(at).iter() if e.get("class") == "hwr-colored")
    _choose(at, colored, 1)
    _fix(at).set_value("bad cat").run()
    assert not at.exception and len(calls) == first
    at.session_state["strokes"] = canvas_strokes("bad cab", seed=1000)[:-1]  # a new ink: read again
    at.run()
    assert len(calls) == first + 1


@pytest.mark.slow
def test_app_picked_alternative_becomes_the_correction(app):
    at = app.run()
    at.radio(key="decoder_kind").set_value("beam search").run()  # n-best lists need the beam search
    at.session_state["strokes"] = canvas_strokes("bad cab", seed=1000)
    at.run()
    alts = _groups(at, "Alternatives")[0]
    texts = [ast.literal_eval(shown.rsplit("   (score", 1)[0]) for _, shown in _options(alts)]  # "'text'   (score s)"
    assert len(texts) >= 2 and texts[0] == "bad cab" and [v for v, _ in _options(alts)] == texts
    assert _fix(at).value == texts[0]
    _choose(at, alts, texts[1])
    assert _checked(_groups(at, "Alternatives")[0]) == texts[1]
    assert _fix(at).value == texts[1]


# ---------------------------------------------------------------- page mode
PAGE = [("bad cab", 1000), ("ace", 4)]  # (text, seed): lines the tiny model reads


def page_strokes(lines=PAGE, pitch: float = 250.0) -> list[dict]:
    """Synthetic lines one under another (`pitch` apart, written a minute apart), as the canvas sends them."""
    out = []
    for i, (text, seed) in enumerate(lines):
        for s in canvas_strokes(text, seed=seed):
            for p in s["points"]:
                p[1] += i * pitch
                p[2] += i * 60_000.0
            out.append(s)
    return out


def _page_mode(app):
    at = app.run()
    at.radio(key="mode").set_value("Page").run()
    assert not at.exception and "Write lines" in _result_text(at)
    return at


def _page_lines(at) -> list[str]:
    return ["".join(e.itertext()) for e in _result(at) if e.get("class") == "hwr-line"]


@pytest.mark.slow
def test_app_page_mode_reads_lines_and_saves_one_sample_per_line(app, tmp_path):
    at = _page_mode(app)
    strokes = page_strokes()
    at.session_state["strokes"] = strokes
    at.run()
    assert not at.exception
    assert _page_lines(at) == ["bad cab", "ace"]
    assert _result(at).get("data-lines") == "2"
    fix = _fix(at)
    assert fix.value == "bad cab\nace"
    fix.set_value("bad cab\nacc").run()
    at.button(key="save").click().run()
    assert not at.exception
    with Store(tmp_path / "data" / "feedback.h5") as s:
        saved = sorted((s[i].text, len(s[i].ink)) for i in range(len(s)))
    first = len(canvas_strokes("bad cab", seed=1000))
    assert saved == [("acc", len(strokes) - first), ("bad cab", first)]
    # a correction that loses a line is refused, not saved under the wrong ink
    _fix(at).set_value("bad cab ace").run()
    at.button(key="save").click().run()
    assert any("Not saved" in i.value for i in at.info)
    with Store(tmp_path / "data" / "feedback.h5") as s:
        assert len(s) == 2


@pytest.mark.slow
def test_app_page_reads_only_the_line_that_changed(app, monkeypatch):
    """The tab's LineCache: a stroke on the second line runs the network on that line alone."""
    from hwr.recognizer import Recognizer
    read = []  # lines on their way to the network (features are made for uncached lines only)
    real = Recognizer.features
    monkeypatch.setattr(Recognizer, "features", lambda self, ink: read.append(ink.num_points) or real(self, ink))
    at = _page_mode(app)
    read.clear()  # the recognizer's warm-up on loading
    strokes = page_strokes()
    at.session_state["strokes"] = strokes[:-1]
    at.run()
    assert len(read) == 2 and len(_page_lines(at)) == 2
    read.clear()
    at.session_state["strokes"] = strokes  # the last stroke of "ace"
    at.run()
    assert len(read) == 1 and _page_lines(at) == ["bad cab", "ace"]


@pytest.mark.slow
def test_app_page_word_alternatives_fill_the_correction_box(app, monkeypatch):
    """Each word offers its alternatives; a pick replaces that word in the correction text and
    stays picked while another line changes."""
    from hwr.recognizer import Recognizer
    real = Recognizer.recognize

    def with_second_reading(self, ink, **kw):  # every word also offered in capitals
        result = real(self, ink, **kw)
        for w in result.words:
            if len(w.alternatives) < 2:
                w.alternatives = [w.alternatives[0], replace(w.alternatives[0], text=w.text.upper(), score=-99.0)]
        return result
    monkeypatch.setattr(Recognizer, "recognize", with_second_reading)
    at = _page_mode(app)
    at.session_state["strokes"] = page_strokes()
    at.run()
    words = _groups(at, "Readings of")
    assert [_checked(g) for g in words] == ["bad", "cab", "ace"] and len(_options(words[2])) == 2
    _choose(at, words[2], "ACE")
    assert _fix(at).value == "bad cab\nACE"
    summaries = [e for e in _view(at).iter() if e.tag == "summary"]
    assert ["".join(e.itertext()) for e in summaries] == ["bad", "cab", "ACE"]  # a word shows its pick
    first = canvas_strokes("bad cab", seed=1000)
    at.session_state["strokes"] = first[:-1] + page_strokes()[len(first):]
    at.run()  # the first line loses a stroke and is read anew; the second line's pick stays
    assert not at.exception
    assert _fix(at).value.endswith("\nACE")


@pytest.mark.slow
def test_app_page_highlights_a_characters_strokes_on_its_line(app):
    from hwr.svg import FADED, HIGHLIGHT
    at = _page_mode(app)
    strokes = page_strokes()
    at.session_state["strokes"] = strokes
    at.run()
    colored = next(e for e in _view(at).iter() if e.get("class") == "hwr-colored")
    chars = {int(e.get("data-value")): e.text for e in colored if e.get("data-value")}
    assert chars[8] == "a" and " " not in chars.values()  # "bad cab\nace": index 8 is the a; spaces no targets
    _choose(at, colored, 8)
    paths = _svg(at).findall("{http://www.w3.org/2000/svg}path")
    lit = [k for k, p in enumerate(paths) if p.get("stroke") == HIGHLIGHT]
    first = len(canvas_strokes("bad cab", seed=1000))
    a_strokes = len(canvas_strokes("a", seed=4))
    assert len(paths) == len(strokes) and lit and set(lit) <= set(range(first, first + a_strokes + 1))
    checked = [e.get("data-value") for e in next(e for e in _view(at).iter() if e.get("class") == "hwr-colored")
               if e.get("aria-checked") == "true"]
    assert checked == ["8"] and any(p.get("stroke") == FADED for p in paths)
    _choose(at, colored, None)  # a second click: all characters again
    assert not [p for p in _svg(at).findall("{http://www.w3.org/2000/svg}path") if p.get("stroke") == FADED]
