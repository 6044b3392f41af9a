import io
import json
import subprocess
import sys
import tarfile

import numpy as np
import pytest
from conftest import SHARED, needs_shared, synthetic_line

from hwr.exporters import export_store, ink_to_inkml
from hwr.importers import DataImportError, import_to_store
from hwr.importers.inkml import parse_inkml
from hwr.importers.unipen import unescape
from hwr.store import Store

# ---------------------------------------------------------------- IAM-OnDB
FORMS = {  # form id -> lines; h01-030 and h01-030z are different forms (exact id matching)
    "a01-000u": ["A MOVE to stop", "Mr . Gaitskell"],
    "h01-030": ["first line"],
    "h01-030z": ["other form"],
    "z01-000z": None,  # no CSR section at all
}


def _line_xml(seed: int, backwards: bool = False) -> bytes:
    ink = synthetic_line("ab", seed=seed)[0]
    parts = ['<?xml version="1.0" encoding="ISO-8859-1"?>\n<WhiteboardCaptureSession><StrokeSet>']
    for s in ink.strokes:
        parts.append('<Stroke colour="black">')
        times = s.points[:, 2] / 1000 + 769.0
        if backwards:
            times[2] -= 0.5
        for (x, y), t in zip(s.points[:, :2], times):
            parts.append(f'<Point x="{x:.0f}" y="{y:.0f}" time="{t:.2f}"/>')
        parts.append("</Stroke>")
    parts.append("</StrokeSet></WhiteboardCaptureSession>")
    return "".join(parts).encode("latin-1")


def _iam_files():
    files = {}
    for form, lines in FORMS.items():
        d = f"{form[:3]}/{form[:7]}"
        text = "OCR:\n\nsomething\n\n"
        if lines is not None:
            text += "CSR:\n\n" + "\n".join(lines) + "\n"
        files[f"ascii/{d}/{form}.txt"] = text.encode()
        for k in range(1, (len(lines) if lines else 1) + 1 + (1 if form == "a01-000u" else 0)):
            files[f"lineStrokes/{d}/{form}-{k:02d}.xml"] = _line_xml(k, backwards=(form == "h01-030"))
    return files


def _write_tar(path, files, prefix):
    with tarfile.open(path, "w:gz") as tar:
        for name, data in files.items():
            if name.startswith(prefix):
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))


@pytest.fixture
def iam_splits(tmp_path):
    d = tmp_path / "splits"
    d.mkdir()
    (d / "trainset.txt").write_text(" a01-000u\n h01-030\n")
    (d / "testset_f.txt").write_text("h01-030z\n")
    return d


def test_iam_from_tarballs_and_folders_agree(tmp_path, iam_splits):
    files = _iam_files()
    _write_tar(tmp_path / "lineStrokes-all.tar.gz", files, "lineStrokes/")
    _write_tar(tmp_path / "ascii-all.tar.gz", files, "ascii/")
    rep = import_to_store("iam-ondb", [tmp_path / "lineStrokes-all.tar.gz", tmp_path / "ascii-all.tar.gz"],
                          tmp_path / "a.h5", splits_dir=iam_splits, progress=False)
    # a01-000u has an extra XML line without a CSR line; z01-000z has no CSR at all
    assert rep.imported == 4
    assert sum(rep.skipped.values()) == 2
    assert rep.splits == {"trainset": 3, "testset_f": 1}
    folder = tmp_path / "unpacked"
    for name, data in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)
    import_to_store("iam-ondb", [folder], tmp_path / "b.h5", splits_dir=iam_splits, progress=False)
    with Store(tmp_path / "a.h5") as a, Store(tmp_path / "b.h5") as b:
        ta = {s.id: (s.text, s.split, s.ink.num_points) for s in a}
        tb = {s.id: (s.text, s.split, s.ink.num_points) for s in b}
        assert ta == tb
        assert ta["a01-000u-02"][:2] == ("Mr . Gaitskell", "trainset")
        assert ta["h01-030-01"][:2] == ("first line", "trainset")
        assert ta["h01-030z-01"][:2] == ("other form", "testset_f")
        # times are milliseconds; the glitchy clock in h01-030 was clamped, point order kept
        t = a[a.meta["id"].index("h01-030-01")].ink.points()[:, 2]
        assert (np.diff(t) >= 0).all()


def test_iam_missing_parts_is_a_clear_error(tmp_path):
    with pytest.raises(DataImportError, match="lineStrokes"):
        import_to_store("iam-ondb", [tmp_path], tmp_path / "x.h5", progress=False)


@needs_shared
@pytest.mark.slow
@pytest.mark.shared_data
def test_real_iam_ondb_counts(tmp_path):
    src = SHARED / "iam-ondb"
    out = tmp_path / "iam.h5"
    r = subprocess.run([sys.executable, "-m", "hwr.cli", "data", "import", "iam-ondb", str(src / "lineStrokes-all.tar.gz"),
                        str(src / "ascii-all.tar.gz"), "--splits", str(src / "splits"), "--out", str(out)],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "imported 12,187 samples" in r.stdout
    info = json.loads(subprocess.run([sys.executable, "-m", "hwr.cli", "data", "info", str(out), "--json"],
                                     capture_output=True, text=True).stdout)
    assert info["samples"] == 12187
    assert info["splits"] == {"": 9, "trainset": 5363, "testset_v": 1438, "testset_t": 1518, "testset_f": 3859}


# ---------------------------------------------------------------- InkML
INKML_GROUPS = """<?xml version="1.0"?>
<ink xmlns="http://www.w3.org/2003/InkML">
  <traceFormat><channel name="X"/><channel name="Y"/><channel name="T"/></traceFormat>
  <annotation type="writer">w7</annotation>
  <trace xml:id="t1">10 0 0, 11 1 10, 12 3 20</trace>
  <trace xml:id="t2">20 0 30, '1 '1 '10, "0 "1 "0</trace>
  <trace xml:id="t3">40 5 60, 41 6 70</trace>
  <traceGroup>
    <annotation type="truth">hi there</annotation>
    <traceGroup><annotation type="truth">hi</annotation>
      <traceView traceDataRef="#t1"/><traceView traceDataRef="#t2"/></traceGroup>
    <traceGroup><annotationXML type="truth"><label>there</label></annotationXML>
      <traceView traceDataRef="#t3"/></traceGroup>
  </traceGroup>
</ink>"""


def test_inkml_value_syntax_groups_and_trace_views(tmp_path):
    whole = parse_inkml(INKML_GROUPS)
    # the outermost labelled group covers every trace: it is the whole file's label (issue 12, item 13)
    assert len(whole) == 1 and whole[0][0].text == "hi there" and len(whole[0][0].strokes) == 3
    t2 = whole[0][0].strokes[1].points
    # explicit, then first differences, then second differences (velocity 1,1,10 + 0,1,0)
    np.testing.assert_array_equal(t2[:, :3], [[20, 0, 30], [21, 1, 40], [22, 3, 50]])
    groups = parse_inkml(INKML_GROUPS, groups=True)
    assert [g[0].text for g in groups] == ["hi", "there"]
    assert len(groups[0][0].strokes) == 2 and groups[1][0].strokes[0].points[0, 0] == 40
    (tmp_path / "g.inkml").write_text(INKML_GROUPS)
    rep = import_to_store("inkml", [tmp_path], tmp_path / "g.h5", groups=True, split="val", progress=False)
    assert rep.imported == 2
    with Store(tmp_path / "g.h5") as s:
        assert [x.text for x in s] == ["hi", "there"] and s[0].writer == "w7" and s[0].split == "val"


def test_inkml_default_channels_and_annotation_label():
    ink, _ = parse_inkml('<ink><annotation type="transcription">ok</annotation><trace>1 2, 3 4</trace></ink>')[0]
    assert ink.text == "ok" and ink.points()[:, :2].tolist() == [[1, 2], [3, 4]]


def test_inkml_channel_orientation_makes_y_grow_downward():
    """InkML's Y grows downward unless its channel says `orientation="-ve"`; hwr's features expect downward
    (dots and crosses are found above the line), so an upward Y is negated on import."""
    doc = '<ink><traceFormat><channel name="X"/><channel name="Y" orientation="{}"/></traceFormat><trace>1 2, 3 -4</trace></ink>'
    down, _ = parse_inkml(doc.format("+ve"))[0]
    up, _ = parse_inkml(doc.format("-ve"))[0]
    assert down.points()[:, :2].tolist() == [[1, 2], [3, -4]] and up.points()[:, :2].tolist() == [[1, -2], [3, 4]]


BOMB = """<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>
<ink><annotation type="truth">&lol3;</annotation><trace>1 2, 3 4</trace></ink>"""
EXTERNAL = """<?xml version="1.0"?>
<!DOCTYPE ink [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<ink><annotation type="truth">&xxe;</annotation><trace>1 2, 3 4</trace></ink>"""


@pytest.mark.parametrize("doc", [BOMB, EXTERNAL, "<ink><trace>1 2, 3", "<notink/>", "<ink><trace>1 x, y</trace></ink>"])
def test_malicious_or_broken_inkml_is_skipped_and_counted(tmp_path, doc):
    (tmp_path / "bad.inkml").write_text(doc)
    (tmp_path / "good.inkml").write_text('<ink><annotation type="truth">a</annotation><trace>1 2, 3 4</trace></ink>')
    rep = import_to_store("inkml", [tmp_path], tmp_path / "o.h5", progress=False)
    assert rep.imported == 1 and sum(rep.skipped.values()) == 1


def test_iam_xml_with_entities_is_refused(tmp_path):
    from hwr.importers.iam_ondb import parse_line_xml
    with pytest.raises(Exception, match="(?i)entit"):
        parse_line_xml(BOMB.replace("<ink>", "<x>").replace("</ink>", "</x>").encode())


def test_inkml_export_round_trip(tmp_path, small_store):
    export_store(small_store, "inkml", tmp_path / "out")
    import_to_store("inkml", [tmp_path / "out"], tmp_path / "back.h5", progress=False)
    with Store(small_store) as a, Store(tmp_path / "back.h5") as b:
        assert len(a) == len(b)
        for x, y in zip(a, b):
            assert x.text == y.text and x.writer == y.writer
            assert x.ink.stroke_lengths().tolist() == y.ink.stroke_lengths().tolist()
            np.testing.assert_array_equal(x.ink.points(), y.ink.points())


def test_inkml_without_time_or_pressure():
    ink = synthetic_line("ab", with_time=False)[0]
    back = parse_inkml(ink_to_inkml(ink))[0][0]
    np.testing.assert_array_equal(back.points(), ink.points())


# ---------------------------------------------------------------- JSON
def test_json_and_jsonl_import_and_export(tmp_path, small_store):
    export_store(small_store, "jsonl", tmp_path / "x.jsonl")
    with open(tmp_path / "x.jsonl", "a") as f:
        f.write("{not json\n")
    (tmp_path / "one.json").write_text(synthetic_line("solo")[0].to_json())
    rep = import_to_store("json", [tmp_path / "x.jsonl", tmp_path / "one.json"], tmp_path / "j.h5", progress=False)
    assert rep.imported == 5 and sum(rep.skipped.values()) == 1
    with Store(tmp_path / "j.h5") as s:
        assert [x.text for x in s] == ["abc", "cab", "ba", "cc a", "solo"]
        assert s.splits() == {"": 1, "test": 1, "train": 2, "val": 1}


# ---------------------------------------------------------------- UNIPEN
UNIPEN_INC = """.VERSION 1.0
.COORD X Y T
.WRITER_ID writer9
.PEN_DOWN
0 0 0
10 10 10
.PEN_UP
5 5 15
.PEN_DOWN
20 0 20
30 10 30
40 10 40
.PEN_UP
.PEN_DOWN
50 0 50
60 5 60
.PEN_UP
.START_SET
.PEN_DOWN
100 100 100
110 110 110
.PEN_UP
"""
UNIPEN_DATA = """.VERSION 1.0
.INCLUDE con/data/w.dat
.SEGMENT WORD 0 OK "a\\"b"
.SEGMENT WORD 0 BAD "zz"
.SEGMENT TEXT 0 ? "c\\@d\\@"
.SEGMENT CHARACTER 0 OK "q"
.SEGMENT WORD 3 OK "out of range"
.INCLUDE con/data/missing.dat
.SEGMENT WORD 0 OK "lost"
"""


def test_unipen_start_set_includes_escapes_quality(tmp_path):
    root = tmp_path / "unipen"
    (root / "include/con/data").mkdir(parents=True)
    (root / "data/6/con").mkdir(parents=True)
    (root / "include/con/data/w.dat").write_text(UNIPEN_INC)
    (root / "data/6/con/w.dat").write_text(UNIPEN_DATA)
    rep = import_to_store("unipen", [root], tmp_path / "u.h5", progress=False)
    with Store(tmp_path / "u.h5") as s:
        got = [(x.text, x.ink.points()[:, :3].tolist(), x.writer, x.source) for x in s]
    # .START_SET restarted the numbering: component 0 is now the (100, 100) stroke
    assert got == [('a"b', [[100, -100, 100], [110, -110, 110]], "writer9", "unipen:word"),
                   ("cd", [[100, -100, 100], [110, -110, 110]], "writer9", "unipen:text")]
    assert rep.skipped["quality BAD"] == 1
    assert rep.skipped["segment range outside its components"] == 1
    assert rep.skipped["segment in a missing include file"] == 1
    assert any("missing include file: con/data/missing.dat" in n for n in rep.notes)
    assert unescape('c\\@d\\@ \\"x\\" a\\\\b') == 'cd "x" a\\b'
    rep = import_to_store("unipen", [root], tmp_path / "c.h5", levels=["CHARACTER"], progress=False)
    assert rep.imported == 1


def test_unipen_component_numbering_without_start_set(tmp_path):
    root = tmp_path / "u2"
    (root / "include/c").mkdir(parents=True)
    (root / "data/6/c").mkdir(parents=True)
    (root / "include/c/w.dat").write_text(UNIPEN_INC.split(".START_SET")[0])
    (root / "data/6/c/w.dat").write_text(".INCLUDE c/w.dat\n.SEGMENT WORD 0-2 OK \"ab\"\n"
                                         ".SEGMENT WORD 2:1-2:2,3 GOOD \"x\\\"y\"\n")
    import_to_store("unipen", [root], tmp_path / "u.h5", progress=False)
    with Store(tmp_path / "u.h5") as s:
        a, b = s[0], s[1]
    # component 1 is the pen-up block: counted, not ink; y is negated (UNIPEN y grows up)
    assert a.text == "ab" and len(a.ink.strokes) == 2 and a.ink.num_points == 5
    assert a.ink.points()[1, 1] == -10
    assert b.text == 'x"y' and b.ink.stroke_lengths().tolist() == [2, 2]


@needs_shared
@pytest.mark.slow
@pytest.mark.shared_data
def test_real_unipen_import_summary(tmp_path):
    rep = import_to_store("unipen", [SHARED / "unipen" / "unipen-train_r01_v07.tar.xz"], tmp_path / "u.h5",
                          progress=False)
    assert 90_000 < rep.imported < 110_000
    assert rep.skipped["quality BAD"] > 1000
    assert rep.skipped["segment in a missing include file"] > 500
    assert rep.skipped["duplicate segment (already imported from another data file)"] > 50_000
    assert any("missing include file" in n for n in rep.notes)
