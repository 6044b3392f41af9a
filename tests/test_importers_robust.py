"""Issue 12 for the InkML and JSON readers: unique ids, one bad file never stops the others,
real third-party InkML label conventions, and fuzzing (Hypothesis) of both readers.

Every fixture is written here; nothing is downloaded.
"""

import codecs
import json
import math
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import synthetic_line
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hwr.exporters import ink_to_inkml
from hwr.importers import DataImportError, Report, import_to_store
from hwr.importers import inkml as inkml_reader
from hwr.importers import jsonink as json_reader
from hwr.importers.inkml import parse_inkml
from hwr.ink import Ink, InkError
from hwr.store import Store
from hwr.transcribe import iter_inputs

GOOD_INKML = '<ink><annotation type="truth">ok</annotation><trace>1 2, 3 4, 5 5</trace></ink>'
GOOD_GROUPED = ('<ink><traceGroup><annotation type="truth">ok</annotation><trace>1 2, 3 4, 5 5</trace>'
                '</traceGroup></ink>')


def _write(root: Path, files: dict) -> Path:
    for name, data in files.items():
        p = root / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data if isinstance(data, bytes) else data.encode("utf-8"))
    return root


def _ink_json(text="ab", seed=0, **extra) -> dict:
    return {**synthetic_line(text, seed=seed)[0].to_json_dict(), **extra}


def _import(fmt, sources, out, **options):
    return import_to_store(fmt, sources, out, progress=False, **options)


def _ids(store) -> list[str]:
    with Store(store) as s:
        return list(s.meta["id"])


def _skip_lines(rep: Report) -> list[str]:
    return [line for line in rep.lines() if line.startswith("skipped")]


# ---------------------------------------------------------------- 1. unique, stable ids
def test_ids_are_paths_inside_the_input_root_like_transcribe(tmp_path):
    doc = ink_to_inkml(synthetic_line("ab")[0])
    root = _write(tmp_path / "a", {"writer1/sentence1.inkml": doc, "writer2/sentence1.inkml": doc,
                                   "sentence1.inkml": doc})
    _import("inkml", [root], tmp_path / "x.h5")
    assert sorted(_ids(tmp_path / "x.h5")) == ["sentence1.inkml", "writer1/sentence1.inkml",
                                               "writer2/sentence1.inkml"]
    assert sorted(_ids(tmp_path / "x.h5")) == sorted(i for i, _, _ in iter_inputs([str(root)]))
    with Store(tmp_path / "x.h5") as s:  # the writer only in the folder name
        assert {x.id: x.writer for x in s}["writer2/sentence1.inkml"] == "writer2"
    given_file = str(root / "writer1" / "sentence1.inkml")
    _import("inkml", [given_file], tmp_path / "y.h5")
    assert _ids(tmp_path / "y.h5") == [given_file]  # a file given directly: its name as given

    lines = [json.dumps(_ink_json(seed=i)) for i in range(2)]
    root = _write(tmp_path / "j", {"w1/s.jsonl": "\n".join(lines) + "\n", "w2/s.jsonl": "\n\n" + lines[0],
                                   "w1/one.json": json.dumps(_ink_json())})
    _import("json", [root], tmp_path / "j.h5")
    expected = ["w1/one.json", "w1/s.jsonl#0", "w1/s.jsonl#1", "w2/s.jsonl#2"]
    assert sorted(_ids(tmp_path / "j.h5")) == expected
    assert sorted(i for i, _, _ in iter_inputs([str(root)])) == expected


def test_groups_get_index_suffixes_and_duplicate_ids_are_reported(tmp_path):
    doc = ink_to_inkml(synthetic_line("ab")[0])
    a = _write(tmp_path / "a", {"x.inkml": doc, "g.inkml": CORPUS_PARAGRAPH})
    b = _write(tmp_path / "b", {"x.inkml": doc})
    rep = _import("inkml", [a, b], tmp_path / "o.h5")
    assert sorted(_ids(tmp_path / "o.h5")) == ["g.inkml", "x.inkml"]
    assert rep.imported == 2 and sum(rep.skipped.values()) == 1
    assert "duplicate id 'x.inkml'" in _skip_lines(rep)[0]
    _import("inkml", [a], tmp_path / "g.h5", groups=True)
    assert [i for i in _ids(tmp_path / "g.h5") if i.startswith("g.inkml")] == [f"g.inkml#{k}" for k in range(3)]

    same = json.dumps(_ink_json(id="dup"))
    root = _write(tmp_path / "j", {"a.jsonl": f"{same}\n{same}\n{same}\n", "b.json": same})
    rep = _import("json", [root], tmp_path / "j.h5")
    assert rep.imported == 1 and sum(rep.skipped.values()) == 3
    lines = _skip_lines(rep)
    assert len(lines) == 2 and all("duplicate id 'dup'" in line for line in lines)  # one line per file


# ---------------------------------------------------------------- 2. one bad file never stops the others
GOOD_JSON = json.dumps(_ink_json("ok"))
DEEP = "[" * 100_000 + "]" * 100_000
BAD_JSON = {
    "latin1.json": GOOD_JSON.replace('"ok"', '"caf\u00e9"').encode("latin-1"),
    "utf16_no_bom.json": GOOD_JSON.encode("utf-16-le"),
    "deep.json": DEEP,
    "deep_in_ink.json": GOOD_JSON.replace('"text"', '"deep": ' + DEEP + ', "text"'),
    "nan.json": '{"strokes": [{"points": [[NaN, 1], [2, 3]]}]}',
    "nan_time.json": '{"strokes": [{"points": [[1, 1, NaN], [2, 3, 4]]}]}',
    "infinity.json": '{"strokes": [{"points": [[Infinity, 1], [2, 3]]}]}',
    "huge.json": '{"strokes": [{"points": [[1e999, 1], [2, 3]]}]}',
    "bool.json": '{"strokes": [{"points": [[true, 1], [2, 3]]}]}',
    "units.json": '{"strokes": [{"points": [["12px", 1], [2, 3]]}]}',
    "null_xy.json": '{"strokes": [{"points": [[null, 1], [2, 3]]}]}',
    "long_int.json": '{"strokes": [{"points": [[' + "9" * 5000 + ", 1], [2, 3]]}]}",
    "nul_label.json": '{"strokes": [{"points": [[1, 1], [2, 3]]}], "text": "a\\u0000b"}',
    "ctrl_label.json": '{"strokes": [{"points": [[1, 1], [2, 3]]}], "text": "a\\u001bb"}',
    "surrogate_id.json": '{"strokes": [{"points": [[1, 1], [2, 3]]}], "id": "\\ud800"}',
    "list_writer.json": '{"strokes": [{"points": [[1, 1], [2, 3]]}], "writer": ["w"]}',
    "backwards.json": '{"strokes": [{"points": [[1, 1, 10], [2, 3, 5]]}]}',
    "not_ink.json": "[1, 2, 3]",
}


@pytest.mark.parametrize("name", sorted(BAD_JSON))
def test_a_bad_json_file_is_reported_by_name_and_the_rest_imports(tmp_path, name):
    root = _write(tmp_path / "in", {name: BAD_JSON[name], "good.json": GOOD_JSON})
    rep = _import("json", [root], tmp_path / "o.h5")
    assert rep.imported == 1 and sum(rep.skipped.values()) == 1
    (line,) = _skip_lines(rep)
    assert name in line and "\n" not in line and len(line) < 300


def test_json_encodings_with_a_byte_order_mark_are_read(tmp_path):
    files = {"utf8bom.json": codecs.BOM_UTF8 + GOOD_JSON.encode(),
             "utf16le.json": codecs.BOM_UTF16_LE + GOOD_JSON.encode("utf-16-le"),
             "utf16be.json": codecs.BOM_UTF16_BE + GOOD_JSON.encode("utf-16-be"),
             "utf32.json": GOOD_JSON.encode("utf-32"),
             "lines.jsonl": codecs.BOM_UTF16_LE + (GOOD_JSON + "\r\n" + GOOD_JSON).encode("utf-16-le")}
    rep = _import("json", [_write(tmp_path / "in", files)], tmp_path / "o.h5")
    assert rep.imported == 6 and not rep.skipped


def test_bad_jsonl_lines_give_one_report_line_per_file(tmp_path):
    body = "\n".join([GOOD_JSON, "{nope", '{"strokes": [{"points": [[true, 1]]}]}', json.dumps(_ink_json("k2"))])
    rep = _import("json", [_write(tmp_path / "in", {"a.jsonl": body + "\n" + DEEP})], tmp_path / "o.h5")
    assert rep.imported == 2 and sum(rep.skipped.values()) == 3
    (line,) = _skip_lines(rep)
    assert line.startswith("skipped 3: a.jsonl line 2:") and "2 more" in line


def test_repair_time_is_honoured_and_nothing_imported_is_an_error(tmp_path):
    root = _write(tmp_path / "in", {"backwards.json": BAD_JSON["backwards.json"]})
    with pytest.raises(DataImportError, match="backwards.json: .*time runs backwards"):
        _import("json", [root], tmp_path / "o.h5")
    assert not (tmp_path / "o.h5").exists()
    assert _import("json", [root], tmp_path / "o.h5", repair_time="clamp").imported == 1


def _view_doc(views: str, trace: str = "1 2, 3 4, 5 6") -> str:
    return (f'<ink><trace xml:id="t1">{trace}</trace><traceGroup xml:id="g1">'
            f'<annotation type="truth">w</annotation>{views}</traceGroup></ink>')


BAD_INKML = {
    "unknown_ref.inkml": _view_doc('<traceView traceDataRef="#nope"/>'),
    "self_ref.inkml": _view_doc('<traceView traceDataRef="#g1"/>'),
    "bad_range.inkml": _view_doc('<traceView traceDataRef="#t1" from="x" to="2"/>'),
    "out_of_range.inkml": _view_doc('<traceView traceDataRef="#t1" from="2" to="9"/>'),
    "units.inkml": _view_doc('<traceView traceDataRef="#t1"/>', trace="12px 30, 14 31"),
    "nan.inkml": _view_doc('<traceView traceDataRef="#t1"/>', trace="NaN 3, 4 5"),
    "nel_label.inkml": _view_doc('<traceView traceDataRef="#t1"/>').replace(">w<", ">a\u0085b<"),
    "nul_label.inkml": _view_doc('<traceView traceDataRef="#t1"/>').replace(">w<", ">a&#0;b<"),
    "no_xy.inkml": '<ink><traceFormat><channel name="T"/></traceFormat><trace>1, 2</trace></ink>',
    "utf7.inkml": '<?xml version="1.0" encoding="utf-7"?>' + GOOD_INKML,
    "unknown_encoding.inkml": '<?xml version="1.0" encoding="nonesuch"?>' + GOOD_INKML,
}


@pytest.mark.parametrize("groups", [False, True])
@pytest.mark.parametrize("name", sorted(BAD_INKML))
def test_a_bad_inkml_file_is_reported_by_name_and_the_rest_imports(tmp_path, name, groups):
    root = _write(tmp_path / "in", {name: BAD_INKML[name], "good.inkml": GOOD_GROUPED})
    rep = _import("inkml", [root], tmp_path / "o.h5", groups=groups)
    references_only = name.endswith("ref.inkml") or "range" in name
    if references_only and not groups:  # a whole file is its traces; traceViews are not read
        assert rep.imported == 2
        return
    assert rep.imported == 1 and sum(rep.skipped.values()) == 1
    (line,) = _skip_lines(rep)
    assert name in line and "\n" not in line


def test_inkml_nested_100000_deep_neither_crashes_nor_stops_the_import(tmp_path):
    n = 100_000
    deep = ('<ink><trace xml:id="t">1 2, 3 4</trace>' + "<traceGroup>" * n +
            '<annotation type="truth">deep</annotation><traceView traceDataRef="#t"/>' + "</traceGroup>" * n + "</ink>")
    root = _write(tmp_path / "in", {"deep.inkml": deep, "good.inkml": GOOD_GROUPED})
    for groups in (False, True):
        rep = _import("inkml", [root], tmp_path / f"o{groups}.h5", groups=groups)
        assert rep.imported == 2
    with Store(tmp_path / "oTrue.h5") as s:
        assert sorted(x.text for x in s) == ["deep", "ok"]


# ---------------------------------------------------------------- 3. real third-party InkML conventions
# One paragraph per file, the paragraph label on the outermost traceGroup, words in labelled
# groups, traces with plain `id`s referenced without '#', the writer nowhere in the file.
CORPUS_PARAGRAPH = """<?xml version="1.0" encoding="UTF-8"?>
<ink xmlns="http://www.w3.org/2003/InkML">
  <traceFormat>
    <channel name="X" type="decimal"/>
    <channel name="Y" type="decimal"/>
    <channel name="T" type="integer"/>
  </traceFormat>
  <annotation type="Device">Tablet 7</annotation>
  <trace id="0">100 200 0, 102 205 8, 104 211 16</trace>
  <trace id="1">120 200 40, 121 208 48</trace>
  <trace id="2">160 198 90, 165 207 98, 170 210 106</trace>
  <trace id="3">200 200 140, 204 204 148</trace>
  <traceGroup xml:id="paragraph">
    <annotationXML type="Ground truth">
      <label>Hi you all</label>
    </annotationXML>
    <traceGroup xml:id="w1">
      <annotationXML type="Ground truth"><label>Hi</label></annotationXML>
      <traceView traceDataRef="0"/><traceView traceDataRef="1"/>
    </traceGroup>
    <traceGroup xml:id="w2">
      <annotationXML type="Ground truth"><label>you</label></annotationXML>
      <traceView traceDataRef="2"/>
    </traceGroup>
    <traceGroup xml:id="w3">
      <annotationXML type="Ground truth"><label>all</label></annotationXML>
      <traceView traceDataRef="3"/>
    </traceGroup>
  </traceGroup>
</ink>
"""


def test_real_corpus_layout_paragraph_words_and_writer_folder(tmp_path):
    root = _write(tmp_path / "corpus", {"writer042/p01.inkml": CORPUS_PARAGRAPH,
                                        "0043/p02.inkml": CORPUS_PARAGRAPH})
    rep = _import("inkml", [root], tmp_path / "p.h5")
    assert rep.imported == 2 and not rep.skipped
    with Store(tmp_path / "p.h5") as s:
        got = {x.id: (x.text, x.writer, x.ink.num_points) for x in s}
    assert got == {"writer042/p01.inkml": ("Hi you all", "writer042", 10),
                   "0043/p02.inkml": ("Hi you all", "0043", 10)}
    rep = _import("inkml", [root], tmp_path / "w.h5", groups=True)
    with Store(tmp_path / "w.h5") as s:
        words = [(x.id, x.text, x.writer, x.ink.stroke_lengths().tolist()) for x in s]
    assert words[:3] == [("0043/p02.inkml#0", "Hi", "0043", [3, 2]), ("0043/p02.inkml#1", "you", "0043", [3]),
                         ("0043/p02.inkml#2", "all", "0043", [2])]
    assert [w[1] for w in words[3:]] == ["Hi", "you", "all"] and rep.imported == 6


def test_writer_folder_is_looked_for_inside_the_input_only(tmp_path):
    _write(tmp_path / "user7" / "corpus", {"writer042/p.inkml": CORPUS_PARAGRAPH, "p.inkml": CORPUS_PARAGRAPH,
                                           "train/p.inkml": CORPUS_PARAGRAPH})
    corpus = tmp_path / "user7" / "corpus"
    cases = [([corpus], {"p.inkml": "", "train/p.inkml": "", "writer042/p.inkml": "writer042"}),
             ([corpus / "writer042"], {"p.inkml": "writer042"}),  # the folder given is the writer's
             ([str(corpus / "writer042" / "p.inkml")], {str(corpus / "writer042" / "p.inkml"): "writer042"})]
    for k, (sources, expected) in enumerate(cases):
        _import("inkml", sources, tmp_path / f"o{k}.h5")
        with Store(tmp_path / f"o{k}.h5") as s:
            assert {x.id: x.writer for x in s} == expected


@pytest.mark.parametrize("element, kind", [
    ("annotationXML", "Ground truth"), ("annotationXML", "Ground_Truth"), ("annotationXML", "groundTruth"),
    ("annotationXML", "GROUND TRUTH"), ("annotation", "truth"), ("annotation", "Truth"),
    ("annotation", "transcription"), ("annotation", "Ground-Truth"), ("annotation", "ground truth"),
])
def test_label_types_are_read_the_way_real_files_spell_them(element, kind):
    label = "<label>the text</label>" if element == "annotationXML" else "the text"
    doc = f'<ink><{element} type="{kind}">{label}</{element}><trace>1 2, 3 4</trace></ink>'
    assert parse_inkml(doc)[0][0].text == "the text"
    grouped = (f'<ink><trace>1 2, 3 4</trace><traceGroup><{element} type="{kind}">{label}</{element}>'
               f'<trace>5 6, 7 8</trace></traceGroup></ink>')
    assert [i.text for i, _ in parse_inkml(grouped, groups=True)] == ["the text"]
    assert parse_inkml(grouped)[0][0].text == "the text"  # the outermost labelled group's, per file


@pytest.mark.parametrize("annotation", ['<annotation type="writer">w9</annotation>',
                                        '<annotation type="writerID">w9</annotation>',
                                        '<annotation type="Writer_ID">w9</annotation>'])
def test_writer_annotation_wins_over_the_folder(tmp_path, annotation):
    doc = CORPUS_PARAGRAPH.replace('<annotation type="Device">', annotation + '<annotation type="Device">')
    _import("inkml", [_write(tmp_path / "c", {"writer042/p.inkml": doc})], tmp_path / "o.h5")
    with Store(tmp_path / "o.h5") as s:
        assert s[0].writer == "w9" and s[0].text == "Hi you all"


def test_several_outermost_labels_give_no_file_label():
    paragraph_label = '<annotationXML type="Ground truth">\n      <label>Hi you all</label>\n    </annotationXML>'
    assert paragraph_label in CORPUS_PARAGRAPH
    doc = CORPUS_PARAGRAPH.replace(paragraph_label, "")
    ink, _ = parse_inkml(doc)[0]
    assert ink.text is None and len(ink.strokes) == 4  # three word labels: none of them is the file's


# ---------------------------------------------------------------- 4. fuzzing (Hypothesis)
FUZZ = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _import_anything(fmt, files: dict, **options) -> None:
    """Import `files`; it may import or refuse them, each in one line, but never raise else."""
    with tempfile.TemporaryDirectory() as d:
        root = _write(Path(d) / "in", files)
        t0 = time.perf_counter()
        try:
            rep = _import(fmt, [root], Path(d) / "o.h5", **options)
        except DataImportError as e:
            assert "\n" not in str(e)
        else:
            assert all("\n" not in line for line in rep.lines())
            with Store(Path(d) / "o.h5") as s:
                assert len(s) == rep.imported
                for x in s:
                    x.ink.validate()
        assert time.perf_counter() - t0 < 10


scalars = (st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8)
           | st.sampled_from(["12px", "NaN", "1e999", "\x00", "\ud800", "pen"]))
json_values = st.recursive(scalars, lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=6), c,
                                                                                        max_size=4), max_leaves=20)
points = st.lists(st.lists(scalars | st.floats(-1e3, 1e3) | st.integers(-1000, 1000), min_size=1, max_size=5),
                  max_size=6)
ink_like = st.fixed_dictionaries(
    {"strokes": st.lists(st.fixed_dictionaries({"points": points}, optional={"pointer_type": scalars}), max_size=3)},
    optional={"text": scalars, "id": scalars, "writer": scalars, "split": scalars})


@FUZZ
@given(value=json_values | ink_like, line=json_values | ink_like)
def test_fuzz_json_values(value, line):
    files = {"v.json": json.dumps(value, allow_nan=True),
             "v.jsonl": json.dumps(line, allow_nan=True) + "\n" + GOOD_JSON + "\n"}
    _import_anything("json", files)


@FUZZ
@given(pts=points)
def test_fuzz_json_numbers_accepted_only_when_finite_numbers(pts):
    try:
        ink = Ink.from_json_dict({"strokes": [{"points": pts}]})
    except InkError:
        return
    flat = [v for p in pts for v in p]
    assert not any(isinstance(v, (bool, str)) for v in flat)
    assert all(v is None or math.isfinite(v) for v in flat)
    assert np.isfinite(ink.points()[:, :2]).all()


@FUZZ
@given(data=st.binary(max_size=300), prefix=st.sampled_from([b"", b"<ink>", codecs.BOM_UTF16_LE, b'{"strokes":']))
def test_fuzz_arbitrary_bytes(data, prefix):
    _import_anything("json", {"b.json": prefix + data, "b.jsonl": prefix + data})
    _import_anything("inkml", {"b.inkml": prefix + data})
    try:
        parse_inkml(prefix + data)
    except InkError:
        pass


FRAGMENTS = ["<", ">", "&", '"', "'", "#", "0", ",", " ", "-", "1e999", "NaN", "\x85", "&#0;", "12px",
             "<traceGroup>", "</traceGroup>", '<traceView traceDataRef="#w1"/>', '<traceView traceDataRef="2"/>',
             '<annotation type="truth">x</annotation>', '<channel name="X"/>', "<trace>1 2</trace>", 'from="1"']


@FUZZ
@given(edits=st.lists(st.tuples(st.integers(0, len(CORPUS_PARAGRAPH)), st.integers(0, 12),
                                st.sampled_from(FRAGMENTS) | st.text(max_size=3)), min_size=1, max_size=4),
       groups=st.booleans())
def test_fuzz_mutated_inkml(edits, groups):
    doc = CORPUS_PARAGRAPH
    for at, cut, insert in edits:  # delete `cut` characters at `at`, insert a fragment there
        doc = doc[:at] + insert + doc[at + cut:]
    try:
        inks = parse_inkml(doc, groups=groups)
        assert inks and all(isinstance(i, Ink) for i, _ in inks)
    except InkError as e:
        assert "\n" not in str(e)
    _import_anything("inkml", {"writer1/m.inkml": doc, "good.inkml": GOOD_GROUPED}, groups=groups)


def test_reader_generators_report_per_file(tmp_path):
    """The readers themselves (as `hwr transcribe`-style callers use them) go on after a bad file."""
    root = _write(tmp_path / "in", {"a.json": "{", "b.json": GOOD_JSON, "c.inkml": "<ink>", "d.inkml": GOOD_INKML})
    rep = Report()
    assert [s.id for s in json_reader.read([str(root)], rep)] == ["b.json"]
    assert [s.id for s in inkml_reader.read([str(root)], rep)] == ["d.inkml"]
    assert sorted(line.split(": ")[1] for line in _skip_lines(rep)) == ["a.json", "c.inkml"]
