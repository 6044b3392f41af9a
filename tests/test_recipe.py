"""The recipe (scripts/train_default.py): its anneal, lm, int8, soup and tune stages, run as written on tiny stores."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import torch
from conftest import synthetic_line, tiny_texts

from hwr import checkpoint
from hwr.alphabet import Alphabet
from hwr.features import FeatureConfig
from hwr.model import ModelConfig, Network
from hwr.recognizer import Recognizer
from hwr.store import Sample, StoreWriter

ROOT = Path(__file__).resolve().parents[1]


def test_anneal_stage_trains_a_cycle_and_keeps_its_last_epochs(tmp_path):
    texts = tiny_texts(150, seed=3)
    with StoreWriter(tmp_path / "iam-ondb.h5") as w:  # IAM-OnDB's split names, as the recipe expects
        w.add(Sample(synthetic_line(t, seed=i)[0], id=f"l{i}", writer="",
                     split="trainset" if i < 100 else "testset_t" if i < 120 else "testset_v")
              for i, t in enumerate(texts))
    with StoreWriter(tmp_path / "unipen.h5") as w:
        w.add(Sample(synthetic_line(t, seed=500 + i)[0], id=f"u{i}", writer="", split="")
              for i, t in enumerate(tiny_texts(40, seed=4)))
    alphabet = Alphabet(sorted(set("".join(texts))))
    net = Network(ModelConfig(num_classes=alphabet.num_classes, hidden=8, layers=1, conv_channels=4, dropout=0.0))
    checkpoint.save(tmp_path / "start.pt", net, alphabet, FeatureConfig())
    r = subprocess.run([sys.executable, str(ROOT / "scripts" / "train_default.py"), "--work", str(tmp_path),
                        "--stage", "anneal", "--anneal-from", str(tmp_path / "start.pt")],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    run = tmp_path / "runs" / "anneal"
    assert sorted(p.name for p in run.glob("epoch-*.pt")) == ["epoch-7.pt", "epoch-8.pt", "epoch-9.pt"]
    last = checkpoint.load_state(run / "last.pt")
    cfg = last["train_config"]
    assert last["epoch"] == 9 and cfg["restart_epochs"] == 9 and cfg["augment"]["pointer"] == 0.3
    assert cfg["lr"] == 3e-4 and cfg["init_from"] == str(tmp_path / "start.pt")
    start = checkpoint.load_state(tmp_path / "start.pt")["model"]
    assert any(not torch.equal(start[k], t) for k, t in last["model"].items())  # it trained
    Recognizer.load(run / "best.pt").recognize(synthetic_line("abc")[0])
    again = subprocess.run([sys.executable, str(ROOT / "scripts" / "train_default.py"), "--work", str(tmp_path),
                            "--stage", "anneal"], capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-2000:]  # a finished cycle: resumed, nothing more to do
    assert checkpoint.load_state(run / "last.pt")["step"] == last["step"]
    # then the lm, int8, soup and tune stages, with WORK given relative to where the recipe runs
    shared = tmp_path / "shared" / "text"
    shared.mkdir(parents=True)
    for name in ("brown.zip", "state_union.zip", "inaugural.zip"):  # plain text read as the corpora
        (shared / name).write_text("\n".join(tiny_texts(60, seed=len(name))) + "\n")
    r = subprocess.run([sys.executable, str(ROOT / "scripts" / "train_default.py"), "--work", tmp_path.name,
                        "--shared", f"{tmp_path.name}/shared", "--stage", "lm", "--stage", "int8", "--stage", "soup",
                        "--stage", "tune"],
                       capture_output=True, text=True, timeout=600, cwd=tmp_path.parent)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    int8 = tmp_path / "runs" / "int8"
    state = checkpoint.load_state(int8 / "best.pt")
    assert state["model_config"]["lstm_int8"] and state["train_config"]["init_from"] == str(Path(tmp_path.name, "runs/anneal/best.pt"))
    assert state["train_config"]["select_decoder"] == str(tmp_path / "base-decoder.json")
    for name, lr, seed, share in (("int8-b", 1.5e-4, 7, 0.25), ("int8-c", 2e-4, 9, 0.5)):  # the soup's cycles
        cycle = checkpoint.load_state(tmp_path / "runs" / name / "epoch-10.pt")["train_config"]
        assert (cycle["lr"], cycle["seed"], cycle["data_weights"], cycle["model"]) == (lr, seed, [1.0, share], {"lstm_int8": True})
        assert cycle["init_from"] == str(Path(tmp_path.name, "runs/int8/best.pt"))
    soup = checkpoint.load_state(tmp_path / "runs" / "soup.pt")
    assert soup["averaged_weights"] == [0.6, 0.2, 0.2]
    assert soup["averaged_from"] == [str(Path(tmp_path.name, p)) for p in
                                     ("runs/int8/best.pt", "runs/int8-b/epoch-10.pt", "runs/int8-c/epoch-10.pt")]
    assert "UserWarning" not in r.stderr  # the cycles started from int8's best.pt: one family
    assert f"model for the later stages: {Path(tmp_path.name, 'runs/soup.pt')}" in r.stdout
    recipe = [sys.executable, str(ROOT / "scripts" / "train_default.py"), "--work", tmp_path.name]  # as above: the
    # runs hold their data relative to where the recipe ran
    made = (tmp_path / "runs" / "soup.pt").stat().st_mtime_ns
    again = subprocess.run([*recipe, "--stage", "soup"], capture_output=True, text=True, timeout=600, cwd=tmp_path.parent)
    assert again.returncode == 0, again.stderr[-2000:]  # finished cycles, an up-to-date soup: nothing to do
    assert "$ hwr model average" not in again.stdout and (tmp_path / "runs" / "soup.pt").stat().st_mtime_ns == made
    # the int8 stage makes a new best.pt: the soup and its cycles are stale
    later = (tmp_path / "runs" / "soup.pt").stat().st_mtime + 10
    shutil.copyfile(tmp_path / "runs" / "int8-b" / "epoch-10.pt", int8 / "best.pt")  # other weights
    os.utime(int8 / "best.pt", (later, later))
    stale = subprocess.run([*recipe, "--stage", "export"], capture_output=True, text=True, timeout=600, cwd=tmp_path.parent)
    assert "soup.pt is older than" in stale.stdout, stale.stdout[-2000:]
    assert f"model for the later stages: {Path(tmp_path.name, 'runs/int8/best.pt')}" in stale.stdout
    assert stale.returncode == 1 and "was not tuned for" in stale.stderr  # and the decoder is older than the model
    stale = subprocess.run([*recipe, "--stage", "soup"], capture_output=True, text=True, timeout=600, cwd=tmp_path.parent)
    assert stale.returncode == 1 and "started from an older" in stale.stderr and "Traceback" not in stale.stderr
    tuned = json.loads((tmp_path / "results" / "decoder.json").read_text())
    assert (tuned["beam_size"], tuned["beam_threshold"], tuned["beam_size_token"]) == (64, 12.0, 8)
    assert Path(tuned["lm"]).resolve() == (tmp_path / "bsil6.arpa").resolve()
