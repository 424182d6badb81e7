"""``python -m sarmae_core.cli`` runs the ``sarmae`` command."""

from . import main

main()
