"""The recognizer network: strided 1-D convolution, a bidirectional LSTM stack, a linear CTC head
(which may emit several output frames per LSTM frame: `ModelConfig.upsample`).

Shapes at the boundary (B = batch, T = input points, T' = output frames, F = features,
C = alphabet size + 1 with blank = 0):

    features (B, T, F) float, lengths (B,) int  ->  log_probs (T', B, C), output_lengths (B,)

Training batches are padded, not packed: measured on 2 CPU cores packing was 4x slower to
train (23 vs 97 lines/s) than padded batches bucketed by length (~5% padding). A
bidirectional RNN reads the padding on its backward pass, though, so a padded line's result
would depend on the longest line beside it. Inference (eval mode) therefore packs: each
line's backward pass starts at its own last frame, exactly as if it were alone (the ONNX
export keeps this through the LSTM's `sequence_lens`). `output_lengths` says which frames are real.
A network with int8 LSTMs (`lstm_int8`) reads each line alone instead (its inputs are quantized
with the range of the whole input): the same result, whatever the batch.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

from .errors import ConfigError


@dataclass
class ModelConfig:
    input_size: int = 4
    num_classes: int = 80      # alphabet size + 1; set from the alphabet
    conv_channels: int = 64    # 0 = no convolution
    conv_kernel: int = 5
    conv_stride: int = 2       # LSTM frames are shortened by this factor (output frames: by conv_stride / upsample)
    # the head emits this many frames per LSTM frame: a stride-4 LSTM (half the work of stride 2)
    # still gives CTC stride-2 room for every label; stride 4 alone cannot fit 1 in 6 training lines
    upsample: int = 1
    hidden: int = 128          # per direction
    layers: int = 3
    dropout: float = 0.25
    rnn: str = "lstm"          # or "gru"
    # the LSTM matrices are trained on and run with onnxruntime's int8 grid (`hwr.quant`): the network ~2.5x
    # faster per line on a VNNI CPU without the accuracy a float-trained network loses to rounding
    lstm_int8: bool = False

    def __post_init__(self) -> None:
        if self.rnn not in ("lstm", "gru"):
            raise ConfigError("rnn must be 'lstm' or 'gru'")
        if self.layers < 1 or self.hidden < 1 or self.num_classes < 2:
            raise ConfigError("layers, hidden must be >= 1 and num_classes >= 2")
        if self.conv_channels and (self.conv_stride < 1 or self.conv_kernel < self.conv_stride):
            raise ConfigError("conv_kernel must be >= conv_stride >= 1")
        if self.upsample < 1 or self.input_stride % self.upsample:
            raise ConfigError("upsample must be >= 1 and divide conv_stride (an output frame covers whole points)")
        if self.lstm_int8 and self.rnn != "lstm":
            raise ConfigError("lstm_int8 needs rnn 'lstm' (onnxruntime quantizes LSTMs, not GRUs)")

    @property
    def input_stride(self) -> int:
        """Resampled points per LSTM frame."""
        return self.conv_stride if self.conv_channels else 1

    @property
    def points_per_frame(self) -> int:
        """Resampled points per output frame (what character spans map frames back with)."""
        return self.input_stride // self.upsample

    def as_dict(self) -> dict:
        """The settings a checkpoint stores; `upsample` and `lstm_int8` only when they are used, so
        that an hwr from before them still reads every model that does not need them."""
        d = asdict(self)
        if d["upsample"] == 1:
            del d["upsample"]
        if not d["lstm_int8"]:
            del d["lstm_int8"]
        return d


class Network(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = c = config
        if c.conv_channels:
            self.conv = nn.Sequential(
                nn.Conv1d(c.input_size, c.conv_channels, c.conv_kernel, stride=c.conv_stride,
                          padding=c.conv_kernel // 2),
                nn.GELU(),
            )
            rnn_in = c.conv_channels
        else:
            self.conv = None
            rnn_in = c.input_size
        rnn_cls = nn.LSTM if c.rnn == "lstm" else nn.GRU
        self.rnn = rnn_cls(rnn_in, c.hidden, num_layers=c.layers, bidirectional=True,
                           dropout=c.dropout if c.layers > 1 else 0.0, batch_first=False)
        self.dropout = nn.Dropout(c.dropout)
        self.head = nn.Linear(2 * c.hidden, c.num_classes * c.upsample)
        # read with the LSTM matrices on the int8 grid (training and PyTorch inference alike); off only
        # while exporting weights already rounded, so the graph keeps them as plain initializers
        self.round_lstm = c.lstm_int8
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Xavier input weights, orthogonal recurrent weights, LSTM forget-gate bias 1.

        The forget-gate bias keeps memory flowing early in training, which shortens CTC's
        initial plateau; orthogonal recurrent matrices keep gradients from exploding or
        vanishing through time at the start.
        """
        for name, p in self.rnn.named_parameters():
            if name.startswith("weight_ih"):
                for chunk in p.data.chunk(4 if self.config.rnn == "lstm" else 3, 0):
                    nn.init.xavier_uniform_(chunk)
            elif name.startswith("weight_hh"):
                for chunk in p.data.chunk(4 if self.config.rnn == "lstm" else 3, 0):
                    nn.init.orthogonal_(chunk)
            elif name.startswith("bias"):
                nn.init.zeros_(p.data)
                if self.config.rnn == "lstm" and name.startswith("bias_ih"):
                    h = self.config.hidden
                    p.data[h:2 * h] = 1.0  # gate order i, f, g, o
        nn.init.xavier_uniform_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def output_lengths(self, input_lengths: torch.Tensor) -> torch.Tensor:
        """Frames the network emits for inputs of these lengths."""
        c = self.config
        if not c.conv_channels:
            return input_lengths * c.upsample
        pad = c.conv_kernel // 2
        frames = torch.div(input_lengths + 2 * pad - c.conv_kernel, c.conv_stride, rounding_mode="floor") + 1
        return frames * c.upsample

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x: (B, T, F) padded features; lengths: (B,). Returns log_probs (T', B, C), (B,)."""
        if self.conv is not None:
            x = self.conv(x.transpose(1, 2)).transpose(1, 2)  # B, T', H
        out_lengths = self.output_lengths(lengths)
        rnn_lengths = torch.div(out_lengths, self.config.upsample, rounding_mode="floor")
        x = x.transpose(0, 1)  # T', B, H
        if self.training:
            # zero the padded frames so the backward direction starts from silence, not garbage
            mask = torch.arange(x.shape[0], device=x.device)[:, None] < rnn_lengths.to(x.device)[None, :]
            y, _ = self._rnn(x * mask[..., None].to(x.dtype))  # T', B, 2H
        elif x.shape[1] == 1:
            y, _ = self._rnn(x)  # one line alone has no padding to hide
        elif self.round_lstm:
            # int8 reads each input with the range of the whole input, as onnxruntime does: one
            # line at a time, so a line's result never depends on the lines beside it
            y = x.new_zeros(x.shape[0], x.shape[1], 2 * self.config.hidden)
            for b, n in enumerate(rnn_lengths.tolist()):
                y[:n, b:b + 1] = self._rnn(x[:n, b:b + 1])[0]
        else:
            packed = nn.utils.rnn.pack_padded_sequence(x, rnn_lengths.cpu(), enforce_sorted=False)
            y, _ = nn.utils.rnn.pad_packed_sequence(self._rnn(packed)[0], total_length=x.shape[0])  # T', B, 2H
        logits = self.head(self.dropout(y))  # T', B, C * upsample
        k = self.config.upsample
        if k > 1:  # each LSTM frame's k output frames, in time order
            t, b = logits.shape[0], logits.shape[1]
            logits = logits.reshape(t, b, k, -1).transpose(1, 2).reshape(t * k, b, -1)
        return logits.float().log_softmax(-1), out_lengths

    def _rnn(self, x):
        if self.round_lstm:
            from .quant import run_rounded
            return run_rounded(self.rnn, x)
        return self.rnn(x)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())


def copy_matching(old: Network, new: Network) -> None:
    """Transfer learning: copy `old`'s weights into `new` where they fit.

    `new`'s alphabet may be `old`'s with characters appended: old characters keep their head rows,
    new ones their fresh init. A head that emits more frames per LSTM frame (`upsample`) starts as
    copies of the old one, so a stride-4 network warm-started from a stride-2 one reads at once.
    Wider LSTMs (`hidden`) start as the old network exactly: each old unit keeps its weights, and
    every weight from a new unit to an old unit or to the head is zero, so the new units learn from
    the start (their own weights keep their fresh init) without changing what the network reads."""
    own = new.state_dict()
    n_old, n_new = old.config.num_classes, new.config.num_classes
    up_old, up_new = old.config.upsample, new.config.upsample
    h_old, h_new = old.config.hidden, new.config.hidden
    wider = h_new > h_old
    if h_new < h_old or (wider and (old.config.rnn != "lstm" or new.config.rnn != "lstm"
                                    or old.config.layers != new.config.layers
                                    or old.config.conv_channels != new.config.conv_channels)):
        raise ConfigError(f"cannot start a network of {new.config.layers} x {new.config.rnn}({h_new}) from one of "
                          f"{old.config.layers} x {old.config.rnn}({h_old}): a warm start can widen the LSTMs of the "
                          f"same layers and convolution, not narrow them or change them otherwise")
    # the old units' indices in `new`: each gate's rows, and the [forward, backward] outputs the next
    # layer and the head read (all of them when the width is the same)
    gates = torch.cat([torch.arange(g * h_new, g * h_new + h_old) for g in range(4)])
    units = torch.cat([torch.arange(h_old), h_new + torch.arange(h_old)])
    fresh = torch.ones(2 * h_new, dtype=torch.bool)
    fresh[units] = False  # the new units' outputs (none when the width is the same)
    for k, v in old.state_dict().items():
        if wider and k.startswith("rnn."):
            w = own[k]
            if k.startswith("rnn.weight_hh"):
                w[gates] = 0.0
                w[gates[:, None], torch.arange(h_old)] = v
            elif k.startswith("rnn.weight_ih") and k not in ("rnn.weight_ih_l0", "rnn.weight_ih_l0_reverse"):
                w[gates] = 0.0
                w[gates[:, None], units] = v
            else:  # first layer's input weights (from the convolution) and biases
                w[gates] = v
        elif k.startswith("head."):
            if k == "head.weight":  # nothing from new units; each old class's row into the old units' columns
                own[k][:, fresh] = 0.0
            for j in range(up_new):
                rows = slice(j * n_new, j * n_new + n_old)
                own[k][(rows, units) if k == "head.weight" else rows] = v[(j % up_old) * n_old:(j % up_old + 1) * n_old]
        elif k in own and own[k].shape == v.shape:
            own[k] = v
    new.load_state_dict(own)
