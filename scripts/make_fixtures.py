"""Write the committed test fixtures from UNIPEN words (CC BY 4.0) and the shipped model's outputs.

    python scripts/make_fixtures.py --unipen WORK/unipen.h5

tests/fixtures/unipen_words.jsonl: a few UNIPEN word inks (canonical JSON + id, writer) that
the shipped model reads correctly; the browser test replays them as mouse moves.
tests/fixtures/golden.jsonl: the shipped model's greedy and beam outputs on those inks and on
some it gets wrong; the golden regression test checks that they do not change. Re-run this
script (and review the diff) whenever the shipped model is deliberately replaced; with
--refresh it keeps the same inks and only records the new model's outputs (the page and browser
tests compose pages from these very inks).
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import numpy as np

from hwr.decode import DecoderConfig
from hwr.ink import Ink
from hwr.recognizer import Recognizer
from hwr.store import Store

FIXTURES = Path(__file__).resolve().parents[1] / "tests" / "fixtures"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--unipen", help="the UNIPEN store to pick inks from (not needed with --refresh)")
    ap.add_argument("--refresh", action="store_true", help="keep the golden inks, record the model's outputs")
    ap.add_argument("--words", type=int, default=4)
    ap.add_argument("--golden", type=int, default=12)
    a = ap.parse_args()
    rec = Recognizer.load()
    greedy, beam = DecoderConfig(kind="greedy"), rec.decoder_config
    if a.refresh:
        rows = [json.loads(x) for x in (FIXTURES / "golden.jsonl").read_text().splitlines() if x.strip()]
        for r in rows:
            ink = Ink.from_json_dict(r["ink"])
            r["greedy"] = rec.recognize(ink, decoder=greedy, spans=False).text
            r["beam"] = rec.recognize(ink, decoder=beam, spans=False).text
        (FIXTURES / "golden.jsonl").write_text("".join(json.dumps(x) + "\n" for x in rows))
        print(f"recorded the outputs of {len(rows)} golden cases")
        return
    if not a.unipen:
        ap.error("--unipen is needed to pick new inks (or --refresh to keep them)")
    rng = np.random.default_rng(7)
    right, golden = [], []
    with Store(a.unipen) as s:
        idx = [i for i in range(len(s)) if s.meta["source"][i] == "unipen:word"
               and re.fullmatch(r"[a-z]{4,8}", s.meta["text"][i])]
        for i in rng.permutation(idx)[:400]:
            smp = s[int(i)]
            if smp.ink.num_points > 400:
                continue
            g = rec.recognize(smp.ink, decoder=greedy, spans=False).text
            b = rec.recognize(smp.ink, decoder=beam, spans=False).text
            d = smp.ink.to_json_dict()
            d.update(id=smp.id, writer=smp.writer)
            if g == b == smp.text and len(right) < a.words:
                right.append(d)
            if len(golden) < a.golden:
                golden.append({"ink": d, "greedy": g, "beam": b})
            if len(right) >= a.words and len(golden) >= a.golden:
                break
    FIXTURES.mkdir(parents=True, exist_ok=True)
    (FIXTURES / "unipen_words.jsonl").write_text("".join(json.dumps(x) + "\n" for x in right))
    (FIXTURES / "golden.jsonl").write_text("".join(json.dumps(x) + "\n" for x in golden))
    print(f"{len(right)} words read correctly: {[x['text'] for x in right]}; {len(golden)} golden cases")


if __name__ == "__main__":
    main()
