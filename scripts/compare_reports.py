"""Is model B's CER really lower than model A's on the same lines? A paired bootstrap over lines.

    hwr evaluate --data WORK/iam-ondb.h5 --split testset_v --model A --report a.jsonl
    hwr evaluate --data WORK/iam-ondb.h5 --split testset_v --model B --report b.jsonl
    python scripts/compare_reports.py a.jsonl b.jsonl
    python scripts/compare_reports.py a.jsonl b.jsonl --confusions 12   # and what kind of errors changed

Why: two models a few tenths of a point apart on 1,438 lines can be apart by chance. Resampling the lines
(with replacement, the same draw for both models) and recomputing the corpus CER difference each time gives
an interval for the difference that keeps the pairing: lines that are hard for one model are hard for the
other. Prints both CERs, B - A in points and its 95 % interval; the draws are seeded, so the figures repeat.
With --confusions, also the error classes (spaces dropped and inserted, punctuation dropped, inserted and
misread) and the most frequent character confusions, A beside B: where the difference comes from.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # hwr.evaluate is imported only for --confusions: it loads torch


def read_report(path: Path) -> dict[str, dict]:
    """id -> the line's row (edits, characters, reference, hypothesis) from an `hwr evaluate --report` file."""
    rows = {}
    with open(path, encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            if line.strip():
                r = json.loads(line)
                try:
                    rows[r["id"]] = {"edits": int(r["edits"]), "characters": int(r["characters"]),
                                     "reference": r["reference"], "hypothesis": r["hypothesis"]}
                except KeyError as e:
                    raise SystemExit(f"{path}:{n}: no {e} field: is this an `hwr evaluate --report` file?") from None
    return rows


def error_table(rows) -> tuple[Counter, Counter]:
    """(error classes, (reference, output) character pairs) over the lines' optimal alignments;
    "" in a pair is a missing character."""
    from hwr.evaluate import confusions, error_kind

    classes, pairs = Counter(), Counter()
    for r in rows:
        for ref, out in confusions(r["reference"], r["hypothesis"]):
            pairs[ref, out] += 1
            classes[error_kind(ref, out)] += 1
    return classes, pairs


def print_confusions(rows_a, rows_b, top: int) -> None:
    """A Markdown table of error classes and the `top` most frequent confusions (of A and B together)."""
    (ca, pa), (cb, pb) = error_table(rows_a), error_table(rows_b)
    show = lambda c: repr(c) if c else "(none)"  # noqa: E731
    from hwr.evaluate import ERROR_KINDS

    print("\n| errors | A | B |\n| --- | ---: | ---: |")
    for k in ERROR_KINDS:
        print(f"| {k} | {ca[k]} | {cb[k]} |")
    print(f"| all | {sum(ca.values())} | {sum(cb.values())} |")
    print("\n| reference -> output | A | B |\n| --- | ---: | ---: |")
    for (ref, out), _ in (pa + pb).most_common(top):
        print(f"| {show(ref)} -> {show(out)} | {pa[ref, out]} | {pb[ref, out]} |")


def paired_bootstrap(edits_a, edits_b, chars, draws: int = 10_000, seed: int = 0) -> dict:
    """Corpus CERs of A and B, B - A in points and its 95 % interval over `draws` resamplings of the lines."""
    ea, eb, n = (np.asarray(x, dtype=np.int64) for x in (edits_a, edits_b, chars))
    rng = np.random.default_rng(seed)
    diffs = np.empty(draws)
    for k in range(0, draws, 1000):  # in blocks: 1,000 x lines indices at a time keeps memory small
        idx = rng.integers(0, len(n), size=(min(1000, draws - k), len(n)))
        diffs[k:k + len(idx)] = (eb[idx].sum(1) - ea[idx].sum(1)) / n[idx].sum(1) * 100
    return {"cer_a": ea.sum() / n.sum() * 100, "cer_b": eb.sum() / n.sum() * 100,
            "diff": (eb.sum() - ea.sum()) / n.sum() * 100,
            "low": float(np.percentile(diffs, 2.5)), "high": float(np.percentile(diffs, 97.5)),
            "p_b_better": float(np.mean(diffs < 0))}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("a", type=Path, help="report of the baseline")
    p.add_argument("b", type=Path, help="report of the candidate")
    p.add_argument("--draws", type=int, default=10_000, help="resamplings of the lines (default: 10,000)")
    p.add_argument("--confusions", type=int, default=0, metavar="N",
                   help="also print the error classes and the N most frequent character confusions of A and B")
    a = p.parse_args()
    if a.draws < 1:
        p.error("--draws must be at least 1")
    if a.confusions < 0:
        p.error("--confusions must be 0 (none) or more")
    ra, rb = read_report(a.a), read_report(a.b)
    if not ra:
        sys.exit(f"{a.a}: no lines: is this an `hwr evaluate --report` file?")
    if set(ra) != set(rb):
        sys.exit(f"the reports read different lines ({len(set(ra) ^ set(rb))} ids in only one): "
                 "evaluate both models on the same store and split")
    ids = sorted(ra)
    if any(ra[i]["characters"] != rb[i]["characters"] for i in ids):
        sys.exit("the reports disagree on a line's reference length: they were made from different stores")
    r = paired_bootstrap([ra[i]["edits"] for i in ids], [rb[i]["edits"] for i in ids],
                         [ra[i]["characters"] for i in ids], a.draws)
    print(f"{len(ids)} lines: A {r['cer_a']:.3f} %  B {r['cer_b']:.3f} %  B - A {r['diff']:+.3f} points "
          f"(95 % interval {r['low']:+.3f} .. {r['high']:+.3f}; B lower in {r['p_b_better']:.0%} of the draws)")
    if a.confusions:
        print_confusions([ra[i] for i in ids], [rb[i] for i in ids], a.confusions)


if __name__ == "__main__":
    main()
