"""Nothing lost: unique ids, serialised writers, failed imports that change nothing, resume after a cut line."""

import hashlib
import json
import subprocess
import sys
import textwrap

from conftest import synthetic_line, write_store
from filelock import FileLock

from hwr.store import Sample, Store, StoreWriter, append_samples
from hwr.transcribe import OutputBusy, iter_inputs


def hwr(*args):
    return subprocess.run([sys.executable, "-m", "hwr.cli", *map(str, args)], capture_output=True, text=True,
                          timeout=600)


def write_json_inks(root, names):
    for i, name in enumerate(names):
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(synthetic_line("ab" if i % 2 else "ba", seed=i)[0].to_json())


def test_ids_are_unique_paths_relative_to_the_input_folder(tmp_path):
    names = [f"w{w}/sentence{s}.json" for w in range(3) for s in range(2)] + ["sentence0.json"]
    write_json_inks(tmp_path / "a", names)
    ids = [i for i, _, _ in iter_inputs([str(tmp_path / "a")])]
    assert sorted(ids) == sorted(names) and len(set(ids)) == 7


def test_transcribe_writes_every_file_and_reports_real_duplicates(tiny_model, tmp_path):
    names = [f"w{w}/sentence{s}.json" for w in range(3) for s in range(2)] + ["sentence0.json"]
    write_json_inks(tmp_path / "a", names)
    out = tmp_path / "out.jsonl"
    r = hwr("transcribe", tmp_path / "a", "--out", out, "--model", tiny_model)
    assert r.returncode == 0, r.stderr
    assert sorted(json.loads(x)["id"] for x in out.read_text().splitlines()) == sorted(names)
    # the same folder twice: every id comes twice; the second ones are reported, not silently skipped
    out2 = tmp_path / "out2.jsonl"
    r = hwr("transcribe", tmp_path / "a", tmp_path / "a", "--out", out2, "--model", tiny_model)
    assert r.returncode == 1 and r.stderr.count("duplicate id") == 7
    assert len(out2.read_text().splitlines()) == 7


def test_resume_drops_a_cut_last_line_and_redoes_it(tiny_model, tmp_path):
    write_json_inks(tmp_path / "in", [f"x{i}.json" for i in range(5)])
    out = tmp_path / "out.jsonl"
    assert hwr("transcribe", tmp_path / "in", "--out", out, "--model", tiny_model).returncode == 0
    rows = out.read_text().splitlines()
    out.write_text("\n".join(rows[:3]) + "\n" + rows[3][:25])  # a crash in the middle of row 4
    r = hwr("transcribe", tmp_path / "in", "--out", out, "--model", tiny_model)
    assert r.returncode == 0, r.stderr
    again = [json.loads(x) for x in out.read_text().splitlines()]  # every line parses
    assert sorted(x["id"] for x in again) == sorted(f"x{i}.json" for i in range(5))
    assert json.loads(r.stdout)["skipped_done"] == 3


def test_a_second_transcribe_on_the_same_output_is_refused(tiny_model, tmp_path):
    write_json_inks(tmp_path / "in", ["x.json"])
    out = tmp_path / "out.jsonl"
    with FileLock(f"{out}.lock"):  # another run holds it
        r = hwr("transcribe", tmp_path / "in", "--out", out, "--model", tiny_model)
    assert r.returncode == 2 and "another hwr transcribe" in r.stderr and "Traceback" not in r.stderr
    assert not out.exists() or out.read_text() == ""
    assert issubclass(OutputBusy, ValueError)


def test_concurrent_appends_lose_nothing(tmp_path):
    """Four processes append 10 samples each, one at a time (as four app tabs pressing Save)."""
    store = tmp_path / "s.h5"
    script = textwrap.dedent(f"""
        import sys
        from hwr.ink import Ink, Stroke
        from hwr.store import Sample, append_samples
        tag = sys.argv[1]
        for i in range(10):
            ink = Ink([Stroke([[0, 0], [10, 10 + i], [20, 0]])], "ab")
            append_samples({str(store)!r}, [Sample(ink, id=f"{{tag}}-{{i}}")])
    """)
    procs = [subprocess.Popen([sys.executable, "-c", script, tag]) for tag in ("p1", "p2", "p3", "p4")]
    assert all(p.wait(timeout=300) == 0 for p in procs)
    with Store(store) as s:
        ids = list(s.meta["id"])
    assert len(ids) == 40 and len(set(ids)) == 40


def test_a_writer_waits_for_the_lock(tmp_path):
    store = write_store(tmp_path / "s.h5", ["ab"])
    probe = ("import sys; from filelock import FileLock, Timeout\n"
             "try:\n    FileLock(sys.argv[1]).acquire(timeout=0)\nexcept Timeout:\n    sys.exit(3)")
    with StoreWriter(store, mode="a") as w:  # holds the lock while it works: another process cannot take it
        w.add([Sample(synthetic_line("ba")[0], id="held")])
        assert subprocess.run([sys.executable, "-c", probe, f"{store}.lock"]).returncode == 3
    assert subprocess.run([sys.executable, "-c", probe, f"{store}.lock"]).returncode == 0
    assert append_samples(store, [Sample(synthetic_line("b")[0], id="after")]) == 3


def test_an_import_that_accepts_nothing_leaves_the_store_untouched(tmp_path):
    store = write_store(tmp_path / "s.h5", ["ab", "ba"])
    before = hashlib.sha256(store.read_bytes()).hexdigest()
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "bad.json").write_text("{not json")
    for src in (empty, empty / "bad.json"):
        r = hwr("data", "import", "json", src, "--out", store)
        assert r.returncode == 2 and "nothing imported" in r.stderr and "left as it was" in r.stderr, r.stderr
        assert len(r.stderr.strip().splitlines()) == 1
    assert hashlib.sha256(store.read_bytes()).hexdigest() == before
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".s.h5")]  # no temporary files left
