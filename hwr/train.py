"""Training: a plain CTC loop you can read top to bottom (with `distill_from`, plus a teacher's frame
posteriors: `Trainer._distill_loss`).

    hwr train --data iam.h5 --out runs/base --epochs 60
    hwr train --resume runs/base --epochs 80          # continue exactly where it stopped
    torchrun --nproc_per_node=2 -m hwr.cli train ...  # DistributedDataParallel

What a run directory holds: `config.json` (everything that decided the run), `metrics.jsonl`
(one row per log interval and per epoch), `last.pt` (full training state, written every
`checkpoint_minutes` and at each epoch end) and `best.pt` (lowest validation CER: greedy's, or with
`select_decoder` that decoder's, e.g. beam search with the LM the model will ship with).

Exact resume: batches come from (seed, epoch), augmentation from (seed, epoch, sample), the
learning rate from the step count, and `last.pt` stores model, optimizer, scaler, the loop's
`TrainState` (epoch, position inside the epoch, step, best CER, ...) and torch's RNG state, so
stop + resume == never stopped.

Validation reads the lines the way `hwr evaluate` does (`Trainer.validate`), so the CERs recorded
in best.pt (`val_cer` greedy, `val_cer_decoder` with `select_decoder`) are what evaluate reports for
that checkpoint and split with those decoders.
"""

from __future__ import annotations

import collections
import json
import math
import os
import sys
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from tqdm import tqdm

from .errors import ConfigError, check_keys
from .fileutil import write_atomic
from . import checkpoint
from .alphabet import Alphabet
from .data import (Item, batch_features, collate, ctc_min_frames, load_split, make_batches, make_items,
                   resolve_split, splits_in)
from .decode import Decoder, DecoderConfig, greedy
from .features import AugmentConfig, FeatureConfig, check_size, ink_features
from .ink import Ink, InkError
from .metrics import char_edits
from .model import ModelConfig, Network, copy_matching
from .recognizer import Recognizer


@dataclass
class TrainConfig:
    data: list[str] = field(default_factory=list)
    train_split: str | None = None   # default: trainset, else train, else everything
    val_split: str | None = None     # default: testset_v, else val
    extra_train_splits: list[str] = field(default_factory=list)  # e.g. testset_t
    data_weights: list[float] = field(default_factory=list)  # per --data file: share used each epoch
    alphabet_min_count: int = 1      # rarer characters stay out of the alphabet (reported)
    epochs: int = 60
    max_minutes: float | None = None
    batch_size: int = 32
    lr: float = 2e-3
    weight_decay: float = 1e-2
    warmup_steps: int = 300
    lr_decay: float = 0.96           # per epoch, after warm-up (independent of total epochs)
    min_lr_ratio: float = 0.03
    restart_epochs: float = 0        # > 0: cosine cycles of this many epochs with warm restarts (`lr_at`)
    clip_grad: float = 5.0
    patience: int = 15               # epochs without a better validation CER before stopping
    checkpoint_minutes: float = 5.0
    keep_epochs: int = 0             # > 0: keep the weights of the last this-many epochs (`hwr model average`)
    log_every: int = 50              # steps
    seed: int = 1
    device: str = "auto"
    amp: bool = True                 # mixed precision on CUDA
    short_first_epochs: int = 1      # curriculum: the first epochs go short lines first
    init_from: str | None = None
    freeze_layers: int = 0           # with init_from: freeze the convolution and this many RNN layers
    max_val_samples: int | None = None
    # a decoder.json (e.g. a model's shipped one, with its LM): best.pt and early stopping follow the CER
    # of this decoder on the validation lines instead of greedy's. Run c10 read testset_v better greedy
    # and worse with beam + LM (MODEL_CARD.md): what is shipped is read with the LM, so select with it.
    select_decoder: str | None = None
    # a checkpoint whose frame posteriors the network also learns (KL divergence per output frame,
    # `distill_weight` times, beside CTC): a cheaper network (e.g. stride 4 with `upsample` 2, which
    # emits the same frames as a stride-2 teacher) learns where and what the teacher emits
    distill_from: str | None = None
    distill_weight: float = 1.0
    threads: int | None = None
    model: dict = field(default_factory=dict)
    features: dict = field(default_factory=dict)
    augment: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.batch_size < 1 or self.epochs < 1 or self.lr <= 0:
            raise ConfigError("batch_size and epochs must be >= 1 and lr > 0")
        if self.keep_epochs < 0:
            raise ConfigError("keep_epochs must be >= 0 (0: keep none)")
        if self.restart_epochs < 0:
            raise ConfigError("restart_epochs must be >= 0 (0: no restarts)")
        if self.device not in ("auto", "cpu", "cuda") and not self.device.startswith("cuda:"):
            raise ConfigError("device must be auto, cpu or cuda")
        if self.threads is not None and self.threads < 1:
            raise ConfigError("threads must be >= 1")
        if self.seed < 0 or (self.max_minutes is not None and self.max_minutes <= 0):
            raise ConfigError("seed must be >= 0 and max_minutes > 0")
        if self.distill_weight < 0:
            raise ConfigError("distill_weight must be >= 0")
        if any(not w > 0 for w in self.data_weights):
            raise ConfigError("every data weight must be > 0")
        if self.select_decoder is not None:
            if not Path(self.select_decoder).is_file():
                raise ConfigError(f"select_decoder: no decoder config at {self.select_decoder} (a model's "
                                  "decoder.json, or one written by `hwr tune-lm --out`)")
            self.select_decoder = str(Path(self.select_decoder).resolve())  # a resume may run elsewhere
        if self.distill_from is not None:
            if not Path(self.distill_from).is_file():
                raise ConfigError(f"distill_from: no checkpoint at {self.distill_from}")
            self.distill_from = str(Path(self.distill_from).resolve())
        for name in ("model", "features", "augment"):
            if not isinstance(getattr(self, name), dict):
                raise ConfigError(f"training config '{name}' must be an object of settings")
        for name, cls in (("model", ModelConfig), ("features", FeatureConfig), ("augment", AugmentConfig)):
            check_keys(cls, getattr(self, name), f"training config '{name}'")


class Distributed:
    """Rank/world from torchrun's environment; a no-op when run as one process."""

    def __init__(self, device: torch.device):
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        self.local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        if self.world > 1 and not dist.is_initialized():
            dist.init_process_group("nccl" if device.type == "cuda" else "gloo")

    @property
    def main(self) -> bool:
        return self.rank == 0

    def all_sum(self, *values: float) -> list[float]:
        t = torch.tensor(values, dtype=torch.float64)
        if self.world > 1:
            dist.all_reduce(t)
        return t.tolist()


def pick_device(name: str) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError("--device cuda asked for, but PyTorch sees no CUDA GPU; use --device cpu")
    if name == "cuda" and "LOCAL_RANK" in os.environ:
        name = f"cuda:{os.environ['LOCAL_RANK']}"
    return torch.device(name)


def read_metrics(path: str | os.PathLike) -> list[dict]:
    """The rows of a run's metrics.jsonl; a line cut by a kill (or any unreadable line) is skipped."""
    rows = []
    for line in Path(path).read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(row, dict):
            rows.append(row)
    return rows


def _trim_metrics(path: Path, step: int) -> None:
    """Before (re)starting at `step`: keep only the rows up to it, so a resumed run that redoes the
    steps after its last checkpoint does not log them twice (and a cut last line goes)."""
    if not path.exists():
        return
    keep = [r for r in read_metrics(path) if r.get("step", 0) <= step]
    write_atomic(path, "".join(json.dumps(r) + "\n" for r in keep))


def _readable(ink: Ink, fcfg: FeatureConfig) -> bool:
    """Whether the recognizer reads this line (`hwr evaluate` counts the others as unreadable)."""
    try:
        check_size(ink, fcfg)
    except InkError:
        return False
    return True


def lr_at(step: int, steps_per_epoch: int, cfg: TrainConfig) -> float:
    """Linear warm-up, then exponential decay per epoch down to a floor; with `restart_epochs`,
    cosine cycles instead (SGDR, Loshchilov & Hutter 2017): each cycle starts at the exponential
    curve's value for its first epoch and anneals to the floor at its end.

    Why restarts: a run left going for many hours in the background keeps finding better
    models after the exponential curve has flattened out (here, each hand-made warm restart gave
    a better model), and the end of each cycle, at a low rate, is a good point to validate.
    The rate depends only on the step, so a resumed run continues the same curve.
    """
    warm = min(1.0, (step + 1) / max(cfg.warmup_steps, 1))
    epochs = step / max(steps_per_epoch, 1)
    if cfg.restart_epochs > 0:
        cycle, into = divmod(epochs, cfg.restart_epochs)
        peak = max(cfg.lr_decay ** (cycle * cfg.restart_epochs), cfg.min_lr_ratio)
        decay = cfg.min_lr_ratio + (peak - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * into / cfg.restart_epochs))
    else:
        decay = max(cfg.lr_decay ** epochs, cfg.min_lr_ratio)
    return cfg.lr * warm * decay


@dataclass
class TrainState:
    """Where a run is: what the loop updates as it goes and `last.pt` keeps to continue it exactly
    (with the weights, optimizer, scaler and RNG that `Trainer.checkpoint_state` adds).

    Each field is a top-level checkpoint key of its own name, the layout checkpoints had before this
    class existed: older `last.pt` files resume, and older hwr reads newer ones.
    """
    epoch: int = 0               # epochs finished
    batch_in_epoch: int = 0      # batches of the next epoch already trained (a save inside an epoch)
    step: int = 0                # optimizer steps so far; the learning rate follows it
    best_cer: float = math.inf   # lowest validation CER so far (the selecting one): the model in best.pt
    bad_epochs: int = 0          # epochs since best_cer last improved (early stopping)
    history: list[dict] = field(default_factory=list)  # the epoch rows of metrics.jsonl

    def to_checkpoint(self) -> dict:
        return asdict(self)

    @classmethod
    def from_checkpoint(cls, saved: dict, path: str | os.PathLike = "checkpoint") -> TrainState:
        missing = [f.name for f in fields(cls) if f.name not in saved and f.name != "history"]
        if missing:
            raise checkpoint.CheckpointError(f"{path}: holds no training state ({', '.join(missing)} missing), "
                                             "so it cannot be resumed; start a run from it with --init-from")
        return cls(epoch=int(saved["epoch"]), batch_in_epoch=int(saved["batch_in_epoch"]), step=int(saved["step"]),
                   best_cer=float(saved["best_cer"]), bad_epochs=int(saved["bad_epochs"]),
                   history=list(saved.get("history", [])))  # history came after the first checkpoints

    def end_epoch(self, val_cer: float, keep_latest: bool = False) -> bool:
        """Count a finished epoch with its validation CER; True when its model is the best so far
        (always, with `keep_latest`: a run without validation data keeps its latest model)."""
        self.epoch += 1
        self.batch_in_epoch = 0
        improved = val_cer < self.best_cer or keep_latest
        if improved:
            self.best_cer, self.bad_epochs = val_cer, 0
        else:
            self.bad_epochs += 1
        return improved


class LogWindow:
    """Sums since the last `train` row of metrics.jsonl, averaged over the steps really in the window:
    an epoch or a resume starts a new one, shorter than log_every."""

    def __init__(self) -> None:
        self.loss = self.norm = 0.0
        self.distill: float | None = None
        self.steps = self.lines = self.frames = 0
        self.t = time.time()

    def add(self, loss: float, norm: float, lines: int, frames: int, distill: float | None = None) -> None:
        self.loss += loss
        self.distill = None if distill is None else (self.distill or 0.0) + distill
        self.norm += norm
        self.steps += 1
        self.lines += lines
        self.frames += frames

    def rates(self) -> dict:
        dt = time.time() - self.t
        row = {"loss": self.loss / self.steps, "grad_norm": self.norm / self.steps,
               "lines_per_s": self.lines / dt, "frames_per_s": self.frames / dt}
        if self.distill is not None:  # a run with a teacher: its KL per line, beside CTC's loss
            row["distill_loss"] = self.distill / self.steps
        return row


class Trainer:
    """One run: data, model, optimizer and `state` (a TrainState), then `run()`.

    `resume_state` is a run's own `last.pt` (from `checkpoint.load_state`): its alphabet,
    architecture, weights, optimizer and loop state are all taken from it.
    """

    def __init__(self, cfg: TrainConfig, out: str | os.PathLike, resume_state: dict | None = None,
                 progress: bool = True):
        self.cfg = cfg
        self.out = Path(out)
        self.device = pick_device(cfg.device)
        self.dist = Distributed(self.device)
        self.progress = progress and self.dist.main
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        torch.manual_seed(cfg.seed)
        self.fcfg = FeatureConfig(**cfg.features)
        self.acfg = AugmentConfig(**cfg.augment)
        # what the model starts from, read from disk once: the run's own last.pt when resuming (its
        # alphabet and weights exactly), else the --init-from checkpoint (its alphabet grown by the new
        # data's characters, its matching weights copied), else nothing
        start = resume_state
        if start is None and cfg.init_from:
            start = checkpoint.load_state(cfg.init_from, any_features=True)
        resuming = resume_state is not None
        self._load_data(Alphabet(start["alphabet"]) if start is not None else None, grow=not resuming)
        self._build_model(start, exact=resuming)
        # built (its LM loaded) before the first step: a bad decoder config fails now, not after an epoch
        self.selector = (Decoder(self.alphabet, DecoderConfig.from_json(cfg.select_decoder))
                         if cfg.select_decoder else None)
        self.teacher = self._load_teacher(cfg.distill_from) if cfg.distill_from and cfg.distill_weight else None
        self.state = TrainState()
        if resuming:
            self._restore(resume_state)

    # ------------------------------------------------------------------ setup
    def log(self, msg: str) -> None:
        if self.dist.main:
            tqdm.write(msg, file=sys.stderr)

    def _load_data(self, alphabet: Alphabet | None, grow: bool) -> None:
        """Training and validation items. `alphabet`: the starting checkpoint's; `grow` appends the
        characters of the data that it lacks (fine-tuning), else it is kept as it is (resuming)."""
        cfg = self.cfg
        if not cfg.data:
            raise ConfigError("no training data: pass --data FILE.h5")
        if cfg.data_weights and len(cfg.data_weights) != len(cfg.data):
            raise ConfigError("data_weights needs one weight per --data file")
        train_split = resolve_split(cfg.data, cfg.train_split, ["trainset", "train"])
        val_split = resolve_split(cfg.data, cfg.val_split, ["testset_v", "val", "valid", "validation"])
        rows, source_of, val_rows = [], [], []
        for k, path in enumerate(cfg.data):
            present = splits_in(path)
            # a store without the training split (e.g. UNIPEN next to IAM-OnDB) gives all of
            # its samples that are not validation samples
            if train_split in present:
                part = load_split([path], train_split)
            else:
                part = [r for r in load_split([path], None) if not (val_split and r[4] == val_split)]
            for extra in cfg.extra_train_splits:
                if extra in present:
                    part += load_split([path], extra)
            rows += part
            source_of += [k] * len(part)
            if val_split in present:
                val_rows += load_split([path], val_split)
        if not rows:
            raise ConfigError(f"split {train_split!r} has no samples")
        if alphabet is not None and not grow:
            self.alphabet = alphabet
        elif alphabet is not None:  # old labels keep their numbers, so the head's rows can be copied
            new = Alphabet.from_texts(r[2] for r in rows)
            self.alphabet = Alphabet(alphabet.chars + [c for c in new.chars if c not in alphabet.index])
        else:
            self.alphabet = Alphabet.from_texts((r[2] for r in rows), min_count=cfg.alphabet_min_count)
        unknown: collections.Counter = collections.Counter()
        self.train_items = make_items(rows, self.alphabet, self.fcfg, unknown, source_of)
        # validation scores the lines `hwr evaluate` scores, so that best.pt's CER is what evaluate
        # measures on it: those with characters outside the alphabet too, not those too large to read
        val_unknown: collections.Counter = collections.Counter()
        val_items = make_items(val_rows, self.alphabet, self.fcfg, val_unknown, keep_unknown=True)
        self.val_items = [it for it in val_items if _readable(it.ink, self.fcfg)]
        if cfg.max_val_samples:
            self.val_items = self.val_items[:cfg.max_val_samples]
        if unknown:
            self.log(f"skipped training samples with characters outside the alphabet: {dict(unknown)}")
        if val_unknown:
            self.log(f"validation lines with characters outside the alphabet (scored, so they count as errors; "
                     f"no loss): {dict(val_unknown)}")
        if len(self.val_items) < len(val_items) and not cfg.max_val_samples:
            self.log(f"{len(val_items) - len(self.val_items)} validation lines too large to read left out")
        self.data_summary = {"train_split": train_split, "val_split": val_split,
                             "train_samples": len(self.train_items), "val_samples": len(self.val_items),
                             "files": [os.fspath(p) for p in cfg.data],
                             "unknown_characters": dict(unknown), "val_unknown_characters": dict(val_unknown)}
        self.log(f"data: {len(self.train_items)} training lines ({train_split or 'all'}), "
                 f"{len(self.val_items)} validation lines ({val_split}), alphabet of {len(self.alphabet)}")

    def _build_model(self, start: dict | None, exact: bool) -> None:
        """The network, with the architecture of `start` (a checkpoint dict) when there is one:
        `exact` loads its weights as they are (resuming), else `_init_from` copies what fits."""
        cfg = self.cfg
        base = start["model_config"] if start is not None else {}  # fine-tuning keeps the architecture
        mcfg = ModelConfig(**{**base, **cfg.model, "input_size": self.fcfg.size,
                              "num_classes": self.alphabet.num_classes})
        self.model = Network(mcfg)
        if start is not None and exact:
            self.model.load_state_dict(start["model"])
        elif start is not None:
            self._init_from(start, cfg.init_from)
        self._check_feasibility()
        self.model.to(self.device)
        if self.dist.world > 1:
            self.ddp = torch.nn.parallel.DistributedDataParallel(
                self.model, device_ids=[self.device.index] if self.device.type == "cuda" else None)
        else:
            self.ddp = self.model
        params = [p for p in self.model.parameters() if p.requires_grad]
        self.opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
        self.use_amp = cfg.amp and self.device.type == "cuda"
        self.amp_dtype = torch.bfloat16 if self.use_amp and torch.cuda.is_bf16_supported() else torch.float16
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.use_amp and self.amp_dtype == torch.float16)
        self.ctc = torch.nn.CTCLoss(blank=0, reduction="sum", zero_infinity=True)
        self.log(f"model: {mcfg.layers}x Bi{mcfg.rnn.upper()}({mcfg.hidden}), "
                 f"{self.model.num_parameters():,} parameters, device {self.device}"
                 + (f", {self.dist.world} processes" if self.dist.world > 1 else "")
                 + (f", amp {self.amp_dtype}" if self.use_amp else ""))

    def _init_from(self, start: dict, path: str) -> None:
        """Transfer learning: copy matching weights; rows for new characters keep their fresh init."""
        old_model, old_alpha, _ = checkpoint.model_from_state(start, path)
        if self.cfg.freeze_layers and self.model.config.hidden != old_model.config.hidden:
            raise ConfigError("--freeze-layers with wider LSTMs would keep the new units of the frozen layers "
                              "silent forever: widen without freezing")
        copy_matching(old_model, self.model)
        if self.cfg.freeze_layers:
            frozen = list(self.model.conv.parameters()) if self.model.conv is not None else []
            for name, p in self.model.rnn.named_parameters():
                if int(name.split("_l")[1].split("_")[0]) < self.cfg.freeze_layers:
                    frozen.append(p)
            for p in frozen:
                p.requires_grad_(False)
        self.log(f"initialised from {path} (alphabet {len(old_alpha)} -> {len(self.alphabet)})")

    def _load_teacher(self, path: str) -> Network:
        """The network to distil from: same alphabet and features as this run, frozen, in eval mode."""
        teacher, alphabet, fcfg, _ = checkpoint.load_model(path)
        # the run's alphabet may have grown past the teacher's (new characters are appended): the KL
        # then covers the teacher's classes
        if alphabet.chars != self.alphabet.chars[:len(alphabet)] or fcfg.as_dict() != self.fcfg.as_dict():
            raise ConfigError(f"{path}: a teacher must read the same alphabet (or the start of it) and features "
                              f"as the run ({len(alphabet)} vs {len(self.alphabet)} characters)")
        mine, theirs = self.model.config, teacher.config
        if (theirs.points_per_frame, theirs.conv_kernel // 2 if theirs.conv_channels else 0) != \
                (mine.points_per_frame, mine.conv_kernel // 2 if mine.conv_channels else 0):
            raise ConfigError(f"{path}: the teacher's output frames cover {theirs.points_per_frame} points each, "
                              f"this network's {mine.points_per_frame} (or their padding differs): frame t would "
                              "not mean the same ink in both; use upsample to match (e.g. stride 4, upsample 2 "
                              "for a stride-2 teacher)")
        for p in teacher.parameters():
            p.requires_grad_(False)
        self.log(f"distilling from {path} ({teacher.num_parameters():,} parameters), weight {self.cfg.distill_weight}")
        return teacher.to(self.device).eval()

    def _distill_loss(self, x: torch.Tensor, lengths: torch.Tensor, log_probs: torch.Tensor,
                      out_lengths: torch.Tensor) -> torch.Tensor:
        """Sum over lines and frames of KL(teacher || network), on the frames both emit."""
        with torch.no_grad(), torch.autocast(self.device.type, dtype=self.amp_dtype, enabled=self.use_amp):
            t_lp, t_lengths = self.teacher(x, lengths)
        t_lp = t_lp.float()
        frames = min(t_lp.shape[0], log_probs.shape[0])
        valid = torch.minimum(t_lengths, out_lengths.to(t_lengths.device)).to(log_probs.device)
        mask = torch.arange(frames, device=log_probs.device)[:, None] < valid[None, :]  # T, B
        classes = t_lp.shape[-1]
        kl = (t_lp[:frames].exp() * (t_lp[:frames] - log_probs[:frames, :, :classes].float())).sum(-1)  # T, B
        return (kl * mask).sum()

    def _check_feasibility(self) -> None:
        """Report (and leave out) lines whose label cannot fit the frames the model emits."""
        lengths = torch.tensor([it.length for it in self.train_items])
        frames = self.model.output_lengths(lengths).tolist()
        ok = [it for it, f in zip(self.train_items, frames) if ctc_min_frames(it.labels) <= f]
        bad = len(self.train_items) - len(ok)
        if bad:
            self.log(f"CTC feasibility: {bad} training lines have labels longer than their frames; "
                     "left out (use a smaller --features step or conv stride to keep them)")
        self.data_summary["infeasible"] = bad
        if not ok:  # training on nothing would "succeed" with an untrained best.pt
            raise ConfigError(f"none of the {bad} training lines fits its frames (labels longer than the ink allows); "
                              "use a smaller features step or conv stride")
        self.train_items = ok

    # ------------------------------------------------------------------ loop
    def checkpoint_state(self) -> dict:
        """What a checkpoint holds beside the weights, alphabet and configs: the loop's state, the
        optimizer, scaler and torch RNG (all an exact resume needs), the config and the data summary."""
        return {**self.state.to_checkpoint(), "optimizer": self.opt.state_dict(),
                "scaler": self.scaler.state_dict(), "rng_torch": torch.get_rng_state(),
                "train_config": asdict(self.cfg), "data_summary": self.data_summary}

    def _restore(self, saved: dict) -> None:
        """The inverse of `checkpoint_state` (the weights were loaded with the model). The RNG comes
        last: nothing may draw from it between here and the first step, as in the run that saved it."""
        self.state = TrainState.from_checkpoint(saved, self.out / "last.pt")
        self.opt.load_state_dict(saved["optimizer"])
        self.scaler.load_state_dict(saved["scaler"])
        torch.set_rng_state(saved["rng_torch"])
        self.log(f"resuming at epoch {self.state.epoch + 1}, batch {self.state.batch_in_epoch}, step {self.state.step}")

    def save(self, name: str, **extra) -> None:
        """Write `name` in the run folder with the full training state (rank 0 only)."""
        if self.dist.main:
            checkpoint.save(self.out / name, self.model, self.alphabet, self.fcfg, **self.checkpoint_state(), **extra)

    def keep_epoch(self, epoch: int, scores: dict) -> None:
        """`epoch-N.pt`: this epoch's weights without the training state, for the last `keep_epochs`
        epochs; older ones are removed (also after a resume with fewer). Averaging the last epochs
        of a cycle (`hwr model average`) needs them."""
        if not self.dist.main:
            return
        if self.cfg.keep_epochs:
            checkpoint.save(self.out / f"epoch-{epoch}.pt", self.model, self.alphabet, self.fcfg,
                            train_config=asdict(self.cfg), data_summary=self.data_summary,
                            metrics=scores)
        for old in self.out.glob("epoch-*.pt"):
            n = old.stem.removeprefix("epoch-")
            if n.isdigit() and int(n) <= epoch - self.cfg.keep_epochs:
                old.unlink(missing_ok=True)

    def batches_for(self, epoch: int) -> list[np.ndarray]:
        lengths = np.array([it.length for it in self.train_items], dtype=np.float64)
        rng = np.random.default_rng([self.cfg.seed, epoch, 7])
        pool = np.arange(len(self.train_items))
        if self.cfg.data_weights:  # a fresh random share of each store every epoch
            w = np.array(self.cfg.data_weights)[[it.source for it in self.train_items]]
            pool = pool[rng.random(len(pool)) < w]
        batches = [pool[b] for b in make_batches(lengths[pool], self.cfg.batch_size, rng)]
        if epoch < self.cfg.short_first_epochs:  # short lines first: leaves CTC's plateau sooner
            batches.sort(key=lambda b: lengths[b].max())
        n = len(batches) // self.dist.world * self.dist.world
        return batches[self.dist.rank:n:self.dist.world]

    def train_step(self, items: list[Item], index: np.ndarray, epoch: int, step: int, steps_per_epoch: int):
        feats = batch_features(items, self.fcfg, self.acfg, self.cfg.seed, epoch, index)
        x, lengths, targets, target_lengths = collate(feats, [it.labels for it in items])
        nb = self.device.type == "cuda"
        x = x.to(self.device, non_blocking=nb)
        for g in self.opt.param_groups:
            g["lr"] = lr_at(step, steps_per_epoch, self.cfg)
        self.ddp.train()
        with torch.autocast(self.device.type, dtype=self.amp_dtype, enabled=self.use_amp):
            lengths_dev = lengths.to(self.device, non_blocking=nb)
            log_probs, out_lengths = self.ddp(x, lengths_dev)
        loss = self.ctc(log_probs.float(), targets.to(self.device), out_lengths, target_lengths.to(self.device))
        loss = loss / len(items)
        total, distill = loss, None
        if self.teacher is not None:
            distill = self._distill_loss(x, lengths_dev, log_probs, out_lengths) / len(items)
            total = loss + self.cfg.distill_weight * distill
        self.opt.zero_grad(set_to_none=True)
        self.scaler.scale(total).backward()
        self.scaler.unscale_(self.opt)
        norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.clip_grad)
        self.scaler.step(self.opt)
        self.scaler.update()
        return loss.item(), float(norm), int(lengths.sum()), None if distill is None else distill.item()

    def _val_batches(self, items: list[Item]) -> list:
        """Validation batches: (items, features, targets, target lengths, which lines have a label),
        computed once per run (no augmentation: they never change), sorted by length."""
        if getattr(self, "_val_cache", None) is None:
            order = sorted(range(len(items)), key=lambda i: items[i].length)
            self._val_cache = []
            for s in range(0, len(order), 64):
                batch = [items[i] for i in order[s:s + 64]]
                labels = [it.labels or [] for it in batch]
                self._val_cache.append((batch, [ink_features(it.ink, self.fcfg) for it in batch],
                                        torch.tensor([c for lab in labels for c in lab], dtype=torch.long),
                                        torch.tensor([len(lab) for lab in labels], dtype=torch.long),
                                        torch.tensor([it.labels is not None for it in batch])))
        return self._val_cache

    @torch.no_grad()
    def validate(self) -> tuple[float, float, float | None]:
        """(greedy CER, mean CTC loss, CER of `select_decoder` or None) on this rank's share of the
        validation lines, summed over ranks.

        The network runs through `Recognizer.log_probs`, as in `hwr evaluate`: packed batches (int8 LSTMs: each line alone) and,
        on a GPU, the inference precision (not the training autocast dtype), so that best.pt's CER
        is the CER `hwr evaluate` measures on it on that device with the same decoder. Lines with
        characters outside the alphabet count in the CER only (the loss needs a label)."""
        reader = Recognizer(self.model, self.alphabet, self.fcfg, device=self.device)  # puts it in eval mode
        items = self.val_items[self.dist.rank::self.dist.world]
        edits = chars = loss_sum = labelled = selected_edits = 0.0
        for batch, feats, targets, target_lengths, has_label in self._val_batches(items):
            log_probs, out_lengths = reader.log_probs(feats)  # T', B, C (CPU)
            losses = torch.nn.functional.ctc_loss(log_probs, targets, out_lengths, target_lengths, blank=0,
                                                  reduction="none", zero_infinity=True)
            loss_sum += float(losses[has_label].sum())
            labelled += int(has_label.sum())
            for it, hyps in zip(batch, greedy(log_probs, out_lengths, self.alphabet)):
                edits += char_edits(it.text, hyps[0].text)
                chars += len(it.text)
            if self.selector is not None:
                for it, hyps in zip(batch, self.selector(log_probs, out_lengths)):
                    selected_edits += char_edits(it.text, hyps[0].text if hyps else "")
        edits, chars, loss_sum, labelled, selected_edits = self.dist.all_sum(
            edits, chars, loss_sum, labelled, selected_edits)
        selected = selected_edits / max(chars, 1) if self.selector is not None else None
        return edits / max(chars, 1), loss_sum / max(labelled, 1), selected

    def run(self) -> dict:
        cfg, st = self.cfg, self.state
        self.out.mkdir(parents=True, exist_ok=True)
        if self.dist.main:
            write_atomic(self.out / "config.json", json.dumps(asdict(cfg), indent=2))  # the app reads it live
            _trim_metrics(self.out / "metrics.jsonl", st.step)
        metrics = open(self.out / "metrics.jsonl", "a") if self.dist.main else None
        t_start = last_ckpt = time.time()
        stop_reason = "epochs"
        steps_per_epoch = len(self.batches_for(0))
        while st.epoch < cfg.epochs:
            batches = self.batches_for(st.epoch)
            bar = tqdm(total=len(batches), initial=st.batch_in_epoch, desc=f"epoch {st.epoch + 1}/{cfg.epochs}",
                       disable=not self.progress, unit="batch", dynamic_ncols=True, leave=False)
            window = LogWindow()
            for bi in range(st.batch_in_epoch, len(batches)):
                idx = batches[bi]
                items = [self.train_items[i] for i in idx]
                loss, norm, frames, distill = self.train_step(items, idx, st.epoch, st.step, steps_per_epoch)
                st.step += 1
                st.batch_in_epoch = bi + 1
                window.add(loss, norm, len(items) * self.dist.world, frames * self.dist.world, distill)
                bar.update(1)
                if st.step % cfg.log_every == 0:
                    row = {"kind": "train", "epoch": st.epoch + 1, "step": st.step, **window.rates(),
                           "lr": lr_at(st.step, steps_per_epoch, cfg), "elapsed_min": (time.time() - t_start) / 60}
                    bar.set_postfix(loss=f"{row['loss']:.3f}", gnorm=f"{row['grad_norm']:.2f}",
                                    lps=f"{row['lines_per_s']:.0f}")
                    if metrics:
                        metrics.write(json.dumps(row) + "\n")
                        metrics.flush()
                    window = LogWindow()
                if time.time() - last_ckpt > cfg.checkpoint_minutes * 60 and bi + 1 < len(batches):
                    self.save("last.pt")
                    last_ckpt = time.time()
                if cfg.max_minutes and time.time() - t_start > cfg.max_minutes * 60:
                    stop_reason = "max_minutes"
                    self.save("last.pt")
                    break
            bar.close()
            if stop_reason == "max_minutes":
                break
            val_cer, val_loss, val_cer_decoder = (self.validate() if self.val_items
                                                  else (math.nan, math.nan, None))
            score = val_cer if val_cer_decoder is None else val_cer_decoder
            improved = st.end_epoch(score, keep_latest=not self.val_items)
            row = {"kind": "epoch", "epoch": st.epoch, "step": st.step, "val_cer": val_cer, "val_loss": val_loss,
                   "best_cer": st.best_cer, "elapsed_min": (time.time() - t_start) / 60,
                   "lr": lr_at(st.step, steps_per_epoch, cfg)}
            scores = {"val_cer": val_cer, "epoch": st.epoch}
            if val_cer_decoder is not None:
                row["val_cer_decoder"] = scores["val_cer_decoder"] = val_cer_decoder
            st.history.append(row)
            if metrics:
                metrics.write(json.dumps(row) + "\n")
                metrics.flush()
            read = "" if val_cer_decoder is None else f", {val_cer_decoder:.2%} with the selecting decoder"
            self.log(f"epoch {st.epoch}: validation CER {val_cer:.2%}{read} (best {st.best_cer:.2%}), "
                     f"loss {val_loss:.3f}, {row['elapsed_min']:.1f} min")
            if improved:
                self.save("best.pt", metrics=scores)
            self.keep_epoch(st.epoch, scores)  # before last.pt: a resume after a kill here redoes nothing
            self.save("last.pt")
            last_ckpt = time.time()
            if st.bad_epochs >= cfg.patience:
                stop_reason = "early_stopping"
                self.log(f"early stopping: no better validation CER for {cfg.patience} epochs")
                break
        if metrics:
            metrics.close()
        if self.dist.world > 1:
            dist.barrier()
        return {"best_val_cer": st.best_cer, "epochs": st.epoch, "steps": st.step, "stopped": stop_reason}


def train(cfg: TrainConfig, out: str | os.PathLike, progress: bool = True) -> dict:
    """Train a new run in `out` (an existing last.pt there is refused: use resume)."""
    if (Path(out) / "last.pt").exists():
        raise FileExistsError(f"{out} already holds a run; continue it with `hwr train --resume {out}` "
                              "or choose another --out")
    return Trainer(cfg, out, progress=progress).run()


def resume(out: str | os.PathLike, epochs: int | None = None, max_minutes: float | None = None,
           progress: bool = True, **overrides) -> dict:
    """Continue the run in `out` from last.pt; `epochs` is the new total."""
    state = checkpoint.load_state(Path(out) / "last.pt")
    saved = dict(state["train_config"])
    if epochs is not None:
        saved["epochs"] = epochs
    saved["max_minutes"] = max_minutes
    before = saved.get("select_decoder")
    saved.update({k: v for k, v in overrides.items() if v is not None})
    cfg = TrainConfig(**saved)
    trainer = Trainer(cfg, out, resume_state=state, progress=progress)
    if cfg.select_decoder != before:  # a best CER by another decoder is no bar for this one
        trainer.state.best_cer, trainer.state.bad_epochs = math.inf, 0
        trainer.log(f"best.pt is chosen by {cfg.select_decoder}'s CER from the next epoch on")
    return trainer.run()
