"""Scheduling decisions, unit-tested deterministically: no threads, no network, a simulated pool."""
from __future__ import annotations

from collections import deque

import pytest

from ProgressiveDicomFetchLib.engine.focus_policy import FocusPolicy, Shown, floor_stage
from ProgressiveDicomFetchLib.engine.scheduler import DEPTH_FIRST, Scheduler
from ProgressiveDicomFetchLib.engine.stage_plan import Part, Pick, Stage, StagePlan

pytestmark = pytest.mark.compat  # also run on Slicer 5.8's stack (Makefile)


def run(scheduler, connections, steps=None, on_step=None):
    """Hand out work to `connections` slots, finishing the oldest first; returns the assignments in order."""
    in_flight, handed = deque(), []
    step = 0
    while True:
        while len(in_flight) < connections:
            assignment = scheduler.next()
            if assignment is None:
                break
            in_flight.append(assignment)
            handed.append(assignment)
        if not in_flight or (steps is not None and step >= steps):
            return handed
        scheduler.done(in_flight.popleft())
        step += 1
        if on_step:
            on_step(step)


def three_series(strategy="breadth-first", connections=4, sizes=(40, 24, 16), **options):
    scheduler = Scheduler(connections, strategy, **options)
    for name, size in zip("ABC", sizes):
        scheduler.add(name, [(size, range(size))])
    return scheduler


def test_stage_plan_default():
    plan = StagePlan()
    assert plan.stage_ids() == ["preview-every-4", "preview-rest", "anchors", "every-8", "every-4", "every-2", "rest"]
    assert StagePlan.parse(str(plan)) == plan and str(plan) == "preview-4,anchors,8,4,2"
    stages = plan.assign(range(17))  # full-quality fetches come after the two preview stages
    assert sorted(k for k, s in stages.items() if s == 2) == [0, 8, 16]
    assert sorted(k for k, s in stages.items() if s == 4) == [4, 12]
    assert sorted(k for k, s in stages.items() if s == 6) == [1, 3, 5, 7, 9, 11, 13, 15]
    assert sorted(k for k, s in StagePlan().assign(range(17), viewed=5).items() if s == 2) == [0, 5, 8, 16]
    previews = plan.assign(range(17), part=Part.PREVIEW)
    assert sorted(k for k, s in previews.items() if s == 0) == [0, 4, 8, 12, 16] and len(previews) == 17
    assert set(previews.values()) == {0, 1}
    assert StagePlan.parse("8,4").stage_ids() == ["every-8", "every-4", "rest"]
    assert StagePlan.parse("anchors,8,4,2").assign(range(5), part=Part.PREVIEW) == {}
    assert StagePlan.parse("preview,8").stage_ids() == ["preview-rest", "every-8", "rest"]
    for bad in ("anchors,2,4", "preview-1,8", "preview-x", "preview-2,preview-4", "8,8"):
        with pytest.raises(ValueError):
            StagePlan.parse(bad)


def test_stages_are_records_of_which_slices_and_how_fetched():
    plan = StagePlan.parse("preview-8,anchors,4")
    assert plan.stages == (Stage(Pick.EVERY, Part.PREVIEW, 8), Stage(Pick.REST, Part.PREVIEW), Stage(Pick.ANCHORS),
                           Stage(Pick.EVERY, Part.WHOLE, 4), Stage(Pick.REST))
    for text in ("preview,8", "none", "anchors", "preview-4,anchors,8,4,2", "8,anchors"):
        assert str(StagePlan.parse(text)) == text and StagePlan.parse(str(StagePlan.parse(text))) == StagePlan.parse(text)
    # A plan built from records: anchors after the every-8 pass; the scheduler hands out what the records say.
    plan = StagePlan((Stage(Pick.EVERY, step=8), Stage(Pick.ANCHORS), Stage(Pick.REST)))
    assert plan.stage_ids() == ["every-8", "anchors", "rest"] and not plan.has_previews
    scheduler = Scheduler(1, plan=plan)
    scheduler.add("A", [(17, range(17))])
    handed = []
    while (assignment := scheduler.next()) is not None:
        handed.append((assignment.stage, assignment.k, assignment.part))
        scheduler.done(assignment)
    assert [stage for stage, _, _ in handed] == sorted(stage for stage, _, _ in handed)  # stage by stage
    assert sorted(k for stage, k, _ in handed if stage == 0) == [0, 8, 16]
    assert not [k for stage, k, _ in handed if stage == 1]  # middle, first and last were all in every-8
    assert sorted(k for stage, k, _ in handed) == list(range(17)) and {part for _, _, part in handed} == {Part.WHOLE}
    assert scheduler.current_stage("A") is None
    with pytest.raises(ValueError, match="previews first"):
        StagePlan((Stage(Pick.REST), Stage(Pick.REST, Part.PREVIEW)))


def test_breadth_first_gives_every_series_its_coarse_stages_before_any_refines():
    scheduler = three_series()
    handed = run(scheduler, 4)
    assert len(handed) == 40 + 24 + 16
    for index, assignment in enumerate(handed):
        queued_lower = [a for a in handed[index + 1:] if a.stage < assignment.stage]
        assert not queued_lower, f"{assignment} handed out before lower-stage work {queued_lower[:2]}"
    first_anchor = {name: min(i for i, a in enumerate(handed) if a.series == name) for name in "ABC"}
    last = {name: max(i for i, a in enumerate(handed) if a.series == name) for name in "ABC"}
    assert max(first_anchor.values()) < min(last.values()), "a series completed before every series had a preview"


def test_breadth_first_shares_connections_evenly():
    scheduler = three_series(connections=3, sizes=(64, 64, 64))
    run(scheduler, 3, steps=30)
    counts = [scheduler.in_flight(name) for name in "ABC"]
    assert counts == [1, 1, 1]


def test_depth_first_finishes_series_in_the_order_given():
    handed = run(three_series(DEPTH_FIRST), 4)
    series_order = [a.series for a in handed]
    assert series_order == sorted(series_order)  # all of A, then all of B, then all of C


@pytest.mark.parametrize("floor", [False, True])
def test_focus_takes_every_free_connection_until_its_series_is_queued_out(floor):
    scheduler = three_series(policy=FocusPolicy(coverage_floor=floor))
    run(scheduler, 4, steps=10)  # mid-way: every series still has work queued, A's floor too
    scheduler.set_focus("B")
    following = []
    while scheduler.queued("B"):
        assignment = scheduler.next()
        following.append(assignment)
        scheduler.done(assignment)
    others = [i for i, a in enumerate(following) if a.series != "B"]
    if floor:  # the others' first coarse volume first, then B alone
        assert others and all(following[i].stage <= floor_stage(StagePlan()) for i in others)
        following = following[max(others) + 1:]
    else:
        assert not others
    assert len(following) > 10 and all(a.series == "B" for a in following)
    assert scheduler.next().series != "B"  # then the others get the connections back


def test_focus_share_leaves_the_rest_to_the_others():
    scheduler = three_series(connections=4, focus_share=0.5, sizes=(64, 64, 64))
    scheduler.set_focus("C")
    held = [scheduler.next() for _ in range(4)]
    assert sorted(a.series for a in held) == ["A", "B", "C", "C"]


def test_focused_series_starts_at_the_viewed_slice_then_coarse_to_fine_nearest_first():
    scheduler = Scheduler(1)
    scheduler.add("A", [(64, range(64))])
    first = scheduler.next()
    scheduler.done(first)
    scheduler.set_focus("A", viewed_slice=41.3)
    order = [scheduler.next() for _ in range(6)]
    assert order[0].k == 41
    anchors = StagePlan().stage_ids().index("anchors")
    remaining_anchors = [a for a in order[1:] if a.stage == anchors]
    assert [a.stage for a in order[1:]] == sorted(a.stage for a in order[1:])  # coarse to fine
    every8 = [a.k for a in order[1:] if a.stage == anchors + 1]
    assert every8 == sorted(every8, key=lambda k: (abs(k - 41), k)) and remaining_anchors


def test_focus_set_before_the_series_arrives_makes_the_viewed_slice_an_anchor():
    scheduler = Scheduler(2)
    scheduler.set_focus("A", viewed_slice=30)
    scheduler.add("A", [(100, range(100))])
    assert scheduler.next().k == 30


def test_stage_completion_is_reported_once_in_order():
    scheduler = Scheduler(2)
    scheduler.add("A", [(9, range(9))])  # some stages may be empty: they complete at once, in order
    previews = StagePlan().preview_stages  # no preview source: those stages are empty from the start
    assert scheduler.current_stage("A") == previews
    finished = []
    while True:
        assignment = scheduler.next()
        if assignment is None:
            break
        finished += scheduler.done(assignment)
    assert finished == list(range(previews, len(StagePlan().stage_ids())))
    assert scheduler.current_stage("A") is None and scheduler.idle()


def test_cancel_drops_queued_work_and_retry_puts_a_slice_first():
    scheduler = three_series()
    a = scheduler.next()
    assert scheduler.drop("B") == 24
    assert all(x.series != "B" for x in run(scheduler, 4))
    scheduler = Scheduler(1)
    scheduler.add("A", [(20, range(20))])
    failed = scheduler.next()
    scheduler.retry(failed)
    again = scheduler.next()
    assert (again.k, again.stage) == (failed.k, failed.stage) and a.series == "A"


def test_gaps_are_never_scheduled_and_volumes_share_a_series():
    scheduler = Scheduler(2)
    scheduler.add("A", [(10, [0, 1, 2, 4, 5]), (6, range(6))])
    handed = run(scheduler, 2)
    assert sorted((a.volume, a.k) for a in handed) == [(0, 0), (0, 1), (0, 2), (0, 4), (0, 5)] + [(1, k) for k in range(6)]


def test_bad_settings_are_rejected():
    with pytest.raises(ValueError, match="strategy"):
        Scheduler(2, "random")
    with pytest.raises(ValueError, match="focus share"):
        Scheduler(2, focus_share=0)
    with pytest.raises(ValueError, match="connections"):
        Scheduler(0)


def test_depth_first_waits_for_an_earlier_series_still_getting_its_metadata():
    scheduler = Scheduler(2, DEPTH_FIRST)
    scheduler.expect("A")
    scheduler.expect("B")
    scheduler.add("B", [(8, range(8))])
    assert scheduler.next() is None and not scheduler.idle()
    scheduler.add("A", [(8, range(8))])
    assert [a.series for a in run(scheduler, 2)] == ["A"] * 8 + ["B"] * 8
    breadth = Scheduler(2)
    breadth.expect("A")
    breadth.add("B", [(8, range(8))])
    assert breadth.next().series == "B"  # breadth-first never idles a connection for metadata
    assert breadth.drop("A") == 0


def test_unfocused_order_is_middle_anchor_first_then_bisection():
    scheduler = Scheduler(1)
    scheduler.add("A", [(65, range(65))])
    handed = run(scheduler, 1)
    assert [a.k for a in handed[:3]] == [32, 0, 64]
    every8 = [a.k for a in handed if a.stage == StagePlan().stage_ids().index("every-8")]  # bisection order
    assert every8[0] == 8 and every8[1] in (40, 48) and sorted(every8) == [8, 16, 24, 40, 48, 56]


def test_frames_of_one_multiframe_instance_share_a_request_within_a_stage():
    scheduler = Scheduler(2)
    scheduler.add("A", [(40, range(40))], groups=[{k: "1.2.3" for k in range(40)}])
    scheduler.add("B", [(10, range(10))])  # single-frame: never batched
    seen = []
    while True:
        batch = scheduler.next_batch(8)
        if not batch:
            break
        assert len({a.series for a in batch}) == 1 and len({a.stage for a in batch}) == 1
        assert len(batch) <= 8 and (batch[0].series == "A" or len(batch) == 1)
        seen.append(batch)
        for assignment in batch:
            scheduler.done(assignment)
    assert sorted(a.k for b in seen for a in b if a.series == "A") == list(range(40))
    assert max(len(b) for b in seen) == 8
    stages = [b[0].stage for b in seen if b[0].series == "A"]
    assert stages == sorted(stages)  # still coarse to fine


def test_previews_of_every_slice_come_before_any_whole_frame_and_each_whole_waits_for_its_preview():
    scheduler = Scheduler(4)
    scheduler.add("A", [(33, range(33))], previews=True)
    scheduler.add("B", [(9, range(9))])  # no preview source: full stages only
    in_flight, handed, done = deque(), [], set()
    while True:
        while len(in_flight) < 4:
            assignment = scheduler.next()
            if assignment is None:
                break
            if assignment.part == Part.WHOLE and assignment.series == "A":
                assert len(done) == 33, f"{assignment} before every preview was done"
            in_flight.append(assignment)
            handed.append(assignment)
        if not in_flight:
            break
        finished = in_flight.popleft()
        if finished.part == Part.PREVIEW:
            done.add((finished.volume, finished.k))
        scheduler.done(finished)
    a_parts = [(a.k, a.part) for a in handed if a.series == "A"]
    assert sorted(a_parts) == sorted((k, part) for k in range(33) for part in (Part.PREVIEW, Part.WHOLE))
    first_whole = min(i for i, a in enumerate(handed) if a.part == Part.WHOLE)
    assert all(a.part == Part.PREVIEW for a in handed[:first_whole]) and first_whole == 33
    every4 = [a.k for a in handed[:9]]
    assert sorted(every4) == [0, 4, 8, 12, 16, 20, 24, 28, 32]  # previews of every 4th slice first
    assert scheduler.idle()


def test_a_viewed_slice_gets_its_preview_then_its_whole_frame_first():
    scheduler = Scheduler(2)
    scheduler.set_focus("A", viewed_slice=21)
    scheduler.add("A", [(40, range(40))], previews=True)
    first = scheduler.next()
    assert (first.k, first.part) == (21, Part.PREVIEW)
    second = scheduler.next()  # the whole of 21 is blocked while its preview is in flight
    assert second.part == Part.PREVIEW and second.k != 21
    scheduler.done(first)
    third = scheduler.next()
    assert (third.k, third.part) == (21, Part.WHOLE)


def test_a_failed_preview_is_retried_before_its_whole_frame_and_cancel_clears_the_waits():
    scheduler = Scheduler(1)
    scheduler.add("A", [(3, range(3))], previews=True, )
    parts = []
    while True:
        assignment = scheduler.next()
        if assignment is None:
            break
        if assignment.part == Part.PREVIEW and assignment.k == 1 and (1, Part.PREVIEW) not in parts:
            parts.append((1, Part.PREVIEW))
            scheduler.retry(assignment)
            continue
        parts.append((assignment.k, assignment.part))
        scheduler.done(assignment)
    assert parts.index((1, Part.PREVIEW)) < parts.index((1, Part.WHOLE)) and scheduler.idle()
    scheduler = Scheduler(1)
    scheduler.add("A", [(5, range(5))], previews=True)
    scheduler.next()
    assert scheduler.drop("A") == 9
    assert scheduler.next() is None


def test_frames_beside_previews_go_in_stage_order_and_replace_previews_not_yet_asked():
    """Connections beside the previews take whole parts in the series' order (anchors, then every
    8th...), never one whose preview is in flight; a preview still queued is dropped (its whole frame
    comes now); the preview stages still end, and the ordinary connections never get a whole part
    before them."""
    scheduler = Scheduler(2)
    scheduler.add("A", [(33, range(33))], previews=True, beside=True)
    scheduler.add("B", [(9, range(9))], previews=True)  # did not ask: nothing of it beside
    assert scheduler.wants_beside()
    first = scheduler.next()  # an ordinary connection: a preview (A's slice 0, bisection order)
    assert (first.series, first.k, first.part) == ("A", 0, Part.PREVIEW)
    beside = [scheduler.next_beside() for _ in range(4)]
    # anchors first (the middle, then the ends: 0's preview is in flight), then every 8th in bisection order
    assert [(a.series, a.k, a.part) for a in beside] == [("A", 16, Part.WHOLE), ("A", 32, Part.WHOLE),
                                                        ("A", 8, Part.WHOLE), ("A", 24, Part.WHOLE)]
    for assignment in beside:
        scheduler.done(assignment)
    handed = [first]
    scheduler.done(first)
    while True:
        assignment = scheduler.next()
        if assignment is None:
            break
        if assignment.series == "A":
            assert assignment.part is Part.PREVIEW or scheduler.current_stage("A") >= 2, assignment
            assert assignment.k not in (8, 16, 24, 32) or assignment.part is Part.WHOLE  # their previews dropped
        handed.append(assignment)
        scheduler.done(assignment)
    assert scheduler.idle() and not scheduler.wants_beside() and scheduler.next_beside() is None
    a_parts = sorted((a.k, a.part) for a in handed + beside if a.series == "A")
    assert a_parts == sorted([(k, Part.WHOLE) for k in range(33)] +
                             [(k, Part.PREVIEW) for k in range(33) if k not in (8, 16, 24, 32)])


def test_nothing_goes_beside_once_the_previews_are_done_or_for_a_series_that_did_not_ask():
    scheduler = Scheduler(1)
    scheduler.add("B", [(5, range(5))], previews=True)
    assert not scheduler.wants_beside() and scheduler.next_beside() is None
    scheduler = Scheduler(1)
    scheduler.add("A", [(5, range(5))], previews=True, beside=True)
    for _ in range(5):
        scheduler.done(scheduler.next())
    assert not scheduler.wants_beside() and scheduler.next_beside() is None
    assert scheduler.next().part is Part.WHOLE  # the ordinary connections take the wholes now


def take(scheduler, count):
    """`count` assignments through one connection (each done before the next)."""
    handed = []
    for _ in range(count):
        handed.append(scheduler.next())
        scheduler.done(handed[-1])
    return handed


def boosted(policy=FocusPolicy(), sizes=(64, 64, 64), connections=4):
    """A touched last, B also on screen, C shown nowhere; the floor (if any) already handed out."""
    scheduler = three_series(connections=connections, sizes=sizes, policy=policy)
    scheduler.set_visible([Shown("A", ((0, 20.0),)), Shown("B", ((0, 40.0),))], last_touched="A")
    return scheduler


def test_the_last_touched_series_gets_its_share_the_other_visible_next_the_rest_what_is_left():
    scheduler = boosted()
    handed = run(scheduler, 4)
    floor = floor_stage(StagePlan())
    boost = [a for a in handed if a.stage > floor]
    a_done = max(i for i, a in enumerate(boost) if a.series == "A")
    during = [a.series for a in boost[:a_done + 1]]
    assert during.count("C") == 0, "the rest gets nothing while the visible series have work ready"
    assert 0.05 <= during.count("B") / len(during) <= 0.15, during  # the visible share, 0.1
    finish = {name: max(i for i, a in enumerate(handed) if a.series == name) for name in "ABC"}
    assert finish["A"] < finish["B"] < finish["C"]
    assert [a.k for a in handed if a.series == "A"][0] == 20 and [a.k for a in handed if a.series == "B"][0] == 40


def test_a_share_for_the_rest_gives_it_that_fraction():
    scheduler = boosted(FocusPolicy(last_touched_share=0.6, visible_share=0.2), sizes=(200, 200, 200))
    handed = run(scheduler, 4)
    boost = [a.series for a in handed if a.stage > floor_stage(StagePlan())][:150]
    assert [round(boost.count(name) / len(boost), 1) for name in "ABC"] == [0.6, 0.2, 0.2]


def test_coverage_floor_every_series_first_coarse_volume_before_the_boost():
    """The focus came before the other series' metadata: once they arrive, their anchors and
    first decimated stage go before any more of the boosted series."""
    scheduler = Scheduler(4)
    for name in "ABC":
        scheduler.expect(name)
    scheduler.set_visible([Shown("A", ((0, 100.0),))], last_touched="A")
    scheduler.add("A", [(220, range(220))])
    early = take(scheduler, 40)  # A's own floor (31 slices), then its boost
    assert {a.series for a in early} == {"A"}
    scheduler.add("B", [(60, range(60))])
    scheduler.add("C", [(120, range(120))])
    floor = floor_stage(StagePlan())
    wanted = sum(1 for name, size in (("B", 60), ("C", 120))
                 for s in StagePlan().assign(range(size)).values() if s <= floor)
    after = take(scheduler, wanted)
    assert all(a.series in "BC" and a.stage <= floor for a in after), [a for a in after if a.series == "A"]
    assert scheduler.current_stage("B") == scheduler.current_stage("C") == floor + 1  # covered, coarse
    assert scheduler.next().series == "A"  # then the boost


def test_without_the_floor_the_boost_takes_everything():
    scheduler = Scheduler(4, policy=FocusPolicy(coverage_floor=False))
    scheduler.set_focus("A", 100)
    scheduler.add("A", [(220, range(220))])
    scheduler.add("B", [(60, range(60))])
    assert {a.series for a in take(scheduler, 40)} == {"A"}
    assert floor_stage(StagePlan.parse("none")) is None and floor_stage(StagePlan.parse("anchors")) == 0
    assert floor_stage(StagePlan()) == StagePlan().stage_ids().index("every-8")


def test_several_viewed_slices_of_one_series_come_first_then_the_nearest():
    scheduler = Scheduler(1, policy=FocusPolicy(coverage_floor=False))
    scheduler.add("A", [(100, range(100))])
    scheduler.set_visible([Shown("A", ((0, 10.2),)), Shown("A", ((0, 70.0),))], last_touched="A")
    order = [scheduler.next() for _ in range(4)]
    assert sorted(a.k for a in order[:2]) == [10, 70]
    assert scheduler.visible.slices("A") == ((0, 10.2), (0, 70.0))
    every8 = [a.k for a in run(scheduler, 1) if a.stage == StagePlan().stage_ids().index("every-8")]
    distance = [min(abs(k - 10), abs(k - 70)) for k in every8]
    assert distance == sorted(distance)


def test_visible_set_and_policy_errors():
    scheduler = Scheduler(2)
    scheduler.set_visible([Shown("B")], last_touched="A")  # the last touched joins the set
    assert scheduler.visible.series() == ("A", "B") and scheduler.focus == "A"
    scheduler.set_focus(None)
    assert not scheduler.visible and scheduler.focus is None
    for bad in (dict(last_touched_share=0.8, visible_share=0.3), dict(last_touched_share=0),
                dict(visible_share=-0.1), dict(connection_cap=1.5)):
        with pytest.raises(ValueError, match="share"):
            FocusPolicy(**bad)
    with pytest.raises(ValueError, match="Shown"):
        scheduler.set_visible(["A"])
