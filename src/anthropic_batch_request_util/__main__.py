"""`python -m anthropic_batch_request_util` runs the `abr` command line."""

from .cli import main

main()
