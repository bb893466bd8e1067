"""``hearmask data``: offline training data (thin layer over :mod:`hearmask.model.data`)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from hearmask.cli.reporting import add_report_arguments, emit_result
from hearmask.errors import HearmaskError

_SOURCE_HELP = "comma-separated speech sources: real (asterisk fr/it/ru recordings), flite, espeak"


def _parse_sources(text: str) -> tuple[str, ...]:
    names = tuple(name.strip() for name in text.split(",") if name.strip())
    if not names:
        raise argparse.ArgumentTypeError(f"no speech source in {text!r}; {_SOURCE_HELP}")
    return names


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "data", help="build offline training data (speech, noise, mixtures)",
        description="Build offline training data from Debian packages; nothing is downloaded.",
    )
    actions = parser.add_subparsers(dest="data_command", metavar="ACTION")

    def show_help(args: argparse.Namespace) -> int:
        parser.print_help(sys.stderr)
        return 2

    parser.set_defaults(handler=show_help)

    synth = actions.add_parser(
        "synth", help="write a reproducible noisy-speech dataset with a manifest",
        description=(
            "Write clean/, noise/ and noisy/ folders of 16 kHz mono 32-bit float wav files "
            "(noisy = clean + noise) plus manifest.json. The same seed and options give "
            "byte-identical files. Decoded and synthesised speech is cached (see --cache-dir)."
        ),
    )
    synth.add_argument("--minutes", type=float, required=True, help="total duration to write, in minutes")
    synth.add_argument("--out", type=Path, required=True, metavar="DIR", help="output folder (new or empty)")
    synth.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    synth.add_argument("--snr-range", type=float, nargs=2, default=(-5.0, 20.0), metavar=("LO", "HI"),
                       help="SNR range in dB, drawn uniformly per item (default -5 20)")
    synth.add_argument("--sources", type=_parse_sources, default=("real", "flite", "espeak"),
                       help=f"{_SOURCE_HELP} (default real,flite,espeak)")
    synth.add_argument("--segment-seconds", type=float, default=4.0, help="length of each item (default 4)")
    synth.add_argument("--split", choices=("train", "validation"), default="train",
                       help="which hash split of the speech to use (default train)")
    synth.add_argument("--cache-dir", type=Path, default=None,
                       help="cache folder (default $HEARMASK_CACHE_DIR or ~/.cache/hearmask)")
    synth.add_argument("--overwrite", action="store_true",
                       help="replace a previous dataset in DIR (only its clean/, noise/, noisy/ and manifest.json)")
    add_report_arguments(synth)
    synth.set_defaults(handler=run_synth)

    pack = actions.add_parser(
        "pack", help="pack the embedded training speech into FLAC files for another machine",
        description=(
            "Write the train and validation utterances of the embedded speech sources as 16 kHz 16-bit "
            "FLAC files plus pack.json, keeping their ids (and so their splits). A training config's "
            "[data] speech_pack = \"DIR\" then trains on a machine without the Debian packages or TTS "
            "programs (a GPU server). Test utterances are never packed."
        ),
    )
    pack.add_argument("--out", type=Path, required=True, metavar="DIR", help="output folder (new or empty)")
    pack.add_argument("--sources", type=_parse_sources, default=("real", "flite", "espeak"),
                      help=f"{_SOURCE_HELP} (default real,flite,espeak)")
    pack.add_argument("--train-fraction", type=float, default=1.0, metavar="F",
                      help="share of the training utterances to keep, in (0, 1] (default 1: all); "
                           "validation utterances are always kept")
    pack.add_argument("--cache-dir", type=Path, default=None,
                      help="cache folder (default $HEARMASK_CACHE_DIR or ~/.cache/hearmask)")
    add_report_arguments(pack)
    pack.set_defaults(handler=run_pack)


def run_synth(args: argparse.Namespace) -> int:
    from hearmask.model.data.synth import SynthConfig, synthesize_dataset

    low_db, high_db = args.snr_range
    if not low_db <= high_db:
        raise HearmaskError(f"--snr-range {low_db:g} {high_db:g} is empty; expected LO <= HI")
    if not args.segment_seconds > 0:
        raise HearmaskError(f"--segment-seconds {args.segment_seconds:g}; expected a positive number")
    config = SynthConfig(minutes=args.minutes, seed=args.seed, snr_range_db=(low_db, high_db),
                         sources=args.sources, segment_seconds=args.segment_seconds, split=args.split)
    summary = synthesize_dataset(args.out, config, cache_dir=args.cache_dir, overwrite=args.overwrite,
                                 progress=not args.json)
    by_source = ", ".join(f"{name} {minutes:.2f} min" for name, minutes in summary["minutes_by_source"].items())
    human = (f"wrote {summary['num_items']} items ({summary['total_minutes']:.2f} min: {by_source}) "
             f"to {summary['out_dir']}; manifest {summary['manifest']}")
    emit_result(args, summary, human)
    return 0


def run_pack(args: argparse.Namespace) -> int:
    from hearmask.model.data.pack import write_speech_pack
    from hearmask.model.data.synth import build_speech_sources

    sources = build_speech_sources(args.sources, cache_dir=args.cache_dir, progress=not args.json)
    index = write_speech_pack(sources, args.out, train_fraction=args.train_fraction, progress=not args.json)
    counts = {name: len(entries) for name, entries in index["sources"].items()}
    size_bytes = sum(p.stat().st_size for p in Path(args.out).rglob("*") if p.is_file())
    summary = {"out_dir": str(args.out), "utterances": counts, "seconds": index["seconds"],
               "train_fraction": index["train_fraction"], "bytes": size_bytes}
    human = (f"packed {sum(counts.values())} utterances ({index['seconds'] / 60:.1f} min; "
             f"{', '.join(f'{k} {v}' for k, v in counts.items())}) into {args.out}, {size_bytes / 1e6:.1f} MB")
    emit_result(args, summary, human)
    return 0
