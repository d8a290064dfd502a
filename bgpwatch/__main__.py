"""`python -m bgpwatch` runs the CLI (ExaBGP starts the relay this way)."""

from bgpwatch.cli import main

main()
