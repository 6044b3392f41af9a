"""The `hwr` command line: a thin layer that parses arguments and calls one package function.

Errors a user can cause (bad file, bad option) print one line and exit with status 2;
anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from . import __version__


class UserError(Exception):
    """Raised by command handlers for a one-line message to the user."""


def _user_errors():
    """Exception types that mean 'the input was wrong', not 'hwr is broken'."""
    from .checkpoint import CheckpointError
    from .importers import ImportError_
    from .ink import InkError
    from .store import StoreError
    return (UserError, CheckpointError, ImportError_, InkError, StoreError, FileExistsError,
            FileNotFoundError, ValueError)


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
    report = import_to_store(a.format, a.src, a.out, split=a.split, **opts)
    print("\n".join(report.lines()))
    print(f"wrote {a.out}")
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
    from .render import render_ink
    from .store import Store
    with Store(a.file) as s:
        if not -len(s) <= a.index < len(s):
            raise UserError(f"index {a.index} out of range: the store has {len(s)} samples")
        sample = s[a.index]
    title = f"{sample.id}  [{sample.split}]  {sample.text}"
    render_ink(sample.ink, a.out, title=title)
    print(f"wrote {a.out}")
    return 0


def cmd_data_export(a) -> int:
    from .exporters import export_store
    n = export_store(a.file, a.format, a.out)
    print(f"exported {n:,} samples to {a.out}")
    return 0


# ---------------------------------------------------------------------- training
def _train_config(a):
    from .train import TrainConfig
    base = json.loads(Path(a.config).read_text()) if a.config else {}
    for key in ("epochs", "max_minutes", "batch_size", "seed", "device", "train_split", "val_split",
                "init_from", "lr", "threads", "freeze_layers", "patience"):
        v = getattr(a, key, None)
        if v is not None:
            base[key] = v
    if a.data:
        base["data"] = a.data
    if a.extra_train_split:
        base["extra_train_splits"] = a.extra_train_split
    if a.no_augment:
        base.setdefault("augment", {})["enabled"] = False
    return TrainConfig(**base)


def cmd_train(a) -> int:
    from . import train as T
    if a.resume:
        result = T.resume(a.resume, epochs=a.epochs, max_minutes=a.max_minutes, device=a.device,
                          threads=a.threads)
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


# ---------------------------------------------------------------------- parser
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="hwr", description="Online handwriting recognition: ink in, text out.")
    p.add_argument("--version", action="version", version=f"hwr {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    data = sub.add_parser("data", help="import, inspect and export ink stores").add_subparsers(
        dest="data_command", required=True)
    imp = data.add_parser("import", help="import a dataset into an HDF5 store")
    imp.add_argument("format", choices=["iam-ondb", "unipen", "inkml", "json"])
    imp.add_argument("src", nargs="+", help="files or folders (tarballs accepted where the format has them)")
    imp.add_argument("--out", required=True, help="the store to write (replaced only when the import succeeds)")
    imp.add_argument("--split", help="tag imported samples with this split name")
    imp.add_argument("--splits", help="IAM-OnDB: folder of split lists (trainset.txt, testset_v.txt, ...)")
    imp.add_argument("--level", action="append", choices=["WORD", "TEXT", "CHARACTER"],
                     help="UNIPEN: segment levels to import (default WORD and TEXT); repeat the option")
    imp.add_argument("--groups", action="store_true", help="InkML: one sample per innermost labelled traceGroup")
    imp.add_argument("--repair-time", choices=["sort", "clamp"],
                     help="fix inks whose time runs backwards instead of skipping them")
    imp.set_defaults(func=cmd_data_import)

    info = data.add_parser("info", help="summary of a store")
    info.add_argument("file")
    info.add_argument("--json", action="store_true")
    info.set_defaults(func=cmd_data_info)

    show = data.add_parser("show", help="render one sample to a PNG")
    show.add_argument("file")
    show.add_argument("index", type=int)
    show.add_argument("--out", required=True)
    show.set_defaults(func=cmd_data_show)

    exp = data.add_parser("export", help="export a store as InkML files or JSON Lines")
    exp.add_argument("file")
    exp.add_argument("--format", choices=["inkml", "jsonl"], required=True)
    exp.add_argument("--out", required=True, help="a folder (inkml) or a .jsonl file / folder (jsonl)")
    exp.set_defaults(func=cmd_data_export)

    tr = sub.add_parser("train", help="train a recognizer (CTC), or resume a run")
    tr.add_argument("--data", action="append", help="store(s) to train on; repeat for several")
    tr.add_argument("--out", help="run folder (checkpoints, metrics)")
    tr.add_argument("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR from last.pt")
    tr.add_argument("--config", help="JSON file with TrainConfig fields (model, features, augment, ...)")
    tr.add_argument("--init-from", help="start from this checkpoint (fine-tuning)")
    tr.add_argument("--freeze-layers", type=int, help="with --init-from: freeze conv + this many RNN layers")
    tr.add_argument("--device", choices=["auto", "cpu", "cuda"])
    tr.add_argument("--epochs", type=int, help="total epochs (with --resume: the new total)")
    tr.add_argument("--max-minutes", type=float, help="stop (with a checkpoint) after this many minutes")
    tr.add_argument("--batch-size", type=int)
    tr.add_argument("--lr", type=float)
    tr.add_argument("--seed", type=int)
    tr.add_argument("--patience", type=int)
    tr.add_argument("--threads", type=int, help="CPU threads for PyTorch")
    tr.add_argument("--train-split")
    tr.add_argument("--val-split")
    tr.add_argument("--extra-train-split", action="append", help="also train on this split (e.g. testset_t)")
    tr.add_argument("--no-augment", action="store_true")
    tr.set_defaults(func=cmd_train)

    pl = sub.add_parser("plot", help="plot a run's loss and validation CER")
    pl.add_argument("run")
    pl.add_argument("--out", required=True)
    pl.set_defaults(func=cmd_plot)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except _user_errors() as e:
        print(f"hwr: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("hwr: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
