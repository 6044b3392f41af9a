"""Evaluation: corpus CER/WER of a model + decoder on a store split, with a report.

CER = sum of character edit distances / sum of reference characters (against the stored
label, e.g. IAM-OnDB's CSR transcription); WER likewise over whitespace-separated words.
On a store of pages (labels with "\n" between lines, `hwr data import iam-ondb --pages`) the
summary's "page" part keeps reading and line cutting apart (`metrics.page_summary`): page CER
with newlines as characters and as spaces, the share of pages read with the right number of
lines, and, where the store knows each stroke's line, the strokes the recognizer put on a
wrong line.
"""

from __future__ import annotations

import collections
import json
import os
import string
import time
from dataclasses import asdict, dataclass, replace

from tqdm import tqdm

from .errors import ConfigError
from .fileutil import write_atomic
from .decode import DecoderConfig
from .ink import InkError
from .metrics import char_edits, line_count_right, page_summary, segmentation_errors, word_edits
from .recognizer import Recognizer
from .store import Store


@dataclass(frozen=True)
class EvalConfig:
    """Defaults of `evaluate` and `hwr evaluate` (the CLI reads them from here)."""

    batch_size: int = 32
    layout: str = "auto"         # auto: page for a store of pages, line otherwise


@dataclass(frozen=True)
class TuneConfig:
    """Defaults of `tune_lm` and `hwr tune-lm`: the grid and the lines it is searched on."""

    split: str = "testset_v"     # a tuning split, never the reported test split
    limit: int | None = 400      # the first lines of the split (None: all)
    weights: tuple[float, ...] = (0.3, 0.5, 0.7, 0.9, 1.2)   # LM weights to try
    bonuses: tuple[float, ...] = (-1.0, 0.0, 1.0, 2.0)       # word bonuses to try
    beam_size: int = DecoderConfig.beam_size  # where neither --decoder-config nor the model says (hwr tune-lm)
    batch_size: int = EvalConfig.batch_size


def edit_ops(ref: str, hyp: str) -> list[tuple[str, int, str]]:
    """The edits of one optimal alignment, from the end of the texts back: ("sub", i, h) replaces
    ref[i] by h, ("del", i, "") drops ref[i], ("ins", i, h) puts h before ref[i] (i = len(ref) at
    the end). With the positions, an error can be traced to its place in the ink (space_study)."""
    n, m = len(ref), len(hyp)
    d = [[0] * (m + 1) for _ in range(n + 1)]
    for i in range(n + 1):
        d[i][0] = i
    for j in range(m + 1):
        d[0][j] = j
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            d[i][j] = min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (ref[i - 1] != hyp[j - 1]))
    out, i, j = [], n, m
    while i or j:
        if i and j and d[i][j] == d[i - 1][j - 1] + (ref[i - 1] != hyp[j - 1]):
            if ref[i - 1] != hyp[j - 1]:
                out.append(("sub", i - 1, hyp[j - 1]))
            i, j = i - 1, j - 1
        elif i and d[i][j] == d[i - 1][j] + 1:
            out.append(("del", i - 1, ""))
            i -= 1
        else:
            out.append(("ins", i, hyp[j - 1]))
            j -= 1
    return out


def confusions(ref: str, hyp: str) -> list[tuple[str, str]]:
    """(reference char, hypothesis char) pairs of one optimal alignment (`edit_ops`); '' marks ins/del."""
    return [("" if op == "ins" else ref[i], h) for op, i, h in edit_ops(ref, hyp)]


# the kinds of error the space and punctuation work counts (issue #13), in the order tables show them
ERROR_KINDS = ("spaces dropped", "spaces inserted", "punctuation dropped", "punctuation inserted",
               "punctuation misread", "other characters")
_PUNCTUATION = frozenset(string.punctuation)


def error_kind(ref: str, out: str) -> str:
    """The kind (one of ERROR_KINDS) of one pair from `confusions`: '' is a missing character."""
    if ref == " " and out == "":
        return "spaces dropped"
    if ref == "" and out == " ":
        return "spaces inserted"
    if ref in _PUNCTUATION and out == "":
        return "punctuation dropped"
    if ref == "" and out in _PUNCTUATION:
        return "punctuation inserted"
    if ref in _PUNCTUATION or out in _PUNCTUATION:
        return "punctuation misread"
    return "other characters"


def evaluate(data: str | os.PathLike, recognizer: Recognizer, split: str | None = None,
             decoder: DecoderConfig | None = None, batch_size: int = EvalConfig.batch_size,
             report: str | None = None, limit: int | None = None, progress: bool = True,
             layout: str = EvalConfig.layout) -> dict:
    """Transcribe every sample of `split` and score it; returns the summary dict.

    layout "auto" reads a store of pages page by page (cut into lines) and a store of lines
    line by line, so line CER stays comparable with figures taken before pages existed;
    "page" cuts line samples too (to measure what cutting costs single lines).
    """
    cfg = replace(decoder or recognizer.decoder_config, nbest=1)
    with Store(data) as store:
        idx = store.indices(split).tolist()
        if limit:
            idx = idx[:limit]
        if not idx:
            raise ConfigError(f"{data}: no samples in split {split!r}; splits are {store.splits()}")
        samples = [store[i] for i in idx]
    unlabelled = sum(not s.text for s in samples)
    samples = [s for s in samples if s.text]  # an empty reference would make any output an "error"
    if not samples:
        raise ConfigError(f"{data}: the {len(idx)} samples of split {split!r} have no labels; evaluation needs "
                          "the text each ink shows (use hwr transcribe to read unlabelled ink)")
    pages = any("\n" in s.text for s in samples)
    if layout == "auto":
        layout = "page" if pages else "line"
    feats_len = [s.ink.num_points for s in samples]
    order = sorted(range(len(samples)), key=lambda i: feats_len[i])
    hyps: dict[int, str] = {}
    cuts: dict[int, list[list[int]]] = {}  # pages: the strokes of each line the recognizer read
    t0 = time.perf_counter()
    bar = tqdm(total=len(order), desc="evaluate", unit=" pages" if pages else " lines", disable=not progress, delay=1.0)
    failed: dict[int, str] = {}  # sample -> why it could not be read (too large, invalid): counted, not scored
    for s in range(0, len(order), batch_size):
        chunk = order[s:s + batch_size]
        try:
            results = recognizer.recognize([samples[i].ink for i in chunk], decoder=cfg, spans=False, layout=layout)
        except InkError:  # find the bad one(s): the rest of the batch still counts
            results = []
            for i in chunk:
                try:
                    results.append(recognizer.recognize(samples[i].ink, decoder=cfg, spans=False, layout=layout))
                except InkError as e:
                    results.append(None)
                    failed[i] = str(e)
        for i, r in zip(chunk, results):
            if r is not None:
                hyps[i] = r.text
                if pages:
                    cuts[i] = [list(line.strokes) for line in r.lines]
        bar.update(len(chunk))
    bar.close()
    if failed:
        samples_all = samples
        keep = [i for i in range(len(samples_all)) if i not in failed]
        samples = [samples_all[i] for i in keep]
        hyps = {k: hyps[i] for k, i in enumerate(keep)}
        cuts = {k: cuts[i] for k, i in enumerate(keep) if i in cuts}
        if not samples:
            raise ConfigError(f"{data}: none of the {len(samples_all)} samples could be read ({next(iter(failed.values()))})")
    seconds = time.perf_counter() - t0
    rows = []
    c_edits = c_total = w_edits = w_total = 0
    conf: collections.Counter = collections.Counter()
    per_writer: dict[str, list[int]] = collections.defaultdict(lambda: [0, 0])
    for i, s in enumerate(samples):
        ref, hyp = s.text, hyps[i]
        ce, we = char_edits(ref, hyp), word_edits(ref, hyp)
        c_edits += ce
        c_total += len(ref)
        w_edits += we
        w_total += len(ref.split())
        if ce:
            conf.update(confusions(ref, hyp))
        if s.writer:
            per_writer[s.writer][0] += ce
            per_writer[s.writer][1] += len(ref)
        rows.append({"id": s.id, "writer": s.writer, "reference": ref, "hypothesis": hyp, "edits": ce,
                     "characters": len(ref), "cer": ce / max(len(ref), 1)})
        if pages:
            rows[-1]["line_count_right"] = line_count_right(ref, hyp)
            if s.stroke_lines is not None:
                rows[-1]["segmentation_errors"] = segmentation_errors(s.stroke_lines, cuts[i])
    summary = {
        "cer": c_edits / max(c_total, 1), "wer": w_edits / max(w_total, 1),
        "samples": len(samples), "unlabelled_skipped": unlabelled, "layout": layout,
        "unreadable": [{"id": samples_all[i].id, "error": e} for i, e in failed.items()] if failed else [],
        "characters": c_total, "words": w_total,
        "char_edits": c_edits, "word_edits": w_edits,
        "data": os.fspath(data), "split": split, "model": recognizer.info.get("path"),
        "decoder": asdict(cfg), "seconds": seconds, "lines_per_second": len(samples) / max(seconds, 1e-9),
        "worst": sorted(rows, key=lambda r: (-r["cer"], -r["edits"]))[:10],
        "confusions": [{"reference": a or "(none)", "hypothesis": b or "(none)", "count": n}
                       for (a, b), n in conf.most_common(15)],
    }
    if pages:
        summary["page"] = page_summary([s.text for s in samples], [hyps[i] for i in range(len(samples))],
                                       [s.stroke_lines for s in samples], [cuts[i] for i in range(len(samples))])
    if per_writer:
        summary["cer_per_writer"] = {w: e / max(n, 1) for w, (e, n) in sorted(per_writer.items())}
    if report:
        write_atomic(report, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    return summary


def format_summary(s: dict) -> str:
    d = s["decoder"]
    dec = d["kind"] if d["kind"] == "greedy" else (
        f"beam {d['beam_size']}" + (f", LM {os.path.basename(d['lm'])} x{d['lm_weight']}" if d["lm"] else ", no LM"))
    unit = "pages" if "page" in s else "lines"
    lines = [f"CER {s['cer']:.2%}  WER {s['wer']:.2%}  on {s['samples']:,} {unit} ({s['characters']:,} characters), "
             f"split {s['split'] or 'all'}, decoder {dec}",
             f"{s['seconds']:.1f} s, {s['lines_per_second']:.1f} {unit}/s"]
    if "page" in s:
        p = s["page"]
        lines.append(f"pages: CER {p['cer']:.2%} with newlines as characters, {p['cer_newline_as_space']:.2%} as "
                     f"spaces; the right number of lines in {p['line_count_right']:.1%} of pages"
                     + (f"; {p['segmentation_errors']:,} of {p['segmented_strokes']:,} strokes on a wrong line "
                        f"({p['segmentation_error_rate']:.2%})" if "segmentation_errors" in p else ""))
    if s["confusions"]:
        lines.append("most confused: " + ", ".join(f"{c['reference']}->{c['hypothesis']} ({c['count']})"
                                                   for c in s["confusions"][:8]))
    for r in s["worst"][:3]:
        lines.append(f"worst: {r['id']}: {r['reference']!r} -> {r['hypothesis']!r}")
    return "\n".join(lines)


def tune_lm(data: str | os.PathLike, recognizer: Recognizer, lm: str, split: str = TuneConfig.split,
            weights=TuneConfig.weights, bonuses=TuneConfig.bonuses, beam_size: int = TuneConfig.beam_size,
            limit: int | None = TuneConfig.limit, batch_size: int = TuneConfig.batch_size,
            progress: bool = True) -> dict:
    """Grid search of LM weight x word bonus on a tuning split (never the test split)."""
    if split.startswith("testset_f"):
        raise ConfigError("tune on testset_v, never on testset_f (it is the reported test set)")
    results = []
    best = None
    for w in weights:
        for b in bonuses:
            # the model's own search settings (pruning included), with this LM, weight and bonus
            cfg = replace(recognizer.decoder_config, kind="beam", beam_size=beam_size, lm=lm, lm_weight=w,
                          word_bonus=b)
            s = evaluate(data, recognizer, split, cfg, batch_size=batch_size, limit=limit, progress=False)
            results.append({"lm_weight": w, "word_bonus": b, "cer": s["cer"], "wer": s["wer"]})
            if progress:
                print(f"lm_weight {w:4.2f} word_bonus {b:5.2f}: CER {s['cer']:.2%} WER {s['wer']:.2%}", flush=True)
            if best is None or s["cer"] < best[0]:
                best = (s["cer"], cfg)
    return {"best": asdict(best[1]), "best_cer": best[0], "grid": results, "split": split, "limit": limit}
