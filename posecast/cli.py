"""Command lines made of subcommands, each living in its own module.

A subcommand module defines `add_arguments(parser)` and `run(args) -> int | None`.
A module that does not exist yet makes its subcommand say so and exit non-zero.
"""
from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from .logs import setup_logging


def main(prog: str, description: str, commands: dict[str, tuple[str, str]],
         argv: Sequence[str] | None = None) -> int:
    """commands: name -> (module path, one-line help)."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING or ERROR")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    modules = {}
    for name, (module_path, help_text) in commands.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        try:
            modules[name] = importlib.import_module(module_path)
        except ModuleNotFoundError as exc:
            if exc.name != module_path:
                raise
            modules[name] = None
            p.description = f"{help_text} (not implemented yet)"
            continue
        modules[name].add_arguments(p)
    args = parser.parse_args(argv)
    setup_logging(args.log_level)
    module = modules[args.command]
    if module is None:
        logging.getLogger(prog).error("'%s %s' is not implemented yet", prog, args.command)
        return 2
    return int(module.run(args) or 0)


def entry(prog: str, description: str, commands: dict[str, tuple[str, str]]) -> None:
    sys.exit(main(prog, description, commands))
