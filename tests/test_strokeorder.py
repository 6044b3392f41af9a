"""i-dots and t-crosses written after the line go back beside their letters (hwr/strokeorder.py)."""

import numpy as np
import pytest

from hwr.errors import ConfigError

from hwr.features import AugmentConfig, FeatureConfig, ink_features, normalised_points
from hwr.ink import Ink, Stroke
from hwr.strokeorder import MAX_LATE, late_mark_order, marks

NO_NOISE = dict(scale=0, shear=0, rotate=0, jitter=0, dropout=0, step_jitter=0, pointer=0)


def stroke(xs, ys) -> Stroke:
    xs, ys = np.asarray(xs, float), np.asarray(ys, float)
    return Stroke(np.stack([xs, ys, np.arange(len(xs), dtype=float), np.full(len(xs), 0.5)], 1))


def written_line(words: int = 8):
    """A line of `words` words written left to right, y growing downward, 1 unit high: each word a
    zigzag, then an i-stem dotted at once, a t-stem crossed at once; a comma after every other word.
    Returns the ink and which strokes are the dots and crosses."""
    strokes, mark = [], []
    for w in range(words):
        x0 = w * 4.0
        strokes.append(stroke(x0 + np.linspace(0, 2, 9), [1, 0, 1, 0, 1, 0, 1, 0, 1]))
        strokes.append(stroke([x0 + 2.4, x0 + 2.4], [0, 1]))             # i
        strokes.append(stroke([x0 + 2.4, x0 + 2.42], [-0.7, -0.72]))     # its dot
        strokes.append(stroke([x0 + 3, x0 + 3], [-0.8, 1]))              # t
        strokes.append(stroke([x0 + 2.7, x0 + 3.3], [-0.5, -0.5]))       # its cross
        mark += [False, False, True, False, True]
        if w % 2:
            strokes.append(stroke([x0 + 3.6, x0 + 3.5], [0.9, 1.3]))     # a comma: low, stays
            mark.append(False)
    return Ink(strokes, "x"), np.array(mark)


def marks_after(ink: Ink, mark: np.ndarray) -> tuple[Ink, np.ndarray]:
    """The same ink with its marks written after the line; and the new order (indices into `ink`)."""
    order = np.concatenate([np.nonzero(~mark)[0], np.nonzero(mark)[0]])
    return Ink([ink.strokes[k] for k in order], ink.text), order


def normalised(ink: Ink):
    """The points as `ink_features` hands them to strokeorder: in writing heights, centred."""
    return normalised_points(ink), ink.stroke_lengths()


def test_marks_are_the_dots_and_crosses_not_the_commas_or_letters():
    ink, mark = written_line()
    assert (marks(*normalised(ink)) == mark).all()


def test_ink_written_in_order_is_left_as_it_is():
    ink, _ = written_line()
    assert late_mark_order(*normalised(ink)) is None


def test_late_marks_go_back_to_their_letters():
    ink, mark = written_line()
    late, order = marks_after(ink, mark)
    back = order[late_mark_order(*normalised(late))]  # as indices into the line written in order
    # the marks of the last words lie within JUMP writing heights of the line's end: they stay at the end
    # in the order written late (a writer who dots a word as soon as it is done; training has those)
    near = back[len(back) - np.argmax(~mark[back][::-1]):]
    assert 0 < len(near) < mark.sum() and mark[near].all() and (np.diff(near) > 0).all()
    # every other mark is back right after its own stem, which is where the line written in order has it
    assert back[:len(back) - len(near)].tolist() == [k for k in range(len(mark)) if k not in set(near.tolist())]
    assert ink.strokes[near[0]].points[0, 0] > max(ink.strokes[k].points[0, 0] for k in np.nonzero(mark)[0] if k not in near)


def test_with_every_mark_far_back_the_features_are_those_of_the_line_written_in_order():
    words, mark = written_line(words=4)
    ink = Ink(words.strokes + [stroke(np.linspace(16, 40, 25), np.arange(25) % 2)], "x")  # a long last word
    late, order = marks_after(ink, np.append(mark, False))
    feats, plain = ink_features(late), ink_features(late, FeatureConfig(late_marks=False))
    assert np.array_equal(feats.values, ink_features(ink).values)
    assert not np.array_equal(feats.values, plain.values)
    # every feature point still names its own point and stroke of the ink as given (for the strokes
    # each character came from)
    owner = np.repeat(np.arange(len(late.strokes)), late.stroke_lengths())
    assert (owner[feats.source_index] == feats.stroke_index).all()
    assert np.array_equal(late.points()[feats.source_index], ink.points()[ink_features(ink).source_index])


def test_a_dot_left_of_its_stem_goes_to_the_nearest_stroke():
    words = [stroke(x0 + np.linspace(0, 2, 9), [1, 0] * 4 + [1]) for x0 in (0.0, 4.0, 8.0, 12.0)]
    stem = stroke([6.6, 6.6], [0, 1])                   # an i between the second and third word
    dot = stroke([6.45, 6.47], [-0.7, -0.7])           # dotted a little left of it, after the line
    ink = Ink(words[:2] + [stem] + words[2:] + [stroke(np.linspace(16, 30, 15), np.arange(15) % 2), dot], "x")
    assert late_mark_order(*normalised(ink)).tolist() == [0, 1, 2, 6, 3, 4, 5]  # after the i, not the word before


def test_training_can_write_the_marks_late_and_the_recognizer_sees_them_as_it_would_at_inference():
    ink, mark = written_line()
    late, _ = marks_after(ink, mark)
    rng = np.random.default_rng(0)
    augmented = ink_features(ink, augment=AugmentConfig(late=1.0, **NO_NOISE), rng=rng)
    assert np.array_equal(augmented.values, ink_features(late).values)
    never = ink_features(ink, augment=AugmentConfig(late=0.0, **NO_NOISE), rng=np.random.default_rng(0))
    assert np.array_equal(never.values, ink_features(ink).values)


def test_a_page_of_dots_is_left_as_written():
    line = [stroke([x, x + 0.5, x + 1], [1, 0, 1]) for x in np.arange(0, 60, 1.5)]  # 40 short letters
    dots = [stroke([x, x + 0.01], [-1.5, -1.5]) for x in np.linspace(0, 50, MAX_LATE + 1)]
    xy, lengths = normalised(Ink(line + dots, "x"))
    assert late_mark_order(xy, lengths) is None
    xy, lengths = normalised(Ink(line + dots[:MAX_LATE], "x"))
    assert late_mark_order(xy, lengths) is not None


def test_a_mark_already_after_its_letter_or_between_two_letters():
    long_word = stroke(np.linspace(0, 40, 81), np.arange(81) % 2)
    dot = stroke([2.0, 2.02], [-0.7, -0.7])  # far left of the ink before it, but over the stroke just written
    assert late_mark_order(*normalised(Ink([long_word, dot], "x"))) is None
    # two strokes under the dot (a word, then a correction over it): the last written is its letter
    words = [stroke(x0 + np.linspace(0, 3, 7), np.arange(7) % 2) for x0 in (0.0, 4.0, 8.0)]
    fix = stroke([1.5, 2.5], [0.5, 0.5])
    tail = stroke(np.linspace(12, 30, 37), np.arange(37) % 2)
    ink = Ink([words[0], words[1], fix, words[2], tail, stroke([2.0, 2.02], [-0.7, -0.7])], "x")
    assert late_mark_order(*normalised(ink)).tolist() == [0, 1, 2, 5, 3, 4]


def test_odd_lines_give_an_order_or_none_never_an_error():
    dots = Ink([stroke([x, x], [0, 0]) for x in (10.0, 0.0, 5.0)], "x")          # marks only
    one = Ink([stroke([0, 1, 2], [0, 1, 0])], "x")                                  # one stroke
    points = Ink([stroke([x], [x % 2]) for x in np.arange(30.0)], "x")             # one-point strokes
    for ink in (dots, one, points):
        order = late_mark_order(*normalised(ink))
        assert order is None or sorted(order.tolist()) == list(range(len(ink.strokes)))
        f = ink_features(ink)
        assert len(f.values) and f.stroke_index.max() < len(ink.strokes)


def test_every_feature_point_names_its_own_point_and_stroke_under_augmentation():
    ink, mark = written_line()
    late, _ = marks_after(ink, mark)
    owner = np.repeat(np.arange(len(late.strokes)), late.stroke_lengths())
    for seed in range(10):
        for augment in (AugmentConfig(late=0.5), AugmentConfig(late=1.0, pointer=1.0, dropout=0.3)):
            f = ink_features(late, augment=augment, rng=np.random.default_rng(seed))
            assert (owner[f.source_index] == f.stroke_index).all()
    for bad in (-0.1, 1.5):
        with pytest.raises(ConfigError, match="between 0 and 1"):
            AugmentConfig(late=bad)
