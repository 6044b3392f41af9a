"""CTC decoders: greedy (best path) and beam search with a character language model.

Both take log-probabilities (T, B, C) with blank = 0 and frame counts (B,), and return per
sample an n-best list of `Hypothesis` (text, score, per-character emission frames), best
first. Beam search is torchaudio's `ctc_decoder` (flashlight-text, C++), lexicon-free with
a character n-gram KenLM/ARPA model, or constrained to a word list.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from .alphabet import BLANK, Alphabet

from .lm import SPACE_WORD as SPACE_TOKEN  # the space character's name in the decoder and the LM


@dataclass
class Hypothesis:
    text: str
    score: float                 # total log score (acoustic + weighted LM + bonuses)
    frames: list[int]            # output frame at which each character of `text` was emitted
    acoustic: float | None = None
    lm: float | None = None

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class DecoderConfig:
    """Everything that decides a decoding result; stored beside every reported number."""

    kind: str = "greedy"         # greedy | beam
    beam_size: int = 32
    lm: str | None = None        # path to an ARPA or KenLM binary character LM; None = no LM
    lm_weight: float = 0.8
    word_bonus: float = 0.0      # added per word: per space without a lexicon, per lexicon word with one
    lexicon: str | None = None   # word list: restrict output to these words
    nbest: int = 5
    beam_threshold: float = 25.0

    def __post_init__(self) -> None:
        if self.kind not in ("greedy", "beam"):
            raise ValueError("decoder kind must be 'greedy' or 'beam'")
        if self.beam_size < 1 or self.nbest < 1:
            raise ValueError("beam_size and nbest must be >= 1")

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, path: str | Path) -> DecoderConfig:
        d = json.loads(Path(path).read_text())
        base = Path(path).parent
        for k in ("lm", "lexicon"):  # relative paths are relative to the config file
            if d.get(k) and not Path(d[k]).is_absolute():
                d[k] = str(base / d[k])
        return cls(**d)


def greedy(log_probs: torch.Tensor, lengths: torch.Tensor, alphabet: Alphabet) -> list[list[Hypothesis]]:
    """Best path: argmax per frame, merge repeats, drop blanks. One hypothesis per sample."""
    lp = log_probs.detach().float().cpu()
    best, idx = lp.max(dim=-1)  # T, B
    out = []
    for b in range(lp.shape[1]):
        n = int(lengths[b])
        path = idx[:n, b].numpy()
        keep = (path != BLANK) & np.concatenate([[True], path[1:] != path[:-1]])
        frames = np.nonzero(keep)[0]
        text = alphabet.decode(path[frames].tolist())
        lead = len(text) - len(text.lstrip(" "))  # a line has no edge spaces (same as beam search)
        text = text.strip(" ")
        frames = frames[lead:lead + len(text)]
        score = float(best[:n, b].sum())
        out.append([Hypothesis(text, score, frames.tolist(), acoustic=score, lm=0.0)])
    return out


class BeamDecoder:
    """flashlight-text beam search through torchaudio, built once and reused (thread-safe per call)."""

    def __init__(self, alphabet: Alphabet, config: DecoderConfig):
        try:
            from torchaudio.models.decoder import ctc_decoder
        except ImportError as e:  # flashlight-text missing
            raise RuntimeError(f"beam search needs torchaudio with flashlight-text ({e}); "
                               "pip install flashlight-text") from None
        self.alphabet = alphabet
        self.config = config
        self.tokens = ["<blk>"] + [SPACE_TOKEN if c == " " else c for c in alphabet.chars]
        if " " not in alphabet.index:
            self.tokens.append(SPACE_TOKEN)  # flashlight needs a silence token to exist
        lexicon = None
        if config.lexicon:
            lexicon = self._lexicon_file(config.lexicon)
        lm = config.lm
        if lm and not lexicon:
            lm = self._char_lm(lm)
        try:
            self._decoder = ctc_decoder(
                lexicon=lexicon, tokens=self.tokens, lm=lm, nbest=config.nbest,
                beam_size=config.beam_size, beam_size_token=None, beam_threshold=config.beam_threshold,
                lm_weight=config.lm_weight if config.lm else 0.0,
                word_score=config.word_bonus if lexicon else 0.0,
                unk_score=-math.inf, sil_score=0.0 if lexicon else config.word_bonus, log_add=False,
                blank_token="<blk>", sil_token=SPACE_TOKEN, unk_word="<unk>")
        finally:
            if lexicon:
                Path(lexicon).unlink(missing_ok=True)  # read at construction; a temporary file

    def _char_lm(self, path: str):
        """KenLM whose vocabulary indices are the token indices.

        Lexicon-free decoding looks the LM up by token index; torchaudio builds that mapping
        from an unordered word dictionary (so 'b' could be scored as 'd'); building the
        dictionary in token order here keeps them aligned (a test checks LM steering).
        """
        from flashlight.lib.text.decoder import KenLM
        from flashlight.lib.text.dictionary import Dictionary

        if not Path(path).is_file():
            raise FileNotFoundError(f"{path}: no such language model file")
        d = Dictionary()
        for t in self.tokens + ["<unk>"]:
            d.add_entry(t)
        return KenLM(path, d)

    def _lexicon_file(self, words_path: str) -> str:
        """flashlight wants 'word<TAB>spelling |'; write it next to a cache of the word list."""
        import tempfile
        words = [w.strip() for w in Path(words_path).read_text(encoding="utf-8").split()]
        ok = [w for w in dict.fromkeys(words) if w and all(c in self.alphabet.index for c in w)]
        fd, path = tempfile.mkstemp(suffix=".lexicon.txt")
        with open(fd, "w", encoding="utf-8") as f:
            for w in ok:
                f.write(f"{w}\t{' '.join(w)} {SPACE_TOKEN}\n")
        return path

    def __call__(self, log_probs: torch.Tensor, lengths: torch.Tensor) -> list[list[Hypothesis]]:
        emissions = log_probs.detach().float().cpu().transpose(0, 1).contiguous()  # B, T, C
        if emissions.shape[-1] < len(self.tokens):  # the extra silence token never fires
            pad = torch.full((*emissions.shape[:2], len(self.tokens) - emissions.shape[-1]), -1e4)
            emissions = torch.cat([emissions, pad], dim=-1)
        results = self._decoder(emissions, lengths.cpu().to(torch.int32))
        out = []
        for hyps in results:
            nbest = []
            for h in hyps:
                toks = h.tokens.tolist()
                ts = h.timesteps.tolist()
                chars, frames = [], []
                for t, f in zip(toks, ts):
                    if t == 0:
                        continue
                    tok = self.tokens[t]
                    chars.append(" " if tok == SPACE_TOKEN else tok)
                    frames.append(max(int(f) - 1, 0))  # flashlight's path starts with one extra (silence) step
                # flashlight emits silence at the edges; a line has no leading/trailing space
                while chars and chars[0] == " ":
                    chars.pop(0), frames.pop(0)
                while chars and chars[-1] == " ":
                    chars.pop(), frames.pop()
                nbest.append(Hypothesis("".join(chars), float(h.score), frames))
            out.append(_dedupe(nbest))
        return out


def _dedupe(hyps: list[Hypothesis]) -> list[Hypothesis]:
    """Beam paths that differ only in edge spaces collapse to one text: keep the best."""
    seen, out = set(), []
    for h in hyps:
        if h.text not in seen:
            seen.add(h.text)
            out.append(h)
    return out


@dataclass
class Decoder:
    """A decoder chosen by config: `Decoder(alphabet, config)(log_probs, lengths)`."""

    alphabet: Alphabet
    config: DecoderConfig = field(default_factory=DecoderConfig)

    def __post_init__(self) -> None:
        self._beam = BeamDecoder(self.alphabet, self.config) if self.config.kind == "beam" else None

    def __call__(self, log_probs: torch.Tensor, lengths: torch.Tensor) -> list[list[Hypothesis]]:
        if self._beam is None:
            return greedy(log_probs, lengths, self.alphabet)
        return self._beam(log_probs, lengths)
