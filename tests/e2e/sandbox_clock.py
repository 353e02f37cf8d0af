"""Where the e2e sandboxes start their clock: after the staging schedules' run that is followed
by their longest quiet gap (20 hours of sandbox time, 20 minutes at 60x). A test that wants a
schedule to fire moves the clock there (`schedule skip-to`); nothing fires on its own because the
suite happens to run near 03:00 UTC or on a Wednesday morning."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from orchestrator.sandbox.schedule_expressions import parse_expression, quietest_start

CONFIG = Path(__file__).resolve().parents[2] / "config" / "staging.json"


def quiet_clock_start() -> datetime:
    schedules = json.loads(CONFIG.read_text())["schedules"]  # UTC cron expressions (infra/operations)
    start, _ = quietest_start([parse_expression(text) for text in schedules.values()], datetime.now(UTC))
    return start
