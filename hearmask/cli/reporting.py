"""Shared output helpers for commands that produce figures: ``--json`` and ``--report``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any


def add_report_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the conventional ``--json`` (print JSON to stdout) and ``--report PATH`` flags."""
    parser.add_argument("--json", action="store_true", help="print the result as JSON on stdout")
    parser.add_argument("--report", type=Path, metavar="PATH", help="also write the result as JSON to PATH")


def emit_result(args: argparse.Namespace, result: dict[str, Any], human_text: str) -> None:
    """Print ``human_text`` (or JSON with ``--json``) and write ``--report`` if given."""
    if getattr(args, "report", None):
        path = Path(args.report)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(result, indent=2) + "\n")
    if getattr(args, "json", False):
        json.dump(result, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        print(human_text)
