"""`python -m tools.cli ...`: the `fleetflow` command without its console script."""

import sys

from tools.cli import main

sys.exit(main())
