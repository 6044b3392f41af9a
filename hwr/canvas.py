"""What the browser canvas sends -> an `Ink`, with the checks the app needs.

The drawing component (web/canvas.js) sends the canonical JSON form: a list of strokes,
each with points [x, y, t, pressure] (t in ms from `performance.timeOrigin`, pressure 0..1)
and the pointer type. Browsers can repeat a timestamp or send a coalesced event slightly out
of order, so times are clamped to be non-decreasing here rather than rejected.
"""

from __future__ import annotations

from typing import Any

from .ink import Ink, InkError

MAX_STROKES = 2_000    # a page of a few lines of print; more is not writing by hand
MAX_POINTS = 200_000


def ink_from_canvas(value: Any, text: str | None = None) -> Ink | None:
    """The ink drawn so far, or None when nothing is drawn; raises `InkError` for bad data."""
    if value is None:
        return None
    strokes = value.get("strokes") if isinstance(value, dict) else value
    if strokes is None or strokes == []:
        return None
    if not isinstance(strokes, list):
        raise InkError("canvas data must be a list of strokes")
    strokes = [s for s in strokes if isinstance(s, dict) and s.get("points")]
    if not strokes:
        return None
    if len(strokes) > MAX_STROKES:
        raise InkError(f"{len(strokes)} strokes is more than a page of handwriting ({MAX_STROKES} max); "
                       "clear the canvas and write less")
    ink = Ink.from_json_dict({"strokes": strokes, "text": text})
    if ink.num_points > MAX_POINTS:
        raise InkError(f"{ink.num_points:,} points is too many for one page ({MAX_POINTS:,} max); clear and retry")
    return ink.validate(repair_time="clamp")


MAX_UPLOAD_BYTES = 2 * 1024 * 1024


def ink_from_upload(name: str, data: bytes) -> Ink:
    """An uploaded ink file (any suffix in `inkfile.FILE_SUFFIXES`) -> its one ink, validated.

    Read by `inkfile.read_inks`, as `hwr transcribe` reads it; `InkError` with a one-line reason
    if it cannot be used, and for a file that holds several inks (a JSON Lines file of many lines,
    a store): the app shows one ink at a time, so it names `hwr transcribe`, which reads them all.
    """
    from .inkfile import read_inks
    if len(data) > MAX_UPLOAD_BYTES:
        raise InkError(f"{name} is {len(data) / 1e6:.1f} MB; the limit is {MAX_UPLOAD_BYTES / 1e6:.0f} MB")
    items = list(read_inks(data, name))
    if len(items) != 1:
        raise InkError(f"{name} holds {len(items) or 'no'} inks; upload a file with one ink "
                       "(`hwr transcribe` reads a file of many)")
    ink = items[0].ink
    if isinstance(ink, InkError):
        raise ink
    return ink.validate(repair_time="clamp")


def merge_strokes(known: list, sent: list) -> tuple[list, bool]:
    """(the tab's strokes, whether the board holds them all) after the board sent `sent` at a pen-up.

    The board sends all the strokes it holds. It is given the tab's strokes only when it is
    mounted (the app stops sending them once a pen-up shows the board has them: a line's strokes
    are ~60 kB to resend after every stroke), so normally `sent` is `known` plus the new stroke.
    A board mounted without them sends only the strokes written since: those are appended, and
    False tells the app to mount a board with all of them.
    """
    if sent[:len(known)] == known:
        return sent, True
    return known + sent, False


CHOICES_KEPT = 256  # per browser tab: picked readings and highlighted characters, newest kept


def remember_choice(choices: dict, event) -> None:
    """Keep a result panel's `choose` event ({"key": str, "value": ...}: an alternative, a word's
    reading, a character to highlight) in `choices`, newest last, at most CHOICES_KEPT of them.

    A key names the ink or word it belongs to, so a choice lapses when that is read anew; anything
    that is not such an event (a stale or forged message) is ignored.
    """
    if not (isinstance(event, dict) and isinstance(event.get("key"), str)):
        return
    choices.pop(event["key"], None)
    choices[event["key"]] = event.get("value")
    while len(choices) > CHOICES_KEPT:
        choices.pop(next(iter(choices)))
