"""Build a canvas-like evaluation set: held-out tablet inks made to look like mouse input.

    python scripts/make_canvas_set.py --iam WORK/iam-ondb.h5 --out WORK/canvas-like.h5

What the browser canvas gives differs from a tablet: no useful time, pixel-quantised
coordinates at the mouse's event rate (points 1-3 px apart), writing scaled to a ~220 px tall
board, and a hand that wobbles. This takes IAM-OnDB testset_f lines (never trained or tuned
on) and applies exactly that: time and pressure stripped, rescaled so the writing is 40-70 px
high, resampled to the mouse's spacing (1-3 px), rounded to whole pixels, jittered by half a pixel.
"""

from __future__ import annotations

import argparse

import numpy as np

from hwr.features import writing_height
from hwr.ink import Ink, Stroke
from hwr.store import Sample, Store, StoreWriter


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
    a = ap.parse_args()
    rng = np.random.default_rng(a.seed)
    with Store(a.iam) as s:
        idx = s.indices("testset_f")
        pick = np.sort(rng.choice(idx, size=min(a.lines, len(idx)), replace=False))
        samples = [Sample(canvasify(s.ink(int(i)), rng), id=s.meta["id"][i], split="canvas_f", source="canvas-like")
                   for i in pick]
    with StoreWriter(a.out, created_by="scripts/make_canvas_set.py") as w:
        w.add(samples)
    print(f"wrote {len(samples)} canvas-like lines to {a.out}")


if __name__ == "__main__":
    main()
