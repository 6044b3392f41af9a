"""Issue 12 for the UNIPEN and IAM-OnDB readers: a malformed file is named and skipped, never
stops the others (item 5); includes never read outside include/ (item 8); ids are unique and
stable, duplicates reported (item 1). Small realistic trees and line XMLs are written here."""

from __future__ import annotations

import contextlib
import re
import signal
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hwr.importers import Report, import_to_store
from hwr.importers import unipen as unipen_mod
from hwr.importers.unipen import read as read_unipen
from hwr.store import Store

# ---------------------------------------------------------------- UNIPEN trees
PEN = """.VERSION 1.0
.COORD X Y T
.WRITER_ID w1
.PEN_DOWN
0 0 0
10 10 10
.PEN_UP
.PEN_DOWN
20 0 20
30 10 30
.PEN_UP
"""
DATA = """.VERSION 1.0
.INCLUDE w/pen.dat
.SEGMENT WORD 0 OK "ab"
.SEGMENT CHARACTER 0 OK "a"
.SEGMENT WORD 1 OK "cd"
"""
OTHER = PEN.replace("w1", "w2").replace("0 0 0\n", "1 1 0\n")  # a second writer, other points


def make_tree(base: Path, files: dict[str, str | bytes]) -> Path:
    """A UNIPEN tree: include/w/pen.dat + data/6/w/good.dat, plus `files` (path -> text or bytes)."""
    root = base / "unipen"
    for name, content in {"include/w/pen.dat": PEN, "data/6/w/good.dat": DATA, **files}.items():
        p = root / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(content if isinstance(content, bytes) else content.encode())
    return root


@contextlib.contextmanager
def time_limit(seconds: float):
    """Fail instead of hanging (a recursion or a read that never returns)."""
    def boom(*_):
        raise TimeoutError(f"took more than {seconds} s")
    old = signal.signal(signal.SIGALRM, boom)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def stored(path: Path) -> list[tuple[str, str, list]]:
    with Store(path) as s:
        return [(x.id, x.text, x.ink.points()[:, :2].tolist()) for x in s]


# ---------------------------------------------------------------- item 5: one bad file never stops the others
def test_unipen_include_cycles_are_reported_not_followed(tmp_path):
    root = make_tree(tmp_path, {
        "include/w/loop.dat": ".INCLUDE w/loop.dat\n" + PEN,            # includes itself
        "include/w/a.dat": ".INCLUDE w/b.dat\n" + PEN,                   # a -> b -> a
        "include/w/b.dat": ".INCLUDE w/a.dat\n",
        "data/6/w/self.dat": '.INCLUDE w/loop.dat\n.SEGMENT WORD 0 OK "loop"\n',
        "data/6/w/pair.dat": '.INCLUDE w/a.dat\n.SEGMENT WORD 0 OK "pair"\n',
    })
    with time_limit(20):
        rep = import_to_store("unipen", [root], tmp_path / "u.h5", progress=False)
    assert [t for _, t, _ in stored(tmp_path / "u.h5")] == ["ab", "cd"]
    assert any(n.startswith("include/w/loop.dat: include cycle (w/loop.dat") for n in rep.notes)
    assert any(n.startswith("include/w/b.dat: include cycle (w/a.dat") for n in rep.notes)
    # the data files whose segments were lost are named too, with the reason
    assert "data/6/w/self.dat: segment after a refused include" in rep.notes
    assert "data/6/w/pair.dat: segment after a refused include" in rep.notes
    assert rep.skipped["segment after a refused include"] == 2


BAD_FILES = {  # name -> (data file content, the reason its report line gives)
    "not_text": (b"\xff\xfe.\x00S\x00E\x00G\x00M\x00E\x00N\x00T\x00", "not a text file"),
    "truncated_range": ('.INCLUDE w/pen.dat\n.SEGMENT WORD 0- OK "x"\n', "unreadable segment range"),
    "truncated_point": ('.INCLUDE w/pen.dat\n.SEGMENT WORD 0:1-1: OK "x"\n', "unreadable segment range"),
    "garbage_range": ('.INCLUDE w/pen.dat\n.SEGMENT WORD 0,x OK "x"\n', "unreadable segment range"),
    "out_of_range": ('.INCLUDE w/pen.dat\n.SEGMENT WORD 2-7 OK "x"\n', "segment range outside its components"),
    "cut_segment": (".INCLUDE w/pen.dat\n.SEGMENT WORD 0", "unparsable .SEGMENT line"),
    "garbage_numbers": ('.PEN_DOWN\n1 2\n3 zz\n.PEN_UP\n.SEGMENT WORD 0 OK "x"\n', "pen data that is not numbers"),
    "not_finite": ('.PEN_DOWN\n1 2\nnan 4\n.PEN_UP\n.SEGMENT WORD 0 OK "x"\n', "invalid ink"),
    "control_label": ('.INCLUDE w/pen.dat\n.SEGMENT WORD 0 OK "a\x01b"\n', "label with control characters"),
}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_unipen_malformed_file_is_named_and_the_rest_imported(tmp_path, case):
    content, reason = BAD_FILES[case]
    root = make_tree(tmp_path, {"data/6/w/bad.dat": content})
    rep = import_to_store("unipen", [root], tmp_path / "u.h5", progress=False)
    assert [t for _, t, _ in stored(tmp_path / "u.h5")] == ["ab", "cd"]
    assert any(n.startswith(f"data/6/w/bad.dat: {reason}") for n in rep.notes), rep.notes
    assert sum(rep.skipped.values()) >= 1


def test_unipen_all_malformed_files_at_once_one_line_each(tmp_path):
    root = make_tree(tmp_path, {f"data/6/w/{k}.dat": v for k, (v, _) in BAD_FILES.items()})
    with time_limit(30):
        rep = import_to_store("unipen", [root], tmp_path / "u.h5", progress=False)
    assert rep.imported == 2
    for k, (_, reason) in BAD_FILES.items():
        assert sum(n.startswith(f"data/6/w/{k}.dat: {reason}") for n in rep.notes) == 1, (k, rep.notes)


def test_unipen_latin1_file_is_read_and_reported(tmp_path):
    root = make_tree(tmp_path, {"data/6/w/latin.dat": b'.INCLUDE w/pen.dat\n.SEGMENT WORD 0 OK "caf\xe9"\n'})
    rep = import_to_store("unipen", [root], tmp_path / "u.h5", progress=False)
    assert "café" in [t for _, t, _ in stored(tmp_path / "u.h5")]
    assert any(n.startswith("data/6/w/latin.dat: not UTF-8, read as Latin-1 (byte 0xe9") for n in rep.notes)


# ---------------------------------------------------------------- IAM-OnDB line files
def line_xml(points_of_strokes) -> bytes:
    """A line file as IAM-OnDB writes it; each point is a dict of attributes."""
    body = "".join('<Stroke colour="black">' + "".join(
        "<Point " + " ".join(f'{k}="{v}"' for k, v in p.items()) + "/>" for p in pts) + "</Stroke>"
        for pts in points_of_strokes)
    return ('<?xml version="1.0" encoding="ISO-8859-1"?>\n<WhiteboardCaptureSession>'
            f"<StrokeSet>{body}</StrokeSet></WhiteboardCaptureSession>").encode("latin-1")


GOOD_POINTS = [[{"x": 10 * i, "y": i, "time": f"{769 + i / 100:.2f}"} for i in range(5)]]


def iam_folder(base: Path, lines: dict[str, bytes], extra: dict[str, bytes] | None = None) -> Path:
    """lineStrokes/ + ascii/ for form a01-000u whose CSR has one label per line id given."""
    root = base / "iam"
    a = root / "ascii/a01/a01-000"
    a.mkdir(parents=True)
    labels = "\n".join(f"line {k}" for k in range(1, len(lines) + 1))
    (a / "a01-000u.txt").write_text(f"OCR:\n\nx\n\nCSR:\n\n{labels}\n")
    for name, data in {**lines, **(extra or {})}.items():
        p = root / "lineStrokes" / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
    return root


def test_iam_point_without_time_or_number_is_reported_and_others_imported(tmp_path):
    no_time = [[{"x": 1, "y": 2, "time": "769.0"}, {"x": 2, "y": 3}]]
    bad_x = [[{"x": "1,5", "y": 2, "time": "769.0"}]]
    bad_t = [[{"x": 1, "y": 2, "time": "soon"}]]
    inf_y = [[{"x": 1, "y": "1e999", "time": "769.0"}]]
    lines = {"a01/a01-000/a01-000u-01.xml": line_xml(GOOD_POINTS),
             "a01/a01-000/a01-000u-02.xml": line_xml(no_time),
             "a01/a01-000/a01-000u-03.xml": line_xml(bad_x),
             "a01/a01-000/a01-000u-04.xml": line_xml(bad_t),
             "a01/a01-000/a01-000u-05.xml": line_xml(inf_y),
             "a01/a01-000/a01-000u-06.xml": b"<WhiteboardCaptureSession><StrokeSet><Stroke>",
             "a01/a01-000/a01-000u-07.xml": line_xml(GOOD_POINTS)}
    rep = import_to_store("iam-ondb", [iam_folder(tmp_path, lines)], tmp_path / "i.h5", progress=False)
    assert [(i, t) for i, t, _ in stored(tmp_path / "i.h5")] == [("a01-000u-01", "line 1"), ("a01-000u-07", "line 7")]
    assert rep.skipped["unreadable stroke XML"] == 5
    expect = {"02": "point 1 of stroke 0 has no time attribute", "03": "are not all numbers",
              "04": "are not all numbers", "05": "not all finite", "06": "not well-formed XML"}
    for k, why in expect.items():
        line = next(n for n in rep.notes if n.startswith(f"a01/a01-000/a01-000u-{k}.xml: unreadable stroke XML"))
        assert why in line


def test_iam_parse_line_xml_names_the_missing_attribute():
    from hwr.importers.iam_ondb import parse_line_xml
    from hwr.ink import InkError
    with pytest.raises(InkError, match="has no time attribute"):
        parse_line_xml(line_xml([[{"x": 1, "y": 2}]]))
    with pytest.raises(InkError, match="has no x attribute"):
        parse_line_xml(line_xml([[{"y": 2, "time": "1"}]]))


# ---------------------------------------------------------------- item 8: nothing outside include/
SECRET = '.COORD X Y\n.PEN_DOWN\n4242 4242\n4243 4243\n.PEN_UP\n.SEGMENT WORD 0 OK "TOPSECRET"\n'


@pytest.mark.parametrize("how", ["dotdot", "absolute", "symlink"])
def test_unipen_include_outside_include_root_is_refused_and_never_read(tmp_path, monkeypatch, how):
    secret = tmp_path / "secret.dat"
    secret.write_text(SECRET)
    arg = {"dotdot": "../../secret.dat", "absolute": str(secret), "symlink": "w/link.dat"}[how]
    data = (".INCLUDE w/../w/pen.dat\n"  # ../ that stays inside include/ is fine
            '.SEGMENT WORD 0 OK "ab"\n'
            f".INCLUDE {arg}\n"
            '.SEGMENT WORD 0 OK "stolen"\n')
    root = make_tree(tmp_path, {"data/6/w/good.dat": data})
    (root / "include/w/link.dat").symlink_to(secret)
    opened = []
    real = Path.read_bytes
    monkeypatch.setattr(Path, "read_bytes", lambda self: opened.append(self.resolve()) or real(self))
    rep = import_to_store("unipen", [root], tmp_path / "u.h5", progress=False)  # one data file: read here
    got = stored(tmp_path / "u.h5")
    assert [t for _, t, _ in got] == ["ab"]
    assert not any(4242 in np.abs(np.array(p)) for _, _, p in got)
    assert secret.resolve() not in opened and opened  # never even opened
    assert any(n.startswith("data/6/w/good.dat: include outside include/ refused") for n in rep.notes), rep.notes
    assert "data/6/w/good.dat: segment after a refused include" in rep.notes


# ---------------------------------------------------------------- item 1: unique, stable ids
def test_unipen_ids_are_path_plus_segment_number_and_stable(tmp_path):
    root = make_tree(tmp_path, {"include/v/pen.dat": OTHER,  # same file name in another folder
                                "data/7/v/good.dat": DATA.replace("w/pen.dat", "v/pen.dat")})
    import_to_store("unipen", [root], tmp_path / "a.h5", progress=False)
    ids = [i for i, _, _ in stored(tmp_path / "a.h5")]
    assert ids == ["data/6/w/good.dat#0", "data/6/w/good.dat#2", "data/7/v/good.dat#0", "data/7/v/good.dat#2"]
    # asking for other levels does not move the ids of the segments that stay
    import_to_store("unipen", [root], tmp_path / "b.h5", levels=["WORD", "CHARACTER"], progress=False)
    assert [i for i, _, _ in stored(tmp_path / "b.h5")] == [
        "data/6/w/good.dat#0", "data/6/w/good.dat#1", "data/6/w/good.dat#2",
        "data/7/v/good.dat#0", "data/7/v/good.dat#1", "data/7/v/good.dat#2"]


def test_unipen_same_ids_from_two_trees_are_reported_not_stored_twice(tmp_path):
    one = make_tree(tmp_path / "one", {})
    # same paths, other ink and labels (the same segment twice is caught earlier, as a duplicate segment)
    two = make_tree(tmp_path / "two", {"include/w/pen.dat": OTHER,
                                       "data/6/w/good.dat": DATA.replace("ab", "AB").replace("cd", "CD")})
    rep = import_to_store("unipen", [one, two], tmp_path / "u.h5", progress=False)
    ids = [i for i, _, _ in stored(tmp_path / "u.h5")]
    assert ids == ["data/6/w/good.dat#0", "data/6/w/good.dat#2"]
    assert rep.skipped["duplicate id (imported once)"] == 2
    assert "data/6/w/good.dat#0: duplicate id (imported once)" in rep.notes


def test_iam_same_line_id_twice_is_reported_not_stored_twice(tmp_path):
    lines = {"a01/a01-000/a01-000u-01.xml": line_xml(GOOD_POINTS)}
    copy = {"copy/a01-000u-01.xml": line_xml(GOOD_POINTS)}
    rep = import_to_store("iam-ondb", [iam_folder(tmp_path, lines, copy)], tmp_path / "i.h5", progress=False)
    assert [i for i, _, _ in stored(tmp_path / "i.h5")] == ["a01-000u-01"]
    assert rep.skipped["duplicate line id (imported once)"] == 1
    assert any(n.startswith("copy/a01-000u-01.xml: duplicate line id") for n in rep.notes)


# ---------------------------------------------------------------- property: mutated data files
VALID = """.VERSION 1.0
.COORD X Y T
.WRITER_ID w9
.INCLUDE w/pen.dat
.SEGMENT WORD 0 OK "ab"
.START_SET
.PEN_DOWN
0 0 0
5 5 10
.PEN_UP
9 9 15
.PEN_DOWN
20 0 20
30 10 30
.PEN_UP
.SEGMENT WORD 0-2 OK "x\\"y"
.SEGMENT TEXT 0:1-2:0 ? "hi\\@ there"
.SEGMENT WORD 2 GOOD "z"
"""
UNIPENISH = [".PEN_DOWN", ".PEN_UP", ".START_SET", ".COORD X Y T", ".COORD T P", ".COORD", "12 abc", "nan 3 4",
             "1e999 1 1", "5 5 -100", "7", "1 2 3 4 5", ".SEGMENT WORD 0-", ".SEGMENT WORD 99 OK \"x\"",
             '.SEGMENT WORD 0:5-1:1 OK "y"', '.SEGMENT TEXT 0,1 ? "t\x01"', '.SEGMENT WORD 0 BAD "b"',
             '.SEGMENT WORD 0 OK "\\"', '.SEGMENT WORD 0:0-0:0 OK ""', ".SEGMENT WORD", ".SEGMENT",
             ".INCLUDE w/pen.dat", ".INCLUDE w/loop.dat", ".INCLUDE ../../outside.dat", ".INCLUDE /etc/hostname",
             ".INCLUDE", ".INCLUDE w", ".INCLUDE w/nope.dat", ".WRITER_ID x\ty", '.SEGMENT WORD 1-0 OK "r"']
line = st.one_of(st.sampled_from(UNIPENISH), st.text(max_size=20))
edit = st.tuples(st.sampled_from(["replace", "insert", "delete"]), st.integers(0, 40), line)
mutation = st.tuples(st.lists(edit, max_size=6),                                     # line edits
                     st.lists(st.tuples(st.integers(0, 600), st.integers(0, 255)), max_size=4),  # byte noise
                     st.one_of(st.none(), st.integers(0, 600)))                       # truncation


def mutate(edits, noise, cut) -> bytes:
    lines = VALID.splitlines()
    for op, i, new in edits:
        i %= len(lines) + 1
        if op == "insert":
            lines.insert(i, new)
        elif i < len(lines):
            lines[i:i + 1] = [new] if op == "replace" else []
    data = bytearray("\n".join(lines).encode())
    for at, byte in noise:
        if data:
            data[at % len(data)] = byte
    return bytes(data[:cut] if cut is not None else data)


def wanted_segments(data: bytes) -> int:
    """WORD/TEXT .SEGMENT lines, decoded and split the way the reader does."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = data.decode("latin-1")
    return sum(1 for ln in text.splitlines() if ln.startswith(".") and ln.split()[0] == ".SEGMENT"
               and len(ln.split()) > 1 and ln.split()[1] in ("WORD", "TEXT"))


@pytest.fixture(scope="module")
def fuzz_tree(tmp_path_factory):
    base = tmp_path_factory.mktemp("fuzz")
    (base / "outside.dat").write_text(SECRET)
    return make_tree(base, {"include/w/loop.dat": ".INCLUDE w/loop.dat\n" + PEN, "data/6/w/good.dat": VALID})


@settings(max_examples=150, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutation)
def test_unipen_mutated_data_file_yields_valid_inks_or_reasons(fuzz_tree, m):
    data = mutate(*m)
    (fuzz_tree / "data/6/w/good.dat").write_bytes(data)
    report = Report()
    with time_limit(5):  # never hangs; one data file is read in this process
        samples = list(read_unipen([str(fuzz_tree)], report))
    ids = [s.id for s in samples]
    assert len(set(ids)) == len(ids) and all(re.fullmatch(r"data/6/w/good\.dat#\d+", i) for i in ids)
    for s in samples:
        s.ink.validate()
        assert s.text and s.text == s.text.strip() and not any(ord(c) < 32 or ord(c) == 127 for c in s.text)
        assert s.text != "TOPSECRET" and not (np.abs(s.ink.points()[:, :2]) == 4242).any()
    for n in report.notes:  # every report line names a file under the tree, or a missing include
        assert re.match(r"(data|include)/\S+: |missing include file: ", n), n
    if b"\0" in data:  # refused as a whole, and said so
        assert not samples and "data/6/w/good.dat: not a text file (NUL bytes: binary or UTF-16?)" in report.notes
    else:  # every WORD/TEXT segment is imported or counted with its reason, never silently lost
        assert len(samples) + sum(report.skipped.values()) >= wanted_segments(data)


def test_unipen_one_data_file_is_read_without_worker_processes(tmp_path, monkeypatch):
    """The property test relies on this: one file is parsed in this process (so the alarm applies)."""
    root = make_tree(tmp_path, {})
    from hwr.importers import parallel
    monkeypatch.setattr(parallel, "ProcessPoolExecutor", None)
    assert [s.text for s in read_unipen([str(root)], Report())] == ["ab", "cd"]


def test_unipen_fuzz_tree_baseline_is_valid(tmp_path):
    """The unmutated file imports everything it should: the property test starts from a valid file."""
    (tmp_path / "outside.dat").write_text(SECRET)
    root = make_tree(tmp_path, {"data/6/w/good.dat": VALID})
    rep = Report()
    got = [(s.id, s.text) for s in read_unipen([str(root)], rep)]
    assert got == [("data/6/w/good.dat#0", "ab"), ("data/6/w/good.dat#1", 'x"y'),
                   ("data/6/w/good.dat#2", "hi there"), ("data/6/w/good.dat#3", "z")]
    assert not rep.notes and not rep.skipped
