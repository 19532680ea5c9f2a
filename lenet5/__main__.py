"""``python -m lenet5`` runs the command line (see ``lenet5 --help``)."""

from .cli import main

main()
