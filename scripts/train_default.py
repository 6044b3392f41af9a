"""The recipe of the shipped model, end to end, in stages that resume.

    python scripts/train_default.py --shared ../shared/data --work ~/hwr-work            # all stages
    python scripts/train_default.py --work ~/hwr-work --stage train --max-minutes 150     # one session's worth
    python scripts/train_default.py --work ~/hwr-work --stage tune --stage evaluate --stage export

Stages (each skips what is already done, so re-running continues where it stopped):
  import    IAM-OnDB (tarballs + t1 splits) and UNIPEN (tar.xz) into HDF5 stores
  lm        a 6-gram character LM (modified Kneser-Ney, pruned) from the Brown, State of the Union and
            inaugural-address corpora (NLTK) and IAM-OnDB's training labels, restricted to the model's
            alphabet, with its perplexity on testset_v (lines equal to a testset_v/testset_f label are left out)
  train     IAM-OnDB trainset + testset_t + a random quarter of UNIPEN per epoch, validation on
            testset_v; resumes the run folder if it exists (`hwr train --resume`)
  anneal    one cosine cycle from train's best.pt (or --anneal-from): the same data with mouse- and
            finger-like input on 30% of the lines, lr 3e-4 falling to 1e-5 over 9 epochs; its best.pt
            (lowest greedy CER on testset_v) is the model the lm and int8 stages start from (and the later ones
            use when there is no int8 run). The last 3 epochs are
            kept too (averaging them, `hwr model average`, read no better on testset_v: MODEL_CARD.md)
  int8      one more cosine cycle from anneal's best.pt with the LSTMs trained on onnxruntime's int8 grid
            (`{"model": {"lstm_int8": true}}`, hwr/quant.py), lr 2e-4 over 10 epochs; its best.pt is the epoch
            that reads best with beam 64 + the lm stage's LM on testset_v (`--select-decoder`), and it is the
            model the soup stage starts from (the network then runs ~2.5x faster on a CPU with VNNI: BENCHMARKS.md)
  soup      two more int8 cycles from int8's best.pt, 10 epochs each (lr 1.5e-4, seed 7; lr 2e-4, seed 9 with half of
            UNIPEN an epoch instead of a quarter; ~75 and ~130 minutes on 2 cores), and the weighted mean 3:1:1 of
            int8's best.pt and the two cycles' last epochs (`hwr model average --weights`, a "model soup"): it is the
            model the later stages use (on testset_v greedy CER 6.54 -> 6.45 % at the same beam + LM CER:
            MODEL_CARD.md). Only the last epochs are used, so the cycles validate greedy (no beam search)
  tune      LM weight and word bonus by grid search on all of testset_v at beam 64 (never testset_f)
  export    model.pt (no training state) + gzipped LM + decoder.json into hwr/models/default
  evaluate  greedy and beam+LM CER/WER on testset_v and testset_f, and on the canvas-like set

A GPU is used when present. How the shipped model relates to this recipe (its first stages were
warm-started by hand while the code changed under them) is told in MODEL_CARD.md, Training.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STAGES = ["import", "train", "anneal", "lm", "int8", "soup", "tune", "export", "evaluate"]
ANNEAL_EPOCHS, ANNEAL_KEPT = 9, 3
INT8_EPOCHS, INT8_LR, INT8_SEED = 10, "2e-4", "6"
# the soup's two cycles from int8's best.pt: run name, learning rate, seed, UNIPEN's share of an epoch
SOUP_CYCLES = [("int8-b", "1.5e-4", "7", "0.25"), ("int8-c", "2e-4", "9", "0.5")]
SOUP_WEIGHTS = "3,1,1"  # int8's best.pt, then each cycle's last epoch
# the shipped search settings (beam 64, pruned as the speed work measured: BENCHMARKS.md) with the LM weight
# and word bonus found for q8 and the shipped LM with hwr tune-lm (MODEL_CARD.md): the int8 stage picks its best epoch with them, and the
# tune stage starts from them and re-chooses weight and bonus for the model it gets
POINTER = {"augment": {"pointer": 0.3}}  # mouse- and finger-like input on 30% of the lines (no flag for it)
INT8 = {**POINTER, "model": {"lstm_int8": True}}  # and the LSTMs on onnxruntime's int8 grid: the int8 and soup stages
DECODER = {"kind": "beam", "beam_size": 64, "beam_threshold": 12.0, "beam_size_token": 8, "blank_skip": 0.999,
           "lm_weight": 1.3, "word_bonus": 1.5}


def hwr(*args: str, ok: tuple[int, ...] = (0,)) -> str:
    cmd = [sys.executable, "-m", "hwr.cli", *map(str, args)]
    print("$ hwr " + " ".join(map(str, args)), flush=True)
    r = subprocess.run(cmd, stdout=subprocess.PIPE, text=True)
    print(r.stdout, end="", flush=True)
    if r.returncode not in ok:
        raise subprocess.CalledProcessError(r.returncode, cmd, r.stdout)
    return r.stdout


def digest(path: Path) -> str:
    """sha256 of a file: which checkpoint a run started from, whatever its timestamps."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def newer(a: Path, b: Path) -> bool:
    """Whether file `a` was written after file `b` (a later stage's input changed under its output)."""
    return a.stat().st_mtime > b.stat().st_mtime


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--shared", default=str(ROOT.parent / "shared" / "data"), help="folder with iam-ondb/, unipen/, text/")
    p.add_argument("--work", required=True, help="where stores, LM, runs and results go (outside the repo)")
    p.add_argument("--stage", action="append", choices=STAGES, help="run only these stages (repeatable)")
    p.add_argument("--run", default="default", help="run folder name under WORK/runs")
    p.add_argument("--epochs", type=int, default=200)
    p.add_argument("--max-minutes", type=float, help="stop training after this long (resume later)")
    p.add_argument("--init-from", help="warm start (e.g. a short IAM-only run past the CTC plateau)")
    p.add_argument("--anneal-from", help="checkpoint the anneal stage starts from (default: the train stage's best.pt)")
    a = p.parse_args()
    shared, work = Path(a.shared), Path(a.work)
    work.mkdir(parents=True, exist_ok=True)
    stages = a.stage or STAGES
    iam, unipen = work / "iam-ondb.h5", work / "unipen.h5"
    run = work / "runs" / a.run
    lm = work / "bsil6.arpa"
    results = work / "results"
    results.mkdir(exist_ok=True)
    def data(unipen_share: str = "0.25") -> tuple:
        """The data every training stage reads: IAM-OnDB trainset + testset_t and a share of UNIPEN an epoch."""
        return ("--data", iam, "--data", unipen, "--data-weight", "1", "--data-weight", unipen_share,
                "--extra-train-split", "testset_t", "--alphabet-min-count", "20")

    if "import" in stages:
        if not iam.exists():
            hwr("data", "import", "iam-ondb", shared / "iam-ondb" / "lineStrokes-all.tar.gz",
                shared / "iam-ondb" / "ascii-all.tar.gz", "--splits", shared / "iam-ondb" / "splits", "--out", iam,
                ok=(0, 1))  # 1: some files were reported (the copy has known gaps) and the rest imported
        if not unipen.exists():
            hwr("data", "import", "unipen", shared / "unipen" / "unipen-train_r01_v07.tar.xz", "--out", unipen,
                ok=(0, 1))

    if "train" in stages:
        if (run / "last.pt").exists():
            hwr("train", "--resume", run, "--epochs", a.epochs, *(["--max-minutes", a.max_minutes] if a.max_minutes else []))
        else:
            hwr("train", *data(), "--out", run, "--epochs", a.epochs, "--patience", "20",
                *(["--max-minutes", a.max_minutes] if a.max_minutes else []),
                *(["--init-from", a.init_from] if a.init_from else []))
        hwr("plot", run, "--out", results / "curves.png")

    anneal = work / "runs" / "anneal"
    if "anneal" in stages:
        if (anneal / "last.pt").exists():  # continues a stopped cycle; a finished one returns at once
            hwr("train", "--resume", anneal)
        else:
            pointer = work / "pointer.json"
            pointer.write_text(json.dumps(POINTER))
            hwr("train", *data(), "--config", pointer, "--init-from", a.anneal_from or run / "best.pt", "--out", anneal, "--lr", "3e-4",
                "--epochs", ANNEAL_EPOCHS, "--restart-epochs", ANNEAL_EPOCHS, "--keep-epochs", ANNEAL_KEPT,
                "--patience", "20")
        hwr("plot", anneal, "--out", results / "anneal-curves.png")
    model = anneal / "best.pt" if (anneal / "best.pt").exists() else run / "best.pt"
    if "lm" in stages and not lm.exists():
        # Brown, State of the Union, inaugural addresses, and IAM-OnDB's own training labels (in-domain:
        # scripts/lm_study.py measured 4.36% -> 4.15% CER on testset_v); the held-out lines never
        hwr("lm", "build", "--text", shared / "text" / "brown.zip", shared / "text" / "state_union.zip",
            shared / "text" / "inaugural.zip", "--labels", iam, "--labels-split", "trainset", "--labels-split", "testset_t",
            "--order", "6", "--prune", "3", "--alphabet-from", model,
            "--exclude-store", iam, "--exclude-split", "testset_v", "--exclude-split", "testset_f",
            "--out", lm, "--eval-store", iam, "--eval-split", "testset_v")

    base_decoder = work / "base-decoder.json"
    if {"int8", "tune"} & set(stages):
        if not lm.exists():
            sys.exit(f"the int8 and tune stages decode with the LM: run --stage lm first ({lm})")
        # absolute: a decoder.json's relative LM path is read from the json's own folder
        base_decoder.write_text(json.dumps({**DECODER, "lm": str(lm.resolve())}, indent=2) + "\n")
    int8 = work / "runs" / "int8"
    int8_config = work / "int8.json"
    if {"int8", "soup"} & set(stages):
        int8_config.write_text(json.dumps(INT8))
    if "int8" in stages:
        if (int8 / "last.pt").exists():
            hwr("train", "--resume", int8)
        else:
            hwr("train", *data(), "--config", int8_config, "--init-from", model, "--out", int8, "--lr", INT8_LR, "--seed", INT8_SEED,
                "--epochs", INT8_EPOCHS, "--restart-epochs", INT8_EPOCHS, "--keep-epochs", ANNEAL_KEPT,
                "--patience", "20", "--select-decoder", base_decoder)
        hwr("plot", int8, "--out", results / "int8-curves.png")
    if (int8 / "best.pt").exists():
        model = int8 / "best.pt"
    soup = work / "runs" / "soup.pt"
    if "soup" in stages:
        start = int8 / "best.pt"
        if not start.exists():
            sys.exit(f"the soup stage starts from the int8 stage's best.pt: run --stage int8 first ({int8})")
        started, ends = digest(start), []
        for name, lr, seed, share in SOUP_CYCLES:
            cycle = work / "runs" / name
            origin = cycle.with_suffix(".start")  # the digest of the best.pt the cycle started from
            if (cycle / "last.pt").exists():  # continues a stopped cycle; a finished one returns at once
                if origin.exists() and origin.read_text().strip() != started:
                    sys.exit(f"{cycle} started from an older {start}: remove {cycle} and run --stage soup again")
                hwr("train", "--resume", cycle)
            else:
                origin.write_text(started + "\n")
                hwr("train", *data(share), "--config", int8_config, "--init-from", start, "--out", cycle,
                    "--lr", lr, "--seed", seed, "--epochs", INT8_EPOCHS, "--restart-epochs", INT8_EPOCHS,
                    "--keep-epochs", ANNEAL_KEPT, "--patience", "20")
            ends.append(cycle / f"epoch-{INT8_EPOCHS}.pt")
            if not ends[-1].exists():
                sys.exit(f"{cycle} has no {ends[-1].name}: finish it with `hwr train --resume {cycle} --epochs {INT8_EPOCHS}`")
        if not soup.exists() or newer(start, soup) or any(newer(e, soup) for e in ends):
            hwr("model", "average", start, *ends, "--weights", SOUP_WEIGHTS, "--out", soup)
    if soup.exists():
        if (int8 / "best.pt").exists() and newer(int8 / "best.pt", soup):
            print(f"{soup} is older than {int8 / 'best.pt'}: not used (run --stage soup to make it again)", flush=True)
        else:
            model = soup
    if {"tune", "export"} & set(stages):
        print(f"model for the later stages: {model}", flush=True)

    decoder = results / "decoder.json"
    if "tune" in stages:
        # all 1,438 lines (not tune-lm's default first 400) at the shipped beam width: ~3 minutes on one core
        hwr("tune-lm", "--data", iam, "--split", "testset_v", "--limit", "1438", "--model", model,
            "--decoder-config", base_decoder, "--weights", "1.0,1.3,1.6", "--bonuses=0,0.5,1,1.5", "--out", decoder)

    if "export" in stages:
        if not decoder.exists() or decoder.stat().st_mtime < model.stat().st_mtime:
            sys.exit(f"{decoder} was not tuned for {model} (missing or older): run --stage tune first")
        hwr("model", "export", model, "--out", ROOT / "hwr" / "models" / "default", "--lm", lm,
            "--decoder-config", decoder)

    if "evaluate" in stages:
        canvas = work / "canvas-like.h5"
        if not canvas.exists():
            subprocess.run([sys.executable, str(ROOT / "scripts" / "make_canvas_set.py"), "--iam", str(iam),
                            "--unipen", str(unipen), "--out", str(canvas)], check=True)
        shipped = ROOT / "hwr" / "models" / "default"
        table = {}
        for store, split in [(iam, "testset_v"), (iam, "testset_f"), (canvas, None)]:
            for kind in ["greedy", "beam"]:
                args = ["evaluate", "--data", store, "--model", shipped, "--decoder", kind, "--json"]
                if split:
                    args += ["--split", split]
                s = json.loads(hwr(*args).splitlines()[-1])
                table[f"{store.stem}:{split or 'all'}:{kind}"] = {k: s[k] for k in ("cer", "wer", "samples")}
        (results / "evaluation.json").write_text(json.dumps(table, indent=2))
        print(json.dumps(table, indent=2))


if __name__ == "__main__":
    main()
