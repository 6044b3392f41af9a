"""Golden regression test: the shipped model keeps producing the same transcriptions."""

import json
from pathlib import Path

import pytest

from hwr.decode import DecoderConfig
from hwr.ink import Ink
from hwr.recognizer import Recognizer

GOLDEN = Path(__file__).parent / "fixtures" / "golden.jsonl"


@pytest.fixture(scope="module")
def shipped():
    return Recognizer.load(device="cpu")


def cases():
    return [json.loads(x) for x in GOLDEN.read_text().splitlines() if x.strip()]


def test_shipped_model_loads_and_describes_itself(shipped):
    assert shipped.info["parameters"] < 2_000_000
    assert shipped.decoder_config.kind == "beam" and shipped.decoder_config.lm


@pytest.mark.parametrize("case", cases(), ids=lambda c: c["ink"]["id"])
def test_golden_transcriptions(shipped, case):
    ink = Ink.from_json_dict(case["ink"])
    assert shipped.recognize(ink, decoder=DecoderConfig(kind="greedy"), spans=False).text == case["greedy"]
    assert shipped.recognize(ink, spans=False).text == case["beam"]


def test_most_golden_words_are_read_right(shipped):
    """The shipped model itself (not the fixture's record of it) reads most words exactly."""
    inks = [Ink.from_json_dict(c["ink"]) for c in cases()]
    good = sum(r.text == ink.text for r, ink in zip(shipped.recognize(inks, spans=False), inks))
    assert good >= len(inks) // 2
