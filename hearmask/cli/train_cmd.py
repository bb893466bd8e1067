"""``hearmask train --config CONFIG.toml --out RUN_DIR [--resume]``."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from hearmask.cli.reporting import add_report_arguments, emit_result


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "train",
        help="train the mask network through the auditory model",
        description="Train a hearmask model. Data order, audiograms and initial weights follow the config's seed; "
        "--resume continues an interrupted run exactly. Writes RUN_DIR/checkpoint.{json,safetensors} (latest, with "
        "optimiser state), best.{json,safetensors} (lowest validation loss) and log.csv (one row per epoch). "
        "Runs under torchrun for multi-process/multi-GPU training (DDP) without changes.",
    )
    parser.add_argument("--config", type=Path, help="training configuration (TOML); omitted = the shipped defaults")
    parser.add_argument("--out", type=Path, required=True, metavar="RUN_DIR", help="run folder")
    parser.add_argument("--resume", action="store_true", help="continue the run in RUN_DIR")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_report_arguments(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from hearmask.model.train_config import TrainConfig, load_train_config
    from hearmask.model.trainer import Trainer

    config = load_train_config(args.config) if args.config else TrainConfig()
    summary = Trainer(config, args.out, resume=args.resume, progress=not args.no_progress).run()
    if int(os.environ.get("RANK", "0")) == 0:
        emit_result(args, summary, f"trained to step {summary['step']}; best validation loss "
                    f"{summary['best_val_loss']:.4f}; run folder {summary['run_dir']}")
    return 0
