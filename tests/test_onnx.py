"""ONNX export of the shipped network, and results that do not depend on the batch."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import SHARED, needs_shared

from hwr.decode import DecoderConfig
from hwr.ink import Ink
from hwr.recognizer import DEFAULT_MODEL, Recognizer

GOLDEN = Path(__file__).parent / "fixtures" / "golden.jsonl"


def golden_inks() -> list[Ink]:
    return [Ink.from_json_dict(json.loads(x)["ink"]) for x in GOLDEN.read_text().splitlines() if x.strip()]


@pytest.fixture(scope="module")
def float_checkpoint(tmp_path_factory):
    """The shipped weights as a float network: the shipped model runs its LSTMs in int8
    (tests/test_quant.py compares that graph with PyTorch); here the float export path, which every
    model without `lstm_int8` takes, is held to PyTorch exactly."""
    state = torch.load(DEFAULT_MODEL / "model.pt", weights_only=False)
    state["model_config"].pop("lstm_int8", None)
    path = tmp_path_factory.mktemp("float") / "model.pt"
    torch.save(state, path)
    return path


@pytest.fixture(scope="module")
def shipped(float_checkpoint):
    return Recognizer.load(float_checkpoint, device="cpu", backend="torch")


@pytest.fixture(scope="module")
def exported(tmp_path_factory, float_checkpoint):
    """The float network exported through the CLI, as a user would."""
    out = tmp_path_factory.mktemp("onnx") / "model"
    r = subprocess.run([sys.executable, "-m", "hwr.cli", "model", "export", str(float_checkpoint),
                        "--out", str(out), "--decoder-config", str(DEFAULT_MODEL / "decoder.json"),
                        "--lm", str(DEFAULT_MODEL / "bsil6.arpa.gz"), "--onnx"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    assert (out / "model.onnx").stat().st_size > 1e6
    return out


def _compare(shipped, onnx_rec, inks):
    feats = [shipped.features(k) for k in inks]
    lp_t, n_t = shipped.log_probs(feats)
    lp_o, n_o = onnx_rec.log_probs(feats)
    assert torch.equal(n_t, n_o) and lp_t.shape == lp_o.shape
    for b in range(len(inks)):  # real frames only: what the padding holds is nobody's business
        diff = (lp_t[:int(n_t[b]), b] - lp_o[:int(n_o[b]), b]).abs().max()
        assert diff < 1e-3, f"line {b}: log-probs differ by {diff}"
    g = DecoderConfig(kind="greedy")
    assert [r.text for r in shipped.recognize(inks, decoder=g)] == [r.text for r in onnx_rec.recognize(inks, decoder=g)]


def test_onnx_graph_reads_like_pytorch(shipped, exported):
    onnx_rec = Recognizer.load(exported, backend="onnx")
    assert onnx_rec.info["backend"] == "onnx" and onnx_rec.decoder_config.lm  # the decoder.json came along
    inks = golden_inks()
    _compare(shipped, onnx_rec, inks)  # one batch of lines of different lengths (dynamic batch and time)
    _compare(shipped, onnx_rec, inks[:1])


@needs_shared
@pytest.mark.shared_data
def test_onnx_graph_reads_real_iam_lines_like_pytorch(shipped, exported):
    import contextlib
    import itertools
    from hwr.importers import Report, reader
    src = SHARED / "iam-ondb"
    read = reader("iam-ondb")([str(src / "lineStrokes-all.tar.gz"), str(src / "ascii-all.tar.gz")], Report())
    with contextlib.closing(read) as samples:  # stopping early: its worker processes end here
        inks = [s.ink for s in itertools.islice(samples, 24)]
    _compare(shipped, Recognizer.load(exported, backend="onnx"), inks)


def test_a_graph_of_exactly_this_checkpoint_is_used(tmp_path, exported, monkeypatch):
    import shutil
    monkeypatch.setenv("HWR_CACHE_DIR", str(tmp_path / "cache"))
    model = tmp_path / "model"
    model.mkdir()
    shutil.copy(exported / "model.pt", model / "model.pt")  # the checkpoint the stamped graph was made from
    rec = Recognizer.load(model)  # no graph beside it: exported once into the cache
    assert rec.info["backend"] == "onnx" and rec.info["onnx_graph"].startswith(str(tmp_path / "cache"))
    assert Recognizer.load(model, backend="torch").info["backend"] == "torch"
    shutil.copy(exported / "model.onnx", model / "model.onnx")
    shutil.copy(exported / "model.onnx.json", model / "model.onnx.json")
    assert Recognizer.load(model).info["onnx_graph"] == str(model / "model.onnx")  # the stamped one beside it
    # another checkpoint in the same place: the graph beside it is stale and never used
    from hwr.checkpoint import load_state
    state = load_state(model / "model.pt")
    state["metrics"] = {"note": "retrained"}
    torch.save(state, model / "model.pt")
    graph = Recognizer.load(model).info["onnx_graph"]
    assert graph != str(model / "model.onnx") and graph.startswith(str(tmp_path / "cache"))


def test_loading_reads_the_checkpoint_once_and_builds_only_the_sessions_it_uses(tmp_path, monkeypatch,
                                                                              float_checkpoint):
    """The cache name needs the network's config: it is read from the network the loader already
    has. An int8 graph reads every line on its one-thread session, so no batch session is built."""
    import shutil
    from hwr import checkpoint
    monkeypatch.setenv("HWR_CACHE_DIR", str(tmp_path / "cache"))
    loads = []
    real = checkpoint.load_model
    monkeypatch.setattr(checkpoint, "load_model", lambda *a, **k: loads.append(a) or real(*a, **k))
    shutil.copy(DEFAULT_MODEL / "model.pt", tmp_path / "model.pt")  # int8 LSTMs, no graph cached yet
    for _ in range(2):  # exported into the cache, then found there
        loads.clear()
        rec = Recognizer.load(tmp_path, device="cpu")
        assert rec.info["backend"] == "onnx" and len(loads) == 1
    from hwr.onnxmodel import OnnxNetwork, graph_for
    int8_net = OnnxNetwork(rec.info["onnx_graph"], rec.model.config, threads=2)
    assert int8_net.config.lstm_int8 and int8_net._batch is int8_net._single
    float_net = OnnxNetwork(graph_for(float_checkpoint), checkpoint.load_model(float_checkpoint)[0].config, threads=2)
    assert float_net._batch is not float_net._single


def test_a_read_only_cache_falls_back_to_pytorch(tmp_path, monkeypatch):
    import shutil
    cache = tmp_path / "cache"
    cache.write_text("not a folder")  # the cache cannot be created
    monkeypatch.setenv("HWR_CACHE_DIR", str(cache))
    shutil.copy(DEFAULT_MODEL / "model.pt", tmp_path / "model.pt")
    with pytest.warns(UserWarning, match="PyTorch"):
        assert Recognizer.load(tmp_path).info["backend"] == "torch"


def test_shipped_model_runs_on_onnxruntime_by_default():
    assert Recognizer.load(device="cpu").info["backend"] == "onnx"
    assert Recognizer.load(backend="torch").info["backend"] == "torch"


@pytest.mark.parametrize("backend", ["torch", "onnx", "torch-int8", "onnx-int8"])
def test_a_result_does_not_depend_on_its_batch(shipped, exported, backend):
    rec = {"torch": lambda: shipped, "onnx": lambda: Recognizer.load(exported, backend="onnx"),
           "torch-int8": lambda: Recognizer.load(device="cpu", backend="torch"),  # the shipped model: int8 LSTMs
           "onnx-int8": lambda: Recognizer.load(backend="onnx")}[backend]()
    inks = golden_inks()
    short = min(inks, key=lambda k: k.num_points)
    long = max(inks, key=lambda k: k.num_points)
    assert long.num_points > 2 * short.num_points  # the short line gets plenty of padding beside it
    alone = rec.recognize(short)
    lp_alone, n_alone = rec.log_probs([rec.features(short)])
    for batch in ([short, long], [long, short, long], inks):
        i = next(j for j, k in enumerate(batch) if k is short)
        lp, n = rec.log_probs([rec.features(k) for k in batch])
        assert int(n[i]) == int(n_alone[0])
        assert (lp[:int(n[i]), i] - lp_alone[:int(n_alone[0]), 0]).abs().max() < 1e-4
        res = rec.recognize(batch)[i]
        assert res.text == alone.text and [c.text for c in res.candidates] == [c.text for c in alone.candidates]
        assert res.score == pytest.approx(alone.score, abs=1e-3)


def test_an_upsampled_stride_4_network_exports_and_reads_like_pytorch(tmp_path):
    """A head that emits 2 frames per LSTM frame (ModelConfig.upsample) survives the export: same
    frames, same log-probs, whatever the batch and the line lengths."""
    from hwr.model import ModelConfig, Network
    from hwr.onnxmodel import OnnxNetwork, export_onnx
    torch.manual_seed(1)
    net = Network(ModelConfig(num_classes=11, hidden=16, layers=2, conv_channels=8, conv_stride=4,
                              upsample=2)).eval()
    graph = OnnxNetwork(export_onnx(net, tmp_path / "up.onnx"), net.config)
    lengths = torch.tensor([93, 50, 8])
    x = torch.randn(3, 93, 4)
    x[torch.arange(93)[None, :] >= lengths[:, None]] = 0
    for rows in ([0, 1, 2], [1]):
        with torch.no_grad():
            lp_t, n_t = net(x[rows, :int(lengths[rows].max())], lengths[rows])
        lp_o, n_o = graph(x[rows, :int(lengths[rows].max())], lengths[rows])
        assert n_t.tolist() == n_o.tolist() and lp_t.shape == lp_o.shape
        for b, n in enumerate(n_t.tolist()):
            assert (lp_t[:n, b] - lp_o[:n, b]).abs().max() < 1e-4


def test_a_bad_line_in_an_int8_batch_stops_it_with_its_reason_and_the_next_batch_reads(monkeypatch):
    """The int8 graph reads a batch line by line, each line's network started as soon as its
    features are ready (OnnxNetwork.read_lines): a bad line raises its one-line error and no line
    after it reaches the network; an error inside the network comes out as it is; either way the
    same recognizer reads the next batch as before."""
    import threading

    import numpy as np

    from hwr.features import MAX_POINTS
    from hwr.ink import InkError, Stroke
    rec = Recognizer.load(backend="onnx")
    assert rec.model.reads_lines_alone
    inks = golden_inks()
    g = DecoderConfig(kind="greedy")
    before = [r.text for r in rec.recognize(inks, decoder=g)]
    real, lock, calls = rec.model._line, threading.Lock(), []

    def counted(x):
        with lock:
            calls.append(len(x))
        return real(x)

    monkeypatch.setattr(rec.model, "_line", counted)
    huge = Ink([Stroke(np.random.default_rng(0).uniform(0, 1000, (MAX_POINTS + 1, 2)))])
    with pytest.raises(InkError, match="at most"):
        rec.recognize(inks[:2] + [huge] + inks[2:], decoder=g)
    assert len(calls) <= 2

    def broken(x):
        raise RuntimeError("the network broke")

    monkeypatch.setattr(rec.model, "_line", broken)
    with pytest.raises(RuntimeError, match="the network broke"):
        rec.recognize(inks, decoder=g)
    monkeypatch.undo()
    assert [r.text for r in rec.recognize(inks, decoder=g)] == before
    assert [rec.recognize(k, decoder=g).text for k in inks] == before  # and each alone reads the same


def test_a_line_is_not_queued_behind_another_sessions_batch(monkeypatch):
    """App sessions share one Recognizer: while one session's batch holds both int8 workers, another
    session's single line (a stroke on the canvas) runs on its own thread and is read."""
    import threading

    rec = Recognizer.load(backend="onnx")
    inks = golden_inks()
    g = DecoderConfig(kind="greedy")
    alone = rec.recognize(inks[0], decoder=g).text
    real, held, release = rec.model._line, threading.Semaphore(0), threading.Event()

    def slow_in_workers(x):
        if threading.current_thread().name.startswith("hwr-onnx"):
            held.release()
            assert release.wait(10)
        return real(x)

    monkeypatch.setattr(rec.model, "_line", slow_in_workers)
    batch = threading.Thread(target=rec.recognize, args=(inks[1:6],), kwargs={"decoder": g})
    batch.start()
    try:
        for _ in range(rec.model.threads):  # every worker busy with the batch
            assert held.acquire(timeout=10)
        assert rec.recognize(inks[0], decoder=g).text == alone
        assert batch.is_alive()  # the batch was still held while the line was read
    finally:
        release.set()
        batch.join(30)


def test_a_batch_queues_a_bounded_number_of_lines_and_an_error_cancels_them(monkeypatch):
    """read_lines keeps at most QUEUED_PER_THREAD x threads of one call's lines queued (results still
    in order), and an error from the lines' source cancels the queued ones: only lines a worker had
    already started are read."""
    import threading
    import time

    from hwr.onnxmodel import OnnxNetwork
    rec = Recognizer.load(backend="onnx")
    net = rec.model
    monkeypatch.setattr(OnnxNetwork, "QUEUED_PER_THREAD", 1)
    feats = [rec.features(k).values for k in golden_inks()]
    alone = [net._line(x) for x in feats]  # (a lone call runs on this thread)
    real, lock, started, release = net._line, threading.Lock(), [], threading.Event()

    def held(x):
        with lock:
            started.append(len(x))
        assert release.wait(10)
        return real(x)

    monkeypatch.setattr(net, "_line", held)
    pulled = []

    def source(fail_at=None):
        for n, x in enumerate(feats):
            if n == fail_at:
                raise ValueError("a bad line")
            pulled.append(n)
            yield x

    out = []
    reader = threading.Thread(target=lambda: out.extend(net.read_lines(source())))
    reader.start()
    time.sleep(0.5)  # the reader has pulled all it may while both workers hold their lines
    assert len(pulled) <= net.threads + 1 < len(feats)
    release.set()
    reader.join(10)
    assert len(out) == len(feats) and all((a == b).all() for a, b in zip(out, alone))

    release.clear()
    started.clear()
    per_thread = (len(feats) - 1) // net.threads  # (net.threads: torch's thread count when it was made)
    monkeypatch.setattr(OnnxNetwork, "QUEUED_PER_THREAD", per_thread)
    with pytest.raises(ValueError, match="a bad line"):  # a full queue behind the held workers, then the error
        list(net.read_lines(source(fail_at=per_thread * net.threads)))
    release.set()
    time.sleep(0.5)
    assert len(started) <= net.threads  # the queued lines were cancelled, not read
