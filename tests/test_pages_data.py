"""Pages (several lines in one ink): composing them, keeping each stroke's line in the store,
exact round trips of multi-line labels, the IAM-OnDB --pages import and the page metrics."""

import io
import json
import tarfile

import h5py
import numpy as np
import pytest
from conftest import SHARED, needs_shared, synthetic_line

from hwr.cli import main as hwr_main
from hwr.errors import ConfigError, InputError
from hwr.exporters import export_store, ink_to_inkml
from hwr.importers import import_to_store
from hwr.importers.inkml import parse_inkml
from hwr.ink import Ink, InkError, Stroke
from hwr.metrics import line_count_right, page_cer, page_summary, segmentation_errors
from hwr.pages import compose_page, form_pages
from hwr.store import Sample, Store, StoreError, StoreWriter

T0 = 1_156_502_745_000.0  # an absolute whiteboard clock in ms: the page must keep it exactly


def line_ink(text: str, row: int, t0: float, seed: int = 0) -> Ink:
    """A synthetic line written `row` lines down the page, starting at absolute time t0; integer
    coordinates (as IAM-OnDB's), so the store's float32 keeps them exactly."""
    ink = synthetic_line(text, t0=t0, seed=seed)[0]
    for s in ink.strokes:
        s.points[:, 1] += 150.0 * row
        s.points[:, :2] = np.round(s.points[:, :2])
    return ink


def page_lines() -> list[Ink]:
    """Three lines; the first gets a late stroke (an i-dot) written after line 2 began."""
    lines = [line_ink("ab", 0, T0), line_ink("cd", 1, T0 + 5_000, seed=1), line_ink("ef", 2, T0 + 9_000, seed=2)]
    dot = np.array([[5.0, -20.0, T0 + 5_120, np.nan], [6.0, -21.0, T0 + 5_130, np.nan]])
    lines[0].strokes.append(Stroke(dot, "pen"))
    return lines


# ---------------------------------------------------------------- compose_page
def test_compose_page_interleaves_by_time_and_keeps_each_strokes_line():
    lines = page_lines()
    page, owner = compose_page(lines)
    n = [len(x.strokes) for x in lines]
    assert page.text == "ab\ncd\nef"
    assert len(page.strokes) == len(owner) == sum(n)
    starts = [s.points[0, 2] for s in page.strokes]
    assert starts == sorted(starts)
    # the late dot of line 0 comes between line 1's first two strokes, and keeps its line
    dot = [k for k, s in enumerate(page.strokes) if s.points[0, 2] == T0 + 5_120]
    assert len(dot) == 1 and owner[dot[0]] == 0
    assert owner[:n[0] - 1].tolist() == [0] * (n[0] - 1) and owner[dot[0] - 1] == owner[dot[0] + 1] == 1
    # per line, the page holds exactly that line's strokes, in order, at their absolute coordinates
    for k, ink in enumerate(lines):
        mine = [s.points for s, o in zip(page.strokes, owner) if o == k]
        assert len(mine) == len(ink.strokes)
        for a, b in zip(mine, ink.strokes):
            np.testing.assert_array_equal(a, b.points)
    page.validate()
    # strokes are copies: repairing or editing the page leaves the line inks alone
    page.strokes[0].points[0, 0] = -999.0
    assert lines[0].strokes[0].points[0, 0] != -999.0


def test_compose_page_labels_and_untimed_ink():
    lines = page_lines()
    page, _ = compose_page(lines, [" lead", "trail ", ""])
    assert page.text == " lead\ntrail \n"
    untimed = [synthetic_line(t, with_time=False, seed=i)[0] for i, t in enumerate(["xy", "z"])]
    page, owner = compose_page(untimed[::-1])  # untimed: line order, whatever it is
    assert owner.tolist() == [0] * len(untimed[1].strokes) + [1] * len(untimed[0].strokes)
    assert page.text == "z\nxy"
    unlabelled = [Ink(x.strokes) for x in lines]
    assert compose_page(unlabelled)[0].text is None


@pytest.mark.parametrize("lines, texts, match", [
    ([], None, "at least one line"),
    ([synthetic_line("a")[0], Ink([], "b")], None, "line 1 of the page has no strokes"),
    ([synthetic_line("a")[0]], ["a", "b"], "2 texts for 1 line"),
    ([synthetic_line("a")[0], Ink(synthetic_line("b")[0].strokes)], None, "line 1 of the page has no label"),
    ([synthetic_line("a")[0]], ["a\nb"], "holds a newline"),
    ([synthetic_line("a")[0], synthetic_line("b", with_time=False)[0]], None, "timed and some are not"),
])
def test_compose_page_refuses_bad_input(lines, texts, match):
    with pytest.raises(InputError, match=match):
        compose_page(lines, texts)


# ---------------------------------------------------------------- form_pages
def line_samples() -> list[Sample]:
    """Form f01-001 (3 lines, given out of order) and form f01-002 (1 line), as a line store has them."""
    lines = page_lines()
    out = [Sample(ink, id=f"f01-001-{k + 1:02d}", writer="w1", split="trainset", source="iam-ondb")
           for k, ink in enumerate(lines)]
    other = Sample(line_ink("gh", 0, T0 + 50_000, seed=3), id="f01-002-01", writer="w2", split="testset_f",
                   source="iam-ondb")
    return [out[2], other, out[0], out[1]]


def test_form_pages_groups_lines_in_line_order():
    pages = list(form_pages(line_samples()))
    assert [p.id for p in pages] == ["f01-001", "f01-002"]
    p = pages[0]
    assert (p.text, p.writer, p.split, p.source) == ("ab\ncd\nef", "w1", "trainset", "iam-ondb")
    expected, owner = compose_page(page_lines())
    np.testing.assert_array_equal(p.stroke_lines, owner)
    np.testing.assert_array_equal(p.ink.points(), expected.points())
    assert pages[1].text == "gh" and pages[1].stroke_lines.tolist() == [0] * len(pages[1].ink.strokes)


def test_form_pages_leaves_out_incomplete_forms_and_says_why():
    samples = line_samples()
    no_line_2 = [s for s in samples if s.id != "f01-001-02"]
    skipped = []
    pages = list(form_pages(no_line_2, on_skip=lambda form, why: skipped.append((form, why))))
    assert [p.id for p in pages] == ["f01-002"] and skipped == [("f01-001", "line 02 missing")]
    with pytest.raises(InputError, match="form f01-001: line 02 missing"):
        list(form_pages(no_line_2))
    # a missing last line shows only against what the transcription lists
    skipped.clear()
    pages = list(form_pages(samples, {"f01-001": 4}, lambda f, w: skipped.append((f, w))))
    assert [p.id for p in pages] == ["f01-002"] and skipped == [("f01-001", "line 04 missing")]
    samples[2].ink.text = ""
    with pytest.raises(InputError, match="line 01 has no label"):
        list(form_pages(samples))
    with pytest.raises(InputError, match="not a line id"):
        list(form_pages([Sample(synthetic_line("a")[0], id="h01-030")]))


# ---------------------------------------------------------------- the store keeps stroke lines
LABELS = ["first line\nsecond line", "  indented\ntrailing  \n\n\tlast", " edge spaces \n"]


def page_samples() -> list[Sample]:
    out = []
    for i, label in enumerate(LABELS):
        texts = label.split("\n")
        lines = [line_ink("ab", k, T0 + 10_000 * k + 100_000 * i, seed=k) for k in range(len(texts))]
        ink, owner = compose_page(lines, texts)
        out.append(Sample(ink, id=f"p{i}", writer="w", split="test", source="pages", stroke_lines=owner))
    return out


def assert_same(a: Sample, b: Sample) -> None:
    assert a.text == b.text and a.id == b.id
    assert (a.stroke_lines is None) == (b.stroke_lines is None)
    if a.stroke_lines is not None:
        assert a.stroke_lines.tolist() == b.stroke_lines.tolist()
    assert a.ink.stroke_lengths().tolist() == b.ink.stroke_lengths().tolist()
    np.testing.assert_array_equal(a.ink.points(), b.ink.points())


def test_store_round_trips_pages_exactly(tmp_path):
    line = Sample(synthetic_line("plain")[0], id="l0", split="test")
    samples = page_samples()
    with StoreWriter(tmp_path / "p.h5") as w:
        w.add([samples[0], line, *samples[1:]])
    with Store(tmp_path / "p.h5") as s:
        back = list(s)
    assert back[1].stroke_lines is None and back[1].text == "plain"
    for a, b in zip(samples, [back[0], *back[2:]]):
        assert_same(a, b)
        assert b.ink.points()[0, 2] >= T0  # absolute time, as it went in


def test_line_stores_stay_as_they_were_and_gain_stroke_lines_on_append(tmp_path):
    path = tmp_path / "old.h5"
    with StoreWriter(path) as w:
        w.add([Sample(synthetic_line("ab")[0], id="l0"), Sample(synthetic_line("cd", seed=1)[0], id="l1")])
    with h5py.File(path, "r") as f:
        assert "stroke_line" not in f  # a store of lines is what it always was
    with Store(path) as s:
        assert [x.stroke_lines for x in s] == [None, None]
        old_strokes = int(s.sample_offsets[-1])
    page = page_samples()[0]
    with StoreWriter(path, mode="a") as w:
        w.add([page])
    with h5py.File(path, "r") as f:
        assert f["stroke_line"].shape == (old_strokes + len(page.ink.strokes),)
        assert (f["stroke_line"][:old_strokes] == -1).all()
    with Store(path) as s:
        assert s[0].stroke_lines is None and s[1].stroke_lines is None
        assert_same(page, s[2])


def test_a_stroke_line_left_short_by_an_older_writer_reads_as_unknown(tmp_path):
    path = tmp_path / "p.h5"
    with StoreWriter(path) as w:
        w.add(page_samples()[:1])
    line = Sample(synthetic_line("ab")[0], id="l0")
    with StoreWriter(path, mode="a") as w:
        w.add([line])
    with h5py.File(path, "a") as f:  # what an hwr that predates stroke_line would have left
        n = len(f["stroke_line"]) - len(line.ink.strokes)
        f["stroke_line"].resize(n, axis=0)
    with Store(path) as s:
        assert s[1].stroke_lines is None and s[0].stroke_lines is not None
    page = page_samples()[1]
    with StoreWriter(path, mode="a") as w:  # appending pads the gap first: page 2 keeps its own lines
        w.add([page])
    with Store(path) as s:
        assert s[1].stroke_lines is None
        assert_same(page, s[2])
    with h5py.File(path, "a") as f:
        f["stroke_line"].resize(len(f["stroke_line"]) + 1, axis=0)
    with pytest.raises(StoreError, match="stroke_line has"):
        Store(path)


@pytest.mark.parametrize("make, match", [
    (lambda n: np.zeros(n - 1, np.int32), "one integer per stroke"),
    (lambda n: np.zeros(n), "one integer per stroke"),
    (lambda n: np.full(n, -2), "line indices from 0"),
])
def test_sample_validate_refuses_bad_stroke_lines(make, match):
    s = page_samples()[0]
    s.stroke_lines = make(len(s.ink.strokes))
    with pytest.raises(InkError, match=match):
        s.validate()


# ---------------------------------------------------------------- JSON and InkML round trips
def test_json_round_trip_of_multi_line_labels():
    for s in page_samples():
        back = Ink.from_json(s.ink.to_json())
        assert back.text == s.text
        np.testing.assert_array_equal(back.points(), s.ink.points())


def test_jsonl_export_and_import_keep_pages(tmp_path):
    with StoreWriter(tmp_path / "p.h5") as w:
        w.add(page_samples())
    export_store(tmp_path / "p.h5", "jsonl", tmp_path / "p.jsonl")
    rows = [json.loads(x) for x in (tmp_path / "p.jsonl").read_text().splitlines()]
    assert [r["text"] for r in rows] == LABELS
    import_to_store("json", [tmp_path / "p.jsonl"], tmp_path / "back.h5", progress=False)
    with Store(tmp_path / "p.h5") as a, Store(tmp_path / "back.h5") as b:
        for x, y in zip(a, b):
            assert_same(x, y)


def test_json_import_checks_stroke_lines_and_keeps_them_through_a_time_sort(tmp_path):
    s = page_samples()[0]
    obj = s.ink.to_json_dict()
    n = len(obj["strokes"])
    bad = [dict(obj, stroke_lines=[0] * (n - 1)), dict(obj, stroke_lines=[0.5] * n),
           dict(obj, stroke_lines=[True] * n), dict(obj, stroke_lines="0")]
    (tmp_path / "bad.jsonl").write_text("".join(json.dumps(b) + "\n" for b in bad))
    (tmp_path / "ok.json").write_text(json.dumps(dict(obj, stroke_lines=s.stroke_lines.tolist())))
    rep = import_to_store("json", [tmp_path], tmp_path / "j.h5", progress=False)
    assert rep.imported == 1 and sum(rep.skipped.values()) == 4
    # strokes given out of time order and sorted on import carry their lines with them
    swapped = dict(obj, strokes=obj["strokes"][::-1], stroke_lines=s.stroke_lines[::-1].tolist())
    (tmp_path / "swapped.json").write_text(json.dumps(swapped))
    import_to_store("json", [tmp_path / "swapped.json"], tmp_path / "s.h5", progress=False, repair_time="sort")
    with Store(tmp_path / "s.h5") as st:
        assert_same(s, Sample(st[0].ink, id=s.id, stroke_lines=st[0].stroke_lines))


@pytest.mark.parametrize("label", LABELS + ["one", " lead", "trail ", " ", "a\n", "\nb", "tab\there"])
def test_inkml_round_trip_keeps_newlines_and_edge_spaces(label):
    ink = synthetic_line("ab")[0]
    ink.text = label
    back = parse_inkml(ink_to_inkml(ink, "id 1", " writer "))[0]
    assert back[0].text == label and back[1]["writer"] == " writer "
    np.testing.assert_array_equal(back[0].points(), ink.points())


def test_inkml_refuses_a_carriage_return_it_would_turn_into_a_newline():
    ink = synthetic_line("ab")[0]
    ink.text = "a\r\nb"
    with pytest.raises(InkError, match="U\\+000D"):
        ink_to_inkml(ink)


def test_pretty_printed_inkml_labels_are_still_stripped():
    doc = '<ink><annotation type="truth">\n    two\n    lines\n  </annotation><trace>1 2, 3 4</trace></ink>'
    assert parse_inkml(doc)[0][0].text == "two\n    lines"


def test_inkml_export_and_import_of_a_page_store(tmp_path):
    with StoreWriter(tmp_path / "p.h5") as w:
        w.add(page_samples())
    n, refused = export_store(tmp_path / "p.h5", "inkml", tmp_path / "out")
    assert (n, refused) == (len(LABELS), [])
    import_to_store("inkml", [tmp_path / "out"], tmp_path / "back.h5", progress=False)
    with Store(tmp_path / "p.h5") as a, Store(tmp_path / "back.h5") as b:
        for x, y in zip(a, b):
            assert y.text == x.text and y.writer == x.writer
            assert y.stroke_lines is None  # InkML carries the label, not the line of each stroke
            np.testing.assert_array_equal(y.ink.points(), x.ink.points())


# ---------------------------------------------------------------- IAM-OnDB --pages
IAM_FORMS = {  # form id -> (CSR lines, line files present)
    "a01-000u": (["A MOVE to stop", "Mr . Gaitskell", "from nominating"], [1, 2, 3]),
    "a01-000x": (["other form"], [1]),
    "a01-001": (["line one", "line two", "line three"], [1, 3]),  # line 02's file is missing
    "a01-002": (["only one CSR line"], [1, 2]),  # line 02 has no transcription
}


def _iam_xml(row: int, t0_s: float, seed: int) -> bytes:
    ink = line_ink("ab", row, 0.0, seed)
    parts = ["<WhiteboardCaptureSession><StrokeSet>"]
    for s in ink.strokes:
        parts.append("<Stroke>")
        for x, y, t, _ in s.points:
            parts.append(f'<Point x="{x:.0f}" y="{y:.0f}" time="{t0_s + t / 1000:.3f}"/>')
        parts.append("</Stroke>")
    parts.append("</StrokeSet></WhiteboardCaptureSession>")
    return "".join(parts).encode()


def iam_download(tmp_path):
    files = {}
    for f, (csr, present) in IAM_FORMS.items():
        d = f"{f[:3]}/{f[:7]}"
        files[f"ascii/{d}/{f}.txt"] = ("OCR:\n\nx\n\nCSR:\n\n" + "\n".join(csr) + "\n").encode()
        for k in present:  # a form's lines are written one after another on the whiteboard's clock
            files[f"lineStrokes/{d}/{f}-{k:02d}.xml"] = _iam_xml(k - 1, 769.0 + 10 * k, k)
    for part in ("lineStrokes", "ascii"):
        with tarfile.open(tmp_path / f"{part}-all.tar.gz", "w:gz") as tar:
            for name, data in sorted(files.items(), reverse=True):  # archive order is not line order
                if name.startswith(part + "/"):
                    info = tarfile.TarInfo(name)
                    info.size = len(data)
                    tar.addfile(info, io.BytesIO(data))
    splits = tmp_path / "splits"
    splits.mkdir()
    (splits / "trainset.txt").write_text("a01-000u\na01-001\na01-002\n")
    (splits / "testset_f.txt").write_text("a01-000x\n")
    return [tmp_path / "lineStrokes-all.tar.gz", tmp_path / "ascii-all.tar.gz"], splits


def test_iam_ondb_pages_import(tmp_path):
    sources, splits = iam_download(tmp_path)
    rep = import_to_store("iam-ondb", sources, tmp_path / "lines.h5", splits_dir=splits, progress=False)
    assert rep.imported == 7  # lines: all but a01-002-02 (no CSR line)
    rep = import_to_store("iam-ondb", sources, tmp_path / "pages.h5", splits_dir=splits, progress=False,
                          pages=True)
    assert rep.imported == 2 and rep.splits == {"trainset": 1, "testset_f": 1}
    notes = "\n".join(rep.lines())
    assert "a01-001 (line 02 missing)" in notes
    assert "a01-002 (line 02: no usable transcription" in notes
    assert "2 pages made of 4 lines" in notes
    with Store(tmp_path / "pages.h5") as p, Store(tmp_path / "lines.h5") as lines:
        assert [s.id for s in p] == ["a01-000u", "a01-000x"]
        page = p[0]
        assert page.text == "A MOVE to stop\nMr . Gaitskell\nfrom nominating" and page.split == "trainset"
        by_id = {s.id: s for s in lines}
        for k in range(3):  # each line's strokes, at the same absolute times and places as the line store's
            mine = np.concatenate([s.points for s, o in zip(page.ink.strokes, page.stroke_lines) if o == k])
            np.testing.assert_array_equal(mine, by_id[f"a01-000u-{k + 1:02d}"].ink.points())
        assert np.all(np.diff(page.stroke_lines) >= 0)  # lines written one after another


def test_pages_is_refused_for_formats_without_pages(tmp_path, capsys):
    (tmp_path / "a.json").write_text(synthetic_line("a")[0].to_json())
    assert hwr_main(["data", "import", "json", str(tmp_path / "a.json"), "--out", str(tmp_path / "x.h5"),
                     "--pages"]) == 2
    err = capsys.readouterr().err
    assert "--pages works with iam-ondb only" in err and err.count("\n") == 1
    assert not (tmp_path / "x.h5").exists()


@needs_shared
@pytest.mark.slow
@pytest.mark.shared_data
def test_real_iam_ondb_pages(tmp_path):
    src = SHARED / "iam-ondb"
    rep = import_to_store("iam-ondb", [src / "lineStrokes-all.tar.gz", src / "ascii-all.tar.gz"],
                          tmp_path / "pages.h5", splits_dir=src / "splits", progress=False, pages=True)
    assert rep.imported == 1727
    assert rep.splits == {"": 1, "trainset": 774, "testset_v": 192, "testset_t": 216, "testset_f": 544}
    assert "1,727 pages made of 12,177 lines" in "\n".join(rep.lines())
    with Store(tmp_path / "pages.h5") as s:
        page = s[s.meta["id"].index("a01-000u")]
        assert page.text.split("\n")[:2] == ["A MOVE to stop Mr . Gaitskell", "from nomnating any more Labour"]
        assert page.stroke_lines.max() + 1 == len(page.text.split("\n"))


# ---------------------------------------------------------------- page metrics
def test_page_cer_counts_newlines_as_characters_or_spaces():
    refs, hyps = ["ab\ncd", "xyz"], ["ab cd", "xyz"]
    assert page_cer(refs, hyps) == pytest.approx(1 / 8)  # "\n" -> " " is one substitution in 8 characters
    assert page_cer(refs, hyps, newlines="space") == 0.0
    assert page_cer(["ab\ncd"], ["abcd"]) == pytest.approx(1 / 5)  # a lost line break is a deletion
    assert page_cer(["ab\ncd"], ["abcd"], newlines="space") == pytest.approx(1 / 5)
    with pytest.raises(ConfigError, match="'char' or 'space'"):
        page_cer(refs, hyps, newlines="drop")


def test_line_count_right():
    assert line_count_right("a\nb", "x\ny")
    assert not line_count_right("a\nb", "a b")
    assert line_count_right("a\n", "b\nc")  # an empty last line is a line
    assert line_count_right("", "x")


def test_segmentation_errors_match_lines_by_order_when_counts_agree():
    truth = np.array([0, 0, 1, 1, 1, 2])
    assert segmentation_errors(truth, [[0, 1], [2, 3, 4], [5]]) == 0
    assert segmentation_errors(truth, [[0], [1, 2, 3, 4], [5]]) == 1
    # lines 0 and 2 swapped: matched by order, their 3 strokes are on wrong lines
    assert segmentation_errors(truth, [[5], [2, 3, 4], [0, 1]]) == 3
    assert segmentation_errors(truth, [[0, 1], [2, 3], [5]]) == 1  # stroke 4 on no line
    assert segmentation_errors(np.array([0, -1, 1]), [[0, 1], [2]]) == 0  # unknown strokes are not counted


def test_segmentation_errors_match_greedily_when_counts_differ():
    truth = np.array([0, 0, 0, 1, 1, 1, 2, 2])
    assert segmentation_errors(truth, [list(range(8))]) == 5  # all merged: only line 0 (3 strokes) is right
    assert segmentation_errors(truth, [[0, 1, 2, 3, 4, 5], [6, 7]]) == 3  # lines 0+1 merged
    assert segmentation_errors(truth, [[0, 1], [2], [3, 4, 5], [6, 7]]) == 1  # line 0 split
    # greedy takes the largest overlap first, whatever the order of the predicted lines:
    # stroke 3 rides with line 0, strokes 4 and 5 are on no line
    assert segmentation_errors(truth, [[6, 7], [0, 1, 2, 3]]) == 3
    assert segmentation_errors(np.array([], np.int64), []) == 0


@pytest.mark.parametrize("predicted, match", [
    ([[0, 1], [1]], "stroke 1 is on predicted lines 0 and 1"),
    ([[0, 3]], "holds stroke 3, but the page has 3 strokes"),
    ([[0, -1]], "holds stroke -1"),
    ([[0.0]], "holds stroke 0.0"),
])
def test_segmentation_errors_refuse_bad_predictions(predicted, match):
    with pytest.raises(InputError, match=match):
        segmentation_errors(np.array([0, 0, 1]), predicted)


def test_page_summary():
    s = page_summary(["ab\ncd", "x"], ["ab cd", "x"], [np.array([0, 0, 1, 1]), None], [[[0, 1], [3]], [[0]]])
    assert s["pages"] == 2 and s["line_count_right"] == 0.5
    assert s["cer"] == pytest.approx(1 / 6) and s["cer_newline_as_space"] == 0.0
    assert (s["segmentation_errors"], s["segmented_strokes"]) == (1, 4)  # the None page is left out
    assert s["segmentation_error_rate"] == 0.25
    assert "segmentation_errors" not in page_summary(["a"], ["a"])
    with pytest.raises(InputError):
        page_summary(["a"], [])


# ---------------------------------------------------------------- evaluate on pages
class PageReader:
    """Stands in for a Recognizer with the page contract (`.text`, `.lines[j].strokes`): it reads
    each page's lines right, but on page p0 puts one stroke on the next line, and reads page p1 as
    one line (its text with spaces for newlines)."""

    def __init__(self, store):
        from hwr.decode import DecoderConfig
        self.decoder_config, self.info = DecoderConfig(), {"path": "stub"}
        with Store(store) as s:
            self.truth = {x.ink.digest(): x for x in s}

    def recognize(self, inks, decoder=None, spans=True, layout="page"):
        assert layout == "page", "a store of pages is read page by page"
        from types import SimpleNamespace as NS
        out = []
        for ink in inks:
            page = self.truth[ink.digest()]
            cut = [np.flatnonzero(page.stroke_lines == k).tolist() for k in range(page.stroke_lines.max() + 1)]
            text = page.text
            if page.id == "p0":
                cut[1].insert(0, cut[0].pop())
            if page.id == "p1":
                cut, text = [sorted(sum(cut, []))], text.replace("\n", " ")
            out.append(NS(text=text, lines=[NS(text="", strokes=c) for c in cut]))
        return out


def test_evaluate_reports_page_metrics(tmp_path):
    from hwr.evaluate import evaluate, format_summary
    with StoreWriter(tmp_path / "p.h5") as w:
        w.add(page_samples())
    s = evaluate(tmp_path / "p.h5", PageReader(tmp_path / "p.h5"), progress=False, report=tmp_path / "r.jsonl")
    p = s["page"]
    assert p["pages"] == 3 and p["line_count_right"] == pytest.approx(2 / 3)
    newlines = LABELS[1].count("\n")
    assert p["cer"] == pytest.approx(newlines / sum(map(len, LABELS))) and p["cer_newline_as_space"] == 0.0
    p1 = page_samples()[1].stroke_lines  # read as one line: only its biggest true line is right
    assert p["segmentation_errors"] == 1 + len(p1) - np.bincount(p1).max()
    assert p["segmented_strokes"] == sum(len(x.stroke_lines) for x in page_samples())
    rows = {r["id"]: r for r in map(json.loads, (tmp_path / "r.jsonl").read_text().splitlines())}
    assert rows["p0"]["segmentation_errors"] == 1 and rows["p2"]["segmentation_errors"] == 0
    assert [rows[k]["line_count_right"] for k in ("p0", "p1", "p2")] == [True, False, True]
    text = format_summary(s)
    assert "on 3 pages" in text and "the right number of lines in 66.7% of pages" in text
