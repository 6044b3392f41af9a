"""Build a canvas-like evaluation set: held-out tablet inks made to look like mouse input (testset_f lines,
or `--split testset_v` to tune on).

    python scripts/make_canvas_set.py --iam WORK/iam-ondb.h5 --out WORK/canvas-like.h5

What the browser canvas gives differs from a tablet: no useful time, pixel-quantised
coordinates at the mouse's event rate (points 1-3 px apart), writing scaled to a ~220 px tall
board. This takes IAM-OnDB testset_f lines (never trained or tuned on) and applies that: time and
pressure stripped, rescaled so the writing is 40-70 px high, resampled to the mouse's spacing
(1-3 px), rounded to whole pixels, jittered by half a pixel (independently per point).

What it does not imitate: the slow wobble of a hand on a mouse, a finger's few thick points, a
sampling rate that follows the hand's speed. `--late SHARE` also moves that share of each line's
dots and crosses (`late_marks`) to the end of the line, as people who dot their i's and cross their
t's after the words do; the shipped canvas-like set is made without it.
"""

from __future__ import annotations

import argparse

import numpy as np

from hwr.features import normalised_points, writing_height
from hwr.ink import Ink, Stroke
from hwr.store import Sample, Store, StoreWriter
from hwr.strokeorder import marks_last


def late_marks(ink: Ink, canvas: Ink, share: float, rng: np.random.Generator) -> Ink:
    """`canvas` (the canvas-like copy of `ink`, stroke for stroke) with `share` of the i-dots and t-crosses
    found in `ink` (`hwr.strokeorder.marks`: small strokes above the line's middle; commas and full stops
    sit low and stay) written after the rest of the line. The strokes are the same ones, so the two sets
    differ by the order alone."""
    order = marks_last(normalised_points(ink), ink.stroke_lengths(), share, rng)
    return canvas if order is None else Ink([canvas.strokes[k] for k in order.tolist()], canvas.text)


def canvasify(ink: Ink, rng: np.random.Generator) -> Ink:
    pts = ink.points()
    height, _ = writing_height(pts[:, :2], ink.stroke_lengths())
    scale = rng.uniform(40, 70) / height
    strokes = []
    for s in ink.strokes:
        xy = (s.points[:, :2] - pts[:, :2].min(axis=0)) * scale + [20, 60]
        seg = np.linalg.norm(np.diff(xy, axis=0), axis=1)
        arc = np.concatenate([[0], np.cumsum(seg)])
        spacing = rng.uniform(1, 3)
        targets = np.arange(0, arc[-1] + 1e-9, spacing) if arc[-1] > 0 else np.zeros(1)
        keep = np.concatenate([[True], seg > 0])
        x = np.interp(targets, arc[keep], xy[keep, 0])
        y = np.interp(targets, arc[keep], xy[keep, 1])
        out = np.stack([x, y], 1) + rng.normal(0, 0.5, (len(x), 2))
        out = np.round(out)
        p = np.full((len(out), 4), np.nan)
        p[:, :2] = out
        p[:, 3] = 0.5
        strokes.append(Stroke(p, "mouse"))
    return Ink(strokes, ink.text)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--iam", required=True)
    ap.add_argument("--unipen", help="unused (UNIPEN is all training data); accepted for the recipe")
    ap.add_argument("--out", required=True)
    ap.add_argument("--lines", type=int, default=500)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--split", default="testset_f", help="IAM-OnDB split the lines come from (default: testset_f, "
                    "the reported set; testset_v to tune on)")
    ap.add_argument("--late", type=float, default=0.0, metavar="SHARE",
                    help="share of each line's i-dots and t-crosses written after the line (default 0: the order written)")
    a = ap.parse_args()
    if not 0 <= a.late <= 1:
        ap.error("--late must be a share between 0 and 1")
    rng = np.random.default_rng(a.seed)
    with Store(a.iam) as s:
        idx = s.indices(a.split)
        pick = np.sort(rng.choice(idx, size=min(a.lines, len(idx)), replace=False))
        inks = [s.ink(int(i)) for i in pick]
        canvas = [canvasify(ink, rng) for ink in inks]
        if a.late:  # its own generator, after canvasify: the set without late marks is the same stroke for stroke
            late_rng = np.random.default_rng(a.seed + 1)
            canvas = [late_marks(ink, c, a.late, late_rng) for ink, c in zip(inks, canvas)]
        split = "canvas_f" if a.split == "testset_f" else f"canvas_{a.split}"
        samples = [Sample(c, id=s.meta["id"][i], split=split, source="canvas-like") for c, i in zip(canvas, pick)]
    with StoreWriter(a.out, created_by="scripts/make_canvas_set.py") as w:
        w.add(samples)
    print(f"wrote {len(samples)} canvas-like lines to {a.out}")


if __name__ == "__main__":
    main()
