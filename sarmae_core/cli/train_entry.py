"""``sarmae-train``: checks that the ``[train]`` extra is installed before loading the trainer.

The trainer (``sarmae_train.cli``) imports torch and timm; without them a bare ``pip install
sarmae`` would answer ``sarmae-train --help`` with a traceback instead of the install command.
"""

from __future__ import annotations

import sys

from ..extras import require


def main() -> None:
    message = require("train", "sarmae-train")
    if message is not None:
        print(f"error: {message}", file=sys.stderr)
        sys.exit(2)
    from sarmae_train.cli import main as train_main

    train_main()
