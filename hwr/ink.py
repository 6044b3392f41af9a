"""Digital ink: strokes of timed points, with validation and the canonical JSON form.

An `Ink` is what every part of hwr passes around: importers produce it, the store keeps it,
features consume it, the canvas sends it. A stroke's points are one float64 array of shape
(n, 4) with channels x, y, t (milliseconds) and pressure; a missing channel is NaN, so one
layout serves tablets with pressure and mice without timing. y grows downward, as on a screen
(importers turn an upward y round): the features tell an i-dot from a comma by it.
"""

from __future__ import annotations

import hashlib
import json
import math
import numbers
import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .errors import HwrError

CHANNELS = ("x", "y", "t", "pressure")
POINTER_TYPES = ("", "pen", "mouse", "touch")  # index = code stored in HDF5; "" = unknown
MAX_ABS_COORD = 1e7


class InkError(HwrError, ValueError):
    """An ink that cannot be used as it is; the message says what to fix."""


@dataclass
class Stroke:
    """One pen-down to pen-up trace. `points` is float64 (n, 4): x, y, t, pressure."""

    points: np.ndarray
    pointer_type: str = ""

    def __post_init__(self) -> None:
        pts = np.asarray(self.points, dtype=np.float64)
        if pts.ndim != 2 or pts.shape[1] not in (2, 3, 4):
            raise InkError(f"stroke points must have shape (n, 2..4), got {pts.shape}")
        if pts.shape[1] < 4:  # pad missing t / pressure with NaN
            pad = np.full((len(pts), 4 - pts.shape[1]), np.nan)
            pts = np.concatenate([pts, pad], axis=1)
        self.points = pts
        if self.pointer_type is None:
            self.pointer_type = ""
        if self.pointer_type not in POINTER_TYPES:
            raise InkError(f"unknown pointer_type {self.pointer_type!r}; use pen, mouse or touch")

    def __len__(self) -> int:
        return len(self.points)

    @classmethod
    def trusted(cls, points: np.ndarray, pointer_type: str = "") -> Stroke:
        """A stroke from an array already float64 (n, 4) with a known pointer type, unchecked:
        the store's read path makes thousands per second and its data was validated on write."""
        s = cls.__new__(cls)
        s.points = points
        s.pointer_type = pointer_type
        return s

    @property
    def xy(self) -> np.ndarray:
        return self.points[:, :2]

    @property
    def has_time(self) -> bool:
        return bool(len(self.points)) and not np.isnan(self.points[:, 2]).any()


@dataclass
class Ink:
    """A list of strokes, optionally labelled with the text it shows."""

    strokes: list[Stroke] = field(default_factory=list)
    text: str | None = None

    def __len__(self) -> int:
        return len(self.strokes)

    @property
    def num_points(self) -> int:
        return sum(len(s) for s in self.strokes)

    def points(self) -> np.ndarray:
        """All points concatenated, float64 (N, 4)."""
        if not self.strokes:
            return np.zeros((0, 4))
        return np.concatenate([s.points for s in self.strokes], axis=0)

    def digest(self) -> str:
        """A short fingerprint of the strokes (not the label): equal inks, equal digests.

        Lets a caller reuse a result for ink it has already read (the app reruns on every click).
        """
        h = hashlib.blake2b(digest_size=16)
        h.update(self.stroke_lengths().astype(np.int64).tobytes())
        h.update(np.ascontiguousarray(self.points(), dtype=np.float64).tobytes())
        return h.hexdigest()

    def stroke_lengths(self) -> np.ndarray:
        return np.array([len(s) for s in self.strokes], dtype=np.int64)

    @classmethod
    def from_arrays(cls, points: np.ndarray, stroke_lengths, text: str | None = None,
                    pointer_types=None) -> Ink:
        """Inverse of `points()` + `stroke_lengths()`."""
        bounds = np.concatenate([[0], np.cumsum(stroke_lengths)]).astype(np.int64)
        if bounds[-1] != len(points):
            raise InkError(f"stroke lengths sum to {bounds[-1]} but there are {len(points)} points")
        types = pointer_types if pointer_types is not None else [""] * (len(bounds) - 1)
        points = np.asarray(points, dtype=np.float64)
        if points.ndim != 2 or points.shape[1] != 4:
            return cls([Stroke(points[a:b], types[i]) for i, (a, b) in enumerate(zip(bounds[:-1], bounds[1:]))], text)
        parts = np.split(points, bounds[1:-1])
        return cls([Stroke.trusted(p, t) for p, t in zip(parts, types)], text)

    # ----------------------------------------------------------------- validation
    def validate(self, repair_time: str | None = None) -> Ink:
        """Raise `InkError` for inks no recognizer should see; return self.

        Checks: at least one stroke, no empty stroke, finite x/y within +-1e7, finite t where
        given, and time that never runs backwards. By default a backwards clock is reported;
        `repair_time="sort"` sorts points (and strokes) by time, `"clamp"` keeps the recorded
        point order and raises each bad timestamp to its predecessor's (right for devices whose
        clock glitches while the pen order is trustworthy, as in IAM-OnDB).
        """
        if not self.strokes:
            raise InkError("ink is empty: it has no strokes")
        lengths = self.stroke_lengths()
        if (lengths == 0).any():
            raise InkError(f"stroke {int(np.argmax(lengths == 0))} has no points")
        pts = self.points()
        starts = np.cumsum(lengths) - lengths

        def stroke_of(point_index: int) -> int:
            return int(np.searchsorted(starts, point_index, side="right") - 1)

        bad = ~np.isfinite(pts[:, :2]).all(axis=1)
        if bad.any():
            raise InkError(f"stroke {stroke_of(np.argmax(bad))} has non-finite x/y coordinates (NaN or inf)")
        with np.errstate(invalid="ignore"):
            bad = (np.abs(pts[:, [0, 1, 3]]) > MAX_ABS_COORD).any(axis=1)
        if bad.any():
            raise InkError(f"stroke {stroke_of(np.argmax(bad))} has a coordinate beyond +-{MAX_ABS_COORD:g}; "
                           "rescale the ink")
        t = pts[:, 2]
        missing = np.isnan(t)
        if missing.all():
            return self
        if missing.any() or not np.isfinite(t).all() or (np.abs(t) > 1e14).any():
            raise InkError("timestamps are missing, infinite or absurd for some points; give all or none")
        back = np.diff(t) < 0
        if back.any():
            if repair_time is None:
                raise InkError(f"time runs backwards in stroke {stroke_of(np.argmax(back) + 1)}; ask for a "
                               "repair (--repair-time sort|clamp) or fix the timestamps")
            self.repair_time(repair_time)
        return self

    def repair_time(self, how: str) -> None:
        """Make time non-decreasing, by "sort" (reorder points) or "clamp" (fix timestamps)."""
        if how == "sort":
            for s in self.strokes:
                if not np.isnan(s.points[:, 2]).all():
                    s.points = s.points[np.argsort(s.points[:, 2], kind="stable")]
            self.strokes.sort(key=lambda s: -math.inf if np.isnan(s.points[0, 2]) else s.points[0, 2])
        elif how == "clamp":
            prev = -math.inf
            for s in self.strokes:
                t = s.points[:, 2]
                if not np.isnan(t).all():
                    s.points[:, 2] = np.maximum.accumulate(np.maximum(t, prev))
                    prev = s.points[-1, 2]
        else:
            raise ValueError(f"repair_time must be 'sort' or 'clamp', not {how!r}")

    # ----------------------------------------------------------------- JSON
    def to_json_dict(self) -> dict[str, Any]:
        """The canonical JSON form (also what the canvas sends); NaN becomes null."""
        def num(v: float):
            return None if math.isnan(v) else (int(v) if float(v).is_integer() else float(v))

        out: dict[str, Any] = {"strokes": [
            {"points": [[num(v) for v in p] for p in s.points.tolist()], "pointer_type": s.pointer_type or None}
            for s in self.strokes]}
        if self.text is not None:
            out["text"] = self.text
        return out

    def to_json(self) -> str:
        return json.dumps(self.to_json_dict(), separators=(",", ":"), ensure_ascii=False)

    @classmethod
    def from_json_dict(cls, obj: Any) -> Ink:
        """Parse the canonical JSON form; raise `InkError` with the first problem found.

        Coordinates must be JSON numbers: booleans, strings ("12px") and non-finite values
        (NaN, Infinity, 1e999) are refused, not converted; t and pressure may be null.
        """
        if not isinstance(obj, dict) or not isinstance(obj.get("strokes"), list):
            raise InkError('ink JSON must be an object with a "strokes" list')
        strokes = []
        for i, s in enumerate(obj["strokes"]):
            pts = s.get("points") if isinstance(s, dict) else None
            if not isinstance(pts, list):
                raise InkError(f'stroke {i} must be an object with a "points" list')
            rows = []
            for p in pts:
                if not isinstance(p, list) or not 2 <= len(p) <= 4:
                    raise InkError(f"stroke {i}: each point must be [x, y, t, pressure] (t, pressure may be null)")
                rows.append([_json_number(v, k >= 2, i) for k, v in enumerate(p)] + [math.nan] * (4 - len(p)))
            arr = np.array(rows, dtype=np.float64).reshape(-1, 4)
            pointer_type = s.get("pointer_type") or ""
            if not isinstance(pointer_type, str):
                raise InkError(f'stroke {i}: "pointer_type" must be a string (pen, mouse or touch)')
            strokes.append(Stroke(arr, pointer_type))
        text = obj.get("text")
        if text is not None:
            text = check_text(text, '"text"')
        return cls(strokes, text)

    @classmethod
    def from_json(cls, s: str) -> Ink:
        """Parse canonical JSON text; `InkError` for anything that is not (NaN and nesting included)."""
        return cls.from_json_dict(loads_json(s))


def loads_json(text: str) -> Any:
    """`json.loads` for untrusted text: `InkError` in one line for bad JSON, NaN/Infinity, huge
    integers and nesting deep enough to exhaust the stack."""
    try:
        return json.loads(text, parse_constant=_no_json_constant)
    except RecursionError:
        raise InkError("JSON nested too deeply") from None
    except ValueError as e:  # JSONDecodeError, NaN/Infinity, an integer of over 4,300 digits
        raise InkError(f"unreadable JSON ({' '.join(str(e).split())[:100]})") from None


_BAD_TEXT = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff\ufffe\uffff]")


def check_text(value: Any, what: str) -> str:
    """`value` if it is text a store and an InkML file can hold; else `InkError` naming `what`.

    Refused: non-strings, control characters other than tab and newline (a NUL cannot be
    stored, and most cannot be written to XML; XML reads \r back as \n), U+FFFE/U+FFFF (not
    XML characters) and lone surrogates (not encodable as UTF-8).
    """
    if not isinstance(value, str):
        raise InkError(f"{what} must be a string, not {type(value).__name__}")
    bad = _BAD_TEXT.search(value)
    if bad:
        raise InkError(f"{what} holds the control character U+{ord(bad.group()):04X} at position "
                       f"{bad.start()}; remove it")
    return value


def _no_json_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _json_number(v: Any, optional: bool, stroke: int) -> float:
    """One point value of the JSON form as a float; `InkError` unless it is a finite number."""
    if v is None and optional:
        return math.nan
    if type(v) is not float and type(v) is not int and (isinstance(v, bool) or not isinstance(v, numbers.Real)):
        if v is None:
            raise InkError(f"stroke {stroke}: a point's x or y is null; only t and pressure may be")
        what = repr(v[:20]) if isinstance(v, str) else type(v).__name__
        raise InkError(f"stroke {stroke}: a point holds {what}, not a number; coordinates are JSON numbers")
    try:
        f = float(v)
    except OverflowError:
        f = math.inf
    if not math.isfinite(f):
        raise InkError(f"stroke {stroke}: a point holds {'a huge number' if math.isinf(f) else 'NaN'}, "
                       "not a finite number")
    return f
