"""EventBridge Scheduler expressions as the sandbox's scheduler evaluates them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from orchestrator.sandbox.schedule_expressions import ExpressionError, parse_expression, quietest_start


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.mark.parametrize(
    ("expression", "after", "expected"),
    [
        ("cron(0 3 * * ? *)", "2026-11-29T02:59:00", "2026-11-29T03:00:00"),
        ("cron(0 3 * * ? *)", "2026-11-29T03:00:00", "2026-11-30T03:00:00"),  # strictly after
        ("cron(0 9 ? * WED *)", "2026-11-29T12:00:00", "2026-12-02T09:00:00"),  # 29 Nov 2026 is a Sunday
        ("cron(0 9 ? * 4 *)", "2026-11-29T12:00:00", "2026-12-02T09:00:00"),  # 4 = Wednesday (1 = Sunday)
        ("cron(0/15 * * * ? *)", "2026-11-29T10:07:00", "2026-11-29T10:15:00"),
        ("cron(30 8-10 ? * MON-FRI *)", "2026-11-28T12:00:00", "2026-11-30T08:30:00"),
        ("cron(0 0 L * ? *)", "2026-02-10T00:00:00", "2026-02-28T00:00:00"),
        ("cron(0 12 ? * 6#1 *)", "2026-11-29T00:00:00", "2026-12-04T12:00:00"),  # first Friday
        ("cron(0 12 ? * 2L *)", "2026-11-29T00:00:00", "2026-11-30T12:00:00"),  # last Monday of November
        ("cron(0 0 1 JAN ? 2028)", "2026-11-29T00:00:00", "2028-01-01T00:00:00"),
    ],
)
def test_cron_next_run_in_utc(expression: str, after: str, expected: str) -> None:
    assert parse_expression(expression).next_after(at(after)) == at(expected)


def test_cron_in_a_time_zone_follows_daylight_saving() -> None:
    expression = parse_expression("cron(0 9 * * ? *)", "Europe/Paris")
    assert expression.next_after(at("2026-07-01T00:00:00")) == at("2026-07-01T07:00:00")  # UTC+2
    assert expression.next_after(at("2026-12-01T00:00:00")) == at("2026-12-01T08:00:00")  # UTC+1


def test_a_local_time_in_the_spring_gap_is_skipped() -> None:
    # 29 March 2026: Paris clocks jump from 02:00 to 03:00; 02:30 does not exist that day.
    expression = parse_expression("cron(30 2 * * ? *)", "Europe/Paris")
    assert expression.next_after(at("2026-03-28T02:00:00")) == at("2026-03-30T00:30:00")


def test_rate_counts_from_the_start() -> None:
    expression = parse_expression("rate(5 minutes)")
    start = at("2026-11-29T10:00:00")
    assert expression.next_after(at("2026-11-29T10:07:00"), start=start) == at("2026-11-29T10:10:00")
    assert expression.next_after(at("2026-11-29T09:00:00"), start=start) == at("2026-11-29T10:00:00")
    assert parse_expression("rate(1 day)").next_after(at("2026-11-29T10:00:00"), start=start) == at(
        "2026-11-30T10:00:00"
    )


def test_at_runs_once_in_its_time_zone() -> None:
    expression = parse_expression("at(2026-12-24T18:00:00)", "America/New_York")
    assert expression.next_after(at("2026-12-01T00:00:00")) == at("2026-12-24T23:00:00")
    assert expression.next_after(at("2026-12-25T00:00:00")) is None


@pytest.mark.parametrize(
    "expression",
    [
        "cron(0 3 * * * *)",  # both day fields given
        "cron(0 3 ? * ? *)",  # neither
        "cron(0 3 * * ?)",  # five fields
        "cron(61 3 * * ? *)",
        "cron(0 3 15W * ? *)",  # nearest weekday: refused, not guessed
        "rate(1 minutes)",
        "rate(5 minute)",
        "rate(0 hours)",
        "rate(2 weeks)",
        "at(2026-12-24 18:00)",
        "every day",
    ],
)
def test_invalid_expressions_are_refused(expression: str) -> None:
    with pytest.raises(ExpressionError):
        parse_expression(expression)


def test_unknown_time_zone_is_refused() -> None:
    with pytest.raises(ExpressionError, match="Mars/Olympus"):
        parse_expression("cron(0 3 * * ? *)", "Mars/Olympus")


def test_the_quietest_start_follows_the_longest_gap_between_runs() -> None:
    # Staging's schedules: daily backup 03:00 and cost check 07:00, DR drill on Wednesdays 09:00.
    expressions = [
        parse_expression(e) for e in ("cron(0 3 * * ? *)", "cron(0 7 * * ? *)", "cron(0 9 ? * WED *)")
    ]
    after = datetime(2026, 11, 30, 1, 10, tzinfo=UTC)  # a Monday
    start, quiet = quietest_start(expressions, after)
    assert start == datetime(2026, 11, 30, 7, 1, tzinfo=UTC)  # the first 07:00 -> 03:00 gap
    assert quiet == timedelta(hours=19, minutes=59)
    for expression in expressions:
        following = expression.next_after(start)
        assert following is not None and following - start >= quiet


def test_the_quietest_start_needs_two_runs() -> None:
    with pytest.raises(ExpressionError, match="fewer than two runs"):
        quietest_start([parse_expression("at(2026-12-01T00:00:00)")], datetime(2026, 11, 30, tzinfo=UTC))
