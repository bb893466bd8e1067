"""``hearmask targets list|show NAME [--targets-dir DIR]``: the deployment targets hearmask knows."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from hearmask.cli.reporting import add_report_arguments, emit_result


def add_targets_dir_argument(parser: argparse.ArgumentParser) -> None:
    """``--targets-dir DIR`` (repeatable): folders of the user's own board descriptors."""
    parser.add_argument("--targets-dir", type=Path, action="append", default=[], metavar="DIR",
                        help="also read <name>.toml board descriptors from DIR (repeatable; also "
                             "$HEARMASK_TARGETS_DIR, folders separated by ':')")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "targets",
        help="deployment targets: list them, show one",
        description="Deployment targets (Raspberry Pi, Cortex-M boards, emulated QEMU boards), one TOML descriptor "
        "each. Add your own board by dropping a TOML file with the same fields into a folder and naming it with "
        "--targets-dir (field reference: targets/boards/README.md).",
    )
    parser.set_defaults(handler=lambda args: _print_help(parser))
    actions = parser.add_subparsers(dest="targets_action", metavar="ACTION")

    list_parser = actions.add_parser("list", help="list the targets",
                                     description="One line per target: name, kind, runtime, clock, flash, RAM, title. "
                                     "With --json: a list of full descriptors.")
    add_targets_dir_argument(list_parser)
    add_report_arguments(list_parser)
    list_parser.set_defaults(handler=_list)

    show_parser = actions.add_parser("show", help="show one target's descriptor",
                                     description="Every field of one target, with units, and the file it came from.")
    show_parser.add_argument("name", metavar="NAME", help="a target name (see hearmask targets list)")
    add_targets_dir_argument(show_parser)
    add_report_arguments(show_parser)
    show_parser.set_defaults(handler=_show)


def _print_help(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return 2


def _size(value: int | None) -> str:
    if value is None:
        return "-"
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if value >= scale:
            return f"{value / scale:.4g} {unit}"
    return f"{value} B"


def _list(args: argparse.Namespace) -> int:
    from hearmask.targets.descriptors import list_targets

    targets = list_targets(args.targets_dir)
    rows = [("name", "kind", "runtime", "clock", "flash", "RAM", "title")]
    rows += [(t.name, t.kind + (" (emulated)" if t.emulated else ""), t.runtime, f"{t.clock_hz / 1e6:g} MHz",
              _size(t.flash_bytes), _size(t.ram_bytes), t.title) for t in targets]
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    text = "\n".join("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in rows)
    emit_result(args, [t.to_dict() for t in targets], text)
    return 0


def _show(args: argparse.Namespace) -> int:
    from hearmask.targets.descriptors import load_target

    target = load_target(args.name, args.targets_dir)
    shown = {
        "clock_hz": f"{target.clock_hz:,} Hz ({target.clock_hz / 1e6:g} MHz)",
        "flash_bytes": "not binding (microSD card)" if target.flash_bytes is None
        else f"{target.flash_bytes:,} B ({_size(target.flash_bytes)})",
        "ram_bytes": f"{target.ram_bytes:,} B ({_size(target.ram_bytes)})",
        "mac_per_cycle": f"{target.mac_per_cycle:g} int8 MAC/cycle per core (estimate)",
    }
    values = target.to_dict()
    width = max(len(key) for key in values)
    text = "\n".join(f"{key.ljust(width)}  {shown.get(key, '-' if value is None else value)}"
                     for key, value in values.items())
    emit_result(args, values, text)
    return 0
