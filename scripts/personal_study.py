"""What personal adaptation buys: fine-tune on some of one writer's lines, read their other lines.

    python scripts/personal_study.py --iam WORK/iam-ondb.h5 --work WORK/personal --out personal.json

This copy of IAM-OnDB carries no writer ids (the line files hold only a whiteboard calibration,
different for every form), so a *form* stands in for a writer: one person wrote each form's
6-13 lines in one sitting. For each of `--writers` testset_f forms with at least
`--train-lines` + `--test-lines` lines (drawn with a fixed seed), the first lines are saved as
the app saves a person's corrected lines (`hwr.feedback.samples`-style store, no split), the
shipped model is fine-tuned on them with the command the app runs (`hwr.personal.fine_tune_command`,
`PersonalConfig`, the base model's decoder inherited), and the form's other lines are read before
and after with the model's own decoder (beam + LM). Reported: CER per form before and after,
their mean and spread.

testset_f is used because these writers' ink was never trained on; nothing is tuned here.
"""

from __future__ import annotations

import argparse
import collections
import json
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hwr.data import load_split  # noqa: E402
from hwr.metrics import char_edits  # noqa: E402
from hwr.personal import PersonalConfig, fine_tune_command, inherit_decoder  # noqa: E402
from hwr.recognizer import Recognizer, default_model_path  # noqa: E402
from hwr.store import Sample, StoreWriter  # noqa: E402


def cer_of(rec: Recognizer, rows) -> tuple[int, int]:
    edits = sum(char_edits(r[2], rec.recognize(r[1], spans=False, layout="line").text) for r in rows)
    return edits, sum(len(r[2]) for r in rows)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--iam", type=Path, required=True)
    ap.add_argument("--work", type=Path, required=True, help="folder for the writers' stores and runs")
    ap.add_argument("--model", type=Path, default=None, help="base model (default: the shipped one)")
    ap.add_argument("--split", default="testset_f")
    ap.add_argument("--writers", type=int, default=20)
    ap.add_argument("--train-lines", type=int, default=6)
    ap.add_argument("--test-lines", type=int, default=4, help="at least this many lines to read (all after the training ones)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--epochs", type=int, default=PersonalConfig.epochs)
    ap.add_argument("--lr", type=float, default=PersonalConfig.lr)
    ap.add_argument("--freeze-layers", type=int, default=PersonalConfig.freeze_layers)
    ap.add_argument("--out", type=Path)
    a = ap.parse_args(argv)
    config = replace(PersonalConfig(), epochs=a.epochs, lr=a.lr, freeze_layers=a.freeze_layers)
    base_model = (a.model or default_model_path()).resolve()
    rows = [r for r in load_split([str(a.iam)], a.split) if r[2]]
    forms = collections.defaultdict(list)
    for r in rows:
        forms[r[0].rsplit("-", 1)[0]].append(r)
    big = sorted(f for f, lines in forms.items() if len(lines) >= a.train_lines + a.test_lines)
    rng = np.random.default_rng(a.seed)
    chosen = sorted(rng.choice(big, size=min(a.writers, len(big)), replace=False).tolist())
    print(f"{len(big)} {a.split} forms have >= {a.train_lines + a.test_lines} lines; using {len(chosen)}", flush=True)
    base = Recognizer.load(base_model)
    a.work.mkdir(parents=True, exist_ok=True)
    results = []
    for k, form in enumerate(chosen):
        lines = sorted(forms[form], key=lambda r: r[0])
        train, test = lines[:a.train_lines], lines[a.train_lines:]  # every other line of the writer is read
        store = a.work / f"{form}.h5"
        with StoreWriter(store) as w:  # what the app saves: the person's lines, no split
            w.add(Sample(r[1], id=r[0], writer="me", source="personal-study") for r in train)
        run = a.work / f"run-{form}-e{config.epochs}-lr{config.lr:g}-f{config.freeze_layers}"
        if not (run / "best.pt").exists():
            run.mkdir(exist_ok=True)
            inherit_decoder(base_model, run)
            t0 = time.perf_counter()
            subprocess.run(fine_tune_command(store, base_model, run, config), check=True, capture_output=True, cwd=ROOT)
            (run / "seconds").write_text(f"{time.perf_counter() - t0:.1f}")
        tuned = Recognizer.load(run / "best.pt")
        e0, n = cer_of(base, test)
        e1, _ = cer_of(tuned, test)
        results.append({"form": form, "train_lines": len(train), "test_lines": len(test), "characters": n,
                        "cer_before": e0 / n, "cer_after": e1 / n,
                        "fine_tune_seconds": float((run / "seconds").read_text())})
        print(f"{k + 1:2d}/{len(chosen)} {form}: CER {e0 / n:.2%} -> {e1 / n:.2%} ({n} characters)", flush=True)
    before = [r["cer_before"] for r in results]
    after = [r["cer_after"] for r in results]
    gain = [b - c for b, c in zip(before, after)]
    summary = {
        "split": a.split, "writers": len(results), "train_lines": a.train_lines, "test_lines": a.test_lines,
        "personal_config": asdict(config), "base_model": str(base_model),
        "cer_before_mean": statistics.mean(before), "cer_after_mean": statistics.mean(after),
        "pooled_before": sum(r["cer_before"] * r["characters"] for r in results) / sum(r["characters"] for r in results),
        "pooled_after": sum(r["cer_after"] * r["characters"] for r in results) / sum(r["characters"] for r in results),
        "gain_mean": statistics.mean(gain), "gain_stdev": statistics.stdev(gain) if len(gain) > 1 else 0.0,
        "better": sum(g > 0 for g in gain), "worse": sum(g < 0 for g in gain), "forms": results,
    }
    print(f"\nmean CER over {len(results)} writers: {summary['cer_before_mean']:.2%} -> {summary['cer_after_mean']:.2%} "
          f"(gain {summary['gain_mean']:.2%} +- {summary['gain_stdev']:.2%}; better for {summary['better']}, "
          f"worse for {summary['worse']}); pooled {summary['pooled_before']:.2%} -> {summary['pooled_after']:.2%}")
    if a.out:
        a.out.write_text(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
