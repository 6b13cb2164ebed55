"""`python -m fleetcheck` is the `fleetcheck` command."""

import sys

from fleetcheck.cli import main

sys.exit(main())
