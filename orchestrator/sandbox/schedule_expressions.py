"""EventBridge Scheduler's schedule expressions: when a schedule runs next.

Three kinds, after the EventBridge Scheduler user guide ("Schedule types"):

- `cron(minutes hours day-of-month month day-of-week year)`: six fields; `,` `-` `*` `/`, `?` in
  one of day-of-month and day-of-week (exactly one of them), month names JAN-DEC, day names
  SUN-SAT (1 = SUN ... 7 = SAT), `L` (last day of the month, or `<day>L`: the last such weekday
  of the month) and `<day>#<n>` (the n-th such weekday). `W` (nearest weekday) is refused.
  Evaluated in the schedule's time zone (`ScheduleExpressionTimezone`, default UTC); a local
  time that does not exist (a DST gap) is skipped.
- `rate(value unit)`: minute(s), hour(s), day(s); runs every `value` units from the schedule's
  start (StartDate, else when it was created).
- `at(yyyy-mm-ddThh:mm:ss)`: once, in the schedule's time zone.

Pure functions, shared by the sandbox's scheduler and the CLI (`orchestrator schedule list`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

MONTHS = {name: n for n, name in enumerate("JAN FEB MAR APR MAY JUN JUL AUG SEP OCT NOV DEC".split(), 1)}
DAYS = {name: n for n, name in enumerate("SUN MON TUE WED THU FRI SAT".split(), 1)}
RATE_UNITS = {"minute": 60, "minutes": 60, "hour": 3600, "hours": 3600, "day": 86400, "days": 86400}
MAX_YEARS_AHEAD = 10  # a cron that matches nothing in ten years never runs


class ExpressionError(ValueError):
    """The expression is not one EventBridge Scheduler accepts (or the sandbox can evaluate)."""


def _zone(name: str | None) -> ZoneInfo:
    try:
        return ZoneInfo(name or "UTC")
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ExpressionError(f"unknown ScheduleExpressionTimezone {name!r}") from exc


def _values(field: str, low: int, high: int, names: dict[str, int] | None, what: str) -> frozenset[int]:
    out: set[int] = set()
    for part in field.split(","):
        step = 1
        if "/" in part:
            part, raw_step = part.split("/", 1)
            if not raw_step.isdigit() or int(raw_step) < 1:
                raise ExpressionError(f"{what}: bad increment {raw_step!r}")
            step = int(raw_step)
        if part in ("*", ""):
            start, end = low, high
        elif "-" in part:
            first, last = part.split("-", 1)
            start, end = _one(first, low, high, names, what), _one(last, low, high, names, what)
            if end < start:
                raise ExpressionError(f"{what}: range {part!r} runs backwards")
        else:
            start = _one(part, low, high, names, what)
            end = high if step > 1 else start
        out.update(range(start, end + 1, step))
    return frozenset(out)


def _one(token: str, low: int, high: int, names: dict[str, int] | None, what: str) -> int:
    token = token.upper()
    if names and token in names:
        return names[token]
    if not token.isdigit():
        raise ExpressionError(f"{what}: {token!r} is not a value")
    value = int(token)
    if not low <= value <= high:
        raise ExpressionError(f"{what}: {value} is outside {low}-{high}")
    return value


@dataclass(frozen=True)
class Cron:
    minutes: frozenset[int]
    hours: frozenset[int]
    days_of_month: frozenset[int] | None  # None: `?`
    last_day_of_month: bool
    months: frozenset[int]
    days_of_week: frozenset[int] | None  # None: `?`; 1 = Sunday
    nth_weekday: tuple[int, int] | None  # (weekday 1-7, n) for `d#n`
    last_weekday: int | None  # weekday 1-7 for `dL`
    years: frozenset[int]

    def matches_day(self, day: date) -> bool:
        if day.month not in self.months or day.year not in self.years:
            return False
        weekday = (day.isoweekday() % 7) + 1  # Sunday 1 ... Saturday 7
        if self.days_of_month is not None or self.last_day_of_month:
            last = (day.replace(day=28) + timedelta(days=4)).replace(day=1) - timedelta(days=1)
            return (self.last_day_of_month and day == last) or (
                self.days_of_month is not None and day.day in self.days_of_month
            )
        if self.nth_weekday is not None:
            wanted, n = self.nth_weekday
            return weekday == wanted and (day.day - 1) // 7 + 1 == n
        if self.last_weekday is not None:
            return weekday == self.last_weekday and (day + timedelta(days=7)).month != day.month
        return self.days_of_week is not None and weekday in self.days_of_week


def parse_cron(body: str) -> Cron:
    fields = body.split()
    if len(fields) != 6:
        raise ExpressionError(f"cron({body}): six fields expected, got {len(fields)}")
    minute, hour, dom, month, dow, year = fields
    if (dom == "?") == (dow == "?"):
        raise ExpressionError(f"cron({body}): exactly one of day-of-month and day-of-week must be '?'")
    if "W" in dom.upper():
        raise ExpressionError(f"cron({body}): 'W' (nearest weekday) is not supported by the sandbox")
    days_of_month: frozenset[int] | None = None
    last_dom = False
    if dom != "?":
        if dom.upper() == "L":
            last_dom = True
        else:
            days_of_month = _values(dom, 1, 31, None, "day-of-month")
    days_of_week: frozenset[int] | None = None
    nth: tuple[int, int] | None = None
    last_weekday: int | None = None
    if dow != "?":
        upper = dow.upper()
        if "#" in upper:
            day, n = upper.split("#", 1)
            if not n.isdigit() or not 1 <= int(n) <= 5:
                raise ExpressionError(f"cron({body}): '#{n}' must be 1-5")
            nth = (_one(day, 1, 7, DAYS, "day-of-week"), int(n))
        elif upper.endswith("L") and upper != "L":
            last_weekday = _one(upper[:-1], 1, 7, DAYS, "day-of-week")
        elif upper == "L":
            days_of_week = frozenset({7})  # `L` alone in day-of-week: Saturday
        else:
            days_of_week = _values(dow, 1, 7, DAYS, "day-of-week")
    return Cron(
        minutes=_values(minute, 0, 59, None, "minutes"),
        hours=_values(hour, 0, 23, None, "hours"),
        days_of_month=days_of_month,
        last_day_of_month=last_dom,
        months=_values(month, 1, 12, MONTHS, "month"),
        days_of_week=days_of_week,
        nth_weekday=nth,
        last_weekday=last_weekday,
        years=_values(year, 1970, 2199, None, "year"),
    )


@dataclass(frozen=True)
class ScheduleExpression:
    text: str
    kind: str  # cron | rate | at
    timezone: str
    cron: Cron | None = None
    rate_seconds: int | None = None
    at: datetime | None = None  # aware, UTC

    def next_after(self, after: datetime, *, start: datetime | None = None) -> datetime | None:
        """The first run strictly after `after` (aware), or None when there is none.
        `start` is where a rate counts from (and before which nothing runs)."""
        after = after.astimezone(UTC)
        if start is not None and after < start:
            after = start - timedelta(microseconds=1)
        if self.kind == "at":
            assert self.at is not None
            return self.at if self.at > after else None
        if self.kind == "rate":
            assert self.rate_seconds is not None
            origin = start or after
            elapsed = (after - origin).total_seconds()
            steps = int(elapsed // self.rate_seconds) + 1 if elapsed >= 0 else 0
            candidate = origin + timedelta(seconds=steps * self.rate_seconds)
            while candidate <= after:
                candidate += timedelta(seconds=self.rate_seconds)
            return candidate
        assert self.cron is not None
        return _next_cron(self.cron, _zone(self.timezone), after)


def _next_cron(cron: Cron, zone: ZoneInfo, after: datetime) -> datetime | None:
    local_after = after.astimezone(zone)
    day = local_after.date()
    end = day.replace(year=min(day.year + MAX_YEARS_AHEAD, 2199))
    hours, minutes = sorted(cron.hours), sorted(cron.minutes)
    while day <= end:
        if cron.matches_day(day):
            for hour in hours:
                for minute in minutes:
                    local = datetime(day.year, day.month, day.day, hour, minute, tzinfo=zone)
                    moment = local.astimezone(UTC)
                    # A local time in a DST gap does not exist: it does not round-trip.
                    if moment.astimezone(zone).replace(tzinfo=None) != local.replace(tzinfo=None):
                        continue
                    if moment > after:
                        return moment
        day += timedelta(days=1)
    return None


_KIND = re.compile(r"^\s*(cron|rate|at)\((.*)\)\s*$", re.IGNORECASE)


def parse_expression(text: str, timezone: str | None = None) -> ScheduleExpression:
    match = _KIND.match(text or "")
    if not match:
        raise ExpressionError(f"{text!r} is not cron(...), rate(...) or at(...)")
    kind, body = match.group(1).lower(), match.group(2).strip()
    zone_name = timezone or "UTC"
    zone = _zone(zone_name)
    if kind == "cron":
        return ScheduleExpression(text, kind, zone_name, cron=parse_cron(body))
    if kind == "rate":
        parts = body.split()
        if len(parts) != 2 or not parts[0].isdigit() or int(parts[0]) < 1:
            raise ExpressionError(f"rate({body}): 'value unit' with a positive value expected")
        value, unit = int(parts[0]), parts[1].lower()
        if unit not in RATE_UNITS or (value == 1) != (not unit.endswith("s")):
            raise ExpressionError(f"rate({body}): unit must be minute, hour or day (plural above 1)")
        return ScheduleExpression(text, kind, zone_name, rate_seconds=value * RATE_UNITS[unit])
    try:
        local = datetime.strptime(body, "%Y-%m-%dT%H:%M:%S")
    except ValueError as exc:
        raise ExpressionError(f"at({body}): yyyy-mm-ddThh:mm:ss expected") from exc
    return ScheduleExpression(text, kind, zone_name, at=local.replace(tzinfo=zone).astimezone(UTC))


def quietest_start(
    expressions: list[ScheduleExpression], after: datetime, *, horizon: timedelta = timedelta(days=8)
) -> tuple[datetime, timedelta]:
    """Where a sandbox clock can start so that its schedules stay quiet longest: one minute after
    the run (within `horizon` of `after`) that is followed by the longest gap, and that gap's
    remaining length. Tests start their sandbox there so that what fires on its clock does not
    depend on the time of day they run at."""
    runs: set[datetime] = set()
    for expression in expressions:
        moment = expression.next_after(after)
        while moment is not None and moment <= after + horizon:
            runs.add(moment)
            moment = expression.next_after(moment)
    ordered = sorted(runs)
    if len(ordered) < 2:
        raise ExpressionError(
            f"fewer than two runs within {horizon} of {after.isoformat()}: no gap to choose"
        )
    lead = timedelta(minutes=1)
    # The longest gap; of equal ones the earliest, so that the clock stays near the wall clock.
    gap, start = max(
        ((later - earlier, earlier) for earlier, later in zip(ordered, ordered[1:], strict=False)),
        key=lambda pair: (pair[0], -pair[1].timestamp()),
    )
    return start + lead, gap - lead
