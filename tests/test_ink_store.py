import json
import os
import signal
import subprocess
import sys
import textwrap

import h5py
import numpy as np
import pytest
from conftest import synthetic_line, write_store

from hwr.ink import Ink, InkError, Stroke
from hwr.store import FORMAT_VERSION, Sample, Store, StoreError, StoreWriter, append_samples


# ---------------------------------------------------------------- ink
def test_json_round_trip_keeps_points_nulls_and_pointer_type():
    ink = Ink([Stroke([[1, 2, 3, 0.5], [4, 5, 6, 0.7]], "pen"), Stroke([[7, 8]], "mouse")], "hi")
    back = Ink.from_json(ink.to_json())
    assert back.text == "hi"
    assert [s.pointer_type for s in back.strokes] == ["pen", "mouse"]
    np.testing.assert_array_equal(back.points(), ink.points())  # NaN positions included
    d = json.loads(ink.to_json())
    assert d["strokes"][1]["points"] == [[7, 8, None, None]]


def test_numpy_round_trip(line):
    back = Ink.from_arrays(line.points(), line.stroke_lengths(), line.text)
    np.testing.assert_array_equal(back.points(), line.points())


@pytest.mark.parametrize("ink, message", [
    (Ink([]), "empty"),
    (Ink([Stroke(np.zeros((0, 4)))]), "no points"),
    (Ink([Stroke([[0, np.nan]])]), "non-finite"),
    (Ink([Stroke([[0, np.inf]])]), "non-finite"),
    (Ink([Stroke([[0, 2e7]])]), "beyond"),
    (Ink([Stroke([[0, 0, 10], [1, 1, 5]])]), "backwards"),
    (Ink([Stroke([[0, 0, 10], [1, 1, np.nan]])]), "missing"),
])
def test_validation_reports_bad_inks(ink, message):
    with pytest.raises(InkError, match=message):
        ink.validate()


def test_backwards_time_repaired_only_on_request():
    ink = Ink([Stroke([[0, 0, 10], [1, 1, 5], [2, 2, 20]])])
    sorted_ = Ink([Stroke(ink.strokes[0].points.copy())]).validate(repair_time="sort")
    assert sorted_.strokes[0].points[:, 2].tolist() == [5, 10, 20]
    assert sorted_.strokes[0].points[:, 0].tolist() == [1, 0, 2]
    clamped = Ink([Stroke(ink.strokes[0].points.copy())]).validate(repair_time="clamp")
    assert clamped.strokes[0].points[:, 2].tolist() == [10, 10, 20]
    assert clamped.strokes[0].points[:, 0].tolist() == [0, 1, 2]


def test_bad_json_gives_clear_errors():
    for text in ["{", "[]", '{"strokes": [{"points": [[1]]}]}', '{"strokes": [{"points": [["a", 1]]}]}']:
        with pytest.raises(InkError):
            Ink.from_json(text)


# ---------------------------------------------------------------- store
def test_store_round_trip_and_random_access(tmp_path):
    texts = ["abc", "hello", "x y", "zz"]
    p = write_store(tmp_path / "s.h5", texts)
    with Store(p) as s:
        assert len(s) == 4
        for i, t in enumerate(texts):
            ref = synthetic_line(t, seed=i)[0]
            got = s[i]
            assert got.text == t and got.id == f"s{i}" and got.split == "train"
            np.testing.assert_allclose(got.ink.points(), ref.points(), rtol=1e-6, atol=1e-3)
            assert got.ink.stroke_lengths().tolist() == ref.stroke_lengths().tolist()
            assert got.ink.strokes[0].pointer_type == "pen"
        assert s[-1].text == "zz"
        assert [x.text for x in s] == texts
        with pytest.raises(IndexError):
            s[4]
        assert s.attrs["format_version"] == FORMAT_VERSION
        assert list(s.attrs["channels"]) == ["x", "y", "t", "pressure"]


def test_absolute_time_survives_float32_storage(tmp_path):
    ink = synthetic_line("ab", t0=1.75e12)[0]
    p = tmp_path / "t.h5"
    with StoreWriter(p) as w:
        w.add([Sample(ink)])
    with Store(p) as s:
        np.testing.assert_allclose(s[0].ink.points()[:, 2], ink.points()[:, 2], atol=0.01)


def test_splits_summary_and_selection(small_store):
    with Store(small_store) as s:
        assert s.splits() == {"test": 1, "train": 2, "val": 1}
        assert s.indices("train").tolist() == [0, 1]
        summ = s.summary()
        assert summ.samples == 4 and summ.characters == 3 + 3 + 2 + 4
        assert summ.characters_per_split == {"train": 6, "val": 2, "test": 4}
        assert summ.charset["c"] == 4
        assert summ.points == s[0].ink.num_points + s[1].ink.num_points + s[2].ink.num_points + s[3].ink.num_points


def test_append_adds_and_keeps_existing(small_store):
    n = append_samples(small_store, [Sample(synthetic_line("new")[0], id="n1", split="train")])
    assert n == 5
    with Store(small_store) as s:
        assert s[4].text == "new" and s[0].text == "abc"


def test_failed_write_leaves_previous_file_intact(small_store, tmp_path):
    before = small_store.read_bytes()

    def samples():
        yield Sample(synthetic_line("ok")[0])
        raise RuntimeError("disk on fire")

    with pytest.raises(RuntimeError):
        with StoreWriter(small_store, mode="a") as w:
            w.add(samples(), batch=1)
    assert small_store.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []
    with pytest.raises(InkError):  # an invalid ink aborts the append: nothing half-written
        append_samples(small_store, [Sample(Ink([]))])
    assert small_store.read_bytes() == before


def test_kill_9_during_append_keeps_committed_samples(small_store):
    """A writer killed mid-append (SIGKILL, no cleanup) leaves the old file fully readable."""
    code = textwrap.dedent(f"""
        import os, signal, sys
        sys.path.insert(0, {os.fspath(os.path.dirname(__file__))!r})
        from conftest import synthetic_line
        from hwr.store import Sample, StoreWriter
        def samples():
            for i in range(100000):
                if i == 300:
                    os.kill(os.getpid(), signal.SIGKILL)
                yield Sample(synthetic_line("abc", seed=i)[0], id=f"x{{i}}")
        with StoreWriter({os.fspath(small_store)!r}, mode="a") as w:
            w.add(samples(), batch=100)
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True)
    assert proc.returncode == -signal.SIGKILL
    with Store(small_store) as s:
        assert len(s) == 4 and s[3].text == "cc a"
    append_samples(small_store, [Sample(synthetic_line("after")[0])])  # and it can be resumed
    with Store(small_store) as s:
        assert len(s) == 5


def test_interrupted_import_keeps_old_store(small_store, tmp_path):
    from hwr.importers import import_to_store
    before = small_store.read_bytes()
    with pytest.raises(Exception):
        import_to_store("iam-ondb", [tmp_path / "missing"], small_store, progress=False)
    assert small_store.read_bytes() == before


def test_opening_bad_files_gives_one_line_errors(tmp_path, small_store):
    junk = tmp_path / "junk.h5"
    junk.write_bytes(b"this is not hdf5")
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as f:
        f["x"] = [1, 2]
    newer = tmp_path / "newer.h5"
    newer.write_bytes(small_store.read_bytes())
    with h5py.File(newer, "a") as f:
        f.attrs["format_version"] = FORMAT_VERSION + 1
    truncated = tmp_path / "trunc.h5"
    truncated.write_bytes(small_store.read_bytes()[: len(small_store.read_bytes()) // 2])
    cases = {junk: "not a readable HDF5", other: "not an hwr ink store", newer: "newer",
             truncated: "HDF5|damaged|truncated", tmp_path / "nope.h5": "no such file"}
    for path, msg in cases.items():
        with pytest.raises(StoreError, match=msg) as e:
            Store(path)
        assert "\n" not in str(e.value)


def test_cli_reports_bad_store_in_one_line(tmp_path):
    junk = tmp_path / "junk.h5"
    junk.write_bytes(b"\x89HDF\r\n garbage")
    r = subprocess.run([sys.executable, "-m", "hwr.cli", "data", "info", str(junk)], capture_output=True, text=True)
    assert r.returncode == 2
    assert r.stderr.count("\n") == 1 and r.stderr.startswith("hwr: error:")
