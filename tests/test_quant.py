"""Int8 LSTMs (`ModelConfig.lstm_int8`): trained on the grid onnxruntime stores, exported quantized,
and read alike by PyTorch and onnxruntime."""

import json
from pathlib import Path

import pytest
import torch

from hwr import checkpoint
from hwr.alphabet import Alphabet
from hwr.decode import DecoderConfig
from hwr.errors import ConfigError
from hwr.features import FeatureConfig
from hwr.ink import Ink
from hwr.model import ModelConfig, Network
from hwr.onnxmodel import export_onnx
from hwr.quant import fake_int8, fake_uint8, int8_grid, lstm_weight_names
from hwr.recognizer import DEFAULT_MODEL, Recognizer

GOLDEN = Path(__file__).parent / "fixtures" / "golden.jsonl"


def golden_inks() -> list[Ink]:
    return [Ink.from_json_dict(json.loads(x)["ink"]) for x in GOLDEN.read_text().splitlines() if x.strip()]


def test_the_grid_is_onnxruntimes_symmetric_int8():
    w = torch.tensor([[0.5, -1.27, 0.013], [0.004, 1.0, -0.2]])
    q = int8_grid(w)
    steps = q / (1.27 / 127)  # one scale for the matrix: its largest magnitude over 127
    assert torch.allclose(steps, steps.round(), atol=1e-4) and steps.abs().max() <= 127 + 1e-4
    assert torch.allclose(q.abs().max(), w.abs().max())     # the extreme weight is kept exactly
    assert torch.equal(int8_grid(q), q)                     # rounding twice changes nothing
    assert (q - w).abs().max() <= 1.27 / 127 / 2 + 1e-6


def test_rounding_passes_the_gradient_straight_through():
    w = torch.randn(8, 4, requires_grad=True)
    (fake_int8(w) * torch.arange(4.0)).sum().backward()
    assert torch.equal(w.grad, torch.arange(4.0).expand(8, 4))
    x = torch.randn(5, 3, requires_grad=True)
    y = fake_uint8(x)
    assert y.unique().numel() <= 256 and (y - x).abs().max() <= (x.max() - x.min()) / 255 / 2 + 1e-5
    y.sum().backward()
    assert torch.equal(x.grad, torch.ones(5, 3))


def small(int8: bool) -> Network:
    torch.manual_seed(0)
    return Network(ModelConfig(input_size=4, num_classes=6, conv_channels=8, hidden=16, layers=2,
                               lstm_int8=int8))


def test_a_network_for_int8_trains_its_float_weights():
    net = small(True).train()
    x, lengths = torch.randn(3, 40, 4), torch.tensor([40, 31, 12])
    lp, n = net(x, lengths)
    assert torch.isfinite(lp).all() and lp.shape[1] == 3
    lp[:, 0].sum().backward()
    for name in lstm_weight_names(net.rnn):  # every layer and direction learns
        assert getattr(net.rnn, name).grad.abs().sum() > 0, name
    with torch.no_grad():  # in eval mode it reads differently from the same weights in float
        net.eval()
        rounded = net(x, lengths)[0]
        net.round_lstm = False
        plain = net(x, lengths)[0]
    assert not torch.equal(rounded, plain) and (rounded - plain).abs().max() < 0.5


def test_int8_is_stored_only_when_used_and_gru_is_refused(tmp_path):
    assert "lstm_int8" not in ModelConfig().as_dict()  # an older hwr still reads float models
    net = small(True)
    alphabet = Alphabet(list("abcde"))
    checkpoint.save(tmp_path / "m.pt", net, alphabet, FeatureConfig())
    loaded = checkpoint.load_model(tmp_path / "m.pt")[0]
    assert loaded.config.lstm_int8 and loaded.round_lstm
    with pytest.raises(ConfigError, match="lstm_int8"):
        ModelConfig(rnn="gru", lstm_int8=True)


def test_the_exported_graph_has_int8_lstms_and_reads_like_pytorch(tmp_path):
    """The shipped network marked for int8: the graph holds DynamicQuantizeLSTM (a quarter of the
    float graph's size) and gives log-probs close to PyTorch's simulation of it; the same text."""
    onnx = pytest.importorskip("onnx")
    state = torch.load(DEFAULT_MODEL / "model.pt", weights_only=False)
    state["model_config"]["lstm_int8"] = True
    torch.save(state, tmp_path / "model.pt")
    torch_rec = Recognizer.load(tmp_path / "model.pt", backend="torch")
    export_onnx(torch_rec.model, tmp_path / "model.onnx")
    graph = onnx.load(str(tmp_path / "model.onnx"))
    ops = {n.op_type for n in graph.graph.node}
    assert "DynamicQuantizeLSTM" in ops and "LSTM" not in ops
    assert (tmp_path / "model.onnx").stat().st_size < 0.4 * (DEFAULT_MODEL / "model.pt").stat().st_size

    onnx_rec = Recognizer.load(tmp_path / "model.pt", backend="onnx")
    float_rec = Recognizer.load(DEFAULT_MODEL / "model.pt", backend="onnx")
    assert onnx_rec.info["backend"] == "onnx"
    inks = golden_inks()
    feats = [torch_rec.features(k) for k in inks]

    def gaps(a, b, batch):
        """Per line, |P_a - P_b| over its real frames (probabilities: log-probs of unlikely
        characters differ wildly and matter to nobody)."""
        (la, na), (lb, nb) = a.log_probs(batch), b.log_probs(batch)
        assert torch.equal(na, nb)
        return [(la[:int(na[i]), i].exp() - lb[:int(nb[i]), i].exp()).abs() for i in range(len(batch))]

    for batch in (feats, feats[:1]):
        sim = gaps(torch_rec, onnx_rec, batch)
        # onnxruntime also quantizes the hidden state at every step, which PyTorch's fused LSTM
        # cannot show: close, not equal; but closer than the float network it was made from
        assert max(float(g.max()) for g in sim) < 0.25
        if len(batch) > 1:
            mean = float(torch.cat([g.flatten() for g in sim]).mean())
            unrounded = float(torch.cat([g.flatten() for g in gaps(float_rec, onnx_rec, batch)]).mean())
            assert mean < 0.75 * unrounded, (mean, unrounded)
    g = DecoderConfig(kind="greedy")
    assert [r.text for r in torch_rec.recognize(inks, decoder=g)] == [r.text for r in onnx_rec.recognize(inks, decoder=g)]
