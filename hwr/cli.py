"""The `hwr` command line: a thin layer that parses arguments and calls one package function.

Errors a user can cause (bad file, bad option) print one line and exit with status 2;
anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import MISSING, fields
from pathlib import Path

from . import __version__
from .errors import ConfigError, HwrError
from .fileutil import write_atomic


class UserError(HwrError):
    """Raised by command handlers for a one-line message to the user."""


# what the input or the settings got wrong (every hwr error class derives from HwrError) and the
# file-system refusals a user can cause; anything else is a bug and keeps its traceback
USER_ERRORS = (HwrError, FileExistsError, FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError)


def count(low: int = 1, high: int | None = None):
    """argparse type: an integer in [low, high], refused in one line otherwise."""
    def parse(s: str) -> int:
        try:
            v = int(s)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{s!r} is not a whole number") from None
        if v < low or (high is not None and v > high):
            raise argparse.ArgumentTypeError(f"{v} is out of range: use {low}" + (f" to {high}" if high else " or more"))
        return v
    return parse


def shard_spec(s: str) -> tuple[int, int]:
    """argparse type for --shard I/N."""
    try:
        i, n = (int(x) for x in s.split("/"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{s!r} is not I/N (e.g. 0/4)") from None
    if not 0 <= i < n:
        raise argparse.ArgumentTypeError(f"{s}: needs 0 <= I < N")
    return i, n


def numbers(s: str) -> list[float]:
    """argparse type for a comma-separated list of numbers."""
    try:
        return [float(x) for x in s.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{s!r} is not a comma-separated list of numbers") from None


def out_file(path: str) -> str:
    """An output path that is, or will be, a regular file: folders, pipes and devices are refused
    (they hang, grow without bound or strand temporary files beside them)."""
    p = Path(path)
    if p.is_dir():
        raise argparse.ArgumentTypeError(f"{path} is a folder; give a file name")
    if p.exists() and not p.is_file():
        raise argparse.ArgumentTypeError(f"{path} is not a regular file (a pipe or device); write to a file")
    return path


# ---------------------------------------------------------------------- defaults
def field_default(cls, name: str):
    """The default of dataclass field `cls.name` (a default_factory is called)."""
    f = next(f for f in fields(cls) if f.name == name)
    return f.default_factory() if f.default is MISSING else f.default


def shown(value) -> str:
    """A default as a help text shows it: as typed on the command line, lists comma-separated."""
    if isinstance(value, (list, tuple)):
        return ",".join(map(shown, value)) or "none"
    if isinstance(value, float):
        return f"{value:g}"
    return "none" if value is None else str(value)


def add_field(p: argparse.ArgumentParser, cls, name: str, *flags: str, help: str = "", given_only: bool = False,
              default_text: str = "{}", **kw) -> argparse.Action:
    """Add to `p` the option of dataclass field `cls.name`, so each default is written once, in its dataclass.

    The option's default is the field's and its help ends "(default: X)"; `flags` default to
    `--name-with-dashes`. With `given_only` the value stays None unless the flag is given, for a
    setting something else decides when it is not (a --config file, a resumed run, the model's
    decoder.json); the help then says `default_text`, in which {} stands for the field's default.
    The action remembers its field (`action.field`), so a test can check that they agree.
    """
    value = field_default(cls, name)
    text = default_text.format(shown(value)) if given_only else shown(value)
    action = p.add_argument(*(flags or ["--" + name.replace("_", "-")]), default=None if given_only else value,
                            help=f"{help} (default: {text})".lstrip(), **kw)
    action.field = (cls, name)
    return action


class Parser(argparse.ArgumentParser):
    """An ArgumentParser that adds a command's options when the command is used (`options=`, a function
    of the parser): they take their defaults from the dataclasses of the modules that run the command,
    and `hwr data info` or `hwr --help` should not import torch to learn the training defaults."""

    def __init__(self, *args, options=None, **kw):
        super().__init__(*args, **kw)
        self._options = options

    def complete(self) -> Parser:
        """Add the deferred options now (parsing and help do it themselves)."""
        if self._options is not None:
            add, self._options = self._options, None
            add(self)
        return self

    def parse_known_args(self, args=None, namespace=None):
        self.complete()
        return super().parse_known_args(args, namespace)

    def format_help(self) -> str:
        self.complete()
        return super().format_help()


# ---------------------------------------------------------------------- data
def cmd_data_import(a) -> int:
    from .importers import import_to_store
    opts = {}
    if a.splits:
        opts["splits_dir"] = a.splits
    if a.level:
        opts["levels"] = a.level
    if a.groups:
        opts["groups"] = True
    if a.repair_time:
        opts["repair_time"] = a.repair_time
    if a.pages:
        if a.format != "iam-ondb":
            raise UserError(f"--pages works with iam-ondb only (its line files share one page's frame and clock); "
                            f"drop it for {a.format}")
        opts["pages"] = True
    report = import_to_store(a.format, a.src, a.out, split=a.split, **opts)
    print("\n".join(report.lines()))
    print(f"wrote {a.out}")
    if report.failed_files:  # the rest was imported; the status says not everything was
        print(f"hwr data import: {report.failed_files:,} input file(s) had problems (listed above)", file=sys.stderr)
        return 1
    return 0


def cmd_data_compose_lines(a) -> int:
    from .synth import compose_lines_store
    try:
        given = {"count": a.lines, "seed": a.seed, "words_per_line": a.words_per_line and tuple(a.words_per_line)}
        summary = compose_lines_store(a.src, a.out, **{k: v for k, v in given.items() if v is not None})
    except ValueError as e:
        raise UserError(str(e)) from None
    print(f"wrote {a.out}: {summary['lines']:,} lines from {summary['words']:,} words of {summary['writers']:,} "
          f"writers ({summary['words_without_writer']:,} words without a writer left out)")
    return 0


def cmd_data_info(a) -> int:
    from .store import Store
    with Store(a.file) as s:
        summ = s.summary()
        attrs = s.attrs
    if a.json:
        d = summ.as_dict()
        d["file"] = a.file
        d["format_version"] = int(attrs.get("format_version", 0))
        d["created_by"] = attrs.get("created_by", "")
        print(json.dumps(d, ensure_ascii=False))
        return 0
    print(f"{a.file}: {summ.samples:,} samples, {summ.strokes:,} strokes, {summ.points:,} points, "
          f"{summ.characters:,} characters ({len(summ.charset)} distinct)")
    print(f"created by: {attrs.get('created_by', '?')}, format version {attrs.get('format_version')}")
    for split, n in summ.splits.items():
        print(f"  {split or '(no split)':12s} {n:7,} samples {summ.characters_per_split[split]:9,} characters")
    print("characters: " + "".join(summ.charset))
    return 0


def cmd_data_show(a) -> int:
    from .render import render_sample
    from .store import Store
    with Store(a.file) as s:
        if not -len(s) <= a.index < len(s):
            raise UserError(f"index {a.index} out of range: the store has {len(s)} samples")
        sample = s[a.index]
    result = _recognizer(a).recognize(sample.ink) if a.read else None
    lines = render_sample(sample, a.out, result)
    print(f"wrote {a.out}" + (f" ({lines} lines)" if lines > 1 else ""))
    return 0


def cmd_data_export(a) -> int:
    from .exporters import export_store
    n, refused = export_store(a.file, a.format, a.out)
    for line in refused:
        print(f"hwr data export: {line}", file=sys.stderr)
    print(f"exported {n:,} samples to {a.out}" + (f"; {len(refused):,} refused (see above)" if refused else ""))
    return 1 if refused else 0


# ---------------------------------------------------------------------- training
def _train_config(a):
    from .errors import check_keys
    from .train import TrainConfig
    base = {}
    if a.config:
        try:
            base = json.loads(Path(a.config).read_text())
        except json.JSONDecodeError as e:
            raise UserError(f"{a.config}: not a JSON training config ({e.msg}, line {e.lineno})") from None
        if not isinstance(base, dict):
            raise UserError(f"{a.config}: a training config is a JSON object of TrainConfig fields")
        check_keys(TrainConfig, base, a.config)
    for f in fields(TrainConfig):  # every option named as its field (a new one cannot be forgotten here)
        v = getattr(a, f.name, None)
        if v is not None:
            base[f.name] = v
    if a.data_weight:
        base["data_weights"] = a.data_weight
    if a.extra_train_split:
        base["extra_train_splits"] = a.extra_train_split
    if a.no_augment:
        base.setdefault("augment", {})["enabled"] = False
    try:
        return TrainConfig(**base)
    except TypeError as e:  # a value of the wrong type in the config file ("epochs": "ten", "model": 5)
        raise UserError(f"{a.config or 'training options'}: a setting has the wrong type ({e})") from None


def cmd_train(a) -> int:
    from . import train as T
    if a.resume:
        # --lr / --patience / --restart-epochs / --keep-epochs / --select-decoder / --distill-* on resume change the run from here on
        result = T.resume(a.resume, epochs=a.epochs, max_minutes=a.max_minutes, device=a.device,
                          threads=a.threads, lr=a.lr, patience=a.patience, restart_epochs=a.restart_epochs,
                          keep_epochs=a.keep_epochs, select_decoder=a.select_decoder,
                          distill_from=a.distill_from, distill_weight=a.distill_weight)
    else:
        if not a.out:
            raise UserError("--out RUN_DIR is required (or --resume RUN_DIR)")
        result = T.train(_train_config(a), a.out)
    print(json.dumps(result))
    return 0


def cmd_plot(a) -> int:
    from .render import plot_run
    plot_run(a.run, a.out)
    print(f"wrote {a.out}")
    return 0


# ---------------------------------------------------------------------- recognition
def _decoder_config(a, base=None):
    """Decoder settings: --decoder-config, else the model's decoder.json, overridden by the flags given."""
    from dataclasses import replace
    from .decode import DecoderConfig
    if getattr(a, "decoder_config", None):
        if not Path(a.decoder_config).is_file():
            raise UserError(f"{a.decoder_config}: no such decoder config (a decoder.json, e.g. from hwr tune-lm --out)")
        base = DecoderConfig.from_json(a.decoder_config)
    cfg = base or DecoderConfig()
    over = {}
    if getattr(a, "decoder", None):
        over["kind"] = a.decoder
    if getattr(a, "beam_size", None):
        over["beam_size"] = a.beam_size
    if getattr(a, "lm", None):
        over["lm"] = None if a.lm == "none" else a.lm
    if getattr(a, "lm_weight", None) is not None:
        over["lm_weight"] = a.lm_weight
    if getattr(a, "word_bonus", None) is not None:
        over["word_bonus"] = a.word_bonus
    if getattr(a, "lexicon", None):
        over["lexicon"] = a.lexicon
    if over.get("lm") and over.get("kind", cfg.kind) == "greedy" and "kind" not in over:
        over["kind"] = "beam"
    return replace(cfg, **over)


def _recognizer(a):
    from .recognizer import Recognizer
    if a.threads:  # before loading: the ONNX backend sizes its thread pool from it
        import torch
        torch.set_num_threads(a.threads)
    rec = Recognizer.load(a.model, device=getattr(a, "device", None) or "auto", backend=a.backend)
    rec.decoder_config = _decoder_config(a, rec.decoder_config)
    return rec


def cmd_evaluate(a) -> int:
    from .evaluate import evaluate, format_summary
    rec = _recognizer(a)
    summary = evaluate(a.data, rec, split=a.split, report=a.report, limit=a.limit, batch_size=a.batch_size,
                       progress=not a.json, layout=a.layout)
    if a.json:
        print(json.dumps(summary, ensure_ascii=False))
    else:
        print(format_summary(summary))
    return 0


def cmd_tune_lm(a) -> int:
    from .evaluate import tune_lm
    rec = _recognizer(a)
    lm = rec.decoder_config.lm  # --lm, else the model's own (its decoder.json)
    if not lm:
        raise ConfigError("tune-lm tunes a language model's weight and the model has none: give --lm LM.arpa")
    # --beam-size, else the decoder settings' (--decoder-config or the model's): tune at the beam it decodes with
    res = tune_lm(a.data, rec, lm, split=a.split, beam_size=rec.decoder_config.beam_size, limit=a.limit, weights=a.weights,
                  bonuses=a.bonuses, batch_size=a.batch_size)
    print(json.dumps(res["best"]))
    if a.out:
        best = dict(res["best"])
        write_atomic(a.out, json.dumps(best, indent=2) + "\n")
        print(f"wrote {a.out} (best CER {res['best_cer']:.2%} on {a.split})")
    return 0


def cmd_transcribe(a) -> int:
    from .transcribe import merge, transcribe
    if a.merge:
        n = merge(a.inputs, a.out)
        print(f"merged {n:,} results into {a.out}")
        return 0
    rec = _recognizer(a)
    counts = transcribe(a.inputs, a.out, rec, nbest=a.nbest, shard=a.shard, batch_size=a.batch_size,
                        layout=a.layout)
    print(json.dumps(counts))
    return 1 if counts["failed"] else 0


def cmd_lm_build(a) -> int:
    from .lm import build_from_files, ArpaLM, perplexity, store_labels
    alphabet = []
    if a.alphabet_from:
        from .checkpoint import load_state
        alphabet = load_state(a.alphabet_from)["alphabet"]
    exclude = store_labels(a.exclude_store, a.exclude_split or ()) if a.exclude_store else []
    labels = store_labels(a.labels, a.labels_split or ()) if a.labels else []
    if not a.text and not labels:
        raise UserError("no text to learn from: pass --text FILES and/or --labels STORE")
    r = build_from_files(a.text or [], a.order, a.out, alphabet=alphabet, prune=a.prune, exclude=exclude,
                         labels=labels)
    r["label_lines"] = len(labels)
    if a.eval_store:
        from .store import Store
        with Store(a.eval_store) as s:
            lines = [s.meta["text"][i] for i in s.indices(a.eval_split)]
        r["perplexity"] = perplexity(ArpaLM.read_arpa(a.out), lines)
        r["perplexity_on"] = f"{a.eval_store}:{a.eval_split}"
    print(json.dumps(r, ensure_ascii=False))
    return 0


def cmd_model_average(a) -> int:
    """One checkpoint whose weights are the (weighted) mean of several of one run's (e.g. its last epochs)."""
    from .checkpoint import average_checkpoints
    average_checkpoints(a.checkpoints, a.out, a.weights)
    how = "" if a.weights is None else f" weighted {','.join(f'{w:g}' for w in a.weights)}"
    print(f"wrote {a.out}: the mean of {len(a.checkpoints)} checkpoints{how}")
    return 0


def cmd_model_export(a) -> int:
    """A model folder: model.pt (no training state), the LM (gzipped) and decoder.json."""
    import gzip
    import shutil
    from .checkpoint import export_model
    from .decode import DecoderConfig
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    export_model(a.checkpoint, out / "model.pt")
    if a.onnx or a.onnx_float:
        from .onnxmodel import export_checkpoint
        if a.onnx:
            export_checkpoint(out / "model.pt", out / "model.onnx")
        if a.onnx_float:
            export_checkpoint(out / "model.pt", out / "model-float.onnx", float_lstm=True)
    # the decoder settings: given, else the ones beside the checkpoint (a tuned model folder keeps its
    # tuning, also when exported onto itself), else the defaults
    beside = Path(a.checkpoint).parent / "decoder.json"
    source = a.decoder_config or (str(beside) if beside.is_file() else None)
    cfg = DecoderConfig.from_json(source) if source else DecoderConfig()
    d = cfg.as_dict()
    lm = a.lm or cfg.lm  # DecoderConfig.from_json made a relative LM path absolute
    if lm:
        if not Path(lm).is_file():
            raise UserError(f"{lm}: no such language model file")
        name = Path(lm).name + ("" if lm.endswith(".gz") else ".gz")
        if (out / name).exists() and (out / name).samefile(lm):
            pass  # already in place
        elif lm.endswith(".gz"):
            shutil.copyfile(lm, out / name)
        else:
            with open(lm, "rb") as src, gzip.open(out / name, "wb", compresslevel=9) as dst:
                shutil.copyfileobj(src, dst)
        d.update(lm=name, kind="beam")
    write_atomic(out / "decoder.json", json.dumps(d, indent=2) + "\n")
    size = sum(f.stat().st_size for f in out.iterdir()) / 1e6
    print(f"wrote {out}: {', '.join(sorted(f.name for f in out.iterdir()))} ({size:.1f} MB)")
    return 0


def streamlit_command(app: str | os.PathLike, host: str, port: int) -> list[str]:
    """How the app is served (by `hwr demo`, and by the browser tests, so they measure the same).

    No full garbage collection after each run (`runner.postScriptGC`): with torch loaded it cost
    ~13 ms of every stroke even after `gc.freeze()` (py-spy of the server while a line was written);
    Python's own generational collection still runs. No file watcher: nothing edits a served app.
    """
    return [sys.executable, "-m", "streamlit", "run", str(app), "--server.port", str(port),
            "--server.address", host, "--server.headless", "true", "--browser.gatherUsageStats", "false",
            "--server.fileWatcherType", "none", "--runner.postScriptGC", "false"]


def wait_until_serving(url: str, tries: int = 120) -> bool:
    """True once the app at `url` answers Streamlit's health check (~0.3 s after it starts), False
    after `tries` failed attempts half a second apart (for the browser tests and bench_mouse)."""
    import time
    import urllib.request
    for _ in range(tries):
        try:
            if urllib.request.urlopen(f"{url}/_stcore/health", timeout=1).read().strip() == b"ok":
                return True
        except OSError:
            time.sleep(0.5)
    return False


def cmd_demo(a) -> int:
    from importlib.resources import files
    app = Path(str(files("hwr.web") / "app.py"))  # web/ in the repository, hwr/web/ when installed
    if not app.is_file():
        raise UserError(f"{app}: the app is missing from this installation; reinstall hwr")
    env = dict(os.environ)
    if a.model:
        env["HWR_MODEL"] = str(Path(a.model).resolve())
    print(f"hwr demo: open http://{a.host if a.host != '0.0.0.0' else 'localhost'}:{a.port} in a browser", flush=True)
    cmd = streamlit_command(app, a.host, a.port)
    sys.stdout.flush()
    # become the server (no child left behind): SIGTERM / Ctrl-C to `hwr demo` stop Streamlit itself
    os.execve(sys.executable, cmd, env)


def cmd_info(a) -> int:
    from .info import format_report, healthy, report
    r = report(a.model)
    print(json.dumps(r) if a.json else format_report(r))
    return 0 if healthy(r) else 1


# ---------------------------------------------------------------------- parser
def _decoder_options(p: argparse.ArgumentParser, config=None) -> None:
    """Options to load a model and decode. The decoder settings default to the model's decoder.json;
    `config` (EvalConfig, TuneConfig, TranscribeConfig) gives --batch-size and any decoder setting
    the command fixes itself (tune-lm's beam size)."""
    from .decode import DecoderConfig
    from .recognizer import BACKENDS, DEFAULT_BACKEND
    own = {f.name for f in fields(config)} if config else set()

    def decoder_field(name: str, flag: str, **kw) -> None:
        if name in own:  # the command's own default where the decoder settings have none (tune-lm's beam)
            add_field(p, config, name, flag, given_only=True, default_text="--decoder-config's or the model's, "
                                                                          "else {}", **kw)
        else:
            add_field(p, DecoderConfig, name, flag, given_only=True, default_text="the model's, else {}", **kw)

    p.add_argument("--model", help="checkpoint or model folder (default: the shipped model)")
    p.add_argument("--decoder-config", help="decoder settings from this decoder.json (from hwr tune-lm --out) "
                                            "instead of the model's; the flags below still override it")
    decoder_field("kind", "--decoder", choices=["greedy", "beam"], help="best path, or beam search")
    decoder_field("beam_size", "--beam-size", type=count(1, 4096), help="hypotheses kept per frame")
    decoder_field("lm", "--lm", help="character LM (ARPA) for beam search, or 'none'")
    decoder_field("lm_weight", "--lm-weight", type=float, help="weight of the LM's score")
    decoder_field("word_bonus", "--word-bonus", type=float, help="score added per word (per space without a lexicon)")
    decoder_field("lexicon", "--lexicon", help="word list: beam search only outputs these words")
    p.add_argument("--threads", type=count(1, 512), help="CPU threads for PyTorch")
    if "batch_size" in own:
        add_field(p, config, "batch_size", type=count(1, 4096), help="inks read at once")
    p.add_argument("--backend", choices=BACKENDS, default=DEFAULT_BACKEND,
                   help="run the network with PyTorch or onnxruntime; auto: onnxruntime on the CPU (same "
                        "results, faster), from a graph of this checkpoint exported once into ~/.cache/hwr")


def _data_show_options(show: argparse.ArgumentParser) -> None:
    show.add_argument("file")
    show.add_argument("index", type=int)
    show.add_argument("--out", required=True, type=out_file)
    show.add_argument("--read", action="store_true",
                      help="recognize the sample and show the recognizer's lines and text (default: the stored "
                           "lines, else those hwr.layout finds, with the label's lines)")
    _decoder_options(show)


def _train_options(tr: argparse.ArgumentParser) -> None:
    from .train import TrainConfig

    def train_field(name: str, *flags: str, **kw) -> None:
        # given only: unset, the --config file (or the resumed run) decides, else TrainConfig
        add_field(tr, TrainConfig, name, *flags, given_only=True, **kw)

    tr.add_argument("--data", action="append", help="store(s) to train on; repeat for several")
    tr.add_argument("--out", help="run folder (checkpoints, metrics)")
    tr.add_argument("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR from last.pt")
    tr.add_argument("--config", help="JSON file with TrainConfig fields (model, features, augment, ...)")
    tr.add_argument("--init-from", help="start from this checkpoint (fine-tuning)")
    train_field("freeze_layers", type=count(0), help="with --init-from: freeze conv + this many RNN layers")
    train_field("device", choices=["auto", "cpu", "cuda"], help="auto: a CUDA GPU if there is one")
    train_field("epochs", type=count(1), help="total epochs (with --resume: the new total)")
    train_field("max_minutes", type=float, help="stop (with a checkpoint) after this many minutes",
                default_text="no limit")
    train_field("batch_size", type=count(1, 4096), help="lines per batch")
    train_field("lr", type=float, help="learning rate")
    train_field("warmup_steps", type=count(0), help="steps of linear learning-rate warm-up")
    train_field("restart_epochs", type=float,
                help="cosine cycles of this many epochs with warm restarts (0: exponential decay)")
    train_field("keep_epochs", type=count(0),
                help="keep the weights of the last this-many epochs as epoch-N.pt, for `hwr model average`")
    train_field("seed", type=count(0), help="seed of batch order, augmentation and initial weights")
    train_field("patience", type=count(1), help="epochs without a better validation CER before stopping")
    train_field("threads", type=count(1, 512), help="CPU threads for PyTorch", default_text="PyTorch's choice")
    train_field("train_split", help="split to train on", default_text="trainset, else train, else every sample")
    train_field("val_split", help="split to validate on (best.pt, patience)", default_text="testset_v, else val")
    train_field("select_decoder", metavar="DECODER_JSON", default_text="greedy",
                help="choose best.pt (and stop early) by this decoder's validation CER, e.g. a model's "
                     "decoder.json with its LM")
    train_field("distill_from", metavar="CKPT", default_text="none",
                help="also learn this model's output per frame (KL beside CTC; metrics.jsonl logs it as "
                     "distill_loss), e.g. the shipped model as the teacher of a stride-4 network (a --config file "
                     "holding {\"model\": {\"conv_stride\": 4, \"upsample\": 2}})")
    train_field("distill_weight", type=float, help="weight of the teacher's term beside CTC's")
    train_field("extra_train_splits", "--extra-train-split", action="append",
                help="also train on this split (e.g. testset_t); repeat for several")
    train_field("data_weights", "--data-weight", type=float, action="append", default_text="1 for each store",
                help="per --data file (same order): share of its samples used each epoch")
    train_field("alphabet_min_count", type=count(1), help="characters rarer than this stay out of the alphabet")
    tr.add_argument("--no-augment", action="store_true", help="train without random distortions of the ink")


def _evaluate_options(ev: argparse.ArgumentParser) -> None:
    from .evaluate import EvalConfig
    ev.add_argument("--data", required=True)
    ev.add_argument("--split", help="split to evaluate (default: all samples)")
    ev.add_argument("--json", action="store_true", help="print one JSON object")
    ev.add_argument("--report", type=out_file, help="write per-sample rows (JSON Lines) here")
    ev.add_argument("--limit", type=count(1), help="only the first N samples of the split")
    add_field(ev, EvalConfig, "layout", choices=["auto", "page", "line"],
              help="page: cut each ink into lines; line: read it as one line; auto: page for a store of pages "
                   "(labels with newlines), line otherwise")
    _decoder_options(ev, EvalConfig)


def _tune_lm_options(tl: argparse.ArgumentParser) -> None:
    from .evaluate import TuneConfig
    tl.add_argument("--data", required=True)
    add_field(tl, TuneConfig, "split", help="the tuning split (never the test split)")
    add_field(tl, TuneConfig, "limit", type=count(1), help="only the first N samples of the split")
    add_field(tl, TuneConfig, "weights", type=numbers, help="LM weights to try")
    add_field(tl, TuneConfig, "bonuses", type=numbers, help="word bonuses to try")
    tl.add_argument("--out", type=out_file, help="write the best decoder config (decoder.json) here")
    _decoder_options(tl, TuneConfig)


def _transcribe_options(tc: argparse.ArgumentParser) -> None:
    from .transcribe import TranscribeConfig
    tc.add_argument("inputs", nargs="+")
    tc.add_argument("--out", required=True, type=out_file)
    add_field(tc, TranscribeConfig, "nbest", type=count(1, 100), help="candidates per line")
    tc.add_argument("--shard", type=shard_spec, help="I/N: process every N-th ink starting at I (for N workers)")
    tc.add_argument("--merge", action="store_true", help="merge shard result files (inputs) into --out")
    add_field(tc, TranscribeConfig, "layout", choices=["page", "line"],
              help="page: cut each ink into lines, rows get a `lines` list and text with newlines; line: read "
                   "each ink as one line")
    _decoder_options(tc, TranscribeConfig)


def _lm_build_options(lb: argparse.ArgumentParser) -> None:
    from .lm import LMConfig
    lb.add_argument("--text", nargs="+", help="text files or NLTK corpus zips (brown.zip, ...)")
    lb.add_argument("--labels", metavar="STORE", help="also learn from the labels of this store (in-domain text)")
    lb.add_argument("--labels-split", action="append", metavar="SPLIT",
                    help="with --labels: only this split's labels; repeat for several (default: all)")
    add_field(lb, LMConfig, "order", type=count(2, 6), help="characters per n-gram")
    add_field(lb, LMConfig, "prune", type=count(1), help="drop n-grams of order >= 3 seen fewer times")
    lb.add_argument("--out", required=True, type=out_file)
    lb.add_argument("--alphabet-from", help="checkpoint whose alphabet the LM is restricted to")
    lb.add_argument("--exclude-store", help="leave out lines equal to any label in this store")
    lb.add_argument("--exclude-split", action="append", metavar="SPLIT",
                    help="with --exclude-store: only this split's labels (the sets measured on); repeat for several")
    lb.add_argument("--eval-store", help="report perplexity on this store's labels")
    add_field(lb, LMConfig, "eval_split", help="the --eval-store split to report perplexity on")


def build_parser() -> argparse.ArgumentParser:
    """The `hwr` parser; a command's options are added when it is used (see `Parser`)."""
    p = Parser(prog="hwr", description="Online handwriting recognition: ink in, text out.")
    p.add_argument("--version", action="version", version=f"hwr {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    data = sub.add_parser("data", help="import, inspect and export ink stores").add_subparsers(
        dest="data_command", required=True)
    imp = data.add_parser("import", help="import a dataset into an HDF5 store")
    imp.add_argument("format", choices=["iam-ondb", "unipen", "inkml", "json"])
    imp.add_argument("src", nargs="+", help="files or folders (tarballs accepted where the format has them)")
    imp.add_argument("--out", required=True, type=out_file, help="the store to write (replaced only when the import succeeds)")
    imp.add_argument("--split", help="tag imported samples with this split name")
    imp.add_argument("--splits", help="IAM-OnDB: folder of split lists (trainset.txt, testset_v.txt, ...)")
    imp.add_argument("--level", action="append", choices=["WORD", "TEXT", "CHARACTER"],
                     help="UNIPEN: segment levels to import (default WORD and TEXT); repeat the option")
    imp.add_argument("--groups", action="store_true", help="InkML: one sample per innermost labelled traceGroup")
    imp.add_argument("--pages", action="store_true",
                     help="IAM-OnDB: one sample per form (its lines' strokes in time order, the label's lines "
                          "joined by a newline, each stroke's line kept); forms missing a line are left out")
    imp.add_argument("--repair-time", choices=["sort", "clamp"],
                     help="fix inks whose time runs backwards instead of skipping them")
    imp.set_defaults(func=cmd_data_import)

    comp = data.add_parser("compose-lines", help="training lines composed from one writer's word samples "
                                                 "(e.g. UNIPEN's), spaced like IAM-OnDB's words")
    comp.add_argument("src", help="a store with single-word samples and their writers")
    comp.add_argument("--out", required=True, type=out_file)
    comp.add_argument("--lines", type=int, help="how many lines (default: hwr.synth.COMPOSED_LINES, 20000)")
    comp.add_argument("--words-per-line", type=int, nargs=2, metavar=("MIN", "MAX"),
                      help="default: hwr.synth.WORDS_PER_LINE, 3 8")
    comp.add_argument("--seed", type=int, help="default 0; the same seed gives the same lines")
    comp.set_defaults(func=cmd_data_compose_lines)

    info = data.add_parser("info", help="summary of a store")
    info.add_argument("file")
    info.add_argument("--json", action="store_true")
    info.set_defaults(func=cmd_data_info)

    data.add_parser("show", help="render one sample to a PNG; a page line by line, each in its own colour "
                                 "with its text beside it", options=_data_show_options).set_defaults(func=cmd_data_show)

    exp = data.add_parser("export", help="export a store as InkML files or JSON Lines")
    exp.add_argument("file")
    exp.add_argument("--format", choices=["inkml", "jsonl"], required=True)
    exp.add_argument("--out", required=True, help="a folder (inkml) or a .jsonl file / folder (jsonl)")
    exp.set_defaults(func=cmd_data_export)

    sub.add_parser("train", help="train a recognizer (CTC), or resume a run",
                   options=_train_options).set_defaults(func=cmd_train)

    pl = sub.add_parser("plot", help="plot a run's loss and validation CER")
    pl.add_argument("run")
    pl.add_argument("--out", required=True, type=out_file)
    pl.set_defaults(func=cmd_plot)

    sub.add_parser("evaluate", help="CER/WER of a model on a store",
                   options=_evaluate_options).set_defaults(func=cmd_evaluate)
    sub.add_parser("tune-lm", help="grid-search LM weight and word bonus on a tuning split",
                   options=_tune_lm_options).set_defaults(func=cmd_tune_lm)
    sub.add_parser("transcribe", help="transcribe stores, InkML and JSON inks to JSON Lines",
                   options=_transcribe_options).set_defaults(func=cmd_transcribe)

    lm = sub.add_parser("lm", help="character language models").add_subparsers(dest="lm_command", required=True)
    lm.add_parser("build", help="estimate a character n-gram LM (modified Kneser-Ney) as ARPA",
                  options=_lm_build_options).set_defaults(func=cmd_lm_build)

    mo = sub.add_parser("model", help="package a trained model").add_subparsers(dest="model_command", required=True)
    mx = mo.add_parser("export", help="write a model folder (model.pt, LM, decoder.json) for Recognizer.load")
    mx.add_argument("checkpoint")
    mx.add_argument("--out", required=True)
    mx.add_argument("--lm", help="ARPA character LM to ship with it (stored gzipped)")
    mx.add_argument("--decoder-config", help="decoder.json from hwr tune-lm")
    mx.add_argument("--onnx", action="store_true",
                    help="also write model.onnx: the network only (features and CTC decoding stay outside), "
                         "dynamic batch and time axes; Recognizer.load(DIR, backend='onnx') runs it")
    mx.add_argument("--onnx-float", action="store_true",
                    help="also write model-float.onnx: the same network with standard float LSTMs, for runtimes "
                         "other than onnxruntime (a network trained for int8 LSTMs is otherwise written with "
                         "onnxruntime's DynamicQuantizeLSTM; a float network's is the same graph as model.onnx); "
                         "hwr itself runs model.onnx or the checkpoint")
    mx.set_defaults(func=cmd_model_export)
    ma = mo.add_parser("average", help="average the weights of several checkpoints of one run (its last epochs), "
                       "or of runs warm-started from one model")
    ma.add_argument("checkpoints", nargs="+")
    ma.add_argument("--out", required=True)
    ma.add_argument("--weights", type=numbers, metavar="W,W,...",
                    help="one weight per checkpoint, scaled to sum to 1 (default: equal)")
    ma.set_defaults(func=cmd_model_average)

    de = sub.add_parser("demo", help="start the drawing app in the browser")
    de.add_argument("--port", type=count(1, 65535), default=8501)
    de.add_argument("--host", default="127.0.0.1")
    de.add_argument("--model", help="checkpoint to use instead of the shipped model")
    de.set_defaults(func=cmd_demo)

    inf = sub.add_parser("info", help="versions, device and whether the model's backends load (for bug reports)")
    inf.add_argument("--model", help="checkpoint or model folder (default: the shipped model)")
    inf.add_argument("--json", action="store_true", help="print one JSON object")
    inf.set_defaults(func=cmd_info)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except USER_ERRORS as e:
        print(f"hwr: error: {' '.join(str(e).split())}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("hwr: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
