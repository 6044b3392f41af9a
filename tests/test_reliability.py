"""Nothing lost: unique ids, serialised writers, failed imports that change nothing, resume after a cut line."""

import hashlib
import json
import subprocess
import sys
import textwrap

from conftest import synthetic_line, write_store
from filelock import FileLock

from hwr.ink import Ink
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


# ---------------------------------------------------------------- honest errors and results
def one_line_error(r, *needles):
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr[-1500:]
    assert any(all(n in ln for n in needles) for ln in lines), r.stderr


def test_settings_a_user_gets_wrong_are_one_line(tiny_data, tiny_model, tmp_path):
    import torch
    if not torch.cuda.is_available():
        one_line_error(hwr("train", "--data", tiny_data, "--out", tmp_path / "r", "--device", "cuda"), "no CUDA GPU")
    bad = tmp_path / "c.json"
    bad.write_text(json.dumps({"epochs": 2, "lerning_rate": 1}))
    one_line_error(hwr("train", "--data", tiny_data, "--out", tmp_path / "r", "--config", bad), "lerning_rate", "known")
    bad.write_text(json.dumps({"model": {"hiden": 3}}))
    one_line_error(hwr("train", "--data", tiny_data, "--out", tmp_path / "r", "--config", bad), "hiden")
    model = tmp_path / "m"
    model.mkdir()
    (model / "best.pt").write_bytes(tiny_model.read_bytes())
    (model / "decoder.json").write_text(json.dumps({"kind": "greedy", "beam": 3}))
    ink = tmp_path / "x.json"
    ink.write_text(synthetic_line("ab")[0].to_json())
    one_line_error(hwr("transcribe", ink, "--out", tmp_path / "o.jsonl", "--model", model), "'beam'", "known")
    for opt in (["--threads", "-1"], ["--batch-size", "0"], ["--nbest", "x"]):
        r = hwr("transcribe", ink, "--out", tmp_path / "o.jsonl", "--model", tiny_model, *opt)
        assert r.returncode == 2 and "Traceback" not in r.stderr and opt[0] in r.stderr


def test_a_real_bug_keeps_its_traceback(monkeypatch, small_store):
    import pytest

    from hwr import cli, store
    def broken(self):
        raise ValueError("an internal invariant broke")
    monkeypatch.setattr(store.Store, "summary", broken)
    with pytest.raises(ValueError, match="invariant"):
        cli.main(["data", "info", str(small_store)])


def test_outputs_that_are_not_files_are_refused(tiny_model, tmp_path):
    ink = tmp_path / "x.json"
    ink.write_text(synthetic_line("ab")[0].to_json())
    for out in (tmp_path, "/dev/full"):
        r = hwr("transcribe", ink, "--out", out, "--model", tiny_model)
        assert r.returncode == 2 and "--out" in r.stderr and "Traceback" not in r.stderr
    assert [p.name for p in tmp_path.iterdir()] == ["x.json"]  # nothing left behind


def test_evaluating_unlabelled_ink_is_refused(tiny_model, tmp_path):
    store = tmp_path / "u.h5"
    with StoreWriter(store) as w:  # ink without text, as the app or a tablet produces it
        w.add([Sample(Ink(synthetic_line("ab", seed=i)[0].strokes), id=f"u{i}") for i in range(3)])
    one_line_error(hwr("evaluate", "--data", store, "--model", tiny_model), "no labels")


def test_training_where_no_label_fits_fails_instead_of_saving_an_untrained_model(tmp_path):
    from hwr.ink import Stroke
    store = tmp_path / "t.h5"
    with StoreWriter(store) as w:  # a long label on a single short stroke: CTC cannot fit it
        w.add([Sample(Ink([Stroke([[0, 0], [1, 1]])], "abcdefghij"), id=f"s{i}", split="train") for i in range(4)])
    one_line_error(hwr("train", "--data", store, "--out", tmp_path / "run", "--epochs", "1"), "fits its frames")
    assert not (tmp_path / "run" / "best.pt").exists()


def test_a_language_model_that_is_not_one_is_refused_without_echoing_it(tmp_path):
    from hwr.lm import ArpaLM
    secret = "root:x:0:0:secret-line"
    lm = tmp_path / "passwd"
    lm.write_text(secret + "\n")
    ink = tmp_path / "x.json"
    ink.write_text(synthetic_line("ab")[0].to_json())
    r = hwr("transcribe", ink, "--out", tmp_path / "o.jsonl", "--lm", lm)
    one_line_error(r, "does not load")
    assert secret not in r.stderr and "secret" not in r.stdout
    import pytest
    with pytest.raises(Exception) as e:
        ArpaLM.read_arpa(lm)
    assert "secret" not in str(e.value)


def test_backwards_time_does_not_stop_transcription(tiny_model, tmp_path):
    ink = synthetic_line("ab")[0]
    d = ink.to_json_dict()
    d["strokes"][0]["points"][2][2] = d["strokes"][0]["points"][0][2] - 50  # the clock jumps back
    (tmp_path / "x.json").write_text(json.dumps(d))
    r = hwr("transcribe", tmp_path / "x.json", "--out", tmp_path / "o.jsonl", "--model", tiny_model)
    assert r.returncode == 0, r.stderr
    assert len((tmp_path / "o.jsonl").read_text().splitlines()) == 1


# ---------------------------------------------------------------- bounded work
def test_work_per_line_is_capped_before_it_starts(tiny_model):
    import numpy as np
    import pytest

    from hwr.features import MAX_POINTS, check_size
    from hwr.ink import InkError, Stroke
    from hwr.recognizer import Recognizer
    rec = Recognizer.load(tiny_model)
    rng = np.random.default_rng(0)
    many = Ink([Stroke(rng.uniform(0, 1000, (MAX_POINTS + 1, 2)))])
    with pytest.raises(InkError, match="at most"):
        rec.recognize(many)
    # few points, but scattered: resampled it would be millions of frames
    scattered = Ink([Stroke(np.c_[rng.uniform(0, 1e6, 5000), rng.normal(0, 10, 5000)])])
    with pytest.raises(InkError, match="long once resampled"):
        check_size(scattered)
    check_size(synthetic_line("a normal line of text")[0])  # real lines pass
    with pytest.raises(InkError, match="long once resampled"):
        rec.recognize(scattered)  # the recognizer's features refuse it on their own


def test_the_resampled_length_is_bounded_exactly(monkeypatch):
    """The limit on resampled points is the exact count (a line at the limit is read, one point over
    it is refused), and check_size (training's validation filter) refuses what the recognizer does."""
    import numpy as np
    import pytest

    import hwr.features as F
    from hwr.ink import InkError, Stroke
    rng = np.random.default_rng(3)
    for _ in range(40):
        ink = Ink([Stroke(np.cumsum(rng.normal(0, rng.uniform(0.1, 30), (int(rng.integers(1, 60)), 2)), 0))
                   for _ in range(int(rng.integers(1, 30)))])
        cfg = F.FeatureConfig(step=float(rng.choice([0.1, 0.5, 1.0])))
        n = len(F.ink_features(ink, cfg).values)  # the exact count, unbounded
        monkeypatch.setattr(F, "MAX_RESAMPLED", n)
        F.ink_features(ink, cfg, bounded=True)  # exactly at the limit: read
        F.check_size(ink, cfg)
        monkeypatch.setattr(F, "MAX_RESAMPLED", n - 1)
        with pytest.raises(InkError, match="long once resampled"):
            F.ink_features(ink, cfg, bounded=True)
        with pytest.raises(InkError, match="long once resampled"):
            F.check_size(ink, cfg)


def test_one_long_line_does_not_hold_up_another(tiny_model):
    """Two threads share one Recognizer (as app sessions do): a slow forward pass in one does not
    make the other wait (no global lock)."""
    import threading
    import time

    from hwr.recognizer import Recognizer
    rec = Recognizer.load(tiny_model, backend="torch")
    real = rec.model.forward
    slow_started = threading.Event()

    def forward(x, lengths):
        if x.shape[1] > 300:  # the long line
            slow_started.set()
            time.sleep(2.0)
        return real(x, lengths)
    rec.model.forward = forward
    long_ink = synthetic_line("abcde" * 12)[0]
    done = {}
    t = threading.Thread(target=lambda: done.setdefault("long", (rec.recognize(long_ink), time.monotonic())))
    t.start()
    assert slow_started.wait(30)
    rec.recognize(synthetic_line("ab")[0])
    done["short"] = time.monotonic()
    t.join()
    assert done["short"] < done["long"][1]


# ---------------------------------------------------------------- round trips
def test_inkml_export_refuses_labels_xml_cannot_carry(tmp_path):
    from hwr.exporters import export_store
    from hwr.importers.inkml import parse_inkml
    store = tmp_path / "s.h5"
    good, bad = synthetic_line("ab")[0], synthetic_line("ba")[0]
    with StoreWriter(store) as w:
        w.add([Sample(Ink(good.strokes, "a & <b>"), id="good"), Sample(Ink(bad.strokes, "tab\x01bell"), id="bad")])
    n, refused = export_store(store, "inkml", tmp_path / "out")
    assert n == 1 and len(refused) == 1 and "U+0001" in refused[0] and "jsonl" in refused[0]
    (f,) = (tmp_path / "out").iterdir()
    assert parse_inkml(f.read_bytes())[0][0].text == "a & <b>"  # what is exported reads back exactly
    r = hwr("data", "export", store, "--format", "inkml", "--out", tmp_path / "out2")
    assert r.returncode == 1 and "refused" in r.stdout


def test_exporting_a_model_folder_onto_itself_keeps_its_decoder_settings(tiny_model, tmp_path):
    folder = tmp_path / "m"
    assert hwr("model", "export", tiny_model, "--out", folder).returncode == 0
    tuned = {**json.loads((folder / "decoder.json").read_text()), "kind": "beam", "lm_weight": 0.42, "beam_size": 7}
    (folder / "decoder.json").write_text(json.dumps(tuned))
    r = hwr("model", "export", folder / "model.pt", "--out", folder)
    assert r.returncode == 0, r.stderr
    d = json.loads((folder / "decoder.json").read_text())
    assert d["lm_weight"] == 0.42 and d["beam_size"] == 7 and d["kind"] == "beam"


def test_more_settings_are_one_line(tiny_data, tiny_model, tmp_path):
    ink = tmp_path / "x.json"
    ink.write_text(synthetic_line("ab")[0].to_json())
    for shard in ("1of2", "1/2/3", "3/2"):
        r = hwr("transcribe", ink, "--out", tmp_path / "o.jsonl", "--model", tiny_model, "--shard", shard)
        assert r.returncode == 2 and "--shard" in r.stderr and "Traceback" not in r.stderr
    r = hwr("train", "--data", tiny_data, "--out", tmp_path / "r", "--seed", "-1")
    assert r.returncode == 2 and "Traceback" not in r.stderr
    one_line_error(hwr("train", "--data", tiny_data, "--out", tmp_path / "r", "--max-minutes", "-1"), "max_minutes")
    bad = tmp_path / "c.json"
    bad.write_text(json.dumps({"model": 5}))
    one_line_error(hwr("train", "--data", tiny_data, "--out", tmp_path / "r", "--config", bad), "model")
    bad.write_text(json.dumps({"epochs": "ten"}))
    one_line_error(hwr("train", "--data", tiny_data, "--out", tmp_path / "r", "--config", bad), "wrong type")
    model = tmp_path / "m"
    model.mkdir()
    (model / "best.pt").write_bytes(tiny_model.read_bytes())
    (model / "decoder.json").write_text(json.dumps({"kind": "beam", "beam_size": "32"}))
    one_line_error(hwr("transcribe", ink, "--out", tmp_path / "o.jsonl", "--model", model), "wrong type")


def test_one_bad_json_file_does_not_stop_a_transcription(tiny_model, tmp_path):
    write_json_inks(tmp_path / "in", ["a.json", "c.json"])
    (tmp_path / "in" / "b.json").write_bytes(synthetic_line("ab")[0].to_json().encode("utf-16-be"))  # no BOM
    (tmp_path / "in" / "d.json").write_text("[" * 100_000)
    out = tmp_path / "o.jsonl"
    r = hwr("transcribe", tmp_path / "in", "--out", out, "--model", tiny_model)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert "b.json" in r.stderr and "d.json" in r.stderr
    assert sorted(json.loads(x)["id"] for x in out.read_text().splitlines()) == ["a.json", "c.json"]


def test_merge_waits_for_no_one_and_loses_nothing(tiny_model, tmp_path):
    import pytest

    from hwr.transcribe import merge
    (tmp_path / "a.jsonl").write_text(json.dumps({"id": "x", "text": "1"}) + "\n")
    (tmp_path / "b.jsonl").write_text(json.dumps({"id": "x", "text": "2"}) + "\n" + json.dumps({"id": "y"}) + "\n")
    out = tmp_path / "m.jsonl"
    with FileLock(f"{out}.lock"), pytest.raises(OutputBusy):  # a transcribe is appending to it
        merge([str(tmp_path / "a.jsonl"), str(tmp_path / "b.jsonl")], out)
    assert merge([str(tmp_path / "a.jsonl"), str(tmp_path / "b.jsonl")], out) == 2
    assert [json.loads(x)["id"] for x in out.read_text().splitlines()] == ["x", "y"]


def test_evaluation_counts_an_unreadable_sample_instead_of_stopping(tiny_model, tmp_path):
    import numpy as np

    from hwr.evaluate import evaluate
    from hwr.features import MAX_POINTS
    from hwr.ink import Stroke
    from hwr.recognizer import Recognizer
    store = tmp_path / "e.h5"
    huge = Ink([Stroke(np.random.default_rng(0).uniform(0, 100, (MAX_POINTS + 5, 2)))], "ab")
    with StoreWriter(store) as w:
        w.add([Sample(synthetic_line("ab", seed=1)[0], id="ok1"), Sample(huge, id="huge"),
               Sample(synthetic_line("ba", seed=2)[0], id="ok2")])
    s = evaluate(store, Recognizer.load(tiny_model), progress=False)
    assert s["samples"] == 2 and [u["id"] for u in s["unreadable"]] == ["huge"]


def test_a_damaged_archive_and_a_bad_file_give_one_line_and_a_status(tmp_path):
    bad = tmp_path / "u.tar.xz"
    bad.write_bytes(b"\xfd7zXZ\x00\x00 this is not really an archive" * 10)
    r = hwr("data", "import", "unipen", bad, "--out", tmp_path / "u.h5")
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    write_json_inks(tmp_path / "in", ["a.json"])
    (tmp_path / "in" / "b.json").write_text("{broken")
    r = hwr("data", "import", "json", tmp_path / "in", "--out", tmp_path / "j.h5")
    assert r.returncode == 1 and "b.json" in r.stdout + r.stderr
    with Store(tmp_path / "j.h5") as s:
        assert len(s) == 1


def test_inkml_export_keeps_edge_white_space(tmp_path):
    from hwr.exporters import ink_to_inkml
    from hwr.importers.inkml import parse_inkml
    text = ink_to_inkml(Ink(synthetic_line("ab")[0].strokes, " ab "))
    assert 'xml:space="preserve"' in text and parse_inkml(text)[0][0].text == " ab "


def test_concurrent_beam_searches_do_not_wait_for_each_other():
    """The beam decoder lends each concurrent call its own search (the LM is shared)."""
    import threading
    import time

    import torch

    from hwr.alphabet import Alphabet
    from hwr.decode import BeamDecoder, DecoderConfig
    dec = BeamDecoder(Alphabet(list("abc ")), DecoderConfig(kind="beam", beam_size=4))
    fast = dec._idle.pop()

    class Slow:  # a search that takes long (a long line)
        def decode(self, *args):
            time.sleep(2.0)
            return fast.decode(*args)
    dec._idle.append(Slow())
    lp = torch.randn(20, 1, 5).log_softmax(-1)
    done = {}
    t = threading.Thread(target=lambda: (dec(lp, torch.tensor([20])), done.setdefault("slow", time.monotonic())))
    t.start()
    time.sleep(0.2)
    assert dec(lp, torch.tensor([20]))[0][0].text is not None
    done["fast"] = time.monotonic()
    t.join()
    assert done["fast"] < done["slow"]
