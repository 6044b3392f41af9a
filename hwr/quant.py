"""Int8 LSTMs: train with the weights they will run with, then run them through onnxruntime.

onnxruntime's dynamic quantization of an LSTM (`DynamicQuantizeLSTM`) stores each weight matrix
as int8 with one symmetric scale per matrix and direction (scale = max |w| / 127) and quantizes
the activations on the fly. On an AVX512-VNNI CPU that reads a median line ~2.5 times faster
than float32 (BENCHMARKS.md), but rounding a float-trained network's weights costs accuracy
(c9: +0.07 CER points with beam + LM on testset_v). A network whose `ModelConfig.lstm_int8` is
set is trained, validated and run in PyTorch with its LSTM weights rounded to exactly that grid
(`fake_int8`: the rounding is skipped by the gradient, a straight-through estimator), so it
learns weights that survive the rounding, and its int8 graph reads what training measured.

Only the LSTMs: rounding the convolution and the head as well cost ~0.5 points more (BENCHMARKS.md).
"""

from __future__ import annotations

import logging
import os
import threading
import warnings
from pathlib import Path

import torch
from torch import nn

from .fileutil import atomic_path

QMAX = 127  # symmetric int8: onnxruntime uses [-127, 127] for signed weights
# names what quantize_graph does, in cached graphs' names: change it when the recipe changes
RECIPE = "q8lstm1"


def int8_grid(w: torch.Tensor) -> torch.Tensor:
    """`w` rounded to the int8 grid onnxruntime will store it on (one scale for the whole matrix)."""
    scale = w.detach().abs().max().clamp_min(1e-12) / QMAX
    return (w / scale).round().clamp(-QMAX, QMAX) * scale


def fake_int8(w: torch.Tensor) -> torch.Tensor:
    """The rounded weights in the forward pass; the gradient reaches `w` as if unrounded."""
    return w + (int8_grid(w) - w).detach()


def lstm_weight_names(rnn: nn.Module) -> list[str]:
    """The parameters onnxruntime quantizes: input and recurrent matrices of every layer and
    direction (a PyTorch matrix per direction = an ONNX matrix per direction, so the scales match)."""
    return [n for n, _ in rnn.named_parameters() if n.startswith(("weight_ih", "weight_hh"))]


def fake_uint8(x: torch.Tensor) -> torch.Tensor:
    """`x` as onnxruntime's dynamic quantization reads it: uint8 with one scale and zero point from
    the tensor's own range (0 always representable); straight-through for the gradient."""
    lo = x.detach().min().clamp_max(0)
    hi = x.detach().max().clamp_min(0)
    scale = ((hi - lo) / 255).clamp_min(1e-12)
    zero = (-lo / scale).round()
    q = ((x / scale).round() + zero).clamp(0, 255)
    return x + ((q - zero) * scale - x).detach()


def run_rounded(rnn: nn.LSTM, x):
    """`rnn(x)` as the int8 graph computes it, as far as PyTorch's fused LSTM lets us see: the
    matrices on the int8 grid and each layer's input sequence quantized to uint8 as onnxruntime
    does (the hidden state it also quantizes, at every step, stays inside the fused kernel).
    The layers run one at a time for that; gradients flow to the float weights.

    The input's range is the whole tensor's, as onnxruntime takes it over its whole input: run
    lines one at a time where a line's result must not depend on its batch (`Network.forward`)."""
    names = set(lstm_weight_names(rnn))
    suffixes = ("", "_reverse") if rnn.bidirectional else ("",)
    device = rnn.weight_ih_l0.device.type
    with torch.autocast(device, enabled=False):  # fp16/bf16 would move values off the grids being simulated
        return _run_layers(rnn, _map(x, lambda t: t.float()), names, suffixes)


def _run_layers(rnn: nn.LSTM, x, names: set[str], suffixes: tuple[str, ...]):
    for k in range(rnn.num_layers):
        if k and rnn.training and rnn.dropout:  # as nn.LSTM: between layers, not after the last
            x = _map(x, lambda t: nn.functional.dropout(t, rnn.dropout, True))
        params = {}
        for suffix in suffixes:
            for kind in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                name = f"{kind}_l{k}{suffix}"
                p = getattr(rnn, name)
                params[f"{kind}_l0{suffix}"] = fake_int8(p) if name in names else p
        x, _ = torch.func.functional_call(_layer(rnn, k), params, (_map(x, fake_uint8),))
    return x, None


def _map(x, fn):
    if isinstance(x, nn.utils.rnn.PackedSequence):
        return x._replace(data=fn(x.data))
    return fn(x)


def _layer(rnn: nn.LSTM, k: int) -> nn.LSTM:
    """A one-layer LSTM shaped like `rnn`'s layer k, to run that layer's weights through
    `functional_call`. Built for every call on the meta device: it holds no memory, draws nothing
    from the random generator (a resumed run's dropout stays exact) and, not being shared, no
    other thread can swap its weights mid-call (one Recognizer serves many)."""
    inputs = rnn.input_size if k == 0 else rnn.hidden_size * (2 if rnn.bidirectional else 1)
    layer = nn.LSTM(inputs, rnn.hidden_size, bidirectional=rnn.bidirectional, device="meta")
    return layer.train(rnn.training)


@torch.no_grad()
def round_lstm_weights_(rnn: nn.Module) -> None:
    """Put the LSTM matrices on the int8 grid in place (before exporting a graph to quantize)."""
    names = set(lstm_weight_names(rnn))
    for name, p in rnn.named_parameters():
        if name in names:
            p.copy_(int8_grid(p))


_QUANTIZING = threading.Lock()  # the quantizer's chatter is silenced through the root logger: one at a time


def quantize_graph(src: str | os.PathLike, dst: str | os.PathLike) -> Path:
    """Write `src`'s graph with int8 LSTMs at `dst` (all-or-nothing); the rest stays float."""
    try:
        import onnx  # noqa: F401 - the quantizer reads and writes graphs with it
        from onnxruntime.quantization import QuantType, quantize_dynamic
    except ImportError as e:
        from .decode import BackendError
        raise BackendError(f"int8 LSTMs need onnxruntime's quantizer and the onnx package ({e}): "
                           "pip install onnx onnxruntime") from None
    root = logging.getLogger()
    with _QUANTIZING, atomic_path(dst) as tmp, warnings.catch_warnings():
        level = root.level
        warnings.simplefilter("ignore")
        root.setLevel(logging.ERROR)  # its advice to pre-process the graph is for convolutions, not LSTMs
        try:
            quantize_dynamic(str(src), str(tmp), weight_type=QuantType.QInt8, op_types_to_quantize=["LSTM"])
        finally:
            root.setLevel(level)
    return Path(dst)
