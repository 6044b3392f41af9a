"""hwr drawing app: write on the canvas, see the transcription after every stroke.

    hwr demo                      # or: streamlit run web/app.py
    HWR_MODEL=runs/x/best.pt hwr demo

A thin shell over the package: strokes -> `hwr.canvas.ink_from_canvas` -> `Recognizer`.
The recognizer is loaded once per process (`st.cache_resource`, thread-safe); each browser
tab keeps its own strokes in `st.session_state`.
"""

from __future__ import annotations

import html
import json
import os
import time
import uuid
from dataclasses import replace
from pathlib import Path

import streamlit as st

from hwr.canvas import MAX_UPLOAD_BYTES, ink_from_canvas, ink_from_upload
from hwr.checkpoint import CheckpointError
from hwr.decode import DecoderConfig
from hwr.exporters import ink_to_inkml
from hwr.ink import Ink, InkError, Stroke
from hwr.personal import start_fine_tuning
from hwr.recognizer import Recognizer, default_model_path, stroke_owner
from hwr.store import Sample, Store, StoreError, append_samples

HERE = Path(__file__).parent
BOARD_HEIGHT = 220
MIN_PERSONAL_SAMPLES = 10
PALETTE = ["#d62728", "#1f77b4", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf", "#bcbd22"]


def data_dir() -> Path:
    base = os.environ.get("HWR_DATA_DIR") or os.path.join(
        os.environ.get("XDG_DATA_HOME") or os.path.expanduser("~/.local/share"), "hwr")
    return Path(base)


@st.cache_resource(show_spinner="Loading the recognizer...")
def load_recognizer(path: str) -> tuple[Recognizer, str | None]:
    """The recognizer and, if its beam search or LM cannot load, why (the app then reads greedily)."""
    rec = Recognizer.load(path, device="cpu")
    cfg, problem = rec.decoder_or_greedy()  # loads the LM now, not on the first stroke
    warm = Ink([Stroke([[0, 0], [10, 10], [20, 0]])])
    for kind in {"greedy", cfg.kind}:
        rec.recognize(warm, decoder=replace(cfg, kind=kind))
    return rec, problem


board = st.components.v2.component(
    "hwr_board",
    html='<div class="hwr-board"><canvas aria-label="handwriting canvas"></canvas></div>',
    css=(HERE / "canvas.css").read_text(),
    js=(HERE / "canvas.js").read_text(),
    isolate_styles=False,  # no shadow root: the page (and browser tests) can see the canvas
)


def ink_svg(ink: Ink, owner=None, highlight: int | None = None, height: int = 120) -> str:
    """The ink as inline SVG, each stroke coloured by the character that claims it."""
    pts = ink.points()
    x0, y0 = pts[:, 0].min(), pts[:, 1].min()
    w, h = max(pts[:, 0].max() - x0, 1), max(pts[:, 1].max() - y0, 1)
    scale = (height - 10) / h
    width = int(w * scale + 10)
    paths = []
    for k, s in enumerate(ink.strokes):
        c = "#222"
        lw = 2.2
        if owner is not None and owner[k] >= 0:
            c = PALETTE[owner[k] % len(PALETTE)]
            if highlight is not None:
                c, lw = ("#d62728", 3.5) if owner[k] == highlight else ("#c8c8c8", 2.0)
        d = " ".join(f"{'M' if i == 0 else 'L'}{(x - x0) * scale + 5:.1f},{(y - y0) * scale + 5:.1f}"
                     for i, (x, y) in enumerate(s.points[:, :2]))
        if len(s) == 1:
            d += " l0.1,0.1"
        paths.append(f'<path d="{d}" stroke="{c}" stroke-width="{lw}" fill="none" stroke-linecap="round" '
                     f'stroke-linejoin="round"/>')
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{min(width, 1100)}" height="{height}" '
            f'viewBox="0 0 {width} {height}">{"".join(paths)}</svg>')


def colored_text(text: str, owner_chars: set[int]) -> str:
    out = []
    for i, ch in enumerate(text):
        c = PALETTE[i % len(PALETTE)] if i in owner_chars else "#444"
        out.append(f'<span style="color:{c}">{html.escape(ch) if ch != " " else "&nbsp;"}</span>')
    return "".join(out)


# ---------------------------------------------------------------------- sidebar
def sidebar() -> tuple[Recognizer | None, DecoderConfig | None, Path]:
    st.sidebar.header("hwr")
    personal_root = data_dir() / "personal"
    models = {"shipped model": str(default_model_path())}
    for run in sorted(personal_root.glob("run-*"), reverse=True):
        if (run / "best.pt").exists():
            models[f"personal ({run.name[4:]})"] = str(run / "best.pt")
    choice = st.sidebar.selectbox("Model", list(models), key="model_choice")
    try:
        rec, problem = load_recognizer(models[choice])
    except (CheckpointError, FileNotFoundError) as e:
        st.error(f"Cannot load the model: {e}")
        return None, None, data_dir()
    base = rec.decoder_config
    if problem:
        st.warning(f"Beam search is off, so transcriptions are less accurate: {problem}", icon="⚠️")
        kinds = ["greedy"]
    else:
        kinds = ["beam search + language model", "greedy"] if base.lm else ["beam search", "greedy"]
    kind = st.sidebar.radio("Decoder", kinds, index=0 if base.kind == "beam" and not problem else len(kinds) - 1,
                            key="decoder_kind")
    cfg = replace(base, kind="greedy" if kind == "greedy" else "beam", nbest=5)
    params = rec.info.get("parameters", 0)
    st.sidebar.caption(f"{Path(models[choice]).name}: {params / 1e6:.2f}M parameters, "
                       f"{len(rec.alphabet)} characters")
    store_path = Path(st.sidebar.text_input("Feedback store", str(data_dir() / "feedback.h5"), key="store_path"))
    return rec, cfg, store_path


def saved_count(path: Path) -> int:
    try:
        with Store(path) as s:
            return len(s)
    except StoreError:
        return 0


def personal_model_panel(store_path: Path, n_saved: int) -> None:
    st.sidebar.subheader("Personal model")
    root = data_dir() / "personal"
    running = st.session_state.get("personal_run")
    if running:
        run = Path(running)
        rows = []
        if (run / "metrics.jsonl").exists():
            rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines() if x.strip()]
        epochs = [r for r in rows if r.get("kind") == "epoch"]
        total = json.loads((run / "config.json").read_text())["epochs"] if (run / "config.json").exists() else 1
        proc_done = (run / "done").exists() or (run / "failed").exists()
        st.sidebar.progress(min(len(epochs) / max(total, 1), 1.0), text=f"fine-tuning: epoch {len(epochs)}/{total}")
        if (run / "failed").exists():
            st.sidebar.error("Fine-tuning failed: " + (run / "train.log").read_text()[-300:])
            st.session_state.pop("personal_run")
        elif proc_done:
            st.sidebar.success("Your personal model is ready: pick it under Model.")
            st.session_state.pop("personal_run")
        return
    if n_saved < MIN_PERSONAL_SAMPLES:
        st.sidebar.caption(f"Save {MIN_PERSONAL_SAMPLES - n_saved} more corrected lines to fine-tune a model "
                           "on your handwriting.")
        return
    if st.sidebar.button(f"Fine-tune on my {n_saved} samples"):
        run = start_fine_tuning(store_path, default_model_path(), root)
        st.session_state["personal_run"] = str(run)
        st.rerun()


# ---------------------------------------------------------------------- main panel
RESULTS_KEPT = 16  # per browser tab: the current ink, the previous ones (undo), uploads


def recognized(rec: Recognizer, cfg: DecoderConfig, ink: Ink):
    """(result, ms) for this ink and decoder, read once per tab: picking an alternative,
    highlighting a character or typing a correction reruns the script but not the recognizer."""
    cache = st.session_state.setdefault("results", {})
    key = (rec.info["path"], repr(cfg), ink.digest())
    if key not in cache:
        t0 = time.perf_counter()
        cache[key] = (rec.recognize(ink, decoder=cfg), (time.perf_counter() - t0) * 1000)
        while len(cache) > RESULTS_KEPT:
            cache.pop(next(iter(cache)))
    return cache[key]


def show_result(rec: Recognizer, cfg: DecoderConfig, ink: Ink, key: str) -> str | None:
    """Transcribe and show text, alternatives, strokes per character; returns the chosen text."""
    try:
        result, ms = recognized(rec, cfg, ink)
    except (InkError, ValueError) as e:
        st.warning(f"Cannot read this ink: {e}")
        return None
    st.markdown(f'<div class="hwr-result" data-strokes="{len(ink)}" style="font-size:2rem;font-family:serif;'
                f'min-height:2.6rem">{html.escape(result.text) or "&nbsp;"}</div>', unsafe_allow_html=True)
    st.caption(f"recognised in {ms:.0f} ms with {cfg.kind} decoding, {len(ink)} strokes")
    options = [h.text for h in result.candidates]
    labels = {h.text: f"{h.text!r}   (score {h.score:.1f})" for h in result.candidates}
    chosen = st.radio("Alternatives", options, format_func=lambda t: labels[t], key=f"alt-{key}") if options else ""
    owner = stroke_owner(result.char_spans, len(ink))
    claimed = {int(o) for o in owner if o >= 0}
    chars = [f"{i}: {c}" for i, c in enumerate(result.text) if c != " "]
    pick = st.selectbox("Show the strokes of character", ["all characters"] + chars, key=f"hl-{key}")
    hl = None if pick == "all characters" else int(pick.split(":")[0])
    st.markdown(f'<div class="hwr-colored" style="font-size:1.4rem">{colored_text(result.text, claimed)}</div>',
                unsafe_allow_html=True)
    st.markdown(ink_svg(ink, owner, hl), unsafe_allow_html=True)
    return chosen


def feedback(ink: Ink, chosen: str, store_path: Path, key: str) -> None:
    text = st.text_input("Correct text (what you wrote)", value=chosen or "", key=f"fix-{key}")
    c1, c2, c3 = st.columns(3)
    if c1.button("Save to my samples", key=f"save-{key}", disabled=not text.strip()):
        sample = Sample(Ink(ink.strokes, text.strip()), id=f"app-{uuid.uuid4().hex[:12]}", writer="me",
                        split="", source="hwr-app")
        try:
            n = append_samples(store_path, [sample])
            st.session_state["saved_msg"] = f"Saved. {n} samples in {store_path}"
        except (StoreError, InkError, OSError) as e:
            st.session_state["saved_msg"] = f"Could not save: {e}"
        st.rerun()
    c2.download_button("Download InkML", ink_to_inkml(Ink(ink.strokes, text or None)), file_name="ink.inkml",
                       mime="application/inkml+xml", key=f"dl-inkml-{key}")
    c3.download_button("Download JSON", Ink(ink.strokes, text or None).to_json(), file_name="ink.json",
                       mime="application/json", key=f"dl-json-{key}")


@st.fragment
def drawing(rec: Recognizer, cfg: DecoderConfig, store_path: Path) -> None:
    ss = st.session_state
    ss.setdefault("strokes", [])
    ss.setdefault("board_version", 0)
    c1, c2, _ = st.columns([1, 1, 6])
    if c1.button("Clear", key="clear"):
        ss.strokes, ss.board_version = [], ss.board_version + 1
    if c2.button("Undo", key="undo", disabled=not ss.strokes):
        ss.strokes, ss.board_version = ss.strokes[:-1], ss.board_version + 1
    result = board(key=f"board-{ss.board_version}", data={"strokes": ss.strokes, "height": BOARD_HEIGHT},
                   default={"strokes": None}, on_strokes_change=lambda: None)
    sent = getattr(result, "strokes", None)
    if sent is not None:
        ss.strokes = sent
    try:
        ink = ink_from_canvas(ss.strokes)
    except InkError as e:
        st.warning(f"{e}")
        return
    if ink is None:
        st.markdown('<div class="hwr-result" data-strokes="0" style="color:#888">Write a line of text above, '
                    'with a mouse, pen or finger.</div>', unsafe_allow_html=True)
        return
    key = f"{ss.board_version}-{len(ss.strokes)}"
    chosen = show_result(rec, cfg, ink, key)
    if chosen is not None:
        feedback(ink, chosen, store_path, key)
    if ss.get("saved_msg"):
        st.info(ss.pop("saved_msg"))


def upload_panel(rec: Recognizer, cfg: DecoderConfig) -> None:
    with st.expander("Transcribe a file (InkML or JSON ink)"):
        up = st.file_uploader("Ink file", type=["inkml", "xml", "json"], key="upload",
                              help=f"up to {MAX_UPLOAD_BYTES // 1024 // 1024} MB")
        if up is None:
            return
        if up.size > MAX_UPLOAD_BYTES:
            st.error(f"{up.name} is {up.size / 1e6:.1f} MB; the limit is {MAX_UPLOAD_BYTES / 1e6:.0f} MB.")
            return
        try:
            ink = ink_from_upload(up.name, up.getvalue())
        except (InkError, ValueError) as e:
            st.error(f"Cannot read {up.name}: {e}")
            return
        if ink.text:
            unknown = rec.alphabet.unknown(ink.text)
            st.write(f"Label in the file: {ink.text!r}")
            if unknown:
                st.warning("The label uses characters this model cannot write: "
                           + ", ".join(repr(c) for c in sorted(unknown)))
        show_result(rec, cfg, ink, key=f"upload-{up.file_id}")


def main() -> None:
    st.set_page_config(page_title="hwr: handwriting recognition", page_icon="✍️", layout="wide")
    st.title("hwr: write, and read it back")
    rec, cfg, store_path = sidebar()
    if rec is None:
        return
    n_saved = saved_count(store_path)
    st.sidebar.metric("Saved samples", n_saved)
    personal_model_panel(store_path, n_saved)
    drawing(rec, cfg, store_path)
    upload_panel(rec, cfg)


main()
