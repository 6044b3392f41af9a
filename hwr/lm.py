"""Character n-gram language models: estimation (interpolated modified Kneser-Ney), ARPA I/O.

    hwr lm build --text ../shared/data/text/brown.zip --order 6 --out lm.arpa

Why written here: KenLM's estimator (lmplz) is a C++ binary that no PyPI or Debian package
ships, and the Python LM libraries we looked at do not write ARPA. The estimator follows
Chen & Goodman (1998) as KenLM does: adjusted (continuation) counts for lower orders, three
discounts per order from counts-of-counts, interpolation down to a uniform distribution,
written exactly as ARPA probabilities and backoff weights. Count pruning of orders >= 3
re-normalises the backoff weights so every context still sums to one (a test checks that).

Tokens are characters; the space is written `<sp>` (ARPA splits on whitespace), `<s>`/`</s>`
bound each line of text. Text is turned into handwriting-like lines (25-45 characters) so
the model learns that lines start and end mid-sentence, as they do on a page.
"""

from __future__ import annotations

import collections
import gzip
import math
import os
import re
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import ConfigError, HwrError, InputError
from .fileutil import atomic_path
from tqdm import tqdm

SPACE_WORD = "<sp>"  # the space character's name in ARPA files and in the decoder's token list
BOS, EOS, UNK = "<s>", "</s>", "<unk>"
_BOS, _EOS = "\x02", "\x03"  # one-character stand-ins while counting


@dataclass(frozen=True)
class LMConfig:
    """Defaults of `build_lm` and `hwr lm build` (the CLI reads them from here)."""

    order: int = 6               # characters per n-gram; a 6-gram sees the 5 before
    prune: int = 1               # drop n-grams of order >= 3 seen fewer times (1: keep all)
    eval_split: str = "testset_v"  # the store split whose labels the perplexity is reported on


# ---------------------------------------------------------------------- text
def _detokenize(tokens: list[str]) -> str:
    """Brown's tokens as people write them: `Atlanta's "recent" primary, (1961)`. Quotes attach to
    the words inside them, as in IAM-OnDB's labels (a spaced `" no evidence "` taught the LM to put
    spaces inside quotes the ink does not have). Brown's double quotes are directional (`` and '');
    its single ones are all `'`, taken in turn as opening and closing where a line has them in pairs.
    A line that opens with a closing quote or ends with an opening one loses it: its partner is in
    another of Brown's one-sentence lines."""
    while tokens and tokens[0] == "''":
        tokens = tokens[1:]
    while tokens and tokens[-1] == "``":
        tokens = tokens[:-1]
    paired = tokens.count("'") % 2 == 0
    out = ""
    attach_next = single_open = False
    for tok in tokens:
        t = {"``": '"', "''": '"', "--": "-"}.get(tok, tok)
        opening = tok == "``" or (tok == "'" and paired and not single_open)
        if tok == "'" and paired:
            single_open = not single_open
        if not out or attach_next:
            out += t
        elif not opening and (tok == "''" or re.fullmatch(r"[.,;:?!)\]']+|'s|n't|%", t)):
            out += t
        else:
            out += " " + t
        attach_next = opening or t in ("(", "[", "$")
    return out


def read_corpus(path: str | os.PathLike) -> Iterator[str]:
    """Paragraph-like strings from a text file or an NLTK corpus zip (Brown is tagged)."""
    path = Path(path)
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as z:
            for name in sorted(z.namelist()):
                base = name.rsplit("/", 1)[-1]
                if name.endswith("/") or base.startswith(("README", "CONTENTS", "LICENSE", "cats")) or base == "":
                    continue
                text = z.read(name).decode("utf-8", errors="replace")
                if "/brown/" in f"/{name}" and re.search(r"\S+/[a-z.$*+-]+\s", text[:2000]):
                    for line in text.splitlines():
                        toks = [w.rsplit("/", 1)[0] for w in line.split()]
                        if toks:
                            yield _detokenize(toks)
                else:
                    for para in re.split(r"\n\s*\n", text):
                        para = " ".join(para.split())
                        if para:
                            yield para
    else:
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            line = " ".join(line.split())
            if line:
                yield line


def to_lines(paragraphs: Iterable[str], seed: int = 0, min_len: int = 25, max_len: int = 45) -> Iterator[str]:
    """Wrap running text into lines of random width, breaking at spaces, as a writer would."""
    rng = np.random.default_rng(seed)
    for para in paragraphs:
        words = para.split()
        line: list[str] = []
        width = int(rng.integers(min_len, max_len + 1))
        for w in words:
            if line and len(" ".join(line + [w])) > width:
                yield " ".join(line)
                line = []
                width = int(rng.integers(min_len, max_len + 1))
            line.append(w)
        if line:
            yield " ".join(line)


# ---------------------------------------------------------------------- estimation
def _discounts(adjusted: dict[str, int]) -> tuple[float, float, float]:
    n = collections.Counter(min(c, 4) for c in adjusted.values())
    n1, n2, n3, n4 = (max(n[i], 1) for i in (1, 2, 3, 4))
    y = n1 / (n1 + 2 * n2)
    d = (1 - 2 * y * n2 / n1, 2 - 3 * y * n3 / n2, 3 - 4 * y * n4 / n3)
    return tuple(min(max(x, 0.05), k + 1 - 0.05) for k, x in enumerate(d))  # type: ignore[return-value]


def build_lm(lines: Iterable[str], order: int = LMConfig.order, vocab: Iterable[str] = (),
             prune: int = LMConfig.prune, progress: bool = True) -> ArpaLM:
    """Estimate an interpolated modified Kneser-Ney character model.

    `vocab`: characters the model must be able to score even if the text lacks them (the
    recognizer's alphabet). `prune`: drop n-grams of order >= 3 seen fewer times (1 = keep all).
    """
    if order < 2:
        raise ConfigError("order must be at least 2")
    raw: list[collections.Counter] = [collections.Counter() for _ in range(order + 1)]
    chars: set[str] = set()
    for line in tqdm(lines, desc="counting", unit=" lines", disable=not progress, mininterval=2, delay=2):
        s = _BOS + line + _EOS
        chars.update(s[1:])
        for k in range(1, order + 1):
            c = raw[k]
            for i in range(len(s) - k + 1):
                c[s[i:i + k]] += 1
    chars.update(vocab)
    chars.add(UNK_KEY)
    # adjusted counts: continuation counts below the top order, raw counts for <s>-anchored n-grams
    adj: list[dict[str, int]] = [{} for _ in range(order + 1)]
    adj[order] = dict(raw[order])
    for k in range(order - 1, 0, -1):
        cont = collections.Counter(g[1:] for g in raw[k + 1])
        adj[k] = {g: (n if g[0] == _BOS else cont[g]) for g, n in raw[k].items()}
    adj[1].pop(_BOS, None)
    for ch in chars:
        adj[1].setdefault(ch, 0)
    lm = ArpaLM(order)
    # unigrams, interpolated with the uniform distribution over the vocabulary
    d = _discounts({g: a for g, a in adj[1].items() if a > 0})
    total = sum(adj[1].values())
    gamma = sum(d[min(a, 3) - 1] for a in adj[1].values() if a > 0) / total
    for g, a in adj[1].items():
        lm.prob[g] = (a - (d[min(a, 3) - 1] if a else 0.0)) / total + gamma / len(adj[1])
    lm.prob[_BOS] = 0.0
    for k in range(2, order + 1):
        d = _discounts(adj[k])
        denom: collections.Counter = collections.Counter()
        disc: collections.Counter = collections.Counter()
        for g, a in adj[k].items():
            denom[g[:-1]] += a
            disc[g[:-1]] += d[min(a, 3) - 1]
        kept: dict[str, list[str]] = collections.defaultdict(list)
        for g, a in adj[k].items():
            if k >= 3 and raw[k][g] < prune:
                continue  # pruned: its probability comes through the backoff weight
            h, w = g[:-1], g[-1]
            lm.prob[g] = (a - d[min(a, 3) - 1]) / denom[h] + disc[h] / denom[h] * lm.p(w, h[1:])
            kept[h].append(w)
        # backoff weights of the order-(k-1) contexts, normalised over what was kept
        for h, ws in kept.items():
            num = 1.0 - sum(lm.prob[h + w] for w in ws)
            den = 1.0 - sum(lm.p(w, h[1:]) for w in ws)
            lm.backoff[h] = max(num, 1e-12) / max(den, 1e-12)
    return lm


class ArpaLM:
    """An n-gram model held as probabilities and backoff weights, keyed by character strings."""

    def __init__(self, order: int):
        self.order = order
        self.prob: dict[str, float] = {}
        self.backoff: dict[str, float] = {}

    def p(self, w: str, h: str) -> float:
        """P(w | h) with backoff; h is cut to the model's order - 1 characters."""
        h = h[len(h) - self.order + 1:] if len(h) >= self.order else h
        weight = 1.0
        while True:
            g = h + w
            if g in self.prob:
                return weight * self.prob[g]
            if not h:
                return weight * self.prob.get(UNK_KEY, 1e-12)
            weight *= self.backoff.get(h, 1.0)
            h = h[1:]

    def vocab(self) -> list[str]:
        return sorted(g for g in self.prob if len(g) == 1)

    # ------------------------------------------------------------------ I/O
    def write_arpa(self, path: str | os.PathLike) -> None:
        by_order: list[list[str]] = [[] for _ in range(self.order + 1)]
        for g in self.prob:
            by_order[len(g)].append(g)
        path = Path(path)
        with atomic_path(path) as tmp, _open(tmp, "w", gz=path.suffix == ".gz") as f:
            f.write("\\data\\\n")
            for k in range(1, self.order + 1):
                f.write(f"ngram {k}={len(by_order[k])}\n")
            for k in range(1, self.order + 1):
                f.write(f"\n\\{k}-grams:\n")
                for g in sorted(by_order[k]):
                    p = self.prob.get(g, 0.0)
                    lp = math.log10(p) if p > 0 else -99.0
                    words = " ".join(_word(c) for c in g)
                    if k < self.order and g in self.backoff:
                        f.write(f"{lp:.6f}\t{words}\t{math.log10(max(self.backoff[g], 1e-99)):.6f}\n")
                    else:
                        f.write(f"{lp:.6f}\t{words}\n")
            f.write("\n\\end\\\n")

    @classmethod
    def read_arpa(cls, path: str | os.PathLike) -> ArpaLM:
        """Read an ARPA file; anything else is refused in one line that does not echo its contents."""
        try:
            return cls._read_arpa(path)
        except (ValueError, IndexError, UnicodeDecodeError, EOFError, OSError) as e:
            if isinstance(e, (FileNotFoundError, HwrError)):
                raise
            raise InputError(f"{path}: not an ARPA language model file ({type(e).__name__})") from None

    @classmethod
    def _read_arpa(cls, path: str | os.PathLike) -> ArpaLM:
        lm = None
        order_now = 0
        with _open(path, "r", gz=str(path).endswith(".gz")) as f:
            for line in f:
                line = line.rstrip("\n")
                if line.startswith("ngram "):
                    order_now = 0
                    k = int(line.split()[1].split("=")[0])
                    lm = lm or cls(k)
                    lm.order = max(lm.order, k)
                elif re.match(r"\\\d+-grams:", line):
                    order_now = int(line[1:].split("-")[0])
                elif order_now and line.strip() and not line.startswith("\\"):
                    parts = line.split("\t") if "\t" in line else line.split()
                    if "\t" in line:
                        lp, words = float(parts[0]), parts[1].split()
                        bo = float(parts[2]) if len(parts) > 2 else None
                    else:
                        lp, words = float(parts[0]), parts[1:1 + order_now]
                        bo = float(parts[1 + order_now]) if len(parts) > 1 + order_now else None
                    g = "".join(_char(w) for w in words)
                    lm.prob[g] = 0.0 if lp <= -99 else 10 ** lp
                    if bo is not None:
                        lm.backoff[g] = 10 ** bo
        if lm is None:
            raise InputError(f"{path}: not an ARPA language model file")
        return lm

    def line_log10(self, text: str) -> tuple[float, int]:
        """(log10 probability of a line incl. </s>, number of predicted tokens)."""
        s = _BOS + text + _EOS
        total = 0.0
        for i in range(1, len(s)):
            p = self.p(s[i], s[max(0, i - self.order + 1):i])
            total += math.log10(max(p, 1e-99))
        return total, len(s) - 1


UNK_KEY = "\x01"


def _open(path, mode: str, gz: bool):
    """Text file, gzip-compressed when `gz` (KenLM reads .arpa.gz directly)."""
    return gzip.open(path, mode + "t", encoding="utf-8") if gz else open(path, mode, encoding="utf-8")


def _word(c: str) -> str:
    return {_BOS: BOS, _EOS: EOS, UNK_KEY: UNK, " ": SPACE_WORD}.get(c, c)


def _char(w: str) -> str:
    return {BOS: _BOS, EOS: _EOS, UNK: UNK_KEY, SPACE_WORD: " "}.get(w, w)


def store_labels(path: str | os.PathLike, splits: Iterable[str] = ()) -> list[str]:
    """The labels of a store's samples in `splits` (all samples when none), each line of a page
    label on its own: text in the handwriting's own domain for `build_from_files(labels=...)`."""
    from .store import Store
    with Store(path) as s:
        texts = s.meta["text"]
        rows = sorted({i for split in splits for i in s.indices(split).tolist()}) if splits else range(len(texts))
        return [line for i in rows for line in texts[i].split("\n") if line.strip()]


def perplexity(lm: ArpaLM, lines: Iterable[str]) -> float:
    """Per-character perplexity (space and end-of-line count as characters)."""
    tot, n = 0.0, 0
    for line in lines:
        lp, k = lm.line_log10(line)
        tot += lp
        n += k
    return 10 ** (-tot / max(n, 1))


def build_from_files(texts: list[str], order: int, out: str | os.PathLike, alphabet: Iterable[str] = (),
                     prune: int = LMConfig.prune, exclude: Iterable[str] = (), max_lines: int | None = None,
                     progress: bool = True, labels: Iterable[str] = ()) -> dict:
    """Read corpora, keep characters of `alphabet` (when given), write ARPA; returns a summary.

    `labels`: more text, line by line (a store's transcriptions: `store_labels`), read after the
    corpora. `exclude`: lines never to learn from (the labels of the sets a model is measured on)."""
    alpha = set(alphabet)
    excluded = {" ".join(t.split()) for t in exclude}
    dropped: collections.Counter = collections.Counter()
    kept_lines: list[str] = []
    for t in texts:
        if not Path(t).exists():
            raise FileNotFoundError(f"{t}: no such text file or corpus")
    sources = [read_corpus(t) for t in texts] + [iter(" ".join(x.split()) for x in labels if x.strip())]
    for source in sources:
        for line in to_lines(source):
            if alpha:
                bad = [c for c in line if c not in alpha and c != " "]
                if bad:
                    dropped.update(bad)
                    line = " ".join("".join(c for c in line if c in alpha or c == " ").split())
            if line and line not in excluded:
                kept_lines.append(line)
    if max_lines:
        kept_lines = kept_lines[:max_lines]
    lm = build_lm(kept_lines, order=order, vocab=alpha, prune=prune, progress=progress)
    lm.write_arpa(out)
    return {"lines": len(kept_lines), "characters": sum(len(x) for x in kept_lines), "order": order,
            "prune": prune, "ngrams": len(lm.prob), "removed_characters": dict(dropped.most_common()),
            "out": os.fspath(out), "bytes": os.path.getsize(out)}
