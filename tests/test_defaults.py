"""Each default is written once, in a dataclass: the CLI's options, their help and the functions' keyword
defaults are read from it, so an edit in one place cannot leave another behind."""

from __future__ import annotations

import argparse
import inspect
from dataclasses import fields

import pytest

from hwr.cli import _train_config, build_parser, field_default, main, shown
from hwr.decode import DecoderConfig
from hwr.evaluate import EvalConfig, TuneConfig, evaluate, tune_lm
from hwr.lm import LMConfig, build_from_files, build_lm
from hwr.personal import PersonalConfig, fine_tune_command
from hwr.train import TrainConfig
from hwr.transcribe import TranscribeConfig, transcribe

# options whose default lives in the CLI alone (port, host), or in a module constant the CLI reads
# (--backend: recognizer.DEFAULT_BACKEND, also Recognizer.load's default)
CLI_ONLY = {("demo", "--port"), ("demo", "--host"), ("data show", "--backend"), ("evaluate", "--backend"),
            ("tune-lm", "--backend"), ("transcribe", "--backend")}


def options(parser: argparse.ArgumentParser, command: str = ""):
    """(command, option string, action) for every option of every command, deferred ones included."""
    parser.complete()
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from options(sub, f"{command} {name}".strip())
        elif action.option_strings:
            yield command, action.option_strings[-1], action


def test_every_option_default_comes_from_its_dataclass():
    backed = 0
    for command, flag, action in options(build_parser()):
        if not hasattr(action, "field"):
            # no literal defaults in the CLI beyond argparse's own and the listed ones
            assert action.default in (None, False, argparse.SUPPRESS) or (command, flag) in CLI_ONLY, (command, flag)
            continue
        backed += 1
        value = field_default(*action.field)
        if action.default is None:  # given only: the help still names the dataclass default
            if value not in (None, [], ()):
                assert f"default: {shown(value)}" in action.help or f"else {shown(value)}" in action.help, flag
        else:
            assert action.default == value, (command, flag)
            assert action.help.endswith(f"(default: {shown(value)})"), (command, flag)
    assert backed >= 40


@pytest.mark.parametrize("command, flag, cls, name", [
    ("train", "--epochs", TrainConfig, "epochs"),
    ("train", "--batch-size", TrainConfig, "batch_size"),
    ("train", "--lr", TrainConfig, "lr"),
    ("evaluate", "--batch-size", EvalConfig, "batch_size"),
    ("evaluate", "--layout", EvalConfig, "layout"),
    ("evaluate", "--beam-size", DecoderConfig, "beam_size"),
    ("tune-lm", "--weights", TuneConfig, "weights"),
    ("tune-lm", "--bonuses", TuneConfig, "bonuses"),
    ("tune-lm", "--limit", TuneConfig, "limit"),
    ("tune-lm", "--split", TuneConfig, "split"),
    ("tune-lm", "--beam-size", TuneConfig, "beam_size"),
    ("transcribe", "--batch-size", TranscribeConfig, "batch_size"),
    ("transcribe", "--nbest", TranscribeConfig, "nbest"),
    ("transcribe", "--layout", TranscribeConfig, "layout"),
    ("lm build", "--order", LMConfig, "order"),
    ("lm build", "--prune", LMConfig, "prune"),
    ("lm build", "--eval-split", LMConfig, "eval_split"),
])
def test_options_are_backed_by_their_fields(command, flag, cls, name):
    found = {(c, f): a for c, f, a in options(build_parser())}
    assert found[command, flag].field == (cls, name)


@pytest.mark.parametrize("func, cls", [(evaluate, EvalConfig), (tune_lm, TuneConfig), (transcribe, TranscribeConfig),
                                       (build_lm, LMConfig), (build_from_files, LMConfig)])
def test_function_defaults_are_the_dataclass_defaults(func, cls):
    params = inspect.signature(func).parameters
    shared = [f.name for f in fields(cls) if f.name in params and params[f.name].default is not inspect.Parameter.empty]
    assert shared
    for name in shared:
        assert params[name].default == field_default(cls, name), (func.__name__, name)


def test_train_help_shows_the_train_config_defaults(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["train", "--help"])
    assert exit_.value.code == 0
    out = " ".join(capsys.readouterr().out.split())  # argparse wraps lines
    for name in ("epochs", "batch_size", "lr", "patience", "seed", "device", "freeze_layers", "alphabet_min_count"):
        assert f"(default: {shown(field_default(TrainConfig, name))})" in out, name


def test_train_flags_stay_unset_so_a_config_file_wins(tmp_path):
    (tmp_path / "c.json").write_text('{"epochs": 3, "lr": 0.01}')
    a = build_parser().parse_args(["train", "--data", "x.h5", "--out", "run", "--config", str(tmp_path / "c.json"),
                                   "--batch-size", "4"])
    cfg = _train_config(a)
    assert (cfg.epochs, cfg.lr, cfg.batch_size) == (3, 0.01, 4)
    assert cfg.patience == field_default(TrainConfig, "patience")


def test_every_train_flag_given_reaches_the_train_config(tmp_path):
    """Each `hwr train` option of a TrainConfig field, when given, is in the config the run gets
    (--select-decoder once was parsed and then dropped)."""
    (tmp_path / "d.json").write_text('{"kind": "greedy"}')
    (tmp_path / "t.pt").write_bytes(b"")
    given = {"--epochs": "7", "--max-minutes": "9", "--batch-size": "5", "--lr": "0.02", "--warmup-steps": "3",
             "--restart-epochs": "2", "--keep-epochs": "2", "--seed": "4", "--patience": "6", "--threads": "1",
             "--train-split": "tr", "--val-split": "va", "--extra-train-split": "testset_t", "--data-weight": "0.5",
             "--alphabet-min-count": "3", "--freeze-layers": "1", "--device": "cpu", "--init-from": "x.pt",
             "--select-decoder": str(tmp_path / "d.json"), "--distill-from": str(tmp_path / "t.pt"), "--distill-weight": "0.5"}
    parser = build_parser()
    args = ["train", "--data", "x.h5", "--out", "r"] + [x for kv in given.items() for x in kv]
    cfg = _train_config(parser.parse_args(args))  # parsing adds the train options to its subparser
    train_parser = parser._subparsers._group_actions[0].choices["train"]
    flagged = {act.field[1] for act in train_parser._actions if getattr(act, "field", (None,))[0] is TrainConfig}
    expected = dict(epochs=7, max_minutes=9.0, batch_size=5, lr=0.02, warmup_steps=3, restart_epochs=2.0, keep_epochs=2,
                    seed=4, patience=6, threads=1, train_split="tr", val_split="va", extra_train_splits=["testset_t"],
                    data_weights=[0.5], alphabet_min_count=3, freeze_layers=1, device="cpu", init_from="x.pt",
                    select_decoder=str((tmp_path / "d.json").resolve()), distill_from=str((tmp_path / "t.pt").resolve()), distill_weight=0.5)
    assert flagged == set(expected) - {"init_from"}  # a new option needs its line above (--init-from is plain)
    for name, value in expected.items():
        assert getattr(cfg, name) == value, name


def test_fine_tune_command_is_personal_config_as_train_flags():
    cmd = fine_tune_command("s.h5", "base.pt", "run", PersonalConfig(epochs=4, lr=1e-3))
    assert cmd[1:4] == ["-m", "hwr.cli", "train"]
    cfg = _train_config(build_parser().parse_args(cmd[3:]))
    personal = PersonalConfig(epochs=4, lr=1e-3)
    for f in fields(personal):  # each is the TrainConfig field of that name
        assert getattr(cfg, f.name) == getattr(personal, f.name), f.name
    assert cfg.patience == 4 and cfg.init_from == "base.pt" and cfg.data == ["s.h5"]
