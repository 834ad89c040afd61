"""How coarse a volume really is: levels from hand-made quality maps (gaps at the ends, one exact
slice, previews, slices without a frame), and the same through a real ProgressiveVolume."""
from __future__ import annotations

import numpy as np
import pytest

from ProgressiveDicomFetchLib.volume import ProgressiveVolume, Quality, coarseness, coarsest, describe, level_name

pytestmark = pytest.mark.compat  # also run on Slicer 5.8's stack (Makefile)

M, F, S, L, X = Quality.MISSING, Quality.FILLED, Quality.SUBRESOLUTION, Quality.LOSSY, Quality.FULL


def qualities(n: int, exact=(), previews=(), filled=True) -> np.ndarray:
    values = np.full(n, F if filled else M, np.int8)
    values[list(previews)] = S
    values[list(exact)] = X
    return values


def test_one_exact_slice_copied_everywhere_is_not_coarse_level_but_covered():
    c = coarseness(qualities(220, exact=[110]))
    assert (c.gap, c.level, c.refined, c.slices) == (110, None, 1, 220)  # the run after 110 is 109, before it 110
    assert describe(c) == "gap 110 sl" and describe(c, 1.5) == "gap 110 sl (166 mm)"


def test_no_exact_slice_at_all():
    c = coarseness(qualities(50))
    assert (c.gap, c.level, c.refined) == (50, None, 0)
    assert describe(c) == "no exact slice"


@pytest.mark.parametrize("step, level, refined", [(8, 8, 200), (4, 4, 200), (2, 2, 200), (1, 1, 200),
                                                   (9, None, 23 + 1)])  # 23 exact, and 199 after the last (198)
def test_every_nth_slice_exact_gives_that_level(step, level, refined):
    c = coarseness(qualities(200, exact=range(0, 200, step)))
    assert (c.level, c.gap, c.refined) == (level, step - 1, refined)


def test_gaps_at_the_ends_count_like_gaps_between():
    # every 4th slice exact from 3 on: the first run (0..2) is 3 long, the last (after 199 - nothing)
    assert coarseness(qualities(200, exact=range(3, 200, 4))).level == 4
    # the same without the first 8 slices: a run of 8+3 at the start -> coarser than 1/8
    c = coarseness(qualities(200, exact=range(11, 200, 4)))
    assert (c.gap, c.level) == (11, None)
    # exact slices 0..191 every 2nd, nothing after 190: a run of 9 at the end
    c = coarseness(qualities(200, exact=range(0, 191, 2)))
    assert (c.gap, c.level) == (9, None) and c.refined == 200 - 9
    # the end run is 7: still every 8th slice exact
    assert coarseness(qualities(200, exact=list(range(0, 191, 2)) + [198])).level == 8


def test_level_does_not_depend_on_which_slices_the_plan_chose():
    shifted = coarseness(qualities(100, exact=range(5, 100, 8)))  # 5, 13, ..., 93: ends 5 and 6
    assert shifted.level == 8
    irregular = coarseness(qualities(100, exact=[0, 7, 15, 22, 30, 37, 45, 52, 60, 67, 75, 82, 90, 97, 99]))
    assert irregular.gap == 7 and irregular.level == 8


def test_previews_have_their_own_level_and_never_count_as_exact():
    c = coarseness(qualities(64, previews=range(0, 64, 4)))
    assert (c.level, c.preview_level, c.preview_gap, c.previews) == (None, 4, 3, 16)
    assert describe(c) == "no exact slice, previews 1/4"
    c = coarseness(qualities(64, exact=range(0, 64, 8), previews=range(64)))
    assert (c.level, c.preview_level, c.previews) == (8, 1, 56)
    assert describe(c) == "1/8, previews all"
    lossy = qualities(64, exact=range(0, 64, 2))
    lossy[1::2] = L
    c = coarseness(lossy)
    assert (c.level, c.preview_level) == (2, 1)
    assert describe(coarseness(qualities(64, exact=range(64)))) == "exact"


def test_slices_without_a_frame_are_left_out():
    values = qualities(20, exact=[k for k in range(20) if k != 9])
    present = [k != 9 for k in range(20)]
    assert coarseness(values).level == 2  # the gap slice counted: never exact
    c = coarseness(values, present)
    assert (c.level, c.slices, c.refined) == (1, 19, 19)


def test_a_series_is_as_coarse_as_its_coarsest_volume():
    c = coarsest([coarseness(qualities(40, exact=range(40))), coarseness(qualities(30, exact=range(0, 30, 4)))])
    assert (c.level, c.gap, c.slices, c.refined) == (4, 3, 70, 70)
    assert coarsest([]).level is None
    assert [level_name(n) for n in (1, 2, 4, 8, None)] == ["exact", "1/2", "1/4", "1/8", "< 1/8"]


def test_a_real_volume_reports_its_level_as_slices_arrive():
    volume = ProgressiveVolume((33, 4, 4), np.int16)
    levels = [volume.coarseness().level]
    for k in [16, 0, 32]:  # anchors: covered, but nowhere near every 8th slice
        volume.write_slice(k, np.full((4, 4), k, np.int16))
    assert volume.covered and volume.coarseness().gap == 15
    for step in (8, 4, 2, 1):
        for k in range(0, 33, step):
            volume.write_slice(k, np.full((4, 4), k, np.int16))
        levels.append(volume.coarseness().level)
    assert levels == [None, 8, 4, 2, 1]
    volume.write_slice(5, np.zeros((4, 4), np.int16), Quality.FULL)  # refused: already FULL
    assert volume.coarseness().refined == 33
