"""``hearmask fit MODEL_DIR --target NAME [--targets-dir DIR] [--json] [--report DIR]``.

Exit status: 0 when every budget fits (or is not applicable), 1 when one does not fit,
2 for bad input (unknown target, malformed descriptor, missing or inconsistent model folder).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from hearmask.cli.targets_cmd import add_targets_dir_argument

EXIT_FITS = 0
EXIT_DOES_NOT_FIT = 1
EXIT_BAD_INPUT = 2


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "fit",
        help="check a quantized model against a target's flash, RAM, compute and latency budgets",
        description="Check a folder written by hearmask quantize against a target: flash (int8 model, measured, + "
        "runtime and application code, estimated), RAM (TFLM arena, measured, + state, audio/serial buffers and DSP "
        "buffers), compute per hop (MACs / (mac_per_cycle x clock), an estimate, against 0.75 of the hop; Vela's "
        "estimate on Ethos-U targets when ethos-u-vela is installed) and latency (algorithmic + compute, against "
        "10 ms). Every figure is labelled measured / exact / estimate. Exit 0: fits; 1: does not fit; 2: bad input.",
    )
    parser.add_argument("model_dir", type=Path, metavar="MODEL_DIR", help="a folder written by hearmask quantize")
    parser.add_argument("--target", required=True, metavar="NAME", help="a target name (see hearmask targets list)")
    add_targets_dir_argument(parser)
    parser.add_argument("--latency-budget-ms", type=float, default=10.0,
                        help="limit for algorithmic + compute latency in ms (default 10)")
    parser.add_argument("--compute-budget-fraction", type=float, default=0.75,
                        help="share of each hop the network may use (default 0.75; the rest is headroom for the DSP "
                             "front end, I/O and interrupts)")
    parser.add_argument("--no-vela", action="store_true", help="do not run Vela on Ethos-U targets")
    parser.add_argument("--json", action="store_true", help="print the report as JSON on stdout")
    parser.add_argument("--report", type=Path, metavar="DIR", help="write DIR/report.json and DIR/report.md")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from hearmask.errors import HearmaskError
    from hearmask.targets.descriptors import load_target
    from hearmask.targets.fit import fit_model
    from hearmask.targets.fit_report import format_fit_text, write_fit_report

    try:
        target = load_target(args.target, args.targets_dir)
        report = fit_model(args.model_dir, target, latency_budget_ms=args.latency_budget_ms,
                           compute_budget_fraction=args.compute_budget_fraction, run_vela=not args.no_vela)
    except HearmaskError as error:
        if args.debug:
            raise
        print(f"hearmask fit: error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    if args.report:
        write_fit_report(report, args.report)
    if args.json:
        json.dump(report.to_dict(), sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        print(format_fit_text(report))
    if not report.fits:
        failed = [name for name, budget in report.budgets.items() if budget.fits is False]
        print(f"hearmask fit: {args.model_dir} does not fit {target.name}: {', '.join(failed)}", file=sys.stderr)
        return EXIT_DOES_NOT_FIT
    return EXIT_FITS
