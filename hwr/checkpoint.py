"""Checkpoints that describe themselves and load without running code.

A checkpoint is a plain dict of tensors, numbers, strings, lists and dicts, so
`torch.load(weights_only=True)` can read it: a file from a stranger cannot execute anything.
It carries everything needed to rebuild the recognizer (model and feature configs, the
alphabet) plus what produced it (training config, metrics, data summary, git revision) and,
for `last.pt`, the full training state for an exact resume.
"""

from __future__ import annotations

import math
import os
import subprocess
import warnings
from pathlib import Path
from typing import Any

import torch

from . import __version__
from .alphabet import Alphabet
from .errors import HwrError
from .features import FEATURE_VERSION, FeatureConfig
from .fileutil import atomic_path
from .model import ModelConfig, Network

FORMAT_NAME = "hwr-checkpoint"
FORMAT_VERSION = 1


class CheckpointError(HwrError, ValueError):
    """A file that is not a usable hwr checkpoint; one-line message."""


def git_revision() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              cwd=Path(__file__).parent, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def save(path: str | os.PathLike, model: Network, alphabet: Alphabet, feature_config: FeatureConfig,
         **extra: Any) -> None:
    """Write atomically (temp file + rename) so a kill mid-save keeps the previous file."""
    model = getattr(model, "module", model)  # unwrap DDP
    state = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "hwr_version": __version__,
        "feature_version": FEATURE_VERSION,
        "git_revision": git_revision(),
        "model_config": model.config.as_dict(),
        "feature_config": feature_config.as_dict(),
        "alphabet": alphabet.to_list(),
        "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        **extra,
    }
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        torch.save(state, fh)  # through a file object: the archive's inner name does not depend on the temp name


def load_state(path: str | os.PathLike, any_features: bool = False) -> dict:
    """The raw checkpoint dict, checked for format and version.

    `any_features` accepts another feature version (only for warm-starting a new training run,
    whose features are then the current ones)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # any failure to unpickle a foreign file means "not ours"
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CheckpointError(f"{path}: not an hwr checkpoint, or damaged ({first[:120]})") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT_NAME:
        raise CheckpointError(f"{path}: a PyTorch file, but not an hwr checkpoint")
    return migrate(state, path, any_features)


def migrate(state: dict, path: Path, any_features: bool = False) -> dict:
    """The one place where older checkpoint formats are upgraded."""
    version = state.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise CheckpointError(f"{path}: checkpoint format {version} is newer than this hwr reads "
                              f"({FORMAT_VERSION}); upgrade hwr")
    if state.get("feature_version") != FEATURE_VERSION and not any_features:
        raise CheckpointError(f"{path}: made with feature version {state.get('feature_version')}, this hwr "
                              f"computes version {FEATURE_VERSION}; retrain or use a matching hwr")
    if isinstance(state.get("feature_config"), dict):
        # before 2026-12-06 no checkpoint said; late dots and crosses go back to their letters for every model
        # (it changes nothing on ink written in order: MODEL_CARD.md, "Stroke order")
        state["feature_config"].setdefault("late_marks", True)
    return state


def load_model(path: str | os.PathLike, any_features: bool = False) -> tuple[Network, Alphabet, FeatureConfig, dict]:
    """(model in eval mode on CPU, alphabet, feature config, the whole checkpoint dict)."""
    state = load_state(path, any_features)
    return (*model_from_state(state, path), state)


def model_from_state(state: dict, path: str | os.PathLike) -> tuple[Network, Alphabet, FeatureConfig]:
    """(model in eval mode on CPU, alphabet, feature config) of a dict from `load_state`, checked;
    for a caller that needs more of the checkpoint than the model, without reading the file again.
    `path` only names the file in errors."""
    try:
        alphabet = Alphabet(state["alphabet"])
        model_config = ModelConfig(**state["model_config"])
        feature_config = FeatureConfig(**state["feature_config"])
        if model_config.num_classes != alphabet.num_classes:
            raise CheckpointError(f"{path}: output width {model_config.num_classes} does not match "
                                  f"alphabet size + 1 = {alphabet.num_classes}")
        model = Network(model_config)
        model.load_state_dict(state["model"])
    except (KeyError, TypeError, RuntimeError, ValueError) as e:
        if isinstance(e, CheckpointError):
            raise
        raise CheckpointError(f"{path}: checkpoint contents do not fit this hwr ({type(e).__name__}: "
                              f"{str(e).splitlines()[0][:120]})") from None
    model.eval()
    return model, alphabet, feature_config


TRAINING_ONLY = ("optimizer", "scaler", "rng_torch", "epoch", "batch_in_epoch", "step", "bad_epochs")


def _write_model(state: dict, dst: str | os.PathLike) -> dict:
    """`state` without its training state, written atomically to `dst` and loaded back (it must load)."""
    slim = {k: v for k, v in state.items() if k not in TRAINING_ONLY}
    with atomic_path(dst) as tmp, open(tmp, "wb") as fh:
        torch.save(slim, fh)  # same bytes for the same weights, whatever the temp name
    load_model(dst)
    return slim


def export_model(src: str | os.PathLike, dst: str | os.PathLike, **extra: Any) -> dict:
    """Copy a checkpoint without its training state (optimizer moments etc.): a third of the size."""
    return _write_model({**load_state(src), **extra}, dst)


def _one_family(states: list[dict], paths: list[Path]) -> list[int]:
    """Indices of the checkpoints related to none of the others: a checkpoint is related to another when
    they come from one run (same seed and starting point), when one was warm-started from the other
    (a model and its children: a soup), or when both were warm-started from one model (siblings).
    `init_from` is stored as given to `hwr train`, so a relative one is read from the current folder."""
    runs = [s.get("train_config") or {} for s in states]
    starts = [Path(r["init_from"]).resolve() if r.get("init_from") else None for r in runs]

    def related(i: int, j: int) -> bool:
        same_run = all(runs[i].get(k) == runs[j].get(k) for k in ("seed", "init_from"))
        return (same_run or starts[i] == paths[j] or starts[j] == paths[i]
                or (starts[i] is not None and starts[i] == starts[j]))
    return [i for i in range(len(states)) if not any(related(i, j) for j in range(len(states)) if j != i)]


def average_checkpoints(sources: list[str | os.PathLike], dst: str | os.PathLike,
                        weights: list[float] | None = None) -> dict:
    """Write the element-wise mean of several checkpoints' weights (no training state).

    Why: the last epochs of a run that ends its learning rate low (a cosine cycle) sit near one
    minimum; their mean usually lies closer to its centre than any one of them, a free gain
    (Izmailov et al., 2018, "Averaging weights leads to wider optima"). The checkpoints must share
    architecture, alphabet and features, and should come from one run (or runs warm-started from one
    model): the mean of unrelated runs is no model at all, so a different seed or starting point is
    warned about. The first one's other entries (configs, data summary) are kept, not its
    training record (best CER, history: they are not the mean's).

    `weights` (one per checkpoint, each > 0, scaled to sum to 1; default equal) make a weighted mean: e.g. a
    "model soup" that keeps most of a tuned model and takes a little from runs warm-started from it
    (Wortsman et al., 2022); MODEL_CARD.md has what such soups measured.
    """
    if len(sources) < 2:
        raise CheckpointError("averaging needs at least two checkpoints")
    explicit = weights is not None
    weights = [1.0] * len(sources) if weights is None else list(weights)
    if len(weights) != len(sources):
        raise CheckpointError(f"{len(weights)} weights for {len(sources)} checkpoints: give one weight per checkpoint")
    if not all(math.isfinite(w) and w > 0 for w in weights) or not math.isfinite(sum(weights)):
        raise CheckpointError(f"weights {','.join(f'{w:g}' for w in weights)}: each must be a number > 0 "
                              "(leave a checkpoint out rather than give it 0)")
    share = [w / sum(weights) for w in weights]
    resolved = [Path(p).resolve() for p in sources]
    if len(set(resolved)) < len(resolved):
        raise CheckpointError("a checkpoint is named twice: each one is averaged once")
    if Path(dst).resolve() in resolved or Path(dst).name == "last.pt":
        raise CheckpointError(f"{dst}: would overwrite an input or a run's last.pt; write the mean to a new file")
    states = [load_state(p) for p in sources]
    first = states[0]
    for p, s in zip(sources[1:], states[1:]):
        for key in ("model_config", "feature_config", "alphabet"):
            if s.get(key) != first.get(key):
                raise CheckpointError(f"{p}: its {key.replace('_', ' ')} differs from {sources[0]}'s; "
                                      "only checkpoints of one run can be averaged")
    strangers = _one_family(states, resolved)
    if strangers:
        warnings.warn(f"{', '.join(str(sources[i]) for i in strangers)}: trained with another seed or starting point "
                      "than the others, and not warm-started from one of them or from the model they started from; "
                      "the mean of unrelated runs is usually a bad model", stacklevel=2)
    mean = {}
    try:
        for name, t in first["model"].items():
            stack = torch.stack([s["model"][name].to(torch.float64) for s in states])
            mix = torch.tensor(share, dtype=torch.float64).view(-1, *[1] * (stack.dim() - 1))
            mean[name] = (stack * mix).sum(0).to(t.dtype) if t.is_floating_point() else t.clone()
    except (KeyError, TypeError, RuntimeError, AttributeError) as e:
        raise CheckpointError(f"the checkpoints' weights do not line up ({type(e).__name__}: "
                              f"{str(e).splitlines()[0][:120] if str(e) else ''})") from None
    kept = {k: v for k, v in first.items() if k not in ("metrics", "best_cer", "history")}  # the first one's, not the mean's
    mixed = {"averaged_weights": share} if explicit else {}
    return _write_model({**kept, "model": mean, "averaged_from": [str(p) for p in sources], **mixed}, dst)
