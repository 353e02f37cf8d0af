"""`python -m orchestrator.cli ...` runs the CLI as the `orchestrator` script does."""

import sys

from orchestrator.cli.root import main

sys.exit(main())
