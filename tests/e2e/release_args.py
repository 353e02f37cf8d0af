"""Release options shared by the e2e tests.

The e2e tests are about routing, locks, rollbacks, drains and permissions, not about latency. On a
shared 2-core machine under load the sandbox's synthetic checks measured a p99 of 2.2-2.5 s (every
process of the service shares the two cores), over the environment's 1.5 s gate, and a healthy
release rolled back for it. Their releases keep every other check (each client gets each event,
bad keys are refused) and move only the latency gate out of the way. The gate itself is tested in
tests/unit/tasks/test_synthetic_checks.py and tests/integration/release/test_release_real_checks.py.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

LOAD_TOLERANT_CHECKS = {"clients": 5, "messages": 20, "p99_latency_ms": 10_000, "min_success_rate": 0.99}


def load_tolerant_checks(directory: Path | None = None) -> list[str]:
    """`--request-file` options whose file holds only the checks above (the options give the rest).
    The file goes to `directory`, by default the module's sandbox directory."""
    where = directory or Path(os.environ["ORCHESTRATOR_SANDBOX_DIR"])
    path = where / "load-tolerant-checks.json"
    path.write_text(json.dumps({"checks": LOAD_TOLERANT_CHECKS}), encoding="utf-8")
    return ["--request-file", str(path)]
