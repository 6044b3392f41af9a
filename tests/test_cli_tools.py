"""evaluate / transcribe / lm build / data info+show / plot through the CLI and their functions."""

import json
import shutil
from pathlib import Path
import subprocess
import sys

import editdistance
import pytest
from conftest import synthetic_line, tiny_texts

from hwr.evaluate import confusions, evaluate
from hwr.exporters import ink_to_inkml
from hwr.recognizer import Recognizer
from hwr.transcribe import merge, transcribe


def hwr(*args, check=True):
    r = subprocess.run([sys.executable, "-m", "hwr.cli", *map(str, args)], capture_output=True, text=True)
    if check:
        assert r.returncode == 0, r.stderr[-2000:]
    return r


def test_confusions_alignment():
    assert confusions("abc", "abc") == []
    assert sorted(confusions("abc", "axc")) == [("b", "x")]
    assert sorted(confusions("abc", "ac")) == [("b", "")]


@pytest.mark.slow
def test_evaluate_json_report_and_per_writer(tiny_model, tiny_data, tmp_path):
    r = hwr("evaluate", "--data", tiny_data, "--split", "val", "--model", tiny_model, "--json",
            "--report", tmp_path / "rows.jsonl")
    s = json.loads(r.stdout)
    for k in ("cer", "wer", "samples", "characters", "decoder", "seconds", "lines_per_second", "worst",
              "confusions", "cer_per_writer"):
        assert k in s
    assert s["samples"] == 40 and 0 <= s["cer"] < 0.05 and s["decoder"]["kind"] == "greedy"
    rows = [json.loads(x) for x in (tmp_path / "rows.jsonl").read_text().splitlines()]
    assert len(rows) == 40 and {"id", "reference", "hypothesis", "edits"} <= set(rows[0])
    assert sum(x["edits"] for x in rows) == round(s["cer"] * s["characters"])
    assert set(s["cer_per_writer"]) == {"w0", "w1", "w2"}
    # scripts/compare_reports.py on that report and a copy with 2 more edits on every line: B - A is exact,
    # and every resampling of the lines agrees that B is worse; then one more edit on a single line: only a
    # bootstrap that keeps the pairing of A's and B's lines never finds B better
    worse = tmp_path / "worse.jsonl"
    worse.write_text("".join(json.dumps({**x, "edits": x["edits"] + 2}) + "\n" for x in reversed(rows)))
    cmp = [sys.executable, str(Path(__file__).resolve().parents[1] / "scripts" / "compare_reports.py")]
    out = subprocess.run([*cmp, tmp_path / "rows.jsonl", worse], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    extra = 100 * 2 * 40 / s["characters"]
    assert f"B - A {extra:+.3f} points" in out.stdout and "B lower in 0% of the draws" in out.stdout, out.stdout
    low, high = (float(x) for x in out.stdout.split("interval ")[1].split(";")[0].split(" .. "))
    assert 0 < low <= extra <= high
    one = tmp_path / "one.jsonl"
    one.write_text("".join(json.dumps({**x, "edits": x["edits"] + (i == 7)}) + "\n" for i, x in enumerate(rows)))
    out = subprocess.run([*cmp, tmp_path / "rows.jsonl", one], capture_output=True, text=True)
    assert out.returncode == 0 and "B lower in 0% of the draws" in out.stdout, out.stdout + out.stderr
    low = float(out.stdout.split("interval ")[1].split(" .. ")[0])
    assert low >= 0
    for name, other, why in (("fewer", rows[1:], "different lines"),
                             ("longer", [{**x, "characters": x["characters"] + 1} for x in rows], "reference length"),
                             ("empty", [], "no lines")):
        (tmp_path / f"{name}.jsonl").write_text("".join(json.dumps(x) + "\n" for x in other))
        pair = (tmp_path / "empty.jsonl", tmp_path / "rows.jsonl") if name == "empty" else (tmp_path / "rows.jsonl", tmp_path / f"{name}.jsonl")
        out = subprocess.run([*cmp, *pair], capture_output=True, text=True)
        assert out.returncode == 1 and why in out.stderr and "Traceback" not in out.stderr, (name, out.stderr)


def test_compare_reports_counts_the_errors_that_changed(tmp_path):
    """`compare_reports.py --confusions`: each error class and confusion counted from the lines' alignments."""
    lines = [("a1", "to be, or not", "to be, or not", "tobe or nol"),  # B: a space and a comma dropped, t -> l
             ("a2", "the end.", "the  end.", "the end,")]              # A: a space inserted; B: '.' misread as ','
    for name, k in (("a", 2), ("b", 3)):
        (tmp_path / f"{name}.jsonl").write_text("".join(
            json.dumps({"id": i, "reference": ref, "hypothesis": row[k - 2], "characters": len(ref),
                        "edits": editdistance.eval(ref, row[k - 2])}) + "\n"
            for i, ref, *row in lines))
    script = Path(__file__).resolve().parents[1] / "scripts" / "compare_reports.py"
    out = subprocess.run([sys.executable, script, tmp_path / "a.jsonl", tmp_path / "b.jsonl", "--confusions", "10",
                          "--draws", "10"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    table = {row.split("|")[1].strip(): row.split("|")[2:4] for row in out.stdout.splitlines() if row.startswith("| ")}
    counts = {k: tuple(int(x) for x in v) for k, v in table.items() if all(x.strip().isdigit() for x in v)}
    assert counts["spaces dropped"] == (0, 1) and counts["spaces inserted"] == (1, 0)
    assert counts["punctuation dropped"] == (0, 1) and counts["punctuation misread"] == (0, 1)
    assert counts["other characters"] == (0, 1) and counts["all"] == (1, 4)
    assert counts["' ' -> (none)"] == (0, 1) and counts["(none) -> ' '"] == (1, 0)


def test_lm_learns_from_a_stores_training_labels_never_from_its_held_out_ones(tiny_data, tmp_path):
    """`hwr lm build --labels STORE --labels-split S`: in-domain text from a store's transcriptions;
    `--exclude-split` keeps the lines of the sets measured on out, whatever else is read."""
    from hwr.lm import store_labels
    train, val = store_labels(tiny_data, ["train"]), store_labels(tiny_data, ["val"])
    assert len(train) == 200 and len(val) == 40
    lm = tmp_path / "lm.arpa"
    out = json.loads(hwr("lm", "build", "--labels", tiny_data, "--labels-split", "train", "--labels-split", "val",
                         "--exclude-store", tiny_data, "--exclude-split", "val", "--order", "3",
                         "--out", lm).stdout.splitlines()[-1])
    assert out["label_lines"] == 240 and lm.exists()
    assert max(map(len, train + val)) < 25  # short labels: each one line of the LM's text
    assert out["lines"] == sum(t not in set(val) for t in train)  # every validation line left out
    r = hwr("lm", "build", "--order", "3", "--out", tmp_path / "none.arpa", check=False)
    assert r.returncode == 2 and "no text to learn from" in r.stderr


@pytest.mark.slow
def test_tune_lm_refuses_the_test_split_and_writes_decoder_json(tiny_model, tiny_data, tmp_path):
    lm = tmp_path / "lm.arpa"
    (tmp_path / "text.txt").write_text("\n".join(tiny_texts(300, seed=9)))
    out = json.loads(hwr("lm", "build", "--text", tmp_path / "text.txt", "--order", "4", "--out", lm,
                         "--eval-store", tiny_data, "--eval-split", "val").stdout.splitlines()[-1])
    assert out["perplexity"] > 1 and lm.exists()
    r = hwr("tune-lm", "--data", tiny_data, "--split", "testset_f", "--model", tiny_model, "--lm", lm, check=False)
    assert r.returncode == 2 and "never on testset_f" in r.stderr
    hwr("tune-lm", "--data", tiny_data, "--split", "val", "--model", tiny_model, "--lm", lm, "--weights", "0.2,0.5",
        "--bonuses", "0", "--limit", "10", "--out", tmp_path / "decoder.json")
    d = json.loads((tmp_path / "decoder.json").read_text())
    assert d["kind"] == "beam" and d["lm_weight"] in (0.2, 0.5)
    # a model folder whose decoder.json names its LM: tune-lm tunes that LM without --lm
    folder = tmp_path / "folder"
    folder.mkdir()
    shutil.copy(tiny_model, folder / "model.pt")
    (folder / "decoder.json").write_text(json.dumps({**d, "lm": str(lm)}))
    r = hwr("tune-lm", "--data", tiny_data, "--split", "val", "--model", folder, "--weights", "0.2",
            "--bonuses", "0", "--limit", "10", "--out", tmp_path / "again.json")
    assert json.loads((tmp_path / "again.json").read_text())["lm"] == str(lm)
    r = hwr("tune-lm", "--data", tiny_data, "--split", "val", "--model", tiny_model, check=False)
    assert r.returncode == 2 and "give --lm" in r.stderr  # no LM to tune: said, not a grid of equal rows
    s = json.loads(hwr("evaluate", "--data", tiny_data, "--split", "val", "--model", tiny_model, "--json",
                       "--decoder", "beam", "--lm", lm, "--beam-size", "8").stdout)
    assert s["decoder"]["lm"] == str(lm) and s["cer"] < 0.1
    # --decoder-config: another decoder.json than the model's (the recipe tunes from its search settings),
    # every setting of it kept unless a flag overrides it
    base = tmp_path / "base.json"
    base.write_text(json.dumps({"kind": "beam", "beam_size": 8, "beam_threshold": 12.0, "beam_size_token": 3,
                                "blank_skip": 0.99, "lm": str(lm), "lm_weight": 0.4, "word_bonus": 0.0}))
    hwr("tune-lm", "--data", tiny_data, "--split", "val", "--model", tiny_model, "--decoder-config", base,
        "--weights", "0.2", "--bonuses", "0", "--limit", "10", "--out", tmp_path / "from-base.json")
    tuned = json.loads((tmp_path / "from-base.json").read_text())
    assert (tuned["beam_threshold"], tuned["beam_size_token"], tuned["blank_skip"], tuned["lm"]) == (12.0, 3, 0.99, str(lm))
    assert tuned["beam_size"] == 8  # the file's beam, not tune-lm's own default (32)
    s = json.loads(hwr("evaluate", "--data", tiny_data, "--split", "val", "--model", folder, "--json",
                       "--decoder-config", base, "--lm-weight", "0.3").stdout)
    assert (s["decoder"]["beam_size_token"], s["decoder"]["lm_weight"], s["decoder"]["word_bonus"]) == (3, 0.3, 0.0)
    r = hwr("evaluate", "--data", tiny_data, "--split", "val", "--decoder-config", tmp_path / "nope.json", check=False)
    assert r.returncode == 2 and "no such decoder config" in r.stderr and "Traceback" not in r.stderr


@pytest.mark.slow
def test_transcribe_mixed_inputs_resume_bad_items_and_shards(tiny_model, tiny_data, tmp_path):
    inks = tmp_path / "inks"
    inks.mkdir()
    (inks / "a.inkml").write_text(ink_to_inkml(synthetic_line("bad", seed=1, jitter=1.0)[0]))
    (inks / "b.json").write_text(synthetic_line("cab", seed=2, jitter=1.0)[0].to_json())
    (inks / "c.jsonl").write_text(synthetic_line("dab", seed=3)[0].to_json() + "\n{broken\n"
                                  + json.dumps({"strokes": []}) + "\n")
    (inks / "d.inkml").write_text("<ink><trace>1 2, 3")
    out = tmp_path / "res.jsonl"
    r = hwr("transcribe", inks, tiny_data, "--model", tiny_model, "--out", out, "--nbest", "3", check=False)
    assert r.returncode == 1  # some items failed
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    by_id = {x["id"]: x for x in rows}
    assert by_id["a.inkml"]["text"] == "bad" and by_id["b.json"]["text"] == "cab"  # ids: paths in the folder
    assert len(rows) == 3 + 240
    for key in ("id", "source", "text", "score", "candidates", "char_spans"):
        assert key in rows[0]
    assert json.loads(r.stdout)["failed"] == 3
    # resumable: a re-run writes nothing new
    r2 = hwr("transcribe", inks, tiny_data, "--model", tiny_model, "--out", out, check=False)
    assert json.loads(r2.stdout)["written"] == 0 and len(out.read_text().splitlines()) == len(rows)
    # shards partition the work and merge back to the same set of ids
    rec = Recognizer.load(tiny_model, device="cpu")
    parts = []
    for i in range(2):
        c = transcribe([str(tiny_data)], tmp_path / "sh.jsonl", rec, shard=(i, 2), progress=False)
        parts.append(c["out"])
    assert merge(parts, tmp_path / "merged.jsonl") == 240


@pytest.mark.slow
def test_evaluate_function_greedy_matches_recognize(tiny_model, tiny_data, tmp_path):
    """evaluate's hypothesis for every line is exactly what recognize reads, whatever the batch size."""
    from hwr.decode import DecoderConfig
    from hwr.store import Store
    rec = Recognizer.load(tiny_model, device="cpu")
    rows = {}
    for bs in (1, 8):
        evaluate(tiny_data, rec, split="val", batch_size=bs, progress=False, report=str(tmp_path / f"r{bs}.jsonl"))
        rows[bs] = {r["id"]: r["hypothesis"] for r in map(json.loads, (tmp_path / f"r{bs}.jsonl").read_text().splitlines())}
    assert rows[1] == rows[8] and len(rows[1]) == 40
    with Store(tiny_data) as s:
        for i in s.indices("val"):
            sample = s[int(i)]
            # evaluate reads a store of lines as lines (layout "auto"); so does recognize with layout "line"
            # (these synthetic glyphs are random curves, not writing on a baseline: a page cut may split them)
            assert rec.recognize(sample.ink, decoder=DecoderConfig(kind="greedy"), layout="line").text == rows[1][sample.id]


def test_data_info_show_and_plot(small_store, tmp_path):
    info = json.loads(hwr("data", "info", small_store, "--json").stdout)
    assert info["samples"] == 4 and info["splits"] == {"test": 1, "train": 2, "val": 1}
    assert info["strokes"] > 0 and info["points"] > 0
    assert "samples" in hwr("data", "info", small_store).stdout
    hwr("data", "show", small_store, "1", "--out", tmp_path / "s.png")
    assert (tmp_path / "s.png").stat().st_size > 2000
    assert hwr("data", "show", small_store, "99", "--out", tmp_path / "x.png", check=False).returncode == 2
    run = tmp_path / "run"
    run.mkdir()
    rows = [{"kind": "train", "step": i * 10, "loss": 50 / (i + 1)} for i in range(10)]
    rows += [{"kind": "epoch", "epoch": i, "val_cer": 1 / (i + 1)} for i in range(1, 5)]
    (run / "metrics.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    hwr("plot", run, "--out", tmp_path / "c.png")
    assert (tmp_path / "c.png").stat().st_size > 5000


@pytest.mark.slow
def test_personal_fine_tuning_in_the_background(tiny_model, tmp_path):
    """What the app's 'Fine-tune' button runs: a store without validation split still gives best.pt."""
    import time
    from hwr.personal import start_fine_tuning
    from hwr.store import Sample, StoreWriter
    store = tmp_path / "feedback.h5"
    with StoreWriter(store) as w:
        w.add(Sample(synthetic_line(t, seed=i)[0], id=f"app-{i}", writer="me", source="hwr-app")
              for i, t in enumerate(tiny_texts(12, seed=11)))
    run = start_fine_tuning(store, tiny_model, tmp_path / "personal")
    for _ in range(240):
        if (run / "done").exists() or (run / "failed").exists():
            break
        time.sleep(0.5)
    assert (run / "done").exists(), (run / "train.log").read_text()[-1500:]
    rec = Recognizer.load(run / "best.pt", device="cpu")
    assert rec.recognize(synthetic_line("bad", seed=5, jitter=1.0)[0]).text


def test_a_personal_model_reads_with_its_base_models_decoder(tmp_path):
    """Without the base model's decoder.json beside it, a personal model would read with no LM."""
    from hwr.decode import DecoderConfig
    from hwr.personal import inherit_decoder
    from hwr.recognizer import default_model_path
    inherit_decoder(default_model_path(), tmp_path)
    cfg = DecoderConfig.from_json(tmp_path / "decoder.json")
    base = DecoderConfig.from_json(default_model_path().parent / "decoder.json")
    assert cfg == base and cfg.kind == "beam" and Path(cfg.lm).is_file()
