"""``hearmask profiles``: list the standard listener profiles, show one profile or file."""

from __future__ import annotations

import argparse
import sys

from hearmask.cli.reporting import add_report_arguments, emit_result
from hearmask.profiles.audiogram import Audiogram
from hearmask.profiles.io import load_audiogram
from hearmask.profiles.standard import (
    STANDARD_PROFILE_DESCRIPTIONS,
    STANDARD_PROFILE_NAMES,
    is_standard_profile_name,
)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``profiles list`` and ``profiles show`` to the ``hearmask`` parser."""
    parser = subparsers.add_parser(
        "profiles",
        help="listener profiles: list the standard audiograms, show one or an audiogram file",
        description="Listener profiles (audiograms): the standard set (NH, Bisgaard N1-N7, "
        "S1-S3) and audiogram files (hearmask JSON, CSV, Clarity listener JSON).",
    )
    parser.set_defaults(handler=lambda args: _print_help(parser))
    actions = parser.add_subparsers(dest="profiles_action", metavar="ACTION")

    list_parser = actions.add_parser(
        "list",
        help="list the standard profile names",
        description="List the standard profiles, one per line with a short description. "
        "With --json: a list of {name, description} objects.",
    )
    add_report_arguments(list_parser)
    list_parser.set_defaults(handler=_list_profiles)

    show_parser = actions.add_parser(
        "show",
        help="show one profile or audiogram file",
        description="Show the thresholds of a standard profile or an audiogram file. "
        "With --json: name, frequencies_hz, thresholds_db_hl and, where given, "
        "left_db_hl and right_db_hl. thresholds_db_hl is the mean of the ears unless "
        "the file gives it.",
    )
    show_parser.add_argument(
        "audiogram",
        metavar="NAME|FILE",
        help=f"a standard profile ({', '.join(STANDARD_PROFILE_NAMES)}; any case) or a "
        ".json (hearmask or Clarity listener) or .csv audiogram file",
    )
    show_parser.add_argument(
        "--listener", metavar="ID", help="listener id to pick from a Clarity listener dict file"
    )
    show_parser.add_argument(
        "--plot", metavar="PNG", help="also draw the audiogram (audiological convention) to this image"
    )
    add_report_arguments(show_parser)
    show_parser.set_defaults(handler=_show_profile)


def _print_help(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return 2


def _list_profiles(args: argparse.Namespace) -> int:
    profiles = [
        {"name": name, "description": STANDARD_PROFILE_DESCRIPTIONS[name]}
        for name in STANDARD_PROFILE_NAMES
    ]
    width = max(len(name) for name in STANDARD_PROFILE_NAMES)
    human_text = "\n".join(
        f"{profile['name']:<{width}}  {profile['description']}" for profile in profiles
    )
    emit_result(args, profiles, human_text)
    return 0


def _show_profile(args: argparse.Namespace) -> int:
    audiogram = load_audiogram(args.audiogram, listener_id=args.listener)
    human_text = _format_audiogram(audiogram, args.audiogram)
    if args.plot:
        from hearmask.profiles.plot import plot_audiogram

        plot_audiogram(audiogram, path=args.plot)
        human_text += f"\nplot written to {args.plot}"
    emit_result(args, audiogram.to_json_dict(), human_text)
    return 0


def _format_audiogram(audiogram: Audiogram, source: str) -> str:
    """A small table: frequency, mono threshold, and each ear where given."""
    title = audiogram.name
    if is_standard_profile_name(source):
        title += f": {STANDARD_PROFILE_DESCRIPTIONS[audiogram.name]}"
    if not audiogram.has_per_ear:
        mono_heading = "dB HL"
    else:
        mono_heading = "mono dB HL" if audiogram.has_explicit_mono else "mean dB HL"
    columns = [(mono_heading, audiogram.thresholds_db_hl)]
    if audiogram.left_db_hl is not None:
        columns.append(("left dB HL", audiogram.left_db_hl))
    if audiogram.right_db_hl is not None:
        columns.append(("right dB HL", audiogram.right_db_hl))
    lines = [title, f"{'Hz':>7}" + "".join(f"{heading:>13}" for heading, _ in columns)]
    for index, frequency_hz in enumerate(audiogram.frequencies_hz):
        lines.append(
            f"{frequency_hz:>7g}" + "".join(f"{values[index]:>13g}" for _, values in columns)
        )
    return "\n".join(lines)
