"""``hearmask info [RUN_DIR|CHECKPOINT] [--json]``."""

from __future__ import annotations

import argparse

from hearmask.cli.reporting import add_report_arguments, emit_result


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "info", help="describe a model (parameters, MAC/s, latency, files)",
        description="Describe a trained model, or the model shipped with hearmask when no path is given.",
    )
    parser.add_argument("model", nargs="?", metavar="RUN_DIR|CHECKPOINT", help="default: the shipped model")
    add_report_arguments(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from hearmask.model.info import model_info

    info = model_info(args.model)
    lines = [
        f"variant            {info['variant']}",
        f"parameters         {info['parameters']:,}",
        f"MAC per second     {info['macs_per_second'] / 1e6:.2f} M ({info['macs_per_frame']:,} per {info['hop_ms']:g} ms hop)",
        f"latency            {info['algorithmic_latency_ms']:g} ms algorithmic at {info['sample_rate']} Hz",
        f"training steps     {info['training_steps']}",
        *[f"{key:<18} {path}" for key, path in info["files"].items()],
    ]
    emit_result(args, info, "\n".join(lines))
    return 0
