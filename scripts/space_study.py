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

    python scripts/space_study.py --iam WORK/iam-ondb.h5 --split testset_v --prior-grid

tests what the gaps would add at decoding time: before the beam search, the space's log-probability
at each pen jump that moves right of all earlier ink is raised or lowered by
`b0 + a_abs * log(gap / 0.5) + a_rel * log(gap / median gap of the line)` (the second term is the gap
against the writer's own gaps in that line), over a small grid of (a_abs, a_rel, b0).
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
from hwr.metrics import word_edits  # noqa: E402
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


PRIOR_GRID = [(0, 0, 0), (0, 0, 0.5), (0, 0, -0.5), (0.5, 0, 0), (1, 0, 0), (0, 0.5, 0), (0, 1, 0), (0, 2, 0),
              (0.5, 1, 0), (0, 1, -0.5)]


def jump_gaps(values: np.ndarray) -> list[tuple[int, float]]:
    """(resampled point, gap) at each stroke start that lies right of all earlier ink: the new
    stroke's left edge minus the right edge of everything before it, in writing heights (the
    features' unit). A late i-dot or t-cross lands inside earlier ink and is not a gap."""
    x = np.cumsum(values[:, 0])
    starts = np.nonzero(values[:, 2] == 1)[0]
    ends = np.append(starts[1:], len(x))
    right = np.maximum.accumulate(x)
    out = []
    for p, e in zip(starts[1:], ends[1:]):
        gap = float(x[p:e].min() - right[p - 1])
        if gap > 0:
            out.append((int(p), gap))
    return out


def with_gap_prior(lp: torch.Tensor, gaps: list[tuple[int, float]], space: int, stride: int,
                   a_abs: float, a_rel: float, b0: float) -> torch.Tensor:
    """`lp` (T, C) with the space's log-probability moved at the frames of each gap (the frame of
    the jump and the one before: the network fires a character as its ink begins)."""
    lp = lp.clone()
    if gaps:
        med = float(np.median([g for _, g in gaps]))
        for p, g in gaps:
            t = p // stride
            lp[max(0, t - 1):t + 1, space] += b0 + a_abs * np.log(g / 0.5) + a_rel * np.log(g / med)
    return lp


def prior_grid(rec: Recognizer, cfg: DecoderConfig, rows) -> list[dict]:
    """CER, WER and space errors of the beam search with each gap prior of PRIOR_GRID."""
    decoder, space = rec.decoder(cfg), rec.alphabet.index[" "]
    lines = []
    for _id, ink, ref, _w, _s in rows:
        f = rec.features(ink)
        lp, n = rec.log_probs([f])
        lines.append((ref, lp[:int(n[0]), 0], jump_gaps(f.values)))
    out = []
    for a_abs, a_rel, b0 in PRIOR_GRID:
        r = collections.Counter(a_abs=a_abs, a_rel=a_rel, b0=b0)
        for ref, lp, gaps in lines:
            x = with_gap_prior(lp, gaps, space, rec.stride, a_abs, a_rel, b0)
            hyps = decoder(x[:, None], torch.tensor([x.shape[0]]))[0]
            hyp = hyps[0].text if hyps else ""
            ops = edit_ops(ref, hyp)
            r["edits"] += len(ops)
            r["word_edits"] += word_edits(ref, hyp)
            r["chars"] += len(ref)
            r["words"] += len(ref.split())
            r["dropped"] += sum(op == "del" and ref[i] == " " for op, i, _ in ops)
            r["inserted"] += sum(op == "ins" and h == " " for op, _, h in ops)
        out.append({**r, "cer": r["edits"] / r["chars"], "wer": r["word_edits"] / r["words"]})
        print(f"| {a_abs} | {a_rel} | {b0} | {out[-1]['cer']:.2%} | {out[-1]['wer']:.2%} | {r['dropped']} | "
              f"{r['inserted']} |", flush=True)
    return out


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
    ap.add_argument("--prior-grid", action="store_true", help="decode with gap priors on the space instead (see above)")
    a = ap.parse_args(argv)
    torch.set_num_threads(1)
    rec = Recognizer.load(a.model)
    cfg = DecoderConfig(kind="greedy") if a.decoder == "greedy" else rec.decoder_config
    rows = [r for r in load_split([str(a.iam)], a.split) if r[2]]
    if a.prior_grid:
        print(f"{a.split}, {len(rows)} lines, decoder {cfg.kind}, space log-probability moved at ink gaps:")
        print("| a_abs | a_rel | b0 | CER | WER | spaces dropped | spaces inserted |")
        print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
        grid = prior_grid(rec, cfg, rows)
        if a.out:
            a.out.write_text(json.dumps({"split": a.split, "decoder": cfg.as_dict(), "prior_grid": grid}, indent=1))
        return 0
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
