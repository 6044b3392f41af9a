"""hwr drawing app: write on the canvas, see the transcription after every stroke.

    hwr demo                      # or: streamlit run web/app.py
    HWR_MODEL=runs/x/best.pt hwr demo

A thin shell over the package: strokes -> `hwr.canvas.ink_from_canvas` -> `Recognizer`.
The recognizer is loaded once per process (`st.cache_resource`, thread-safe); each browser
tab keeps its own strokes, results, picks and `LineCache` in `st.session_state`. Line mode reads
one line; page mode gives a taller ruled board whose lines are read (and cached) one by one.

The board component draws the result itself (HTML from `result_view`, shown by web/canvas.js), so
a stroke reruns the board's fragment and changes that one element; the correction box, saving and
downloads are built only while their toggle is on.
"""

from __future__ import annotations

import gc
import html
import time
import zlib
from dataclasses import replace
from functools import partial
from pathlib import Path

import streamlit as st

from hwr.canvas import merge_strokes, remember_choice, MAX_UPLOAD_BYTES, ink_from_canvas, ink_from_upload
from hwr.checkpoint import CheckpointError
from hwr.decode import DecoderConfig
from hwr.exporters import ink_to_inkml
from hwr.errors import InputError
from hwr.feedback import MIN_PERSONAL_SAMPLES, apply_picks, feedback_samples, labelled_lines
from hwr.ink import Ink, InkError, Stroke
from hwr.inkfile import FILE_SUFFIXES
from hwr.paths import feedback_store, personal_root
from hwr.personal import personal_models, run_progress, start_fine_tuning
from hwr.recognizer import LineCache, Recognizer, Result, default_model_path, stroke_owner
from hwr.store import Store, StoreError, append_samples
from hwr.svg import choices, colored_text, ink_svg, word_menu

HERE = Path(__file__).parent
BOARD_HEIGHT = 220    # line mode: one line, baseline at 68% of the height
PAGE_ROWS = 5         # page mode: ruled rows of PAGE_ROW_HEIGHT px, each like a small line board
PAGE_ROW_HEIGHT = 110


@st.cache_resource(show_spinner="Loading the recognizer...")
def load_recognizer(path: str) -> tuple[Recognizer, str | None]:
    """The recognizer and, if its beam search or LM cannot load, why (the app then reads greedily)."""
    rec = Recognizer.load(path, device="cpu")
    cfg, problem = rec.decoder_or_greedy()  # loads the LM now, not on the first stroke
    warm = Ink([Stroke([[0, 0], [10, 10], [20, 0]])])
    for kind in {"greedy", cfg.kind}:
        rec.recognize(warm, decoder=replace(cfg, kind=kind))
    _freeze_once()
    return rec, problem


@st.cache_resource(show_spinner=False)  # a resource: once per process (module globals rerun with the script)
def _freeze_once() -> bool:
    """With torch loaded a full garbage collection takes ~150 ms and holds the GIL, so a stroke's
    last messages wait for it: Streamlit runs one after every script run unless told not to
    (`hwr demo` does: `cli.streamlit_command`), and Python's own collector runs full ones now and
    then. What lives after the first model is loaded (modules, torch) stays alive: moved out of
    the collector's sight, it costs ~0 ms. Collected first, so no garbage is pinned; once per
    process (models loaded later, e.g. personal ones, stay collectable)."""
    gc.collect()
    gc.freeze()
    return True


PANEL = '<div class="hwr-panel" aria-live="polite"></div>'  # the result, drawn by canvas.js from data.view
CSS, JS = (HERE / "canvas.css").read_text(), (HERE / "canvas.js").read_text()
board = st.components.v2.component(
    "hwr_board",
    html='<div class="hwr-board"><canvas aria-label="handwriting canvas"></canvas></div>' + PANEL,
    css=CSS, js=JS,
    isolate_styles=False,  # no shadow root: the page (and browser tests) can see the canvas
)
result_panel = st.components.v2.component(  # an uploaded ink's result: the same panel, no board
    "hwr_result", html=PANEL, css=CSS, js=JS, isolate_styles=False)


# ---------------------------------------------------------------------- sidebar
def sidebar() -> tuple[Recognizer | None, DecoderConfig | None, Path]:
    st.sidebar.header("hwr")
    models = {"shipped model": str(default_model_path())}
    models.update((label, str(path)) for label, path in personal_models(personal_root()).items())
    choice = st.sidebar.selectbox("Model", list(models), key="model_choice")
    try:
        rec, problem = load_recognizer(models[choice])
    except (CheckpointError, FileNotFoundError) as e:
        st.error(f"Cannot load the model: {e}")
        return None, None, feedback_store()
    base = rec.decoder_config
    if problem:
        st.warning(f"Beam search is off, so transcriptions are less accurate: {problem}", icon="⚠️")
        kinds = ["greedy"]
    else:
        kinds = ["beam search + language model", "greedy"] if base.lm else ["beam search", "greedy"]
    kind = st.sidebar.radio("Decoder", kinds, index=0 if base.kind == "beam" and not problem else len(kinds) - 1,
                            key="decoder_kind")
    # the default n-best (DecoderConfig's), whatever the model's decoder.json asks for
    cfg = replace(base, kind="greedy" if kind == "greedy" else "beam", nbest=DecoderConfig.nbest)
    params = rec.info.get("parameters", 0)
    st.sidebar.caption(f"{Path(models[choice]).name}: {params / 1e6:.2f}M parameters, "
                       f"{len(rec.alphabet)} characters")
    store_path = Path(st.sidebar.text_input("Feedback store", str(feedback_store()), key="store_path"))
    return rec, cfg, store_path


def saved_count(path: Path) -> int:
    try:
        with Store(path) as s:
            return len(s)
    except StoreError:
        return 0


def personal_model_panel(store_path: Path, n_saved: int) -> None:
    st.sidebar.subheader("Personal model")
    running = st.session_state.get("personal_run")
    if running:
        progress = run_progress(running)
        st.sidebar.progress(progress.fraction,
                            text=f"fine-tuning: epoch {progress.epochs_done}/{progress.epochs_total}")
        if progress.state == "failed":
            st.sidebar.error("Fine-tuning failed: " + progress.log_tail)
            st.session_state.pop("personal_run")
        elif progress.state == "done":
            st.sidebar.success("Your personal model is ready: pick it under Model.")
            st.session_state.pop("personal_run")
        return
    if n_saved < MIN_PERSONAL_SAMPLES:
        st.sidebar.caption(f"Save {MIN_PERSONAL_SAMPLES - n_saved} more corrected lines to fine-tune a model "
                           "on your handwriting.")
        return
    if st.sidebar.button(f"Fine-tune on my {n_saved} samples"):
        run = start_fine_tuning(store_path, default_model_path(), personal_root())
        st.session_state["personal_run"] = str(run)
        st.rerun()


# ---------------------------------------------------------------------- main panel
RESULTS_KEPT = 16  # per browser tab: the current ink, the previous ones (undo), uploads


def recognized(rec: Recognizer, cfg: DecoderConfig, ink: Ink, layout: str = "page"):
    """(result, ms) for this ink, decoder and layout, read once per tab: picking an alternative,
    highlighting a character or typing a correction reruns the script but not the recognizer.

    The tab's `LineCache` (its keys name the model and decoder settings) makes a stroke on a page
    cost one line: the lines it did not touch come back from the cache.
    """
    ss = st.session_state
    cache = ss.setdefault("results", {})
    lines = ss.setdefault("line_cache", LineCache())
    key = (rec.info["path"], repr(cfg), layout, ink.digest())
    if key not in cache:
        t0 = time.perf_counter()
        result = rec.recognize(ink, decoder=cfg, cache=lines, layout=layout)
        cache[key] = (result, (time.perf_counter() - t0) * 1000)
        while len(cache) > RESULTS_KEPT:
            cache.pop(next(iter(cache)))
    return cache[key]


def _digest(text: str) -> str:
    """A short stable name for a text, for widget keys that must change when the text does."""
    return f"{zlib.crc32(text.encode()):08x}"


def _choose(component: str) -> None:
    """on_choose_change of a result panel: the click kept in the tab's `choices` (`remember_choice`)."""
    remember_choice(st.session_state.setdefault("choices", {}), st.session_state[component].get("choose"))


def _board_key() -> str:
    """The current board's component key: it changes (a new board) after Clear, Undo or a mode switch."""
    return f"board-{st.session_state.board_version}"


def _take_strokes(component: str) -> None:
    """on_strokes_change of the board: the strokes sent at pen-up, before the fragment reruns, so
    the board's data in this run already holds their result.

    The board keeps its strokes itself; its `data` carries them (`show_board`) only until a pen-up
    shows that the board holds all of them (`merge_strokes`, which also recovers a board mounted
    without them). A late message from a board that has been replaced (Clear, Undo, a mode switch)
    is ignored.
    """
    ss = st.session_state
    sent = ss[component].get("strokes")
    if sent is None or component != _board_key():
        return
    ss.strokes, holds_all = merge_strokes(ss.get("strokes", []), sent)
    if holds_all:
        ss.board_synced = component
    else:
        ss.board_version += 1


def word_picks(result: Result, key: str, chosen: dict) -> tuple[list[str], str]:
    """Each word of each line as a button that opens its alternatives, one row per line: the
    reading picked for each of `result.words` (the recognised word until another is picked) and
    the rows' HTML.

    A word's key names its line, its place and its alternatives, so a pick survives the
    strokes written on other lines and is dropped when the word itself is read anew.
    """
    picks, rows = {}, []
    for li in range(len(result.lines)):
        cells = []
        for j, (n, w) in enumerate((n, w) for n, w in enumerate(result.words) if w.line == li):
            alts = [a.text for a in w.alternatives] or [w.text]
            labels = {t: t for t in alts} | {a.text: f"{a.text}   (score {a.score:.1f})" for a in w.alternatives}
            wkey = f"word-{key}-{li}-{j}-{_digest(chr(31).join(alts))}"
            picks[n] = chosen.get(wkey) if chosen.get(wkey) in alts else alts[0]
            cells.append(word_menu(wkey, w.text, [(t, labels[t]) for t in dict.fromkeys(alts)], picks[n]))
        if cells:
            rows.append(f'<div class="hwr-wordrow">{"".join(cells)}</div>')
    html_ = f'<div class="hwr-words">{"".join(rows)}</div>' if rows else ""
    return [picks.get(n, w.text) for n, w in enumerate(result.words)], html_


def result_view(rec: Recognizer, cfg: DecoderConfig, ink: Ink, key: str, view: str = "auto",
                words_key: str | None = None) -> tuple[str, Result | None, str]:
    """The result panel's HTML (text, alternatives, coloured text and strokes per character), the
    result and the text for the correction box; for an ink that cannot be read, HTML that says
    why, None and "".

    view "line": the ink read as one line, with whole-line alternatives (line mode, as before
    pages). "page": cut into lines, one row per line, per-word alternatives (keys from
    `words_key`, default `key`). "auto" (uploads): cut into lines, shown as a page if it has several.
    Picks and the highlighted character come from the tab's `choices` (`_choose`).
    """
    n = len(ink)
    try:
        result, ms = recognized(rec, cfg, ink, layout="line" if view == "line" else "page")
    except (InkError, ValueError) as e:
        return (f'<div class="hwr-result hwr-problem" data-strokes="{n}">Cannot read this ink: '
                f'{html.escape(str(e))}</div>'), None, ""
    picked = st.session_state.setdefault("choices", {})
    page = view == "page" or (view == "auto" and len(result.lines) > 1)
    caption = f"recognised in {ms:.0f} ms with {cfg.kind} decoding, {n} strokes"
    if page:
        rows = "".join(f'<div class="hwr-line">{html.escape(line.text) or "&#160;"}</div>' for line in result.lines)
        head = f'<div class="hwr-result" data-strokes="{n}" data-lines="{len(result.lines)}">{rows or "&#160;"}</div>'
        caption += f", {len(result.lines)} lines; click a word for other readings"
        picks, menus = word_picks(result, words_key or key, picked)
        chosen = apply_picks(result.text, result.words, picks)
    else:
        head = f'<div class="hwr-result" data-strokes="{n}">{html.escape(result.text) or "&#160;"}</div>'
        options = list(dict.fromkeys(h.text for h in result.candidates))
        scores = {h.text: h.score for h in reversed(result.candidates)}  # a text's best score
        alt_key = f"alt-{key}"
        chosen = picked.get(alt_key) if picked.get(alt_key) in options else (options[0] if options else "")
        menus = choices(alt_key, "Alternatives", [(t, f"{t!r}   (score {scores[t]:.1f})") for t in options],
                        chosen) if options else ""
    owner = stroke_owner(result.char_spans, n)
    claimed = {int(o) for o in owner if o >= 0}
    hl_key = f"hl-{key}"
    hl = picked.get(hl_key)
    hl = hl if isinstance(hl, int) and 0 <= hl < len(result.text) else None
    caption += "; click a character to see its strokes"
    colored = (f'<div class="hwr-colored" role="radiogroup" aria-label="Show the strokes of a character" '
               f'data-pick="{html.escape(hl_key, quote=True)}" data-toggle="1">{colored_text(result.text, claimed, hl)}</div>')
    svg = ink_svg(ink, owner, hl, height=120 if len(result.lines) <= 1 else min(100 * len(result.lines), 500))
    return head + f'<div class="hwr-caption">{caption}</div>' + menus + colored + svg, result, chosen


def _save(store_path: Path, inks: list[Ink]) -> None:
    """Append labelled inks to the feedback store; the outcome is shown after the rerun."""
    samples = feedback_samples(inks)
    try:
        n = append_samples(store_path, samples)
        st.session_state["saved_msg"] = f"Saved. {n} samples in {store_path}"
    except (StoreError, InkError, OSError) as e:
        st.session_state["saved_msg"] = f"Could not save: {e}"


def feedback(ink: Ink, result: Result, chosen: str, store_path: Path, key: str) -> None:
    """The correction box, saving and downloads, built only while their toggle (above the board)
    is on: closed, a stroke changes nothing here, so the page settles as soon as the board shows
    its result. A page of several lines is corrected one text line per written line and saved as
    one sample per line (`feedback.labelled_lines`)."""
    # the key follows `chosen`: a keyed box keeps its old text when only its value changes
    fix_key = f"fix-{key}-{_digest(chosen)}"
    several = len(result.lines) > 1
    if several:
        text = st.text_area("Correct text (what you wrote), one line per written line", value=chosen, key=fix_key,
                            height=40 + 28 * len(result.lines))
    else:
        text = st.text_input("Correct text (what you wrote)", value=chosen or "", key=fix_key)
    c1, c2, c3 = st.columns(3)
    if c1.button("Save to my samples", key="save", disabled=not text.strip()):
        try:
            _save(store_path, labelled_lines(ink, result.lines, text) if several else [Ink(ink.strokes, text.strip())])
        except InputError as e:
            st.session_state["saved_msg"] = f"Not saved: {e}."
        st.rerun()
    c2.download_button("Download InkML", ink_to_inkml(Ink(ink.strokes, text or None)), file_name="ink.inkml",
                       mime="application/inkml+xml", key="dl-inkml", on_click="ignore")
    c3.download_button("Download JSON", Ink(ink.strokes, text or None).to_json(), file_name="ink.json",
                       mime="application/json", key="dl-json", on_click="ignore")


def _take_pending_strokes() -> None:
    """A stroke sent just before a click reaches the server in the same rerun, and widget
    callbacks run before the board's: take it first, or Undo would drop two strokes and a mode
    switch one (the board they name is replaced, so its message would be ignored)."""
    if _board_key() in st.session_state:
        _take_strokes(_board_key())


def _clear() -> None:
    ss = st.session_state
    ss.strokes, ss.board_version, ss.cleared = [], ss.board_version + 1, ss.cleared + 1


def _undo() -> None:
    _take_pending_strokes()
    ss = st.session_state
    if ss.strokes:
        ss.strokes, ss.board_version = ss.strokes[:-1], ss.board_version + 1


def _switch_mode() -> None:
    """A fresh board of the other size, the strokes kept; a new key, so the old board's last
    value cannot come back and overwrite strokes written since."""
    _take_pending_strokes()
    st.session_state.board_version += 1


def board_controls() -> None:
    """Clear, Undo, line or page mode, and the correction toggle: outside the board's fragment, so
    a stroke's rerun sends the board alone (each widget re-sent is a message the server writes
    while the stroke is read, and the browser renders before the result). Their callbacks change
    the tab's state before the page reruns. Undo stays enabled (with no strokes it does nothing):
    strokes arrive in fragment reruns, which do not redraw the widgets out here."""
    ss = st.session_state
    ss.setdefault("strokes", [])
    ss.setdefault("board_version", 0)  # a new board (new key) after Clear, Undo or a mode switch
    ss.setdefault("cleared", 0)        # word picks belong to one page: Clear starts another
    c1, c2, c3, c4 = st.columns([1, 1, 2, 4], vertical_alignment="center")
    c1.button("Clear", key="clear", on_click=_clear)
    c2.button("Undo", key="undo", on_click=_undo)
    c3.radio("Mode", ["Line", "Page"], key="mode", horizontal=True, label_visibility="collapsed",
             help="Page: a taller board with ruled lines, read line by line", on_change=_switch_mode)
    c4.toggle("Correct, save or download", key="fix_open")


@st.fragment
def drawing(rec: Recognizer, cfg: DecoderConfig, store_path: Path) -> None:
    """The board and its result; a stroke reruns this fragment alone. The board's component
    shows the result itself, so a stroke changes one element of the page."""
    ss = st.session_state
    mode, fix_open = ss.mode, ss.fix_open
    page = mode == "Page"
    height, rows = (PAGE_ROWS * PAGE_ROW_HEIGHT, PAGE_ROWS) if page else (BOARD_HEIGHT, 1)
    board_key = _board_key()
    problem, shown = None, None
    try:
        ink = ink_from_canvas(ss.strokes)
    except InkError as e:
        problem, ink = str(e), None
    key = f"{ss.board_version}-{len(ss.strokes)}"
    if problem:
        view = f'<div class="hwr-result hwr-problem" data-strokes="{len(ss.strokes)}">{html.escape(problem)}</div>'
    elif ink is None:
        hint = "Write lines of text above, one on each ruled line," if page else "Write a line of text above,"
        view = f'<div class="hwr-result hwr-hint" data-strokes="0">{hint} with a mouse, pen or finger.</div>'
    else:
        try:
            view, result, chosen = result_view(rec, cfg, ink, key, view=mode.lower(), words_key=f"page{ss.cleared}")
        except Exception:  # a bug: the board (and the strokes on it) stays, the traceback shows below it
            show_board(board_key, height, rows, f'<div class="hwr-result hwr-problem" data-strokes="{len(ss.strokes)}">'
                                                'This ink could not be read: the error is shown below.</div>')
            raise
        shown = (result, chosen) if result is not None else None
    show_board(board_key, height, rows, view)
    if problem:
        st.warning(problem)
    if shown is not None and fix_open:
        feedback(ink, *shown, store_path, key)
    if ss.get("saved_msg"):
        st.info(ss.pop("saved_msg"))


def show_board(board_key: str, height: int, rows: int, view: str) -> None:
    """The drawing board and `view` (the result panel's HTML) under it; the tab's strokes go along
    until the board has shown it holds them (`_take_strokes`)."""
    data = {"height": height, "rows": rows, "view": view}
    if st.session_state.get("board_synced") != board_key:
        data["strokes"] = st.session_state.strokes
    board(key=board_key, data=data, default={"strokes": None}, on_strokes_change=partial(_take_strokes, board_key),
          on_choose_change=partial(_choose, board_key))


def upload_panel(rec: Recognizer, cfg: DecoderConfig) -> None:
    with st.expander("Transcribe a file (InkML or JSON ink)"):
        up = st.file_uploader("Ink file", type=[s.lstrip(".") for s in FILE_SUFFIXES], key="upload",
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
            st.text(f"Label in the file: {ink.text!r}")  # plain text: a label is the file's, not Markdown to render
            if unknown:
                st.warning("The label uses characters this model cannot write: "
                           + ", ".join(repr(c) for c in sorted(unknown)))
        key = f"upload-{up.file_id}"
        view, _, _ = result_view(rec, cfg, ink, key)  # several lines: shown as a page
        result_panel(key=key, data={"view": view}, on_choose_change=partial(_choose, key))


def main() -> None:
    st.set_page_config(page_title="hwr: handwriting recognition", page_icon="✍️", layout="wide")
    st.title("hwr: write, and read it back")
    rec, cfg, store_path = sidebar()
    if rec is None:
        return
    n_saved = saved_count(store_path)
    st.sidebar.metric("Saved samples", n_saved)
    personal_model_panel(store_path, n_saved)
    board_controls()
    drawing(rec, cfg, store_path)
    upload_panel(rec, cfg)


main()
