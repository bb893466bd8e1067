"""The ``hearmask`` command line: thin argument parsing over the Python API.

Each subcommand lives in its own module under ``hearmask/cli/`` and exposes
``register(subparsers)``, which adds its parser and sets ``handler`` to a function
``handler(args) -> int`` (the exit status). Logic lives in the library areas, never here.

Conventions (DESIGN.md, issue 3): ``--version``; ``--help`` on every command; bad input
exits non-zero with one line on stderr (a traceback only with ``--debug``).
"""

from __future__ import annotations

import argparse
import importlib
import sys

from hearmask import __version__
from hearmask.errors import HearmaskError

# Subcommand modules, in the order ``hearmask --help`` lists them. Imported lazily by
# name so that ``hearmask --help`` does not pay for torch or tensorflow.
COMMAND_MODULES = (
    "hearmask.cli.profiles_cmd",
    "hearmask.cli.data_cmd",
    "hearmask.cli.enhance_cmd",
    "hearmask.cli.train_cmd",
    "hearmask.cli.info_cmd",
    "hearmask.cli.evaluate_cmd",
    "hearmask.cli.quantize_cmd",
    "hearmask.cli.validate_cmd",
    "hearmask.cli.live_cmd",
    "hearmask.cli.targets_cmd",
    "hearmask.cli.fit_cmd",
    "hearmask.cli.export_cmd",
    "hearmask.cli.profile_cmd",
    "hearmask.cli.pipeline_cmd",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hearmask",
        description="Joint noise reduction and hearing-loss compensation, from training to an int8 model on a device.",
    )
    parser.add_argument("--version", action="version", version=f"hearmask {__version__}")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module_name in COMMAND_MODULES:
        importlib.import_module(module_name).register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help(sys.stderr)
        return 2
    try:
        return int(args.handler(args) or 0)
    except HearmaskError as error:
        if args.debug:
            raise
        print(f"hearmask {args.command}: error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"hearmask {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
