"""The Python API: `Recognizer.load()` then `recognize(ink)`.

    from hwr import Recognizer
    rec = Recognizer.load()                 # the shipped model and its decoder settings
    result = rec.recognize(ink, nbest=5)    # text, score, candidates, char_spans, lines, words

A page (several lines) is cut into lines (`hwr.layout`), the lines are read together (one
padded batch; an int8 graph streams them line by line, `_outputs_line_by_line`), and
each line's beam search is primed with the line before it (`context`); the result has the
page's text, one `LineResult` per line and per-word alternatives (`hwr.results`).

One Recognizer serves many threads at once (the Streamlit app shares one across sessions): the
network's forward pass is stateless in eval mode (PyTorch) and onnxruntime sessions are
thread-safe, and the beam search lends each concurrent call its own search state. No global
lock: one person's long upload does not make everyone else wait, and the features' own bounds
(`ink_features(..., bounded=True)`) cap the work per line.
"""

from __future__ import annotations

import os
import threading
import warnings
from collections import OrderedDict
from dataclasses import asdict, replace
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from torch.nn.utils.rnn import pad_sequence

from . import checkpoint
from .align import CharSpan, char_spans, forced_frames
from .data import collate
from .decode import BackendError, Decoder, DecoderConfig, Hypothesis
from .errors import ConfigError
from .features import Features, ink_features
from .ink import Ink, InkError
from .layout import segment_lines
from .results import LineResult, Result, Word, page_result, spans_to_page, word_alternatives  # noqa: F401 - Result is API

MAX_PAGE_LINES = 500        # lines in one page ink
MAX_PAGE_POINTS = 400_000   # raw points in one page ink (a line may have MAX_POINTS)
WORD_NBEST = 10             # candidates decoded per line for per-word alternatives
LAYOUTS = ("page", "line")
BACKENDS = ("auto", "torch", "onnx")
DEFAULT_BACKEND = "auto"    # onnxruntime on the CPU when it is installed, else PyTorch (see load)

MODELS_DIR = Path(__file__).parent / "models"
DEFAULT_MODEL = MODELS_DIR / "default"


class _LineOutput(NamedTuple):
    """What the network made of one line ink, kept (in a LineCache too) until it is decoded."""

    digest: str                 # Ink.digest() when a cache is in use, else ""
    features: Features          # for character spans
    log_probs: torch.Tensor     # (frames, classes)
    stroke_lengths: np.ndarray  # of the line ink, to map spans back to a page


def _copy_decoded(decoded: tuple[list[Hypothesis], list[CharSpan]]) -> tuple[list[Hypothesis], list[CharSpan]]:
    """A copy of a line's (n-best, spans) that shares nothing mutable with it: what `copy.deepcopy`
    gives, at a tenth of its cost (it was ~1 ms of each stroke's reading in the app)."""
    hyps, spans = decoded
    return ([replace(h, frames=list(h.frames)) for h in hyps], [replace(c, strokes=list(c.strokes)) for c in spans])


class LineCache:
    """Lines already read, so that a page read again after one more stroke reads only the line
    that changed (the app keeps one per browser tab). Bounded: least recently used first out.

    Keys are the line's ink digest (network output and features) and, for decoded results,
    also its context and decoder settings: a line whose line above changed is decoded again.
    """

    def __init__(self, size: int = 64):
        self.size = size
        self._items: OrderedDict = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key):
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
            return None

    def put(self, key, value) -> None:
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self.size:
                self._items.popitem(last=False)

    def __len__(self) -> int:
        return len(self._items)


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
        # names this model in LineCache keys: two recognizers sharing a cache never mix results
        self._cache_id = (self.info.get("path") or f"id{id(self)}", self.info.get("backend"))
        self.decoder_config = decoder_config or DecoderConfig()

    @classmethod
    def load(cls, path: str | os.PathLike | None = None, decoder: DecoderConfig | None = None,
             device: str = "auto", backend: str = DEFAULT_BACKEND) -> Recognizer:
        """Load a checkpoint (None: the shipped model). A `decoder.json` beside the checkpoint
        gives the default decoder settings (kind, beam, LM and its weights).

        backend: "torch"; "onnx" runs the network through onnxruntime (the same log-probs,
        measured faster on the CPU: BENCHMARKS.md) from a graph of this very checkpoint (beside it
        from `hwr model export --onnx`, else exported once into the cache: `onnxmodel.graph_for`);
        "auto" is onnx on the CPU when onnxruntime is there, else torch.
        """
        if backend not in BACKENDS:
            raise ConfigError("backend must be 'auto', 'torch' or 'onnx'")
        path = Path(path) if path else default_model_path()
        if path.is_dir():
            path = path / "model.pt" if (path / "model.pt").exists() else path / "best.pt"
        model, alphabet, fcfg, state = checkpoint.load_model(path)
        if decoder is None and (path.parent / "decoder.json").exists():
            decoder = DecoderConfig.from_json(path.parent / "decoder.json")
        if device == "auto":  # a network with int8 LSTMs runs as its int8 graph, on the CPU
            gpu = torch.cuda.is_available() and backend != "onnx" and not (model.config.lstm_int8 and backend == "auto")
            device = "cuda" if gpu else "cpu"
        graph = None
        if backend != "torch" and device == "cpu" and _has_onnxruntime():
            from .onnxmodel import graph_for
            try:
                graph = graph_for(path, model=model)
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
        """The decoder for these settings, built (and its LM loaded) once. It returns up to
        max(nbest, WORD_NBEST) candidates, so that settings differing only in nbest share it."""
        cfg = config or self.decoder_config
        cfg = replace(cfg, nbest=max(cfg.nbest, WORD_NBEST))
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
        return ink_features(ink, self.feature_config, bounded=True)  # one upload cannot hold the server

    @torch.no_grad()
    def log_probs(self, feats: list[Features]) -> tuple[torch.Tensor, torch.Tensor]:
        """(T', B, C) log-probabilities and (B,) frame counts for a batch of feature sets."""
        x, lengths = collate([f.values for f in feats])
        # on a GPU, half precision (autocast) as in training; the log-softmax itself stays float32
        with torch.autocast("cuda", dtype=torch.float16, enabled=self.device.type == "cuda"):
            lp, out_lengths = self.model(x.to(self.device), lengths.to(self.device))  # T', B, C
        return lp.float().cpu(), out_lengths.cpu()

    def recognize(self, inks: Ink | list[Ink], nbest: int | None = None, decoder: DecoderConfig | None = None,
                  spans: bool = True, context: str = "", cache: LineCache | None = None,
                  layout: str = "page") -> Result | list[Result]:
        """Transcribe one ink (returns a Result) or a list of inks (returns a list).

        layout "page" cuts each ink into lines (a one-line ink stays one line, read exactly as
        with "line", which reads the ink as one line whatever it holds). `context`: text written
        before the ink, which primes the LM of a beam search; a page's later lines are primed
        with the line before them. `cache` (a LineCache) remembers lines already read.
        """
        if layout not in LAYOUTS:
            raise ConfigError(f"layout must be one of {', '.join(LAYOUTS)}")
        single = isinstance(inks, Ink)
        batch = [inks] if single else list(inks)
        cfg = decoder or self.decoder_config
        if nbest is not None:
            cfg = replace(cfg, nbest=nbest)
        # decode more candidates than asked for: per-word alternatives come from them (see
        # results.word_alternatives); each line keeps cfg.nbest of them as its candidates
        wide = replace(cfg, nbest=max(cfg.nbest, WORD_NBEST)) if cfg.kind == "beam" else cfg
        if not batch:
            return []
        pages = [self._lines(ink, layout) for ink in batch]
        jobs = [(b, j, strokes) for b, lines in enumerate(pages) for j, strokes in enumerate(lines)]
        line_inks = [batch[b] if len(pages[b]) == 1 else Ink([batch[b].strokes[s] for s in strokes])
                     for b, _, strokes in jobs]
        outputs = self._outputs(line_inks, cache)
        line_results: dict[tuple[int, int], tuple[LineResult, list[Word]]] = {}
        for j in range(max(len(lines) for lines in pages)):  # line j of every page, primed by line j - 1
            todo = [i for i, (b, jj, _) in enumerate(jobs) if jj == j]
            ctx = [line_results[jobs[i][0], j - 1][0].text if j else context for i in todo]
            decoded = self._decode([outputs[i] for i in todo], ctx, wide, spans, cache)
            for i, (hyps, sp) in zip(todo, decoded):
                b, _, strokes = jobs[i]
                if len(pages[b]) > 1 and sp:
                    sp = spans_to_page(sp, strokes, outputs[i].stroke_lengths, batch[b].stroke_lengths())
                best = hyps[0]
                line_results[b, j] = (LineResult(best.text, best.score, hyps[:cfg.nbest], list(strokes), sp),
                                      word_alternatives(hyps, j))
        results = []
        for b, lines in enumerate(pages):
            parts = [line_results[b, j] for j in range(len(lines))]
            results.append(page_result([p[0] for p in parts], cfg.nbest, [p[1] for p in parts], spans))
        return results[0] if single else results

    def _lines(self, ink: Ink, layout: str) -> list[list[int]]:
        """The page's lines (stroke indices); the whole ink, in its own order, when it is one line."""
        if layout == "line" or len(ink.strokes) <= 1:
            return [list(range(len(ink.strokes)))]
        if ink.num_points > MAX_PAGE_POINTS:
            raise InkError(f"the ink has {ink.num_points:,} points; a page may have at most {MAX_PAGE_POINTS:,}")
        if not np.isfinite(ink.points()[:, :2]).all():
            raise InkError("the ink has non-finite x/y coordinates (NaN or inf)")
        lines = segment_lines(ink)
        if len(lines) > MAX_PAGE_LINES:
            raise InkError(f"the ink looks like {len(lines)} lines; a page may have at most {MAX_PAGE_LINES} "
                           "(split it, or read it with layout='line')")
        return [list(range(len(ink.strokes)))] if len(lines) == 1 else lines

    LINE_BATCH = 64  # lines per forward pass: bounds memory on a page of hundreds of lines

    def _outputs(self, inks: list[Ink], cache: LineCache | None) -> list[_LineOutput]:
        """The network's output for each line ink; cached lines skip the network."""
        out: list[_LineOutput | None] = [None] * len(inks)
        digests = [ink.digest() if cache is not None else "" for ink in inks]
        todo = []
        for i, d in enumerate(digests):
            hit = cache.get(("net", self._cache_id, d)) if cache is not None else None
            if hit is not None:
                out[i] = hit
            else:
                todo.append(i)
        if getattr(self.model, "reads_lines_alone", False):
            self._outputs_line_by_line(inks, todo, digests, out, cache)
            return out
        # a padded batch: every line checked before any network work
        feats = {i: self.features(inks[i]) for i in todo}
        for k in range(0, len(todo), self.LINE_BATCH):
            chunk = todo[k:k + self.LINE_BATCH]
            lp, lengths = self.log_probs([feats[i] for i in chunk])
            for n, i in enumerate(chunk):
                out[i] = _LineOutput(digests[i], feats[i], lp[:int(lengths[n]), n].clone(), inks[i].stroke_lengths())
                if cache is not None:
                    cache.put(("net", self._cache_id, digests[i]), out[i])
        return out

    def _outputs_line_by_line(self, inks: list[Ink], todo: list[int], digests: list[str],
                              out: list[_LineOutput | None], cache: LineCache | None) -> None:
        """`_outputs` for a network that reads each line alone (an int8 graph): a line goes to the
        network as soon as its features are ready (`OnnxNetwork.read_lines`), which keeps both
        cores busy while this thread computes the next line's features (before, a batch spent
        ~12 % of its time on features with the network idle). A bad line stops the batch before
        the lines after it cost anything."""
        feats: dict[int, Features] = {}

        def values():
            for i in todo:
                feats[i] = self.features(inks[i])
                yield feats[i].values

        for i, lp in zip(todo, self.model.read_lines(values())):
            out[i] = _LineOutput(digests[i], feats[i], torch.from_numpy(lp), inks[i].stroke_lengths())
            if cache is not None:
                cache.put(("net", self._cache_id, digests[i]), out[i])

    def _decode(self, outputs: list[_LineOutput], contexts: list[str], cfg: DecoderConfig, spans: bool,
                cache: LineCache | None) -> list[tuple[list[Hypothesis], list[CharSpan]]]:
        """n-best and character spans (line indices) per line, decoded in one call."""
        key = repr(sorted(asdict(cfg).items()))
        res: list = [None] * len(outputs)
        todo = []
        for i, o in enumerate(outputs):
            hit = cache.get(("dec", self._cache_id, o.digest, contexts[i], key, spans)) if cache is not None else None
            if hit is not None:
                res[i] = _copy_decoded(hit)  # the caller may change its result; the cache keeps its own
            else:
                todo.append(i)
        if todo:
            lp = pad_sequence([outputs[i].log_probs for i in todo], padding_value=-1e4)  # T, B, C
            lengths = torch.tensor([len(outputs[i].log_probs) for i in todo])
            hyps = self.decoder(cfg)(lp, lengths, [contexts[i] for i in todo])
            for n, i in enumerate(todo):
                o, best = outputs[i], hyps[n][0]
                sp = (char_spans(best.text, best.frames, len(o.log_probs), o.features, self.stride, o.stroke_lengths)
                      if spans else [])
                res[i] = (hyps[n], sp)
                if cache is not None:
                    cache.put(("dec", self._cache_id, o.digest, contexts[i], key, spans), _copy_decoded(res[i]))
        return res

    @property
    def stride(self) -> int:
        return self.model.config.points_per_frame

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
