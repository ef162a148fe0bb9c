"""`python -m alloy_runner.cli`."""

from alloy_runner.cli.main import main

main()
