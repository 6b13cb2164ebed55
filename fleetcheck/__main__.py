"""`python -m fleetcheck` and the `fleetcheck` console script: the process's own entry."""

import gc
import sys


def entry() -> int:
    """Run the CLI in this process, which exits right after.

    Start-up (imports, pydantic schemas, inventory, playbooks) makes hundreds of thousands of
    objects that live to the end and holds no cyclic garbage worth collecting; with the collector
    on, it walked them about 200 times per run (0.3 s of CPU, as much as a few hundred hosts'
    checks). It is off until the run itself (`api.tuned_gc` freezes what start-up made and turns
    it on); a library user's process is left alone.
    """
    gc.disable()
    from fleetcheck.cli import main

    return main()


if __name__ == "__main__":
    sys.exit(entry())
