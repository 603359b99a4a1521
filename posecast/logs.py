"""Logging, configured once by each command-line entry point."""
from __future__ import annotations

import logging


def setup_logging(level: str | int = "INFO") -> None:
    logging.basicConfig(
        level=level.upper() if isinstance(level, str) else level,
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
        force=True,
    )
    # aiortc/aioice are chatty at INFO; their warnings still show.
    for name in ("aioice", "aiortc"):
        logging.getLogger(name).setLevel(max(logging.WARNING, logging.getLogger().level))
