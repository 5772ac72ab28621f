"""``python -m vidcolor`` runs the command line."""

from vidcolor.cli import main

main()
