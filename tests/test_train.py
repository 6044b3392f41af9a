import json
import os
import socket
import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pytest
import torch
from conftest import synthetic_line, tiny_texts, tiny_train_config

from hwr import checkpoint
from hwr.alphabet import Alphabet, UnknownCharacterError
from hwr.data import ctc_min_frames
from hwr.decode import DecoderConfig
from hwr.errors import ConfigError
from hwr.evaluate import evaluate
from hwr.features import AugmentConfig, FeatureConfig, ink_features, writing_height
from hwr.ink import Ink, Stroke
from hwr.model import ModelConfig, Network
from hwr.recognizer import Recognizer
from hwr.render import plot_run
from hwr.store import Sample, StoreWriter
from hwr.train import TrainState, read_metrics, resume, train


# ---------------------------------------------------------------- features
def _affine(ink: Ink, scale: float, dx: float, dy: float) -> Ink:
    out = []
    for s in ink.strokes:
        p = s.points.copy()
        p[:, 0] = p[:, 0] * scale + dx
        p[:, 1] = p[:, 1] * scale + dy
        out.append(Stroke(p, s.pointer_type))
    return Ink(out, ink.text)


def test_features_invariant_to_translation_and_scale(line):
    a = ink_features(line).values
    b = ink_features(_affine(line, 3.7, -500.0, 1234.0)).values
    assert a.shape == b.shape
    np.testing.assert_allclose(a, b, atol=1e-4)


def test_resampling_spacing_is_the_step_in_writing_heights(line):
    cfg = FeatureConfig(step=0.05)
    f = ink_features(line, cfg)
    inside = f.values[1:][f.values[1:, 2] == 0]  # steps within strokes, not pen-up jumps
    spacing = np.hypot(inside[:, 0], inside[:, 1])
    assert np.median(spacing) == pytest.approx(0.05, rel=0.02)
    assert spacing.max() <= 0.05 * 1.0001


def test_writing_height_ignores_a_few_tall_strokes():
    xs = np.linspace(0, 100, 200)
    body = np.stack([xs, 10 * np.sin(xs)], 1)  # a line of x-height ~20
    h1, _ = writing_height(body, np.array([200]))
    tall = np.concatenate([body, [[50, -60], [50, 40]]])  # one ascender-to-descender stroke
    h2, _ = writing_height(tall, np.array([200, 2]))
    assert h2 == pytest.approx(h1, rel=0.15)


def test_one_point_strokes_and_dots():
    dot = Ink([Stroke([[5, 5, 0]])])
    f = ink_features(dot)
    assert f.values.shape == (1, 4) and np.isfinite(f.values).all()
    mixed = Ink([Stroke([[0, 0], [10, 10]]), Stroke([[20, 0]]), Stroke([[20, 0], [20, 0]])])
    f = ink_features(mixed)
    assert np.isfinite(f.values).all() and f.values[:, 2].sum() == 3
    assert sorted(set(f.stroke_index.tolist())) == [0, 1, 2]


def test_augmentation_is_seeded_and_switchable(line):
    aug = AugmentConfig()
    a = ink_features(line, augment=aug, rng=np.random.default_rng(1)).values
    b = ink_features(line, augment=aug, rng=np.random.default_rng(1)).values
    c = ink_features(line, augment=aug, rng=np.random.default_rng(2)).values
    off = ink_features(line, augment=AugmentConfig(enabled=False), rng=np.random.default_rng(2)).values
    np.testing.assert_array_equal(a, b)
    assert a.shape != c.shape or not np.allclose(a, c)
    np.testing.assert_array_equal(off, ink_features(line).values)


def test_source_index_points_back_into_the_ink(line):
    f = ink_features(line)
    assert f.source_index.min() >= 0 and f.source_index.max() < line.num_points
    assert (np.diff(f.source_index) >= 0).all()


# ---------------------------------------------------------------- alphabet, model
def test_alphabet_blank_zero_and_unknowns():
    a = Alphabet.from_texts(["hello", "world"])
    assert a.encode("hello")[0] >= 1 and a.num_classes == len(a) + 1
    assert a.decode(a.encode("lower")) == "lower"
    with pytest.raises(UnknownCharacterError, match="'z'"):
        a.encode("zz")
    assert a.unknown("hez!") == {"z": 1, "!": 1}


@pytest.mark.parametrize("conv", [0, 32])
def test_model_shapes_and_output_lengths(conv):
    m = Network(ModelConfig(input_size=4, num_classes=7, conv_channels=conv, hidden=16, layers=2))
    x = torch.randn(3, 41, 4)
    lengths = torch.tensor([41, 30, 1])
    lp, out = m(x, lengths)
    assert lp.shape[1:] == (3, 7) and lp.shape[0] == int(out.max())
    assert out.tolist() == (lengths.tolist() if not conv else [21, 15, 1])
    assert torch.allclose(lp.exp().sum(-1), torch.ones(lp.shape[:2]), atol=1e-5)
    gru = Network(ModelConfig(num_classes=7, rnn="gru", hidden=8, layers=1))
    assert gru(x, lengths)[0].shape[-1] == 7


def test_a_wider_network_starts_as_the_one_it_grew_from_and_learns_with_its_new_units():
    """--init-from with a larger `hidden`: old units keep their weights and nothing flows from a new
    unit to an old one or to the head, so the wider network reads exactly as the old one (a float
    network; int8 within its rounding) while gradients reach every new weight."""
    from hwr.model import copy_matching
    torch.manual_seed(0)
    x, lengths = torch.randn(3, 41, 4), torch.tensor([41, 30, 7])
    x[torch.arange(41)[None, :] >= lengths[:, None]] = 0
    for int8 in (False, True):
        old = Network(ModelConfig(num_classes=7, hidden=16, layers=3, dropout=0.0, lstm_int8=int8)).eval()
        for p in old.parameters():  # away from the initialisation: trained-looking weights
            p.data += 0.3 * torch.randn_like(p)
        new = Network(ModelConfig(num_classes=7, hidden=24, layers=3, dropout=0.0, lstm_int8=int8))
        copy_matching(old, new)
        lp_old, n_old = old(x, lengths)
        lp_new, n_new = new.eval()(x, lengths)
        assert torch.equal(n_old, n_new)
        gap = max((lp_old[:n, b] - lp_new[:n, b]).abs().max().item() for b, n in enumerate(n_old.tolist()))
        assert gap < (0.05 if int8 else 1e-5), gap
    new.train()
    fresh = [u for u in range(48) if u % 24 >= 16]  # the new units of [forward, backward]
    opt = torch.optim.SGD(new.parameters(), lr=0.1)
    for step in range(2):
        opt.zero_grad()
        lp, n = new(x, lengths)
        lp[:, 0].sum().backward()
        # first the weights from the new units learn (their outputs are there; nothing reads them yet) ...
        assert new.head.weight.grad[:, fresh].abs().sum() > 0
        assert new.rnn.weight_hh_l1.grad[:, 16:].abs().sum() > 0 and new.rnn.weight_ih_l2.grad[:, fresh].abs().sum() > 0
        opt.step()
    for name, p in new.rnn.named_parameters():  # ... then, read, the new units' own rows, everywhere
        if name.startswith("weight"):
            assert p.grad.view(4, 24, -1)[:, 16:].abs().sum() > 0, name


def test_a_warm_start_refuses_what_it_cannot_copy():
    from hwr.errors import ConfigError
    from hwr.model import copy_matching
    old = Network(ModelConfig(num_classes=7, hidden=16, layers=2))
    for other in (dict(hidden=8), dict(hidden=24, layers=3), dict(hidden=24, rnn="gru"), dict(hidden=24, conv_channels=16)):
        with pytest.raises(ConfigError, match="warm start"):
            copy_matching(old, Network(ModelConfig(**{"num_classes": 7, "layers": 2, **other})))


def test_upsampled_head_emits_its_frames_in_time_order():
    """upsample=k: k output frames per LSTM frame. Warm-started from a network with the same convolution,
    frames k*t .. k*t+k-1 all read what the old network read at frame t, packed (a batch) or not."""
    from hwr.model import copy_matching
    torch.manual_seed(0)
    old = Network(ModelConfig(num_classes=7, hidden=16, layers=2, conv_stride=2, dropout=0.0)).eval()
    new = Network(ModelConfig(num_classes=9, hidden=16, layers=2, conv_stride=2, upsample=2, dropout=0.0)).eval()
    copy_matching(old, new)
    x, lengths = torch.randn(3, 41, 4), torch.tensor([41, 30, 7])
    x[torch.arange(41)[None, :] >= lengths[:, None]] = 0  # padded as `collate` pads
    lp_old, n_old = old(x, lengths)
    lp_new, n_new = new(x, lengths)
    assert n_new.tolist() == [2 * n for n in n_old.tolist()] == [42, 30, 8] and lp_new.shape[:2] == (42, 3)
    for b, n in enumerate(n_old.tolist()):
        p_old = lp_old[:n, b].exp()
        for j in range(2):  # the two new characters take probability away from the old ones, evenly
            p_new = lp_new[j:2 * n:2, b].exp()
            assert torch.allclose(p_new[:, :7] / p_new[:, :7].sum(-1, keepdim=True), p_old, atol=1e-5)
        alone, _ = new(x[b:b + 1, :int(lengths[b])], lengths[b:b + 1])
        assert torch.allclose(alone[:, 0], lp_new[:2 * n, b], atol=1e-5)
    # training mode: padded frames are zeroed by their LSTM frame count (not the doubled output count),
    # so garbage in the padding changes nothing in a line's own frames
    new.train()
    noisy = x.clone()
    noisy[torch.arange(41)[None, :] >= lengths[:, None] + 2] = 9.0  # beyond what a real frame's kernel sees
    assert torch.allclose(new(noisy, lengths)[0][:2 * int(n_old[1]), 1], new(x, lengths)[0][:2 * int(n_old[1]), 1],
                          atol=1e-5)
    with pytest.raises(ConfigError, match="divide conv_stride"):
        ModelConfig(conv_stride=4, upsample=3)


def test_lstm_initialisation():
    m = Network(ModelConfig(num_classes=5, hidden=8, layers=1, conv_channels=0))
    b = m.rnn.bias_ih_l0.detach()
    assert (b[8:16] == 1).all() and (b[:8] == 0).all()
    w = m.rnn.weight_hh_l0.detach()[:8]
    assert torch.allclose(w @ w.T, torch.eye(8), atol=1e-5)


def test_ctc_feasibility_counts_repeats():
    assert ctc_min_frames([1, 2, 3]) == 3
    assert ctc_min_frames([1, 1, 2, 2, 2]) == 8


# ---------------------------------------------------------------- training
# The keys of a training checkpoint as hwr wrote them before TrainState existed (format 1). Runs in
# progress resume from such files, and an older hwr must be able to resume a newer one.
FORMAT_1_KEYS = ("format", "format_version", "hwr_version", "feature_version", "git_revision", "model_config",
                 "feature_config", "alphabet", "model", "optimizer", "scaler", "epoch", "batch_in_epoch", "step",
                 "best_cer", "bad_epochs", "history", "rng_torch", "train_config", "data_summary")


def _rewrite_as_format_1(path, history: bool = True) -> None:
    """Re-save a training checkpoint with exactly the format-1 keys (without `history`, as the
    first checkpoints were), as if the code before TrainState had written it."""
    st = torch.load(path, weights_only=True)
    assert set(FORMAT_1_KEYS) <= set(st), "a new checkpoint must keep every key older hwr reads"
    torch.save({k: st[k] for k in FORMAT_1_KEYS if history or k != "history"}, path)


@pytest.mark.slow
def test_overfits_synthetic_lines_to_cer_zero(tiny_model, tiny_data):
    rec = Recognizer.load(tiny_model.parent / "last.pt", device="cpu")
    s = evaluate(tiny_data, rec, split="train", progress=False)
    assert s["cer"] == 0.0, s["worst"][:3]


@pytest.mark.slow
def test_resume_is_exact(tiny_data, tmp_path):
    """2 epochs, stop, resume to 4 == 4 epochs straight (CPU, same seed), augmentation on."""
    over = dict(augment={"enabled": True}, model={"hidden": 16, "layers": 1, "conv_channels": 8, "dropout": 0.2})
    train(tiny_train_config(tiny_data, 4, **over), tmp_path / "a", progress=False)
    train(tiny_train_config(tiny_data, 2, **over), tmp_path / "b", progress=False)
    _rewrite_as_format_1(tmp_path / "b" / "last.pt")
    resume(tmp_path / "b", epochs=4, progress=False)
    a = checkpoint.load_state(tmp_path / "a" / "last.pt")
    b = checkpoint.load_state(tmp_path / "b" / "last.pt")
    assert a["step"] == b["step"] and a["epoch"] == b["epoch"] == 4
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k


@pytest.mark.slow
def test_resume_mid_epoch_after_a_kill(tiny_data, tmp_path):
    """A run stopped inside an epoch (max-minutes) continues from the saved batch."""
    over = dict(model={"hidden": 16, "layers": 1, "conv_channels": 8, "dropout": 0.0})
    train(tiny_train_config(tiny_data, 2, **over), tmp_path / "a", progress=False)
    train(tiny_train_config(tiny_data, 2, max_minutes=1e-4, **over), tmp_path / "b", progress=False)
    st = checkpoint.load_state(tmp_path / "b" / "last.pt")
    assert st["epoch"] == 0 and st["batch_in_epoch"] >= 1
    _rewrite_as_format_1(tmp_path / "b" / "last.pt", history=False)
    # a kill after the checkpoint: a row for a step that will be redone, and a line cut mid-write
    with open(tmp_path / "b" / "metrics.jsonl", "a") as f:
        f.write(json.dumps({"kind": "train", "epoch": 1, "step": st["step"] + 1, "loss": 1.0}) + "\n")
        f.write('{"kind": "train", "ep')
    plot_run(tmp_path / "b", tmp_path / "b.png")  # a cut line does not break the plot
    resume(tmp_path / "b", progress=False)
    a = checkpoint.load_state(tmp_path / "a" / "last.pt")["model"]
    b = checkpoint.load_state(tmp_path / "b" / "last.pt")["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    rows = {run: [(r["kind"], r["step"]) for r in read_metrics(tmp_path / run / "metrics.jsonl")] for run in "ab"}
    assert rows["b"] == rows["a"]  # no step logged twice, nothing lost


def test_train_state_round_trip_and_a_checkpoint_without_one(tmp_path):
    st = TrainState(epoch=3, batch_in_epoch=5, step=77, best_cer=0.25, bad_epochs=1, history=[{"epoch": 1}])
    saved = st.to_checkpoint()
    assert set(saved) <= set(FORMAT_1_KEYS) and TrainState.from_checkpoint(saved) == st
    del saved["history"]  # the first checkpoints had none
    assert TrainState.from_checkpoint(saved).history == []
    m = Network(ModelConfig(num_classes=4, hidden=8, layers=1))
    checkpoint.save(tmp_path / "model.pt", m, Alphabet("abc"), FeatureConfig(), best_cer=0.1, history=[])
    with pytest.raises(checkpoint.CheckpointError, match="no training state"):
        TrainState.from_checkpoint(checkpoint.load_state(tmp_path / "model.pt"), tmp_path / "model.pt")


@pytest.mark.slow
def test_training_validation_agrees_with_evaluate(tiny_model, tmp_path):
    """best.pt's validation CER is the greedy CER `hwr evaluate` measures on it on the same split
    (with PyTorch, and with the default backend: onnxruntime where installed). Both score a line
    with characters outside the alphabet (as errors) and neither a line too large to read."""
    data = tmp_path / "d.h5"
    # shakier lines than the model learnt, for a CER well inside (0, 1): agreement then means something
    val = [synthetic_line(t, seed=500 + i, jitter=4.0)[0] for i, t in enumerate(tiny_texts(24, seed=7) + ["zed"])]
    xs = np.linspace(0, 4000, 20_001)
    val.append(Ink([Stroke(np.stack([xs, 30 * np.sin(xs / 20)], 1))], "a"))  # more points than a line may have
    with StoreWriter(data) as w:
        w.add(Sample(synthetic_line(t, seed=i, jitter=1.0)[0], id=f"t{i}", split="train")
              for i, t in enumerate(tiny_texts(32)))
        w.add(Sample(ink, id=f"v{i}", split="val") for i, ink in enumerate(val))
    train(tiny_train_config(data, 2, init_from=str(tiny_model), lr=1e-3), tmp_path / "run", progress=False)
    st = checkpoint.load_state(tmp_path / "run" / "best.pt")
    recorded = st["metrics"]["val_cer"]
    assert 0.02 < recorded < 0.9 and recorded == min(r["val_cer"] for r in st["history"])
    assert st["data_summary"]["val_samples"] == 25 and st["data_summary"]["val_unknown_characters"] == {"z": 1}
    for backend in ("torch", "auto"):
        rec = Recognizer.load(tmp_path / "run" / "best.pt", device="cpu", backend=backend)
        s = evaluate(data, rec, split="val", decoder=DecoderConfig(kind="greedy"), layout="line", progress=False)
        assert s["samples"] == 25 and len(s["unreadable"]) == 1
        assert s["cer"] == recorded, (rec.info["backend"], s["char_edits"], s["characters"])


def _shaky_store(tmp_path):
    """Clean training lines, and validation lines shakier than the tiny model learnt (a CER well inside (0, 1))."""
    data = tmp_path / "d.h5"
    with StoreWriter(data) as w:
        w.add(Sample(synthetic_line(t, seed=i, jitter=1.0)[0], id=f"t{i}", split="train")
              for i, t in enumerate(tiny_texts(32)))
        w.add(Sample(synthetic_line(t, seed=500 + i, jitter=4.0)[0], id=f"v{i}", split="val")
              for i, t in enumerate(tiny_texts(24, seed=7)))
    return data


@pytest.mark.slow
def test_best_checkpoint_can_be_chosen_by_beam_search_with_an_lm(tiny_model, tmp_path):
    """With select_decoder, best.pt is the epoch that decoder reads best, and the CER recorded for it
    is what `evaluate` measures with that decoder; greedy's CER is still logged beside it."""
    from hwr.lm import build_lm
    data = _shaky_store(tmp_path)
    build_lm(tiny_texts(300, seed=3), order=3, vocab="abcde ", progress=False).write_arpa(tmp_path / "lm.arpa")
    (tmp_path / "decoder.json").write_text(json.dumps({"kind": "beam", "beam_size": 8, "lm": "lm.arpa",
                                                       "lm_weight": 0.5}))
    cfg = tiny_train_config(data, 3, init_from=str(tiny_model), lr=1e-3, keep_epochs=3,
                            select_decoder=str(tmp_path / "decoder.json"))
    train(cfg, tmp_path / "run", progress=False)
    st = checkpoint.load_state(tmp_path / "run" / "best.pt")
    rows = st["history"]
    assert all("val_cer" in r and "val_cer_decoder" in r for r in rows)
    best = min(rows, key=lambda r: (r["val_cer_decoder"], r["epoch"]))
    assert st["metrics"]["epoch"] == best["epoch"] and st["metrics"]["val_cer_decoder"] == best["val_cer_decoder"]
    assert st["best_cer"] == best["val_cer_decoder"]  # the bar is the beam's CER, not greedy's ...
    epochs = [r for r in read_metrics(tmp_path / "run" / "metrics.jsonl") if r.get("kind") == "epoch"]
    assert any(r["val_cer"] != r["val_cer_decoder"] for r in epochs)  # ... and the two were told apart
    plot_run(tmp_path / "run", tmp_path / "curves.png")  # both curves drawn
    rec = Recognizer.load(tmp_path / "run" / "best.pt", device="cpu", backend="torch")
    beam = DecoderConfig.from_json(tmp_path / "decoder.json")
    s = evaluate(data, rec, split="val", decoder=beam, layout="line", progress=False)
    assert 0 < s["cer"] < 0.9 and s["cer"] == pytest.approx(best["val_cer_decoder"], abs=1e-12)
    # switching decoders on resume restarts the bar: the next epoch is measured against its own kind
    (tmp_path / "greedy.json").write_text(json.dumps({"kind": "greedy"}))
    resume(tmp_path / "run", epochs=4, select_decoder=str(tmp_path / "greedy.json"), progress=False)
    st = checkpoint.load_state(tmp_path / "run" / "best.pt")
    assert st["metrics"]["epoch"] == 4 and st["metrics"]["val_cer_decoder"] == st["history"][-1]["val_cer"]


def test_a_missing_selecting_decoder_fails_before_training(tiny_data, tmp_path):
    with pytest.raises(ConfigError, match="no decoder config at .*nowhere.json"):
        tiny_train_config(tiny_data, 1, select_decoder=str(tmp_path / "nowhere.json"))
    (tmp_path / "d.json").write_text(json.dumps({"kind": "beam", "lm": "gone.arpa"}))
    with pytest.raises(FileNotFoundError, match="gone.arpa"):
        train(tiny_train_config(tiny_data, 1, select_decoder=str(tmp_path / "d.json")), tmp_path / "run",
              progress=False)
    assert not (tmp_path / "run" / "config.json").exists()  # refused before the run began, not after an epoch


def _kl_to(teacher_path, student_path, data) -> float:
    """Mean per-frame KL(teacher || student) over the validation lines of `data`."""
    teacher = Recognizer.load(teacher_path, device="cpu", backend="torch")
    student = Recognizer.load(student_path, device="cpu", backend="torch")
    feats = [teacher.features(ink) for ink in _val_inks(data)]
    t_lp, t_n = teacher.log_probs(feats)
    s_lp, s_n = student.log_probs(feats)
    total = frames = 0.0
    for b in range(len(feats)):
        n = int(min(t_n[b], s_n[b]))
        total += float((t_lp[:n, b].exp() * (t_lp[:n, b] - s_lp[:n, b])).sum())
        frames += n
    return total / frames


def _val_inks(data):
    from hwr.store import Store
    store = Store(data)
    return [store.ink(int(i)) for i in store.indices("val")]


@pytest.mark.slow
def test_a_stride_4_network_learns_its_teachers_frames(tiny_model, tiny_data, tmp_path):
    """Distillation: the same short training of a stride-4, upsample-2 network, with and without the
    tiny stride-2 model as its teacher; with it, its frames read much closer to the teacher's."""
    small = dict(model={"hidden": 24, "layers": 1, "conv_channels": 16, "conv_stride": 4, "upsample": 2,
                        "dropout": 0.0})
    train(tiny_train_config(tiny_data, 10, **small), tmp_path / "plain", progress=False)
    train(tiny_train_config(tiny_data, 10, distill_from=str(tiny_model), distill_weight=1.0, **small),
          tmp_path / "taught", progress=False)
    plain = _kl_to(tiny_model, tmp_path / "plain" / "last.pt", tiny_data)
    taught = _kl_to(tiny_model, tmp_path / "taught" / "last.pt", tiny_data)
    assert taught < 0.5 * plain, (taught, plain)
    rows = [r for r in read_metrics(tmp_path / "taught" / "metrics.jsonl") if r["kind"] == "train"]
    assert rows and all(r["distill_loss"] > 0 for r in rows)  # logged beside CTC's loss
    # the weight is used: at 0 the run is the plain one, weight for weight
    train(tiny_train_config(tiny_data, 1, distill_from=str(tiny_model), distill_weight=0.0, **small),
          tmp_path / "zero", progress=False)
    train(tiny_train_config(tiny_data, 1, **small), tmp_path / "plain1", progress=False)
    a, b = (checkpoint.load_state(tmp_path / run / "last.pt")["model"] for run in ("zero", "plain1"))
    assert all(torch.equal(a[k], b[k]) for k in a)
    # refused before training: a teacher reading other characters, or frames that mean other ink
    other = tmp_path / "other.pt"
    checkpoint.save(other, Network(ModelConfig(num_classes=4, hidden=8, layers=1)), Alphabet("xyz"), FeatureConfig())
    unmatched = {"model": {**small["model"], "upsample": 1}}
    for teacher, over, match in ((other, small, "same alphabet"), (tiny_model, unmatched, "cover 2 points each")):
        with pytest.raises(ConfigError, match=match):
            train(tiny_train_config(tiny_data, 1, distill_from=str(teacher), **over), tmp_path / "bad", progress=False)
        assert not (tmp_path / "bad" / "config.json").exists()


def test_checkpoint_round_trip_and_refusals(tmp_path):
    m = Network(ModelConfig(num_classes=4, hidden=8, layers=1))
    alpha = Alphabet("abc")
    checkpoint.save(tmp_path / "m.pt", m, alpha, FeatureConfig(), metrics={"val_cer": 0.1})
    m2, a2, f2, st = checkpoint.load_model(tmp_path / "m.pt")
    assert a2 == alpha and st["metrics"]["val_cer"] == 0.1 and st["format_version"] == checkpoint.FORMAT_VERSION
    assert all(torch.equal(x, y) for x, y in zip(m.state_dict().values(), m2.state_dict().values()))
    # a stranger's pickle must not run: weights_only refuses it
    evil = tmp_path / "evil.pt"

    class Boom:
        def __reduce__(self):
            return (os.system, ("touch " + str(tmp_path / "pwned"),))

    torch.save({"x": Boom()}, evil)
    with pytest.raises(checkpoint.CheckpointError, match="not an hwr checkpoint"):
        checkpoint.load_model(evil)
    assert not (tmp_path / "pwned").exists()
    torch.save({"weights": torch.zeros(2)}, tmp_path / "plain.pt")
    with pytest.raises(checkpoint.CheckpointError, match="not an hwr checkpoint"):
        checkpoint.load_model(tmp_path / "plain.pt")
    st = torch.load(tmp_path / "m.pt", weights_only=True)
    st["format_version"] = 99
    torch.save(st, tmp_path / "future.pt")
    with pytest.raises(checkpoint.CheckpointError, match="newer"):
        checkpoint.load_model(tmp_path / "future.pt")
    st["format_version"] = 1
    st["alphabet"] = ["a"]
    torch.save(st, tmp_path / "mismatch.pt")
    with pytest.raises(checkpoint.CheckpointError, match="alphabet"):
        checkpoint.load_model(tmp_path / "mismatch.pt")
    (tmp_path / "junk.pt").write_bytes(b"junk")
    with pytest.raises(checkpoint.CheckpointError):
        checkpoint.load_model(tmp_path / "junk.pt")


def test_cli_refuses_foreign_checkpoint_in_one_line(tmp_path, tiny_data):
    torch.save({"weights": torch.zeros(2)}, tmp_path / "plain.pt")
    r = subprocess.run([sys.executable, "-m", "hwr.cli", "evaluate", "--data", str(tiny_data), "--model",
                        str(tmp_path / "plain.pt")], capture_output=True, text=True)
    assert r.returncode == 2 and r.stderr.strip().count("\n") == 0 and "not an hwr checkpoint" in r.stderr


@pytest.mark.slow
def test_fine_tuning_grows_the_alphabet(tiny_model, tmp_path):
    from hwr.store import Sample, StoreWriter
    data = tmp_path / "new.h5"
    with StoreWriter(data) as w:
        w.add(Sample(synthetic_line(t, seed=i)[0], split="train") for i, t in enumerate(["abz", "zed", "ba"] * 4))
    train(tiny_train_config(data, 1, init_from=str(tiny_model), freeze_layers=1), tmp_path / "ft", progress=False)
    _, old, _, old_st = checkpoint.load_model(tiny_model)
    m, new, _, st = checkpoint.load_model(tmp_path / "ft" / "best.pt")
    assert new.chars[:len(old)] == old.chars and "z" in new.index
    # frozen: the first RNN layer did not move
    assert torch.equal(st["model"]["rnn.weight_hh_l0"], old_st["model"]["rnn.weight_hh_l0"])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_ddp_two_cpu_processes_agree(tiny_data, tmp_path):
    """torchrun-style: 2 processes, gloo; after one step both ranks hold identical weights."""
    code = textwrap.dedent(f"""
        import sys, torch, torch.distributed as dist
        sys.path.insert(0, {os.path.dirname(__file__)!r})
        from conftest import tiny_train_config
        from hwr.train import Trainer
        cfg = tiny_train_config({str(tiny_data)!r}, 1, max_val_samples=4,
                                model={{"hidden": 16, "layers": 1, "conv_channels": 8, "dropout": 0.0}})
        t = Trainer(cfg, {str(tmp_path / 'ddp')!r}, progress=False)
        items = t.batches_for(0)[0]
        t.train_step([t.train_items[i] for i in items], items, 0, 0, 10)
        flat = torch.cat([p.detach().flatten() for p in t.model.parameters()])
        gathered = [torch.zeros_like(flat) for _ in range(2)]
        dist.all_gather(gathered, flat)
        assert torch.equal(gathered[0], gathered[1]), "ranks disagree"
        open(f"{str(tmp_path)}/rank{{dist.get_rank()}}.ok", "w").write(str(len(t.batches_for(0))))
        # tear down in order: both ranks done, the DDP wrapper (and its gloo reducer) gone, then the group;
        # otherwise a gloo worker thread can still be alive at exit and abort the process
        dist.barrier()
        del t
        import gc
        gc.collect()
        dist.destroy_process_group()
    """)
    script = tmp_path / "ddp_step.py"
    script.write_text(code)
    r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2",
                        f"--master_port={_free_port()}", str(script)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-6000:]
    assert (tmp_path / "rank0.ok").exists() and (tmp_path / "rank1.ok").exists()
    # each rank takes half of the batches
    assert (tmp_path / "rank0.ok").read_text() == (tmp_path / "rank1.ok").read_text()


def test_logged_loss_is_the_mean_over_the_steps_in_its_window(tiny_data, tmp_path, monkeypatch):
    """Windows cut short by an epoch boundary are averaged over their own steps (not log_every)."""
    from hwr import train as T
    monkeypatch.setattr(T.Trainer, "train_step", lambda self, items, *a: (1.0, 2.0, 10, None))  # no teacher
    cfg = tiny_train_config(tiny_data, 3, log_every=10)  # 200 lines / 16 = 13 steps an epoch: windows of 3-10 steps
    train(cfg, tmp_path / "run", progress=False)
    rows = [r for r in read_metrics(tmp_path / "run" / "metrics.jsonl") if r["kind"] == "train"]
    assert len(rows) >= 3 and all(r["loss"] == 1.0 and r["grad_norm"] == 2.0 for r in rows)
    assert not any("distill_loss" in r for r in rows)  # only a run with a teacher logs one


def test_pointer_like_augmentation_gives_screen_pixels():
    """Mouse/finger augmentation: whole pixels at screen scale, a valid point mapping, few points for a finger."""
    from hwr.features import _pointer_like
    ink = synthetic_line("bad cab", seed=3)[0]
    xy = ink.points()[:, :2] / 100.0  # about one writing height tall
    lengths = ink.stroke_lengths()
    index = np.arange(len(xy))
    for seed in range(20):
        rng = np.random.default_rng(seed)
        out, idx, out_len = _pointer_like(xy, index, lengths, rng)
        assert out_len.sum() == len(out) == len(idx) and len(out_len) == len(lengths) and (out_len >= 1).all()
        assert idx.min() >= 0 and idx.max() < len(xy)
        px = np.random.default_rng(seed).uniform(25, 90)  # the scale the function drew first
        assert np.allclose(out * px, np.round(out * px), atol=1e-6)
    # off by default: training without it is unchanged
    from hwr.features import AugmentConfig
    assert AugmentConfig().pointer == 0.0


def test_cosine_restarts_anneal_each_cycle_and_restart_lower():
    """restart_epochs: within a cycle the rate falls from the cycle's peak to the floor; the next
    cycle restarts at a peak no higher than the one before; the curve depends on the step alone."""
    from hwr.train import TrainConfig, lr_at

    cfg = TrainConfig(lr=1e-3, warmup_steps=1, lr_decay=0.9, min_lr_ratio=0.05, restart_epochs=2)
    per_epoch = 100
    rates = [lr_at(s, per_epoch, cfg) for s in range(6 * per_epoch)]
    for c in range(3):
        cycle = rates[c * 200:(c + 1) * 200]
        assert all(a >= b for a, b in zip(cycle, cycle[1:])), "a cycle anneals monotonically"
        assert cycle[-1] < 0.06e-3 and cycle[0] == pytest.approx(1e-3 * 0.9 ** (2 * c))
    assert rates[200] > rates[199] * 5, "a restart jumps back up"
    assert rates[400] < rates[200]
    plain = TrainConfig(lr=1e-3, warmup_steps=1, lr_decay=0.9, min_lr_ratio=0.05)
    assert lr_at(150, per_epoch, plain) == pytest.approx(1e-3 * 0.9 ** 1.5)
    with pytest.raises(ConfigError):
        TrainConfig(restart_epochs=-1)


def test_kept_epochs_average_to_the_mean_of_their_weights(tiny_data, tmp_path):
    """keep_epochs leaves the last N epochs' weights; `hwr model average` writes their element-wise
    mean, which loads as a model, and refuses checkpoints of another architecture."""
    over = dict(model={"hidden": 8, "layers": 1, "conv_channels": 4, "dropout": 0.0}, keep_epochs=2)
    train(tiny_train_config(tiny_data, 3, **over), tmp_path / "run", progress=False)
    kept = sorted(p.name for p in (tmp_path / "run").glob("epoch-*.pt"))
    assert kept == ["epoch-2.pt", "epoch-3.pt"]
    e2, e3 = (checkpoint.load_state(tmp_path / "run" / k) for k in kept)
    assert "optimizer" not in e3 and e3["metrics"]["epoch"] == 3
    out = tmp_path / "avg.pt"
    r = subprocess.run([sys.executable, "-m", "hwr.cli", "model", "average", *(str(tmp_path / "run" / k) for k in kept),
                        "--out", str(out)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    avg = checkpoint.load_state(out)
    for k, t in avg["model"].items():
        assert torch.allclose(t, (e2["model"][k] + e3["model"][k]) / 2, atol=1e-7), k
    assert not torch.equal(e2["model"]["head.weight"], e3["model"]["head.weight"])  # the mean is not a copy
    Recognizer.load(out).recognize(synthetic_line("ab")[0])
    weighted = tmp_path / "soup.pt"  # 3:1, scaled to sum to 1
    r = subprocess.run([sys.executable, "-m", "hwr.cli", "model", "average", *(str(tmp_path / "run" / k) for k in kept),
                        "--weights", "3,1", "--out", str(weighted)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    soup = checkpoint.load_state(weighted)
    for k, t in soup["model"].items():
        assert torch.allclose(t, 0.75 * e2["model"][k] + 0.25 * e3["model"][k], atol=1e-7), k
    assert soup["averaged_weights"] == [0.75, 0.25] and "averaged_weights" not in avg
    assert "best_cer" not in soup and "history" not in soup  # the first checkpoint's record is not the mean's
    for bad in ("1", "1,-1", "0,1", "1,nan", "1,inf", "1e308,1e308"):
        r = subprocess.run([sys.executable, "-m", "hwr.cli", "model", "average", *(str(tmp_path / "run" / k) for k in kept),
                            "--weights", bad, "--out", str(tmp_path / "bad.pt")], capture_output=True, text=True)
        assert r.returncode != 0 and "weight" in r.stderr and "Traceback" not in r.stderr, (bad, r.stderr)
        assert not (tmp_path / "bad.pt").exists()
    # runs warm-started from one of the checkpoints (other seeds) may join a soup without a warning, in any
    # order, and so may two of them without it (siblings); a run of another seed from a random start is warned about
    for seed in (5, 6):
        child = tiny_train_config(tiny_data, 1, **{**over, "keep_epochs": 1}, seed=seed,
                                  init_from=str(tmp_path / "run" / kept[1]))
        train(child, tmp_path / f"child{seed}", progress=False)
    stranger = tiny_train_config(tiny_data, 1, **over, seed=5)
    train(stranger, tmp_path / "stranger", progress=False)
    parent, child5, child6 = tmp_path / "run" / kept[1], tmp_path / "child5" / "epoch-1.pt", tmp_path / "child6" / "epoch-1.pt"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for family in ([parent, child5], [child5, parent], [child5, child6], [parent, child5, child6]):
            checkpoint.average_checkpoints(family, tmp_path / "family.pt", [3] + [1] * (len(family) - 1))
    with pytest.warns(UserWarning, match="another seed or starting point") as caught:
        checkpoint.average_checkpoints([parent, child5, tmp_path / "stranger" / "epoch-1.pt"], tmp_path / "strangers.pt")
    assert len(caught) == 1 and "stranger" in str(caught[0].message) and "child5" not in str(caught[0].message)
    other = Network(ModelConfig(num_classes=e3["model_config"]["num_classes"], hidden=4, layers=1))
    checkpoint.save(tmp_path / "other.pt", other, Alphabet(e3["alphabet"]), FeatureConfig())
    r = subprocess.run([sys.executable, "-m", "hwr.cli", "model", "average", str(tmp_path / "run" / kept[0]),
                        str(tmp_path / "other.pt"), "--out", str(tmp_path / "bad.pt")], capture_output=True, text=True)
    assert r.returncode != 0 and "model config differs" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "bad.pt").exists()
    for args in ([kept[0], kept[0]], kept):  # a file named twice; the mean written over an input
        dst = str(tmp_path / "run" / kept[0]) if args is kept else str(tmp_path / "twice.pt")
        r = subprocess.run([sys.executable, "-m", "hwr.cli", "model", "average", *(str(tmp_path / "run" / k) for k in args),
                            "--out", dst], capture_output=True, text=True)
        assert r.returncode != 0 and "Traceback" not in r.stderr, r.stderr
    resume(tmp_path / "run", epochs=4, keep_epochs=1, progress=False)  # fewer kept after a resume: older ones go
    assert sorted(p.name for p in (tmp_path / "run").glob("epoch-*.pt")) == ["epoch-4.pt"]
