"""`python -m routing_runner` runs the CLI."""

from .cli import main

main()
