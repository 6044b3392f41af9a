"""An ink and its transcription as inline SVG / HTML, coloured by which character wrote what.

The app shows these after every stroke, so they are plain strings (no matplotlib: see
`hwr.render` for PNG files). Character i and the strokes it claims (`recognizer.stroke_owner`)
share the colour `PALETTE[i % len(PALETTE)]`, which is how a reader matches ink to text.

The drawing board (web/canvas.js) shows this HTML under the canvas and makes it clickable: an
element with `data-value` (JSON) inside an element with `data-pick` (a key) sends the app
`{"key": pick, "value": value}`; `choices` and `word_menu` build such groups, and the characters
of `colored_text` carry their index as `data-value` (inside a `data-pick` element, a click on one
highlights its strokes). Every string is
well-formed XML (numeric entities, escaped text), so tests can parse it.
"""

from __future__ import annotations

import html
import json
from collections.abc import Sequence

from .ink import Ink

PALETTE = ["#d62728", "#1f77b4", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf", "#bcbd22"]
INK = "#222"          # strokes no character claims
FADED = "#c8c8c8"     # the other strokes while one character is highlighted
HIGHLIGHT = "#d62728"
PLAIN_TEXT = "#444"   # characters that claim no stroke (spaces, or a character the aligner missed)
MAX_WIDTH = 1100      # display width cap in px; the viewBox keeps the aspect ratio


def char_color(i: int) -> str:
    """The colour of character i (and of its strokes)."""
    return PALETTE[i % len(PALETTE)]


def ink_svg(ink: Ink, owner: Sequence[int] | None = None, highlight: int | None = None, height: int = 120) -> str:
    """The ink as an `<svg>` element `height` px tall, one `<path>` per stroke in stroke order.

    owner: per stroke, the character index that claims it (-1: none), as `stroke_owner` gives;
    strokes take that character's colour. highlight: a character index; its strokes are drawn
    thick in `HIGHLIGHT` and all other claimed strokes faded, to show what that character is.
    """
    pts = ink.points()
    x0, y0 = pts[:, 0].min(), pts[:, 1].min()
    w, h = max(pts[:, 0].max() - x0, 1), max(pts[:, 1].max() - y0, 1)
    scale = (height - 10) / h
    width = int(w * scale + 10)
    paths = []
    for k, s in enumerate(ink.strokes):
        color, line_width = INK, 2.2
        if owner is not None and owner[k] >= 0:
            color = char_color(int(owner[k]))
            if highlight is not None:
                color, line_width = (HIGHLIGHT, 3.5) if owner[k] == highlight else (FADED, 2.0)
        d = " ".join(f"{'M' if i == 0 else 'L'}{(x - x0) * scale + 5:.1f},{(y - y0) * scale + 5:.1f}"
                     for i, (x, y) in enumerate(s.points[:, :2]))
        if len(s) == 1:
            d += " l0.1,0.1"  # a dot: a zero-length path would draw nothing
        paths.append(f'<path d="{d}" stroke="{color}" stroke-width="{line_width}" fill="none" '
                     f'stroke-linecap="round" stroke-linejoin="round"/>')
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{min(width, MAX_WIDTH)}" height="{height}" '
            f'viewBox="0 0 {width} {height}">{"".join(paths)}</svg>')


def colored_text(text: str, claimed: set[int], highlight: int | None = None) -> str:
    """`text` as HTML spans, character i in `char_color(i)` if it claims strokes (i in `claimed`).

    Characters are escaped (the text comes from a model and from users); a space becomes a
    no-break space so a run of them stays visible, and a newline (between the lines of a page)
    becomes `<br/>`. Entities are numeric so the result is also well-formed XML. Each character
    but spaces carries `data-value` (its index) for the board to click; `highlight`'s is checked.
    """
    out = []
    for i, ch in enumerate(text):
        if ch == "\n":
            out.append("<br/>")
            continue
        color = char_color(i) if i in claimed else PLAIN_TEXT
        if ch == " ":
            out.append(f'<span style="color:{color}">&#160;</span>')
        else:
            lit = "true" if i == highlight else "false"  # a radio a keyboard can reach: Tab, then Enter
            out.append(f'<span style="color:{color}" role="radio" tabindex="0" aria-checked="{lit}" '
                       f'data-value="{i}">{html.escape(ch)}</span>')
    return "".join(out)


def _attr(value) -> str:
    """A JSON value as an HTML attribute value (quotes escaped)."""
    return html.escape(json.dumps(value), quote=True)


def choices(pick: str, label: str, options: Sequence[tuple[str, str]], chosen: str, cls: str = "hwr-choices") -> str:
    """A radio group named `label`: one `<label role="radio">` per (value, shown text) option,
    the `chosen` value checked; clicking one sends `{"key": pick, "value": value}`."""
    rows = "".join(f'<label role="radio" tabindex="0" aria-checked="{str(v == chosen).lower()}" data-value="{_attr(v)}">'
                   f'{html.escape(shown)}</label>' for v, shown in options)
    return (f'<div class="{cls}" role="radiogroup" aria-label="{html.escape(label, quote=True)}" '
            f'data-pick="{html.escape(pick, quote=True)}">{rows}</div>')


def word_menu(pick: str, word: str, options: Sequence[tuple[str, str]], chosen: str) -> str:
    """A word as a button (`<details>`) that opens the radio group of its readings; a word with
    one reading is plain text. The button shows the reading picked."""
    shown = html.escape(chosen) or "&#160;"
    if len(options) < 2:
        return f'<span class="hwr-word" aria-disabled="true">{shown}</span>'
    group = choices(pick, f"Readings of {word!r}", options, chosen, cls="hwr-menu")
    return f'<details class="hwr-word"><summary>{shown}</summary>{group}</details>'
