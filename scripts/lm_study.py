"""What the language model buys: character LMs of other orders, pruning and text, decoded on testset_v.

    python scripts/lm_study.py --iam WORK/iam-ondb.h5 --shared ../shared/data --work WORK/lm-study --out lm_study.json
    python scripts/lm_study.py ... --split testset_f --only bsil7      # report the chosen one at the end

The network runs once per split (its log-probs are kept in WORK); each LM variant is built once
(skipped when its ARPA file exists) and decoded with the shipped model's search settings over a
grid of LM weight x word bonus, so a variant is judged at its own best weights, not at the
shipped LM's. Besides CER and WER it counts the errors the model card names most often: spaces
dropped and inserted, punctuation dropped. Tune and choose on testset_v; testset_f is for the
final figure only (`--split testset_f` refuses a grid: it decodes each variant at the weights
chosen on testset_v, read from the `--out` file of that run).
"""

from __future__ import annotations

import argparse
import collections
import json
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hwr.data import load_split  # noqa: E402
from hwr.decode import BeamDecoder, DecoderConfig  # noqa: E402
from hwr.evaluate import confusions, error_kind  # noqa: E402
from hwr.lm import build_from_files, read_corpus, store_labels  # noqa: E402
from hwr.metrics import char_edits, word_edits  # noqa: E402
from hwr.recognizer import Recognizer  # noqa: E402

WEIGHTS = (1.0, 1.3, 1.6)
BONUSES = (0.0, 0.5, 1.0, 2.0)
HELD_OUT = ("testset_v", "testset_f")  # IAM-OnDB splits never trained on: their lines are kept out of every LM


@dataclass(frozen=True)
class Variant:
    name: str
    texts: tuple[str, ...]   # NLTK corpora (brown, state_union, inaugural) and iam-train: IAM-OnDB's training labels
    order: int
    prune: int
    lexicon: bool = False    # decode over the texts' words (flashlight's lexicon decoder), no LM

    def describe(self) -> str:
        if not self.texts:
            return "no LM (beam search alone)"
        if self.lexicon:
            return f"word list of {' + '.join(self.texts)}, no LM"
        return f"{self.order}-gram, prune < {self.prune}, {' + '.join(self.texts)}"


BSI = ("brown", "state_union", "inaugural")
VARIANTS = [
    Variant("none", (), 0, 0),
    Variant("bsi6", BSI, 6, 3),            # the shipped LM
    Variant("bsi5", BSI, 5, 3),
    Variant("bsi6-noprune", BSI, 6, 1),
    Variant("bsil6", BSI + ("iam-train",), 6, 3),
    Variant("bsil6x3", BSI + ("iam-train",) * 3, 6, 3),  # the in-domain text counted three times
    Variant("bsil6-noprune", BSI + ("iam-train",), 6, 1),
    Variant("lexicon", BSI + ("iam-train",), 0, 0, lexicon=True),
]
# Orders above 6 are not in the list: flashlight-text's KenLM is compiled with KENLM_MAX_ORDER 6
# and refuses a 7-gram ARPA file ("not an ARPA or KenLM file"), which is why `hwr lm build` stops at 6.


TRAIN_SPLITS = ("trainset", "testset_t")  # the IAM-OnDB splits the model is trained on: their labels are text too


def build(v: Variant, rec: Recognizer, shared: Path, iam: Path, work: Path) -> str | None:
    """The variant's ARPA file (or word list), built once into `work`.

    IAM-OnDB's training labels are in-domain text (LOB sentences, the writers' own line breaks).
    Their sentences are not testset_v's or testset_f's: IAM-OnDB forms hold different LOB passages
    (3 of 872 testset_v word 6-grams occur in them), and lines equal to a held-out label are left out.
    """
    if not v.texts:
        return None
    files = [str(shared / "text" / f"{n}.zip") for n in v.texts if n != "iam-train"]
    labels = store_labels(iam, TRAIN_SPLITS) * v.texts.count("iam-train")
    if v.lexicon:
        path = work / f"{v.name}.txt"
        if not path.exists():
            texts = [para for f in files for para in read_corpus(f)] + labels
            counts = collections.Counter(w for para in texts for w in para.split())
            path.write_text("\n".join(w for w, n in counts.items() if n >= 2) + "\n", encoding="utf-8")
        return str(path)
    path = work / f"{v.name}.arpa"
    if not path.exists():
        t0 = time.perf_counter()
        info = build_from_files(files, v.order, path, alphabet=rec.alphabet.chars, prune=v.prune,
                                exclude=store_labels(iam, HELD_OUT), labels=labels)
        info["seconds"] = time.perf_counter() - t0
        (work / f"{v.name}.json").write_text(json.dumps(info, indent=1))
    return str(path)


def log_probs(rec: Recognizer, iam: Path, split: str, work: Path):
    """(references, [(T, C) log-probs]) of a split, computed once and kept."""
    path = work / f"logprobs-{split}.pt"
    if path.exists():
        return torch.load(path)
    rows = [r for r in load_split([str(iam)], split) if r[2]]
    refs, out = [r[2] for r in rows], []
    for k in range(0, len(rows), 32):
        feats = [rec.features(r[1]) for r in rows[k:k + 32]]
        lp, lengths = rec.log_probs(feats)
        out += [lp[:int(n), b].clone() for b, n in enumerate(lengths)]
    torch.save((refs, out), path)
    return refs, out


def score(refs, lps, decoder: BeamDecoder) -> dict:
    c = w = nc = nw = 0
    errs = collections.Counter()
    for ref, lp in zip(refs, lps):
        hyps = decoder(lp[:, None], torch.tensor([lp.shape[0]]))[0]
        hyp = hyps[0].text if hyps else ""
        c += char_edits(ref, hyp)
        w += word_edits(ref, hyp)
        nc += len(ref)
        nw += len(ref.split())
        errs.update(error_kind(a, b) for a, b in confusions(ref, hyp))
    return {"cer": c / nc, "wer": w / nw, **errs}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--iam", type=Path, required=True, help="IAM-OnDB line store (hwr data import iam-ondb)")
    ap.add_argument("--shared", type=Path, default=ROOT.parent / "shared" / "data", help="folder with text/*.zip")
    ap.add_argument("--work", type=Path, required=True, help="folder for LMs and cached log-probs")
    ap.add_argument("--model", default=None, help="model (default: the shipped one)")
    ap.add_argument("--split", default="testset_v")
    ap.add_argument("--only", action="append", default=[], help="variant names (default: all)")
    ap.add_argument("--chosen-from", type=Path, help="with --split testset_f: the testset_v run's JSON (its weights)")
    ap.add_argument("--out", type=Path, help="JSON of every figure")
    a = ap.parse_args(argv)
    if a.split.startswith("testset_f") and not a.chosen_from:  # reported, never tuned on
        ap.error("testset_f is never tuned on: pass --chosen-from the testset_v run's JSON")
    a.work.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(1)
    rec = Recognizer.load(a.model)
    base = replace(rec.decoder_config, kind="beam", nbest=1)
    refs, lps = log_probs(rec, a.iam, a.split, a.work)
    chosen = json.loads(a.chosen_from.read_text())["variants"] if a.chosen_from else {}
    report = {"split": a.split, "lines": len(refs), "decoder": base.as_dict(), "variants": {}}
    if a.out and a.out.exists():  # a run with --only adds to the figures of earlier runs
        old = json.loads(a.out.read_text())
        if old.get("split") == a.split:
            report["variants"] = old["variants"]
    for v in VARIANTS:
        if (a.only and v.name not in a.only) or (a.chosen_from and v.name not in chosen):
            continue
        path = build(v, rec, a.shared, a.iam, a.work)
        if a.chosen_from:  # the weights chosen on the tuning split, never a grid on this one
            grid = [(chosen[v.name]["lm_weight"], chosen[v.name]["word_bonus"])]
        elif v.lexicon or path is None:  # no LM: only the word (silence) score to choose
            grid = [(0.0, b) for b in BONUSES]
        else:
            grid = [(w, b) for w in WEIGHTS for b in BONUSES]
        rows = []
        for w, b in grid:
            cfg = replace(base, lm=None if v.lexicon else path, lexicon=path if v.lexicon else None,
                          lm_weight=w, word_bonus=b)
            t0 = time.perf_counter()
            r = score(refs, lps, BeamDecoder(rec.alphabet, cfg))
            r.update(lm_weight=w, word_bonus=b, ms_per_line=1000 * (time.perf_counter() - t0) / len(refs))
            rows.append(r)
            print(f"{v.name:14s} w {w:3.1f} b {b:3.1f}: CER {r['cer']:.2%} WER {r['wer']:.2%} "
                  f"spaces -{r.get('spaces dropped', 0)} +{r.get('spaces inserted', 0)} "
                  f"punct -{r.get('punctuation dropped', 0)} ({r['ms_per_line']:.1f} ms/line)", flush=True)
        best = min(rows, key=lambda r: (r["cer"], r["wer"]))
        size = Path(path).stat().st_size if path else 0
        report["variants"][v.name] = {**best, "what": v.describe(), "file_bytes": size, "grid": rows}
    print(f"\n{a.split}, {len(refs)} lines, each variant at its best LM weight / word bonus:")
    print("| variant | what | LM weight | word bonus | CER | WER | spaces dropped / inserted | punctuation dropped | ARPA MB |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for name, r in report["variants"].items():
        print(f"| {name} | {r['what']} | {r['lm_weight']} | {r['word_bonus']} | {r['cer']:.2%} | {r['wer']:.2%} | "
              f"{r.get('spaces dropped', 0)} / {r.get('spaces inserted', 0)} | {r.get('punctuation dropped', 0)} | "
              f"{r['file_bytes'] / 1e6:.1f} |")
    if a.out:
        a.out.write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
