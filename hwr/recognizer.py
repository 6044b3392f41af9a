"""The Python API: `Recognizer.load()` then `recognize(ink)`.

    from hwr import Recognizer
    rec = Recognizer.load()                 # the shipped model and its decoder settings
    result = rec.recognize(ink, nbest=5)    # text, score, candidates, char_spans

One Recognizer serves many threads at once (the Streamlit app shares one across sessions): the
network's forward pass is stateless in eval mode (PyTorch) and onnxruntime sessions are
thread-safe, and the beam search lends each concurrent call its own search state. No global
lock: one person's long upload does not make everyone else wait, and `features.check_size`
bounds the work per line.
"""

from __future__ import annotations

import os
import threading
import warnings
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from . import checkpoint
from .align import CharSpan, char_spans, forced_frames
from .data import collate
from .decode import BackendError, Decoder, DecoderConfig, Hypothesis
from .errors import ConfigError
from .features import Features, check_size, ink_features
from .ink import Ink

MODELS_DIR = Path(__file__).parent / "models"
DEFAULT_MODEL = MODELS_DIR / "default"


@dataclass
class Result:
    text: str
    score: float
    candidates: list[Hypothesis]
    char_spans: list[CharSpan] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {"text": self.text, "score": self.score,
                "candidates": [{"text": h.text, "score": h.score} for h in self.candidates],
                "char_spans": [s.as_dict() for s in self.char_spans]}


def _has_onnxruntime() -> bool:
    import importlib.util
    return importlib.util.find_spec("onnxruntime") is not None


def default_model_path() -> Path:
    """The shipped model's checkpoint (HWR_MODEL overrides it)."""
    env = os.environ.get("HWR_MODEL")
    return Path(env) if env else DEFAULT_MODEL / "model.pt"


class Recognizer:
    def __init__(self, model, alphabet, feature_config, decoder_config: DecoderConfig | None = None,
                 info: dict | None = None, device: str = "cpu"):
        self.model = model.to(device).eval()
        self.alphabet = alphabet
        self.feature_config = feature_config
        self.device = torch.device(device)
        self.info = info or {}
        self._lock = threading.Lock()
        self._decoders: dict[str, Decoder] = {}
        self.decoder_config = decoder_config or DecoderConfig()

    @classmethod
    def load(cls, path: str | os.PathLike | None = None, decoder: DecoderConfig | None = None,
             device: str = "auto", backend: str = "auto") -> Recognizer:
        """Load a checkpoint (None: the shipped model). A `decoder.json` beside the checkpoint
        gives the default decoder settings (kind, beam, LM and its weights).

        backend: "torch"; "onnx" runs the network through onnxruntime (the same log-probs,
        measured faster on the CPU: BENCHMARKS.md) from a graph of this very checkpoint (beside it
        from `hwr model export --onnx`, else exported once into the cache: `onnxmodel.graph_for`);
        "auto" is onnx on the CPU when onnxruntime is there, else torch.
        """
        if backend not in ("auto", "torch", "onnx"):
            raise ConfigError("backend must be 'auto', 'torch' or 'onnx'")
        path = Path(path) if path else default_model_path()
        if path.is_dir():
            path = path / "model.pt" if (path / "model.pt").exists() else path / "best.pt"
        model, alphabet, fcfg, state = checkpoint.load_model(path)
        if decoder is None and (path.parent / "decoder.json").exists():
            decoder = DecoderConfig.from_json(path.parent / "decoder.json")
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() and backend != "onnx" else "cpu"
        graph = None
        if backend != "torch" and device == "cpu" and _has_onnxruntime():
            from .onnxmodel import graph_for
            try:
                graph = graph_for(path)
            except Exception as e:  # noqa: BLE001 - a read-only cache or an exporter gap: PyTorch still works
                if backend == "onnx":
                    raise
                warnings.warn(f"running the network on PyTorch: no ONNX graph ({' '.join(str(e).split())})")
        if backend == "onnx" and graph is None:
            raise ConfigError("the ONNX backend runs on the CPU and needs onnxruntime (pip install onnxruntime)")
        backend = "onnx" if graph is not None else "torch"
        info = {"path": str(path), "metrics": state.get("metrics", {}), "git_revision": state.get("git_revision"),
                "parameters": model.num_parameters(), "backend": backend, "onnx_graph": str(graph) if graph else None}
        if graph is not None:
            from .onnxmodel import OnnxNetwork
            model = OnnxNetwork(graph, model.config)
        return cls(model, alphabet, fcfg, decoder, info, device)

    def decoder(self, config: DecoderConfig | None = None) -> Decoder:
        cfg = config or self.decoder_config
        key = repr(sorted(asdict(cfg).items()))
        with self._lock:  # build each decoder (and load its LM) once, even when asked from two threads
            if key not in self._decoders:
                self._decoders[key] = Decoder(self.alphabet, cfg)
            return self._decoders[key]

    def decoder_or_greedy(self, config: DecoderConfig | None = None) -> tuple[DecoderConfig, str | None]:
        """`config` if its decoder loads, else greedy decoding and the one-line reason.

        For callers that must keep working (the app): a missing flashlight-text or an unreadable
        LM costs accuracy, not the page. The CLI instead stops with the reason.
        """
        cfg = config or self.decoder_config
        try:
            self.decoder(cfg)
        except (BackendError, FileNotFoundError) as e:
            return replace(cfg, kind="greedy"), str(e)
        return cfg, None

    def features(self, ink: Ink) -> Features:
        check_size(ink, self.feature_config)  # bounded work per line: one upload cannot hold the server
        return ink_features(ink, self.feature_config)

    @torch.no_grad()
    def log_probs(self, feats: list[Features]) -> tuple[torch.Tensor, torch.Tensor]:
        """(T', B, C) log-probabilities and (B,) frame counts for a batch of feature sets."""
        x, lengths = collate([f.values for f in feats])
        # on a GPU, half precision (autocast) as in training; the log-softmax itself stays float32
        with torch.autocast("cuda", dtype=torch.float16, enabled=self.device.type == "cuda"):
            lp, out_lengths = self.model(x.to(self.device), lengths.to(self.device))  # T', B, C
        return lp.float().cpu(), out_lengths.cpu()

    def recognize(self, inks: Ink | list[Ink], nbest: int | None = None, decoder: DecoderConfig | None = None,
                  spans: bool = True) -> Result | list[Result]:
        """Transcribe one ink (returns a Result) or a list of inks (returns a list)."""
        single = isinstance(inks, Ink)
        batch = [inks] if single else list(inks)
        cfg = decoder or self.decoder_config
        if nbest is not None:
            cfg = replace(cfg, nbest=nbest)
        feats = [self.features(ink) for ink in batch]
        lp, lengths = self.log_probs(feats)
        hyps = self.decoder(cfg)(lp, lengths)
        results = []
        for b, (ink, f, h) in enumerate(zip(batch, feats, hyps)):
            h = h[:cfg.nbest]
            best = h[0]
            sp = (char_spans(best.text, best.frames, int(lengths[b]), f, self.stride, ink.stroke_lengths())
                  if spans else [])
            results.append(Result(best.text, best.score, h, sp))
        return results[0] if single else results

    @property
    def stride(self) -> int:
        c = self.model.config
        return c.conv_stride if c.conv_channels else 1

    def align(self, ink: Ink, text: str) -> list[CharSpan]:
        """Character spans for a known `text` (a user's correction, a label) by forced alignment."""
        f = self.features(ink)
        lp, lengths = self.log_probs([f])
        n = int(lengths[0])
        firsts, _ = forced_frames(lp[:n, 0], text, self.alphabet)
        return char_spans(text, firsts, n, f, self.stride, ink.stroke_lengths())


def stroke_owner(spans: list[CharSpan], num_strokes: int) -> np.ndarray:
    """For each stroke, the index of the character that claims it (-1: none)."""
    owner = np.full(num_strokes, -1)
    for i, s in enumerate(spans):
        for k in s.strokes:
            if owner[k] < 0:
                owner[k] = i
    return owner
