"""What i-dots and t-crosses written after the line cost, and what `FeatureConfig.late_marks` gives back.

    python scripts/late_marks_study.py --iam WORK/iam-ondb.h5 --split testset_v --work WORK/late --out late_v.json

Reads one IAM-OnDB split three ways, each with the model's late-mark reordering off and on
(hwr/strokeorder.py), greedy and with the model's own decoder (beam + LM):
- as written (tablet ink, in the writers' own stroke order);
- canvas-like: 500 of its lines as mouse input (`scripts/make_canvas_set.py --split S`);
- canvas-like with every dot and cross written after the line (`make_canvas_set.py --split S --late 1`).
Tune on testset_v; testset_f is read once, to report. Prints a Markdown table; `--out` keeps it as JSON.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hwr.decode import DecoderConfig  # noqa: E402
from hwr.evaluate import evaluate  # noqa: E402
from hwr.recognizer import Recognizer  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--iam", type=Path, required=True, help="IAM-OnDB store (hwr import iam-ondb)")
    ap.add_argument("--split", default="testset_v")
    ap.add_argument("--work", type=Path, required=True, help="folder for the two canvas-like stores")
    ap.add_argument("--model", type=Path, default=None, help="model (default: the shipped one)")
    ap.add_argument("--lines", type=int, default=500, help="lines in each canvas-like store")
    ap.add_argument("--out", type=Path)
    a = ap.parse_args(argv)
    a.work.mkdir(parents=True, exist_ok=True)
    sets = [(f"{a.split}, as written", a.iam, a.split)]
    for late, name in ((0, "canvas-like"), (1, "canvas-like, every dot and cross after the line")):
        store = a.work / f"canvas-{a.split}-{a.lines}-late{late}.h5"
        if not store.exists():
            subprocess.run([sys.executable, str(ROOT / "scripts" / "make_canvas_set.py"), "--iam", str(a.iam),
                            "--split", a.split, "--lines", str(a.lines), "--late", str(late), "--out", str(store)],
                           check=True)
        sets.append((name, store, None))
    rec = Recognizer.load(a.model)
    on = rec.feature_config
    rows = []
    print("| set | greedy, as written | greedy, marks moved back | beam + LM, as written | beam + LM, moved back |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for name, store, split in sets:
        row = {"set": name}
        for kind, decoder in (("greedy", DecoderConfig(kind="greedy")), ("beam", None)):
            for late_marks in (False, True):
                rec.feature_config = replace(on, late_marks=late_marks)
                s = evaluate(store, rec, split, decoder=decoder, progress=False)
                row[f"{kind}_{'on' if late_marks else 'off'}"] = {"cer": s["cer"], "wer": s["wer"], "lines": s["samples"]}
        rows.append(row)
        print(f"| {name} | " + " | ".join(f"{100 * row[k]['cer']:.2f} %" for k in ("greedy_off", "greedy_on", "beam_off", "beam_on"))
              + " |", flush=True)
    rec.feature_config = on
    if a.out:
        a.out.write_text(json.dumps({"split": a.split, "model": str(a.model or "shipped"), "rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
