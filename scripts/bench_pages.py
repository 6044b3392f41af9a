"""Pages: line segmentation and page reading, measured. Every page figure in BENCHMARKS.md comes
from here.

    python scripts/bench_pages.py --iam WORK/iam-ondb.h5 --split testset_f --out pages.json
    python scripts/bench_pages.py --iam WORK/iam-ondb.h5 --split testset_v --only segment   # tuning split

Parts:
  segment   IAM-OnDB pages (each form's line files, strokes merged in time order: `hwr.pages`):
            share of pages with the right line count, strokes on a wrong line, share of single
            lines of the split cut into more than one, and segmentation time per page (1 thread,
            median of 5 runs over all pages; and pages of 10 lines)
  staged    pages composed from the split's lines (`hwr.synth`) in the ways the issue lists:
            sloping lines of different lengths, dots and crosses added after the line and after
            the page, a line squeezed in later, a line written over the previous one: line count
            right and strokes on a wrong line for each
  read      the split's pages read by the shipped decoder: page CER (newlines as spaces, and as
            characters), against the line-level CER of the same lines with the same decoder, with
            and without each line primed by the line before it (LM pre-context)
  bad       an empty page, one dot, 100 lines, strokes in random time order: result or error
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from hwr import synth
from hwr.errors import HwrError
from hwr.ink import Ink, Stroke
from hwr.layout import segment_lines
from hwr.metrics import cer, page_cer, segmentation_errors
from hwr.pages import form_pages
from hwr.recognizer import Recognizer
from hwr.store import Store

sys.path.insert(0, str(Path(__file__).parent))
from bench import cpu_busy, machine  # noqa: E402 - the same machine line and CPU check as bench.py


def load(iam: str, split: str) -> tuple[list, list]:
    with Store(iam) as s:
        lines = [s[i] for i in s.indices(split)]
    pages = list(form_pages(lines, on_skip=lambda form, why: print(f"  skipped {form}: {why}")))
    return lines, pages


def part_segment(lines, pages) -> dict:
    right = errors = strokes = 0
    for p in pages:
        got = segment_lines(p.ink)
        right += len(got) == len(p.text.split("\n"))
        errors += segmentation_errors(p.stroke_lines, got)
        strokes += len(p.ink)
    split_lines = sum(len(segment_lines(s.ink)) != 1 for s in lines)
    runs = []
    for _ in range(5):
        t = []
        for p in pages:
            t0 = time.perf_counter()
            segment_lines(p.ink)
            t.append((time.perf_counter() - t0) * 1000)
        runs.append(t)
    per_page = [statistics.median(x) for x in zip(*runs)]
    ten = [ms for ms, p in zip(per_page, pages) if p.text.count("\n") + 1 == 10]
    return {"pages": len(pages), "line_count_right": right / len(pages), "stroke_errors": errors,
            "strokes": strokes, "stroke_error_rate": errors / strokes,
            "single_lines_cut": split_lines, "single_lines": len(lines),
            "ms_per_page_median": statistics.median(per_page), "ms_per_page_p95": float(np.percentile(per_page, 95)),
            "ms_10_line_pages_median": statistics.median(ten) if ten else None, "ten_line_pages": len(ten)}


def part_staged(lines, n_pages: int = 60, seed: int = 0) -> dict:
    """Pages of 3-6 lines of the split (one writer per page), staged several ways."""
    rng = np.random.default_rng(seed)
    by_writer: dict[str, list] = {}
    for s in lines:
        by_writer.setdefault(s.writer, []).append(s.ink)
    writers = [w for w, v in by_writer.items() if len(v) >= 6]
    out = {}
    stages = {
        "stacked, spacing 2.0": lambda ls, r: synth.stack(ls, spacing=2.0),
        "sloping, different lengths": lambda ls, r: synth.stack(
            ls, spacing=2.4, slopes=list(r.uniform(-0.06, 0.06, len(ls))), indent=list(r.uniform(0, 2, len(ls)))),
        "dots after the line": lambda ls, r: synth.delay_small_strokes(*synth.stack(ls, spacing=2.2), after_page=False),
        "dots after the page": lambda ls, r: synth.delay_small_strokes(*synth.stack(ls, spacing=2.2), after_page=True),
        "a line squeezed in later": lambda ls, r: synth.stack(
            ls, spacing=2.4, order=[i for i in range(len(ls)) if i != 1] + [1]),
        "superimposed (2 lines)": lambda ls, r: synth.superimposed(ls[:2]),
    }
    for name, make in stages.items():
        right = errors = strokes = 0
        r = np.random.default_rng(seed)
        for k in range(n_pages):
            w = writers[k % len(writers)]
            pick = rng.permutation(len(by_writer[w]))[:int(r.integers(3, 7))]
            page, src = make([by_writer[w][i] for i in pick], r)
            got = segment_lines(page)
            right += len(got) == int(src.max()) + 1
            errors += segmentation_errors(src, got)
            strokes += len(page)
        out[name] = {"pages": n_pages, "line_count_right": right / n_pages, "stroke_error_rate": errors / strokes}
    return out


def part_read(rec: Recognizer, lines, pages) -> dict:
    cfg = replace(rec.decoder_config, nbest=1)
    refs = [s.text for s in lines]
    t0 = time.perf_counter()
    line_hyps = [r.text for r in _batched(rec, [s.ink for s in lines], cfg, layout="line")]
    t_lines = time.perf_counter() - t0
    out = {"decoder": cfg.as_dict(), "lines": len(lines), "line_cer": cer(refs, line_hyps),
           "line_seconds": t_lines}
    page_refs = [p.text for p in pages]
    for name, primed in (("page", True), ("page_no_context", False)):
        t0 = time.perf_counter()
        if primed:
            hyps = [r.text for r in _batched(rec, [p.ink for p in pages], cfg, layout="page")]
        else:  # the same cuts, each line read alone
            hyps = []
            for p in pages:
                cut = segment_lines(p.ink)
                parts = rec.recognize([Ink([p.ink.strokes[k] for k in c]) for c in cut], decoder=cfg, layout="line")
                hyps.append("\n".join(r.text for r in parts))
        out[name] = {"cer_newline_as_space": page_cer(page_refs, hyps, newlines="space"),
                     "cer_newline_as_char": page_cer(page_refs, hyps, newlines="char"),
                     "line_count_right": float(np.mean([h.count("\n") == r.count("\n")
                                                         for h, r in zip(hyps, page_refs)])),
                     "seconds": time.perf_counter() - t0}
    # the line-level CER of exactly the lines on these pages, for a like-for-like gap
    on_pages = {s.id.rsplit("-", 1)[0] for s in lines} & {p.id for p in pages}
    keep = [i for i, s in enumerate(lines) if s.id.rsplit("-", 1)[0] in on_pages]
    out["line_cer_same_lines"] = cer([refs[i] for i in keep], [line_hyps[i] for i in keep])
    out["gap_points"] = 100 * (out["page"]["cer_newline_as_space"] - out["line_cer_same_lines"])
    return out


def _batched(rec, inks, cfg, layout, size=16):
    out = []
    for k in range(0, len(inks), size):
        out += rec.recognize(inks[k:k + size], decoder=cfg, layout=layout, spans=False)
    return out


def part_bad(rec: Recognizer, lines) -> dict:
    base = synth.stack([s.ink for s in lines[:100]], spacing=2.2)[0]
    lengths = base.stroke_lengths()
    pts = base.points().copy()
    rng = np.random.default_rng(0)
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    for k in range(len(lengths)):
        pts[starts[k]:starts[k] + lengths[k], 2] = rng.random() * 1e7 + np.arange(lengths[k])
    cases = {"empty page": Ink([]), "one dot": Ink([Stroke([[3.0, 4.0, 0.0]])]), "100 lines": base,
             "random time order": Ink.from_arrays(pts, lengths)}
    out = {}
    for name, ink in cases.items():
        t0 = time.perf_counter()
        try:
            r = rec.recognize(ink)
            out[name] = f"{len(r.lines)} lines in {time.perf_counter() - t0:.1f} s"
        except HwrError as e:
            out[name] = f"error: {e}"
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--iam", required=True, help="IAM-OnDB line store (hwr data import iam-ondb)")
    p.add_argument("--split", default="testset_f")
    p.add_argument("--only", action="append", choices=["segment", "staged", "read", "bad"])
    p.add_argument("--out", help="write the figures as JSON here")
    a = p.parse_args()
    torch.set_num_threads(1)
    parts = a.only or ["segment", "staged", "read", "bad"]
    print(machine())
    lines, pages = load(a.iam, a.split)
    print(f"{a.split}: {len(lines)} lines, {len(pages)} pages")
    res: dict = {"machine": machine(), "split": a.split}
    res["cpu_busy_before"] = busy = cpu_busy()
    if busy > 0.15:
        res["contaminated"] = True
        print(f"CONTAMINATED: {busy:.0%} of the CPU is busy with something else; times are not comparable")
    if "segment" in parts:
        res["segment"] = part_segment(lines, pages)
        print(json.dumps(res["segment"], indent=1))
    if "staged" in parts:
        res["staged"] = part_staged(lines)
        print(json.dumps(res["staged"], indent=1))
    rec = Recognizer.load() if {"read", "bad"} & set(parts) else None
    if "read" in parts:
        res["read"] = part_read(rec, lines, pages)
        print(json.dumps(res["read"], indent=1))
    if "bad" in parts:
        res["bad"] = part_bad(rec, lines)
        print(json.dumps(res["bad"], indent=1))
    if a.out:
        Path(a.out).write_text(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
