"""`python -m dagtrace` is the `dagtrace` command."""

from .cli import main

main()
