"""Why spaces are dropped and inserted: the ink gap at every space error, against all spaces.

    python scripts/space_study.py --iam WORK/iam-ondb.h5 --split testset_v --out spaces.json [--plot spaces.png]

Each labelled line is read with the model's decoder, and its label is force-aligned to the ink
(`Recognizer.align`), which gives each reference character its strokes. For every space of the
label, the gap is the horizontal distance from the right edge of the word before to the left edge
of the word after, in writing heights (the features' scale). For every space the decoder put
inside a word, the gap is measured the same way between the two characters it split, or marked
"one stroke" when both are in one stroke (connected writing: no gap in the ink at all).
The tables show how the errors are spread over gap sizes against how all spaces are; the
character confusions (reference -> output) come first. Decoding uses the model's shipped
settings unless `--decoder greedy`.
"""

from __future__ import annotations

import argparse
import collections
import json
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hwr.data import load_split  # noqa: E402
from hwr.decode import DecoderConfig  # noqa: E402
from hwr.evaluate import edit_ops  # noqa: E402
from hwr.features import writing_height  # noqa: E402
from hwr.recognizer import Recognizer  # noqa: E402

BINS = [-np.inf, 0.0, 0.2, 0.4, 0.6, 0.8, 1.0, 1.5, np.inf]


def x_extent(ink, strokes) -> tuple[float, float] | None:
    xs = [ink.strokes[k].points[:, 0] for k in strokes]
    if not xs:
        return None
    xs = np.concatenate(xs)
    return float(xs.min()), float(xs.max())


def line_gaps(ink, ref: str, spans) -> tuple[dict[int, float], float]:
    """Gap (in writing heights) at each space of `ref`, by its index; the line's writing height."""
    pts = ink.points()[:, :2]
    height, _ = writing_height(pts, ink.stroke_lengths())
    gaps = {}
    words, start = [], 0
    for i, ch in enumerate(ref + " "):
        if ch == " ":
            if i > start:
                words.append((start, i))
            start = i + 1
    for (a0, a1), (b0, b1) in zip(words, words[1:]):
        left = x_extent(ink, {k for s in spans[a0:a1] for k in s.strokes})
        right = x_extent(ink, {k for s in spans[b0:b1] for k in s.strokes})
        if left and right and all(ref[k] == " " for k in range(a1, b0)):
            gaps[a1] = (right[0] - left[1]) / height
    return gaps, height


def inner_gap(ink, spans, i: int, height: float) -> float | str | None:
    """Gap between reference characters i-1 and i (where a space was inserted)."""
    if i <= 0 or i >= len(spans):
        return None
    a, b = set(spans[i - 1].strokes), set(spans[i].strokes)
    if not a or not b:
        return None
    if a & b:
        return "one stroke"
    ea, eb = x_extent(ink, a), x_extent(ink, b)
    return (eb[0] - ea[1]) / height


def histogram(values: list[float]) -> list[int]:
    edges = np.clip(BINS, -1e9, 1e9)  # open-ended first and last bins
    return np.histogram(np.asarray(values, dtype=float), bins=edges)[0].tolist()


def bin_names() -> list[str]:
    names = []
    for a, b in zip(BINS, BINS[1:]):
        names.append(f"< {b:g}" if a == -np.inf else f">= {a:g}" if b == np.inf else f"{a:g}-{b:g}")
    return names


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--iam", type=Path, required=True)
    ap.add_argument("--split", default="testset_v")
    ap.add_argument("--model", default=None)
    ap.add_argument("--decoder", choices=["model", "greedy"], default="model")
    ap.add_argument("--out", type=Path)
    ap.add_argument("--plot", type=Path, help="PNG: gap distributions of all spaces, dropped and inserted ones")
    a = ap.parse_args(argv)
    torch.set_num_threads(1)
    rec = Recognizer.load(a.model)
    cfg = DecoderConfig(kind="greedy") if a.decoder == "greedy" else rec.decoder_config
    rows = [r for r in load_split([str(a.iam)], a.split) if r[2]]
    all_gaps, dropped, kept_inserted = [], [], []
    inserted_one_stroke = inserted_unmeasured = 0
    conf = collections.Counter()
    for k, (id_, ink, ref, _w, _s) in enumerate(rows):
        hyp = rec.recognize(ink, decoder=cfg, spans=False, layout="line").text
        spans = rec.align(ink, ref)
        gaps, height = line_gaps(ink, ref, spans)
        all_gaps += list(gaps.values())
        for op, i, h in edit_ops(ref, hyp):
            conf[(ref[i] if op != "ins" else "", h)] += 1
            if op == "del" and ref[i] == " " and i in gaps:
                dropped.append(gaps[i])
            elif op == "ins" and h == " ":
                g = inner_gap(ink, spans, i, height)
                if g == "one stroke":
                    inserted_one_stroke += 1
                elif g is None:
                    inserted_unmeasured += 1
                else:
                    kept_inserted.append(g)
        if k % 200 == 0:
            print(f"{k}/{len(rows)}", file=sys.stderr, flush=True)
    names = bin_names()
    h_all, h_drop, h_ins = histogram(all_gaps), histogram(dropped), histogram(kept_inserted)
    print(f"\n{a.split}, {len(rows)} lines, decoder {cfg.kind}; most frequent confusions (reference -> output):")
    for (r, h), n in conf.most_common(15):
        print(f"  {r or '(none)'!r} -> {h or '(none)'!r}: {n}")
    print(f"\nspaces of the labels by ink gap (writing heights): {len(all_gaps)} measured")
    print("| gap | all spaces | dropped | share dropped | spaces inserted inside a word |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for name, n, d, i in zip(names, h_all, h_drop, h_ins):
        print(f"| {name} | {n} | {d} | {d / max(n, 1):.1%} | {i} |")
    print(f"| one stroke | | | | {inserted_one_stroke} |")
    print(f"\ninserted spaces not measured (no strokes aligned): {inserted_unmeasured}")
    med = lambda v: float(np.median(v)) if v else None  # noqa: E731
    print(f"median gap: all spaces {med(all_gaps)}, dropped {med(dropped)}, inserted (measured) {med(kept_inserted)}")
    report = {"split": a.split, "lines": len(rows), "decoder": cfg.as_dict(), "bins": names,
              "all_spaces": h_all, "dropped": h_drop, "inserted": h_ins,
              "inserted_one_stroke": inserted_one_stroke, "inserted_unmeasured": inserted_unmeasured,
              "median_gap": {"all": med(all_gaps), "dropped": med(dropped), "inserted": med(kept_inserted)},
              "confusions": [{"reference": r or "(none)", "hypothesis": h or "(none)", "count": n}
                             for (r, h), n in conf.most_common(40)]}
    if a.out:
        a.out.write_text(json.dumps(report, indent=1))
    if a.plot:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        fig, ax = plt.subplots(figsize=(7, 3.5))
        edges = np.linspace(-0.5, 2.5, 31)
        for v, label in ((all_gaps, "all spaces of the labels"), (dropped, "dropped by the decoder"),
                         (kept_inserted, "inserted inside a word")):
            if v:
                ax.hist(np.clip(v, -0.5, 2.5), bins=edges, density=True, histtype="step", label=f"{label} ({len(v)})")
        ax.set_xlabel("horizontal ink gap, writing heights")
        ax.set_ylabel("density")
        ax.legend()
        fig.tight_layout()
        fig.savefig(a.plot, dpi=120)
    return 0


if __name__ == "__main__":
    sys.exit(main())
