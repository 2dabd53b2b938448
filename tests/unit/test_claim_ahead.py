"""How many jobs a worker claims ahead: the jobs finished within the window, at most the cap."""

from __future__ import annotations

from conveyor.pipeline.worker.claim_ahead import RecentFinishes


def test_only_the_jobs_finished_within_the_window_count() -> None:
    recent = RecentFinishes(window_seconds=1.0, cap=10)
    for finished in (0.0, 0.5, 0.5, 1.0):
        recent.add(finished)
    assert recent.count(1.0) == 4, "the window's start is inclusive"
    assert recent.count(1.2) == 3, "the one that finished at 0.0 left the window"
    assert recent.count(1.6) == 1
    assert recent.count(2.0) == 1, "finished exactly one window ago: still counted"
    assert recent.count(2.1) == 0
    recent.add(2.5)
    assert recent.count(2.5) == 1, "an expired job never comes back"


def test_no_more_than_the_cap_are_kept_and_a_zero_window_keeps_none() -> None:
    capped = RecentFinishes(window_seconds=1.0, cap=4)
    for n in range(10):
        capped.add(10 + n / 100)
    assert capped.count(10.1) == 4, "ten finished within the window; the cap claims ahead for four"
    off = RecentFinishes(window_seconds=0, cap=4)
    off.add(1.0)
    assert off.count(1.0) == 0, "claiming ahead is off"
