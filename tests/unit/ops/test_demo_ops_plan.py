"""The operations demo's plan (which backup and drill runs it lets fire) and its report's parts."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from orchestrator.demo_ops import DemoFailed, plan
from orchestrator.render.ops_report import duration, timeline_svg

BACKUP = ("cron(0 3 * * ? *)", "Etc/UTC")
DRILL = ("cron(0 9 ? * WED *)", "Etc/UTC")


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def test_the_backup_is_the_last_one_before_the_next_drill() -> None:
    # Sunday 29 November 2026: the next drill is Wednesday 2 December 09:00, its backup 03:00 that day.
    assert plan(at("2026-11-29T12:00:00"), BACKUP, DRILL) == (
        at("2026-12-02T03:00:00"),
        at("2026-12-02T09:00:00"),
    )


def test_a_drill_whose_backup_already_passed_is_left_for_the_next_week() -> None:
    assert plan(at("2026-12-02T05:00:00"), BACKUP, DRILL) == (
        at("2026-12-09T03:00:00"),
        at("2026-12-09T09:00:00"),
    )


def test_no_backup_before_any_drill_is_an_error() -> None:
    with pytest.raises(DemoFailed):
        plan(at("2026-11-29T12:00:00"), ("at(2020-01-01T00:00:00)", "UTC"), DRILL)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (None, "–"),
        (64.26, "64.3 s"),
        (21600.4, "6 h 00 min 00 s"),
        (2 * 86400 + 3 * 3600 + 65, "2 d 3 h 01 min"),
    ],
)
def test_durations_read_as_people_write_them(seconds: float | None, text: str) -> None:
    assert duration(seconds) == text


def test_the_timeline_marks_rpo_and_rto_between_their_points() -> None:
    svg = timeline_svg(
        [
            ("snapshot taken", at("2026-12-02T03:00:05")),
            ("drill started", at("2026-12-02T09:00:03")),
            ("restore requested", at("2026-12-02T09:00:20")),
            ("temporary group available", at("2026-12-02T09:01:24")),
            ("drill finished", at("2026-12-02T09:03:00")),
        ]
    )
    assert svg.startswith("<svg") and svg.endswith("</svg>")
    assert "RPO 5 h 59 min 58 s" in svg and "RTO 64.0 s" in svg
    assert "//" in svg  # six hours before the drill are folded so the drill's steps stay readable
    assert timeline_svg([("drill started", None)]) == ""
