"""CTC decoders: greedy (best path) and beam search with a character language model.

Both take log-probabilities (T, B, C) with blank = 0 and frame counts (B,), and return per
sample an n-best list of `Hypothesis` (text, score, per-character emission frames), best
first. Beam search is flashlight-text's (C++), called directly (see `BeamDecoder` for why),
lexicon-free with a character n-gram KenLM/ARPA model, or constrained to a word list.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import sys
import threading
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from .alphabet import BLANK, Alphabet
from .errors import ConfigError, HwrError, check_keys

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
    beam_size_token: int | None = None  # tokens tried per frame, the likeliest first (None: all)
    blank_skip: float | None = None  # runs of frames with P(blank) >= this are searched as one frame

    def __post_init__(self) -> None:
        if self.kind not in ("greedy", "beam"):
            raise ConfigError("decoder kind must be 'greedy' or 'beam'")
        if self.beam_size < 1 or self.nbest < 1:
            raise ConfigError("beam_size and nbest must be >= 1")
        if self.beam_size_token is not None and self.beam_size_token < 1:
            raise ConfigError("beam_size_token must be >= 1 (or None for all tokens)")
        if self.blank_skip is not None and not 0.5 < self.blank_skip < 1:
            raise ConfigError("blank_skip must be between 0.5 and 1 (or None)")

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, path: str | Path) -> DecoderConfig:
        try:
            d = json.loads(Path(path).read_text())
        except json.JSONDecodeError as e:
            raise ConfigError(f"{path}: not a JSON decoder config ({e.msg}, line {e.lineno})") from None
        if not isinstance(d, dict):
            raise ConfigError(f"{path}: a decoder config is a JSON object")
        check_keys(cls, d, str(path))
        base = Path(path).parent
        for k in ("lm", "lexicon"):  # relative paths are relative to the config file
            if d.get(k) and not Path(d[k]).is_absolute():
                d[k] = str(base / d[k])
        try:
            return cls(**d)
        except TypeError as e:  # "beam_size": "32"
            raise ConfigError(f"{path}: a setting has the wrong type ({e})") from None


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


_STDERR_LOCK = threading.Lock()


@contextlib.contextmanager
def quiet_stderr():
    """Send the process's file descriptor 2 to /dev/null for a moment (C++ code writes there).

    Process-wide, hence the lock: two LM loads at once must not leave stderr pointing nowhere.
    """
    with _STDERR_LOCK:
        sys.stderr.flush()
        saved = os.dup(2)
        try:
            with open(os.devnull, "w") as null:
                os.dup2(null.fileno(), 2)
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)


class BackendError(HwrError, RuntimeError):
    """A decoding backend (flashlight-text, the LM file) cannot be loaded: one line says why and what to do."""


def load_flashlight():
    """flashlight-text's decoder module, or a BackendError that names the cause and the fix."""
    try:
        import flashlight.lib.text.decoder as fl
        from flashlight.lib.text.decoder.kenlm import KenLM
        from flashlight.lib.text.dictionary import Dictionary
    except Exception as e:  # ImportError, or a broken shared library (OSError)
        why = " ".join(str(e).split())
        raise BackendError(f"beam search is unavailable: flashlight-text does not load ({type(e).__name__}: {why}); "
                           "reinstall with `bash scripts/setup.sh` or `pip install flashlight-text`, "
                           "or use --decoder greedy") from None
    return fl, KenLM, Dictionary


class BeamDecoder:
    """CTC beam search with flashlight-text, built once and reused. The C++ decoder keeps its search
    state in the object, so concurrent calls each take one from a small pool (created on demand,
    sharing the read-only LM): one person's long line does not make another wait.

    Why flashlight-text directly and not torchaudio's `ctc_decoder` wrapper around it: torchaudio
    is in maintenance mode and refuses to import beside a torch built for another CUDA version
    (the wrapper failed with torch 2.15 while flashlight-text itself was fine); the wrapper maps
    LM words through an unordered dictionary, which we had to work around anyway (`_char_lm`);
    and it hides options we tune (per-frame token pruning). torchaudio stays for
    `forced_align` (hwr.align). The wrapper's result conventions are kept: frame numbers are
    positions in flashlight's path, which starts with one extra step.
    """

    def __init__(self, alphabet: Alphabet, config: DecoderConfig):
        fl, self._KenLM, Dictionary = load_flashlight()
        self.alphabet = alphabet
        self.config = config
        self.tokens = ["<blk>"] + [SPACE_TOKEN if c == " " else c for c in alphabet.chars]
        if " " not in alphabet.index:
            self.tokens.append(SPACE_TOKEN)  # flashlight needs a silence token to exist
        self.blank, self.space = 0, self.tokens.index(SPACE_TOKEN)
        self._pool_lock = threading.Lock()
        beam_size_token = config.beam_size_token or len(self.tokens)
        lm_weight = config.lm_weight if config.lm else 0.0
        if config.lexicon:
            words = self._lexicon(config.lexicon)
            word_dict = Dictionary()
            for w in words + ["<unk>"]:
                word_dict.add_entry(w)
            self._lm = self._kenlm(config.lm, word_dict) if config.lm else fl.ZeroLM()
            trie = fl.Trie(len(self.tokens), self.space)
            start = self._lm.start(False)
            for w in words:
                idx = word_dict.get_index(w)
                _, score = self._lm.score(start, idx)
                trie.insert([self.tokens.index(c) for c in w] + [self.space], idx, score)
            trie.smear(fl.SmearingMode.MAX)
            opts = fl.LexiconDecoderOptions(
                beam_size=config.beam_size, beam_size_token=beam_size_token, beam_threshold=config.beam_threshold,
                lm_weight=lm_weight, word_score=config.word_bonus, unk_score=-math.inf, sil_score=0.0,
                log_add=False, criterion_type=fl.CriterionType.CTC)
            self._trie = trie
            unk = word_dict.get_index("<unk>")
            self._new = lambda: fl.LexiconDecoder(opts, trie, self._lm, self.space, self.blank, unk, [], False)
        else:
            self._lm = self._char_lm(Dictionary, config.lm) if config.lm else fl.ZeroLM()
            opts = fl.LexiconFreeDecoderOptions(
                beam_size=config.beam_size, beam_size_token=beam_size_token, beam_threshold=config.beam_threshold,
                lm_weight=lm_weight, sil_score=config.word_bonus, log_add=False,
                criterion_type=fl.CriterionType.CTC)
            self._new = lambda: fl.LexiconFreeDecoder(opts, self._lm, self.space, self.blank, [])
        # self._lm (and the trie) stay referenced: the C++ decoders do not own them (pybind11 would free them)
        self._idle = [self._new()]  # searches keep state in the decoder: one per concurrent call, LM shared

    def _kenlm(self, path: str, dictionary):
        if not Path(path).is_file():
            raise FileNotFoundError(f"{path}: no such language model file")
        try:
            with quiet_stderr():  # KenLM draws a progress bar on fd 2 while it reads an ARPA file
                return self._KenLM(path, dictionary)
        except Exception as e:  # KenLM's own parse errors, which quote the file: never echo its contents
            raise BackendError(f"the language model {path} does not load ({type(e).__name__}: not an ARPA or "
                               "KenLM file); rebuild it with `hwr lm build` or decode with --lm none") from None

    def _char_lm(self, Dictionary, path: str):
        """KenLM whose vocabulary indices are the token indices.

        Lexicon-free decoding looks the LM up by token index, so the dictionary is built in
        token order (a test checks that the LM steers towards the right characters).
        """
        d = Dictionary()
        for t in self.tokens + ["<unk>"]:
            d.add_entry(t)
        return self._kenlm(path, d)

    def _lexicon(self, words_path: str) -> list[str]:
        """The word list's distinct words that the alphabet can spell."""
        words = Path(words_path).read_text(encoding="utf-8").split()
        return [w for w in dict.fromkeys(words) if all(c in self.alphabet.index and c != " " for c in w)]

    def __call__(self, log_probs: torch.Tensor, lengths: torch.Tensor,
                 contexts: list[str] | None = None) -> list[list[Hypothesis]]:
        """n-best lists per sample; `contexts[b]`, the text written before sample b, primes the LM."""
        if log_probs.shape[-1] != len(self.alphabet) + 1:
            raise ValueError(f"log-probs have {log_probs.shape[-1]} classes but the alphabet has "
                             f"{len(self.alphabet)} characters + blank: model and decoder do not match")
        T, B = log_probs.shape[:2]
        if len(lengths) != B or int(lengths.min()) < 0 or int(lengths.max()) > T:
            raise ValueError(f"frame counts {lengths.tolist()} do not fit log-probs of {T} frames x {B} lines")
        emissions = log_probs.detach().to("cpu", torch.float32).transpose(0, 1).contiguous()  # B, T, C
        if emissions.shape[-1] < len(self.tokens):  # the extra silence token never fires
            pad = torch.full((*emissions.shape[:2], len(self.tokens) - emissions.shape[-1]), -1e4,
                             dtype=torch.float32)
            emissions = torch.cat([emissions, pad], dim=-1).contiguous()
        out = []
        for b in range(B):
            em, frame_of = self._compact(emissions[b, :int(lengths[b])])  # float32 (4 bytes), contiguous
            prefix = self._prefix(contexts[b]) if contexts and contexts[b] else []
            if prefix:
                em, frame_of = self._primed(em, frame_of, prefix)
            with self._pool_lock:
                decoder = self._idle.pop() if self._idle else self._new()
            try:
                results = decoder.decode(em.data_ptr(), em.shape[0], em.shape[1])[:self.config.nbest]
            finally:
                with self._pool_lock:
                    self._idle.append(decoder)
            hyps = [h for h in (self._hypothesis(r, frame_of, prefix) for r in results) if h is not None]
            if prefix and not hyps:  # no path kept to the context (it should): read without it
                hyps = self(log_probs[:, b:b + 1], lengths[b:b + 1])[0]
            out.append(_dedupe(hyps))
        return out

    # ------------------------------------------------------------- LM pre-context
    CONTEXT_CHARS = 24  # more than a character n-gram LM can look back (a 6-gram sees 5)

    def _prefix(self, context: str) -> list[int]:
        """Token ids of the end of `context` plus a separating space; characters the model cannot
        write read as spaces (a newline is one: the line before ends a word)."""
        text = " ".join("".join(c if c in self.alphabet.index and c != " " else " " for c in context).split())
        if not text or not self.config.lm or self.config.lexicon:
            return []  # a lexicon search can only spell words of its list, and its LM is over words
        text = text[-self.CONTEXT_CHARS:].lstrip(" ")  # the search opens with silence anyway
        return [self.space if c == " " else self.tokens.index(c) for c in text] + [self.space]

    def _primed(self, em: torch.Tensor, frame_of: np.ndarray, prefix: list[int]):
        """Emissions with frames that spell `prefix` with certainty put in front.

        flashlight's decoders always start from the LM's start state and take no initial
        state, so the context is read as if it were ink: its frames give one token
        log-probability 0 and the rest a score beyond the beam threshold, so the search
        follows exactly one path through them, moving the LM into the state the context
        leaves it in. A blank frame separates repeated tokens and ends the prefix.
        """
        rows = []
        for i, tok in enumerate(prefix):
            if i and tok == prefix[i - 1]:
                rows.append(self.blank)
            rows.append(tok)
        rows.append(self.blank)
        head = torch.full((len(rows), em.shape[1]), -1e4, dtype=torch.float32)
        head[torch.arange(len(rows)), torch.tensor(rows)] = 0.0
        return torch.cat([head, em]).contiguous(), np.concatenate([np.full(len(rows), -1), frame_of])

    def _prefix_score(self, prefix: list[int]) -> tuple[float, float]:
        """(weighted total, LM) score the decoder gives the prefix itself: subtracted, so that
        scores with a context compare with scores without one."""
        state, lm = self._lm.start(False), 0.0
        for tok in prefix:
            state, s = self._lm.score(state, tok)
            lm += s
        spaces = sum(1 for t in prefix if t == self.space)
        return self.config.lm_weight * lm + self.config.word_bonus * spaces, lm

    def _compact(self, em: torch.Tensor) -> tuple[torch.Tensor, np.ndarray]:
        """(T, C) emissions with each run of blank-dominated frames cut to its first frame, and the
        original frame of each kept one.

        Most frames of handwriting are blank with near certainty; they cost the search a full
        expansion each but cannot change its outcome beyond a rounding of the score: a run of
        blanks reads the same as one blank (which still separates repeated characters).
        """
        if not self.config.blank_skip or em.shape[0] < 2:
            return em.contiguous(), np.arange(em.shape[0])
        sure = (em[:, self.blank] >= math.log(self.config.blank_skip)).numpy()
        keep = ~(sure & np.concatenate([[False], sure[:-1]]))
        frame_of = np.nonzero(keep)[0]
        return em[torch.from_numpy(frame_of)].contiguous(), frame_of

    def _hypothesis(self, r, frame_of: np.ndarray, prefix: list[int] = ()) -> Hypothesis | None:
        path = list(r.tokens)
        chars, frames = [], []
        for i, t in enumerate(path):
            if t == self.blank or (i > 0 and t == path[i - 1]):  # CTC: repeats merge, blanks vanish
                continue
            chars.append(" " if t == self.space else self.tokens[t])
            frames.append(int(frame_of[min(max(i - 1, 0), len(frame_of) - 1)]))  # the path starts with an extra step
        score, lm = float(r.score), float(r.lmScore)
        if prefix:
            while chars and chars[0] == " ":  # flashlight may open with silence
                chars.pop(0), frames.pop(0)
            spelled = [" " if t == self.space else self.tokens[t] for t in prefix]
            if chars[:len(spelled)] != spelled:
                return None  # a path that left the forced context frames: not a reading of this ink
            del chars[:len(spelled)], frames[:len(spelled)]
            weighted, lm_prefix = self._prefix_score(list(prefix))
            score, lm = score - weighted, lm - lm_prefix
        # flashlight emits silence at the edges; a line has no leading/trailing space
        while chars and chars[0] == " ":
            chars.pop(0), frames.pop(0)
        while chars and chars[-1] == " ":
            chars.pop(), frames.pop()
        return Hypothesis("".join(chars), score, frames, acoustic=float(r.emittingModelScore), lm=lm)


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

    def __call__(self, log_probs: torch.Tensor, lengths: torch.Tensor,
                 contexts: list[str] | None = None) -> list[list[Hypothesis]]:
        """n-best lists; `contexts` (text before each sample) prime the LM of a beam search
        (greedy decoding has no LM, so it reads the same with or without them)."""
        if self._beam is None:
            return greedy(log_probs, lengths, self.alphabet)
        return self._beam(log_probs, lengths, contexts)
