"""The network as ONNX: export it for other runtimes, and run it with onnxruntime.
(A network with int8 LSTMs, `ModelConfig.lstm_int8`, is written with onnxruntime's own
`com.microsoft` DynamicQuantizeLSTM: that graph runs on onnxruntime only; `float_lstm=True` writes
standard ONNX LSTMs holding the same int8-grid weights as float, for any runtime.)

Only the network is in the graph. Features (`hwr.features`) and CTC decoding (`hwr.decode`)
stay outside, as users of other recognizers ask: they can swap the decoder, and the graph
has no Python-only parts. The graph's boundary is the network's own:

    features (B, T, F) float32, lengths (B,) int64  ->  log_probs (T', B, C) float32, frames (B,) int64

with batch and time dynamic. The LSTM runs packed (ONNX's `sequence_lens`), so in ONNX too a
line's result does not depend on the other lines of its batch.
"""

from __future__ import annotations

import collections
import copy
import hashlib
import itertools
import json
import os
import tempfile
import threading
import warnings
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np
import torch

from . import __version__
from .decode import quiet_stderr
from .fileutil import atomic_path, write_atomic
from .model import ModelConfig, Network

OPSET = 17


def checkpoint_digest(checkpoint: str | os.PathLike) -> str:
    return hashlib.sha256(Path(checkpoint).read_bytes()).hexdigest()


def stamp_path(graph: str | os.PathLike) -> Path:
    """`model.onnx.json`: which checkpoint the graph was exported from."""
    return Path(f"{graph}.json")


def matches(graph: str | os.PathLike, checkpoint: str | os.PathLike) -> bool:
    """True when `graph` was exported from exactly this checkpoint (a stale graph must not be used)
    as the network it was trained as (not a float copy of an int8 network, `float_lstm`)."""
    try:
        stamp = json.loads(stamp_path(graph).read_text())
    except (OSError, ValueError):
        return False
    return (Path(graph).is_file() and not stamp.get("float_lstm")
            and stamp.get("checkpoint_sha256") == checkpoint_digest(checkpoint))


def export_checkpoint(checkpoint: str | os.PathLike, graph: str | os.PathLike, float_lstm: bool = False) -> Path:
    """The network of `checkpoint` as an ONNX graph, stamped with the checkpoint's digest
    (`float_lstm`: see `export_onnx`; the stamp says so)."""
    from .checkpoint import load_model
    model = load_model(checkpoint)[0]
    export_onnx(model, graph, float_lstm=float_lstm)
    stamp = {"checkpoint": Path(checkpoint).name, "checkpoint_sha256": checkpoint_digest(checkpoint)}
    if float_lstm and model.config.lstm_int8:  # (a float network's graph is the same either way)
        stamp["float_lstm"] = True
    write_atomic(stamp_path(graph), json.dumps(stamp) + "\n")
    return Path(graph)


def cache_dir() -> Path:
    """Where graphs exported on first use live: $HWR_CACHE_DIR, else $XDG_CACHE_HOME/hwr, else ~/.cache/hwr."""
    if os.environ.get("HWR_CACHE_DIR"):
        return Path(os.environ["HWR_CACHE_DIR"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "hwr"


def graph_for(checkpoint: str | os.PathLike, *, model: Network | None = None) -> Path:
    """An ONNX graph of exactly this checkpoint: the stamped one beside it, else one exported once
    (about a second) into the cache, named by the checkpoint's digest so it can never be stale.

    Exporting on first use keeps the shipped model folder small (one copy of the weights) while
    every model, personal ones included, gets the faster runtime. `model`: this checkpoint's own
    network when the caller has loaded it already (not loaded again; any other network would be
    cached under this checkpoint's name).
    """
    checkpoint = Path(checkpoint)
    beside = checkpoint.with_suffix(".onnx")
    if matches(beside, checkpoint):
        return beside
    # named by the weights and by what wrote the graph (hwr, torch, opset): a newer exporter or a
    # changed forward pass gets a fresh graph, never an old one
    if model is None:
        from .checkpoint import load_model
        model = load_model(checkpoint)[0]
    tag = f"hwr{__version__}-torch{torch.__version__.split('+')[0]}-opset{OPSET}"
    if model.config.lstm_int8:  # quantized by onnxruntime's quantizer, with hwr.quant's recipe
        import onnxruntime
        from .quant import RECIPE
        tag += f"-ort{onnxruntime.__version__}-{RECIPE}"
    path = cache_dir() / "onnx" / f"{checkpoint_digest(checkpoint)}-{tag}.onnx"
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        export_onnx(model, path)
    return path


def export_onnx(model: Network, path: str | os.PathLike, float_lstm: bool = False) -> Path:
    """Write `model` as an ONNX graph at `path` (all-or-nothing). A network trained for int8 LSTMs
    (`ModelConfig.lstm_int8`) is written with them quantized (`hwr.quant`): the graph runs what
    the network was trained and validated with. `float_lstm=True` writes such a network with
    standard float LSTMs instead (the weights on their int8 grid, each layer's input not rounded):
    for runtimes other than onnxruntime, which do not know `DynamicQuantizeLSTM`; it reads almost
    as the int8 graph does, and Recognizer never picks it (it is not the measured network)."""
    net = copy.deepcopy(model).cpu().eval()
    if net.config.lstm_int8:
        from .quant import quantize_graph, round_lstm_weights_
        round_lstm_weights_(net.rnn)
        net.round_lstm = False  # the weights are on the grid: plain initializers for the quantizer
        if float_lstm:
            return _export_float(net, path)
        with tempfile.TemporaryDirectory() as d:
            return quantize_graph(_export_float(net, Path(d) / "float.onnx"), path)
    return _export_float(net, path)


def _export_float(net: Network, path: str | os.PathLike) -> Path:
    x = torch.zeros(2, 64, net.config.input_size)
    lengths = torch.tensor([64, 40])
    with atomic_path(path) as tmp:
        # the TorchScript exporter warns about its own future and, from C++, about shape inference
        # of the packed LSTM (which onnxruntime handles: tests/test_onnx.py compares the log-probs)
        with warnings.catch_warnings(), quiet_stderr():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                net, (x, lengths), str(tmp), dynamo=False, opset_version=OPSET,
                input_names=["features", "lengths"], output_names=["log_probs", "frames"],
                dynamic_axes={"features": {0: "batch", 1: "time"}, "lengths": {0: "batch"},
                              "log_probs": {0: "frames", 1: "batch"}, "frames": {0: "batch"}})
    return path


class OnnxNetwork:
    """Runs an exported graph with onnxruntime; called like `Network` (tensors in, tensors out).

    One line runs on a single-threaded session, on the calling thread: measured on 2 cores, a
    second thread slowed one median line from 8.6 to ~12 ms (a sequential LSTM has little to
    share). Batches use `threads` (default: torch's thread count): a float graph's batch runs on
    a session with that many threads; an int8 graph reads a batch as single lines, `threads` at
    a time on worker threads (`read_lines`). Sessions are thread-safe.
    """

    # lines of one `read_lines` call queued at once, per worker: measured on 2 cores (400 testset_v
    # lines in batches of 32, 3 x 144 LSTMs) 1 per worker cost 13 % of the throughput, 2 cost 4 %,
    # 8 as fast as an unbounded queue; behind a page, a line waits at most ~8 lines' time
    QUEUED_PER_THREAD = 8

    def __init__(self, path: str | os.PathLike, config: ModelConfig, threads: int | None = None):
        try:
            import onnxruntime  # noqa: F401
        except ImportError:
            from .decode import BackendError
            raise BackendError("the ONNX backend needs onnxruntime: pip install onnxruntime "
                               "(or use the PyTorch backend)") from None
        if not Path(path).is_file():
            raise FileNotFoundError(f"{path}: no ONNX graph; write one with `hwr model export CKPT --out DIR --onnx`")
        self.config = config
        self.path = str(path)
        self.threads = threads or torch.get_num_threads()
        self._single = self._session(1)
        # an int8 graph reads every line alone on the one-thread session (`read_lines`, `_line_by_line`)
        batched = self.threads > 1 and not config.lstm_int8
        self._batch = self._session(self.threads) if batched else self._single
        self._pool: ThreadPoolExecutor | None = None  # the workers of `read_lines`, made on first use
        self._pool_lock = threading.Lock()

    def _session(self, threads: int):
        import onnxruntime as ort
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")  # do not busy-wait beside others
        return ort.InferenceSession(self.path, opts, providers=["CPUExecutionProvider"])

    def __call__(self, x: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = x.detach().cpu().numpy().astype(np.float32)
        lengths = lengths.detach().cpu().numpy().astype(np.int64)
        if x.shape[0] > 1 and self.config.lstm_int8:
            return self._line_by_line(x, lengths)
        session = self._single if x.shape[0] == 1 else self._batch
        lp, frames = session.run(None, {"features": x, "lengths": lengths})
        return torch.from_numpy(lp), torch.from_numpy(frames)

    @property
    def reads_lines_alone(self) -> bool:
        """True for an int8 graph: each line runs alone (`read_lines`), so a caller can hand lines
        over one by one as they are ready and lose nothing to batching."""
        return bool(self.config.lstm_int8)

    def read_lines(self, lines: Iterable[np.ndarray]) -> Iterator[np.ndarray]:
        """Each line's (T', C) log-probs, in order, for an iterable of (T, F) feature arrays.

        Lines run on `threads` one-thread workers while the iterable prepares the next one (the
        GIL is free while onnxruntime runs). A lone line (the app's usual call: one changed
        line) runs on the calling thread and never queues; a batch keeps at most
        `QUEUED_PER_THREAD * threads` lines in the workers' queue, so other callers' batches
        interleave with a long page rather than wait for all of it. An error, from the iterable
        or the network, cancels this call's queued lines and is raised as it is.
        """
        it = iter(lines)
        first = next(it, None)
        if first is None:
            return
        second = next(it, None)
        if second is None:
            yield self._line(first)
            return
        with self._pool_lock:  # app sessions share one network: one pool, made once
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix="hwr-onnx")
        pending: collections.deque[Future] = collections.deque()
        try:
            for x in itertools.chain((first, second), it):
                if len(pending) >= self.QUEUED_PER_THREAD * self.threads:
                    yield pending.popleft().result()
                pending.append(self._pool.submit(self._line, x))
            while pending:
                yield pending.popleft().result()
        finally:  # an error, or a caller that stopped reading: nothing of this call left queued
            for f in pending:
                f.cancel()

    def _line(self, x: np.ndarray) -> np.ndarray:
        # (runs on the workers: it must never wait on the pool itself, or a full pool would deadlock)
        x = np.ascontiguousarray(x, dtype=np.float32)
        lp, _ = self._single.run(None, {"features": x[None], "lengths": np.array([len(x)], np.int64)})
        return lp[:, 0]

    def _line_by_line(self, x: np.ndarray, lengths: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """A batch of an int8 graph, each line alone on a one-thread session, `threads` lines at a
        time. onnxruntime quantizes an LSTM's input with the range of all of it, padding included,
        so a batched line would read differently beside different lines; and int8 gains little
        from batching (BENCHMARKS.md: one line at a time on each core was as fast)."""
        runs = list(self.read_lines(x[b, :lengths[b]] for b in range(len(lengths))))
        frames = np.array([len(one) for one in runs], dtype=np.int64)
        width = runs[0].shape[-1]
        lp = np.full((int(frames.max()), len(runs), width), -np.log(width), dtype=np.float32)  # padding: uniform
        for b, one in enumerate(runs):
            lp[:len(one), b] = one
        return torch.from_numpy(lp), torch.from_numpy(frames)

    def output_lengths(self, input_lengths: torch.Tensor) -> torch.Tensor:
        return Network.output_lengths(self, input_lengths)  # the same arithmetic, from the config

    # what Recognizer expects of a model
    def to(self, device) -> OnnxNetwork:
        if torch.device(device).type != "cpu":
            raise ValueError("the ONNX backend runs on the CPU here; use the PyTorch backend for CUDA")
        return self

    def eval(self) -> OnnxNetwork:
        return self
