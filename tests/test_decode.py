import math
import random

import jiwer
import numpy as np
import pytest
import torch
from conftest import synthetic_line, tiny_texts

from hwr.alphabet import Alphabet
from hwr.decode import Decoder, DecoderConfig, greedy
from hwr.lm import ArpaLM, build_lm, perplexity
from hwr.metrics import cer, wer
from hwr.recognizer import Recognizer

ALPHA = Alphabet("ab c")  # labels: a=1 b=2 ' '=3 c=4 (sorted: ' ', a, b, c) -> check below


def emissions(path: list[int], num_classes: int, peak: float = 0.9) -> torch.Tensor:
    """(T, 1, C) log-probs whose best path is `path`."""
    lp = torch.full((len(path), num_classes), (1 - peak) / (num_classes - 1))
    for t, k in enumerate(path):
        lp[t, k] = peak
    return lp.log()[:, None, :]


def test_greedy_collapses_repeats_and_drops_blanks():
    a = Alphabet(["a", "b"])
    lp = emissions([0, 1, 1, 0, 1, 2, 2, 0, 0], 3)
    h = greedy(lp, torch.tensor([9]), a)[0][0]
    assert h.text == "aab"
    assert h.frames == [1, 4, 5]
    lengths_cut = greedy(lp, torch.tensor([3]), a)[0][0]
    assert lengths_cut.text == "a"


def test_beam_width_one_without_lm_equals_greedy():
    torch.manual_seed(0)
    a = Alphabet(list("abcde "))
    lp = torch.randn(60, 4, a.num_classes).log_softmax(-1)
    lengths = torch.tensor([60, 41, 17, 1])
    beam = Decoder(a, DecoderConfig(kind="beam", beam_size=1, nbest=1))(lp, lengths)
    gr = greedy(lp, lengths, a)
    assert [b[0].text for b in beam] == [g[0].text for g in gr]


def test_beam_nbest_order_and_scores():
    a = Alphabet(["a", "b"])
    # frame 1 is ambiguous between a (0.55) and b (0.45): two hypotheses, a first
    lp = torch.tensor([[0.98, 0.01, 0.01], [0.02, 0.55, 0.43], [0.98, 0.01, 0.01]]).log()[:, None, :]
    hyps = Decoder(a, DecoderConfig(kind="beam", beam_size=8, nbest=3))(lp, torch.tensor([3]))[0]
    assert [h.text for h in hyps[:3]] == ["a", "b", ""]
    assert hyps[0].score > hyps[1].score > hyps[2].score
    assert hyps[0].score == pytest.approx(math.log(0.98 * 0.55 * 0.98), abs=1e-3)
    assert hyps[0].frames == [1]


def _lm_file(tmp_path, lines, order=3) -> str:
    lm = build_lm(lines, order=order, vocab="abcde ", progress=False)
    path = tmp_path / "lm.arpa"
    lm.write_arpa(path)
    return str(path)


def test_lm_distributions_sum_to_one_with_and_without_pruning(tmp_path):
    lines = tiny_texts(300, seed=3) + ["abc abc", "cab"] * 20
    for prune in (1, 3):
        lm = build_lm(lines, order=4, vocab="abcdez ", prune=prune, progress=False)
        lm.write_arpa(tmp_path / "x.arpa")
        back = ArpaLM.read_arpa(tmp_path / "x.arpa")
        vocab = [g for g in back.prob if len(g) == 1 and g != "\x02"]
        for h in ["", "\x02", "\x02a", "ab", "ca|", "zz", "e|e"]:
            assert sum(back.p(w, h) for w in vocab) == pytest.approx(1.0, abs=1e-5), (prune, h)
    assert perplexity(back, ["abc abc"]) < perplexity(back, ["zzz zzz"])


def test_lm_steers_beam_search_between_two_readings(tmp_path):
    a = Alphabet(list("abcde "))
    lm = _lm_file(tmp_path, ["bad"] * 50 + ["dad"] * 2)
    ix = a.index
    # the first character is ambiguous: d (0.5) vs b (0.5 - eps); the LM knows 'bad'
    probs = torch.full((5, a.num_classes), 1e-4)
    probs[0, ix["d"]], probs[0, ix["b"]] = 0.5, 0.49
    probs[1, 0] = 0.99
    probs[2, ix["a"]] = 0.99
    probs[3, 0] = 0.99
    probs[4, ix["d"]] = 0.99
    lp = (probs / probs.sum(-1, keepdim=True)).log()[:, None, :]
    no_lm = Decoder(a, DecoderConfig(kind="beam", beam_size=8))(lp, torch.tensor([5]))[0][0].text
    with_lm = Decoder(a, DecoderConfig(kind="beam", beam_size=8, lm=lm, lm_weight=1.0))(lp, torch.tensor([5]))
    assert no_lm == "dad" and with_lm[0][0].text == "bad"
    zero = Decoder(a, DecoderConfig(kind="beam", beam_size=8, lm=lm, lm_weight=0.0))(lp, torch.tensor([5]))
    assert zero[0][0].text == no_lm  # LM with weight 0 == no LM


def test_lexicon_constrains_output(tmp_path):
    a = Alphabet(list("abcde "))
    words = tmp_path / "words.txt"
    words.write_text("bad\ncab\n")
    lm = _lm_file(tmp_path, ["bad cab"] * 5)
    torch.manual_seed(1)
    lp = torch.randn(30, 1, a.num_classes).log_softmax(-1)
    hyps = Decoder(a, DecoderConfig(kind="beam", beam_size=16, lm=lm, lexicon=str(words)))(lp, torch.tensor([30]))
    for h in hyps[0]:
        assert set(h.text.split()) <= {"bad", "cab"}


def test_cer_wer_agree_with_jiwer():
    rng = random.Random(0)
    refs, hyps = [], []
    for _ in range(200):
        r = "".join(rng.choice("ab cd") for _ in range(rng.randint(1, 30))).strip() or "a"
        h = "".join(c for c in r if rng.random() > 0.2) + "".join(rng.choice("abx ") for _ in range(rng.randint(0, 3)))
        refs.append(" ".join(r.split()) or "a")
        hyps.append(" ".join(h.split()) or "b")
    assert cer(refs, hyps) == pytest.approx(jiwer.cer(refs, hyps), abs=1e-12)
    assert wer(refs, hyps) == pytest.approx(jiwer.wer(refs, hyps), abs=1e-12)


# ---------------------------------------------------------------- with a trained model
@pytest.mark.slow
def test_recognizer_api_and_char_spans(tiny_model):
    rec = Recognizer.load(tiny_model, device="cpu")
    ink, spans = synthetic_line("bad cab", seed=1000, jitter=1.0)
    r = rec.recognize(ink, nbest=3)
    assert r.text == "bad cab"
    assert len(r.candidates) >= 1 and r.candidates[0].text == r.text
    assert [s.char for s in r.char_spans] == list("bad cab")
    # most characters' strokes are exactly the strokes that drew them
    hits = sum(set(s.strokes) == set(range(*spans[i])) for i, s in enumerate(r.char_spans) if s.char != " ")
    assert hits >= 5
    batch = rec.recognize([ink, synthetic_line("ace", seed=1001, jitter=1.0)[0]])
    assert [b.text for b in batch] == ["bad cab", "ace"]


@pytest.mark.slow
def test_forced_alignment_finds_known_character_strokes(tiny_model):
    rec = Recognizer.load(tiny_model, device="cpu")
    total = correct = 0
    for seed, text in enumerate(["abc de", "ed cba", "bead"]):
        ink, spans = synthetic_line(text, seed=2000 + seed, jitter=1.0)
        got = rec.align(ink, text)
        assert [s.char for s in got] == list(text)
        for i, s in enumerate(got):
            if text[i] == " ":
                continue
            total += 1
            correct += set(s.strokes) == set(range(*spans[i]))
    assert correct / total >= 0.7  # measured 0.75 with the tiny model; a broken mapping scores ~0
    with pytest.raises(ValueError):
        rec.align(ink, "a" * 500)  # cannot fit the frames


@pytest.mark.slow
def test_beam_with_lm_on_trained_model(tiny_model, tmp_path):
    rec = Recognizer.load(tiny_model, device="cpu")
    lm = _lm_file(tmp_path, tiny_texts(400, seed=5), order=4)
    ink = synthetic_line("dab ace", seed=3000, jitter=1.0)[0]
    r = rec.recognize(ink, decoder=DecoderConfig(kind="beam", beam_size=16, lm=lm, lm_weight=0.3, nbest=4))
    assert r.text == "dab ace"
    assert len({c.text for c in r.candidates}) == len(r.candidates) >= 2
    assert all(np.isfinite(c.score) for c in r.candidates)


def test_brown_text_is_written_as_the_labels_write_it(tmp_path):
    """The LM learns Brown as people write (and IAM-OnDB labels) it: directional quotes attach to
    the words inside them. Spaced quotes in the LM text made beam search put spaces inside quotes
    that the ink does not have (testset_v: 91 inserted spaces, 53 of them at a quote)."""
    import zipfile
    from hwr.lm import read_corpus
    tagged = ("\n\tThe/at jury/nn said/vbd ``/`` no/at evidence/nn ''/'' ,/, and/cc Atlanta's/np$ "
              "(/( 1961/cd )/) primary/nn did/dod n't/* matter/vb ./.\n"
              "\n\t''/'' More/ap '/' pro/nn '/' letters/nns than/cs '/' con/nn '/' ,/, he/pps said/vbd ``/``\n")
    with zipfile.ZipFile(tmp_path / "brown.zip", "w") as z:
        z.writestr("brown/ca01", tagged)
    assert list(read_corpus(tmp_path / "brown.zip")) == [
        'The jury said "no evidence", and Atlanta\'s (1961) primary didn\'t matter.',
        "More 'pro' letters than 'con', he said"]  # quotes whose partner is in another line: dropped
