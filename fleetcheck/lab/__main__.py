"""`python -m fleetcheck.lab serve ...` (the same commands as `fleetcheck lab`)."""

from fleetcheck.lab.cli import main

if __name__ == "__main__":
    main()
