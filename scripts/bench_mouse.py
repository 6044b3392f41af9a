"""Real mouse replays: IAM-OnDB lines written into the app's canvas by a mouse in Chromium, read back.

    python scripts/bench_mouse.py --iam WORK/iam-ondb.h5 --split testset_f --lines 40 --out mouse.json

Each line's strokes are scaled to the board (the writing ~45 px high, as people write with a mouse) and
replayed with Chromium's mouse (DevTools pointer events, whole-stroke moves point by point), so the
ink goes through everything a person's does: pointer events, the canvas component, the strokes sent at
pen-up, `hwr.canvas.ink_from_canvas`, the app's recognizer and decoder. The app's final transcription
is scored against the label, beside the same lines read straight from the store (the tablet ink).
With `--late` every i-dot and t-cross (`hwr.strokeorder.marks`) is written after the rest of the line, as
people who dot and cross when the line is done write; the tablet reading keeps the order written.
Needs Debian's chromium and the `test` extra (playwright); the app is served as `hwr demo` serves it.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hwr.cli import streamlit_command, wait_until_serving  # noqa: E402
from hwr.data import load_split  # noqa: E402
from hwr.features import normalised_points  # noqa: E402
from hwr.ink import Ink  # noqa: E402
from hwr.metrics import cer, wer  # noqa: E402
from hwr.recognizer import Recognizer  # noqa: E402
from hwr.strokeorder import marks_last  # noqa: E402

WRITING_PX = 45.0   # writing height on the board (the line's 10-90% y spread), in CSS pixels


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def board_strokes(ink, width: float, height: float) -> list[np.ndarray]:
    """The ink's strokes in board pixels: writing WRITING_PX high (less if the line would not fit the
    board's width), vertically centred, 20 px from the left edge."""
    pts = ink.points()[:, :2]
    y10, y90 = np.percentile(pts[:, 1], [10, 90])
    scale = WRITING_PX / max(y90 - y10, 1e-6)
    scale = min(scale, (width - 40) / max(np.ptp(pts[:, 0]), 1e-6))
    x0, yc = pts[:, 0].min(), (y10 + y90) / 2
    return [np.column_stack([20 + (s.points[:, 0] - x0) * scale, height / 2 + (s.points[:, 1] - yc) * scale])
            for s in ink.strokes]


def marks_written_last(ink: Ink) -> Ink:
    """The line with all its dots and crosses written after everything else."""
    order = marks_last(normalised_points(ink), ink.stroke_lengths(), 1.0, np.random.default_rng(0))
    return ink if order is None else Ink([ink.strokes[k] for k in order.tolist()], ink.text)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--iam", type=Path, required=True)
    ap.add_argument("--split", default="testset_f")
    ap.add_argument("--lines", type=int, default=40)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--late", action="store_true", help="write every dot and cross after the rest of the line")
    ap.add_argument("--out", type=Path)
    a = ap.parse_args(argv)
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if not chromium:
        sys.exit("needs Debian's chromium: apt-get install chromium")
    from playwright.sync_api import sync_playwright

    rows = [r for r in load_split([str(a.iam)], a.split) if r[2]]
    pick = np.random.default_rng(a.seed).choice(len(rows), size=min(a.lines, len(rows)), replace=False)
    rows = [rows[i] for i in sorted(pick)]
    rec = Recognizer.load()
    tablet = [rec.recognize(r[1], layout="line", spans=False).text for r in rows]

    port = free_port()
    data = Path(tempfile.mkdtemp(prefix="hwr-mouse-"))
    log = open(data / "server.log", "w")
    server = subprocess.Popen(streamlit_command(ROOT / "web" / "app.py", "127.0.0.1", port),
                              env=dict(os.environ, HWR_DATA_DIR=str(data)), stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        if not wait_until_serving(url):
            sys.exit("the app did not start: " + (data / "server.log").read_text()[-2000:])
        mouse, seconds = [], []
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium, headless=True, args=[
                "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--no-first-run"])
            page = browser.new_page(viewport={"width": 1300, "height": 1000})
            page.goto(url)
            page.wait_for_selector(".hwr-result", timeout=60_000)
            for k, r in enumerate(rows):
                if k:  # a clean board for each line
                    page.get_by_role("button", name="Clear").click()
                    page.wait_for_function("() => document.querySelector('.hwr-result')?.dataset.strokes === '0'",
                                           timeout=30_000)
                canvas = page.locator("canvas").first
                box = canvas.bounding_box()
                strokes = board_strokes(marks_written_last(r[1]) if a.late else r[1], box["width"], box["height"])
                t0 = time.perf_counter()
                for n, s in enumerate(strokes):
                    page.mouse.move(box["x"] + s[0, 0], box["y"] + s[0, 1])
                    page.mouse.down()
                    for x, y in s[1:]:
                        page.mouse.move(box["x"] + x, box["y"] + y)
                    page.mouse.up()
                    page.wait_for_function("(n) => document.querySelector('.hwr-result')?.dataset.strokes === String(n)",
                                           arg=n + 1, timeout=60_000, polling=20)
                seconds.append(time.perf_counter() - t0)
                mouse.append(page.locator(".hwr-result").first.inner_text().strip())
                print(f"{k + 1:3d}/{len(rows)} {r[0]}: {r[2]!r} -> {mouse[-1]!r}", flush=True)
            browser.close()
    finally:
        server.terminate()
        server.wait(10)
        log.close()
    refs = [r[2] for r in rows]
    report = {"split": a.split, "lines": len(rows), "late": a.late, "writing_px": WRITING_PX,
              "decoder": rec.decoder_config.as_dict(),
              "mouse_cer": cer(refs, mouse), "mouse_wer": wer(refs, mouse),
              "tablet_cer": cer(refs, tablet), "tablet_wer": wer(refs, tablet),
              "seconds_per_line_written": float(np.median(seconds)),
              "rows": [{"id": r[0], "reference": r[2], "mouse": m, "tablet": t} for r, m, t in zip(rows, mouse, tablet)]}
    print(f"\n{len(rows)} {a.split} lines: replayed by mouse in Chromium CER {report['mouse_cer']:.2%} "
          f"(WER {report['mouse_wer']:.2%}); the same lines as tablet ink {report['tablet_cer']:.2%} "
          f"(WER {report['tablet_wer']:.2%})")
    if a.out:
        a.out.write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
