"""`python -m deepcuts`: the same as the `deepcuts` command."""

from deepcuts.cli import main

main()
