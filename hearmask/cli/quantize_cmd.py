"""``hearmask quantize RUN_DIR|CHECKPOINT --out OUT_DIR [--qat-steps N] [--calibration-batches N] [--resume]``."""

from __future__ import annotations

import argparse
import os
import warnings
from pathlib import Path

from hearmask.cli.reporting import add_report_arguments, emit_result


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "quantize",
        help="quantization-aware training and conversion to a fully int8 .tflite",
        description="Calibrate activation ranges on real training batches, fine-tune the model with Brevitas "
        "quantization-aware training (same data and losses as its training run), and convert it: "
        "OUT_DIR/model_int8.tflite (fully int8, every QAT scale kept), model_float.tflite, model_float.onnx, "
        "manifest.json and qat_checkpoint.{json,safetensors}. A RUN_DIR means its best.json. --resume continues an "
        "interrupted QAT run exactly.",
    )
    parser.add_argument("model", type=Path, metavar="RUN_DIR|CHECKPOINT",
                        help="a float model written by hearmask train")
    parser.add_argument("--out", type=Path, required=True, metavar="OUT_DIR",
                        help="folder for the QAT checkpoint and models")
    parser.add_argument("--qat-steps", type=int, default=300, metavar="N", help="QAT optimiser steps (default 300)")
    parser.add_argument("--calibration-batches", type=int, default=8, metavar="N",
                        help="training batches for the calibration pass (default 8)")
    parser.add_argument("--learning-rate", type=float, default=1e-4, help="QAT learning rate (default 1e-4)")
    parser.add_argument("--batch-size", type=int, default=8, help="QAT batch size (default 8)")
    parser.add_argument("--segment-seconds", type=float, default=0.5,
                        help="QAT segment length in seconds (default 0.5; the recurrence runs frame by frame)")
    parser.add_argument("--distillation-weight", type=float, default=0.0, metavar="W",
                        help="weight of a term pulling the QAT masks (dB) towards the float model's on the same "
                             "input, beside the task losses (default 0: task losses only)")
    parser.add_argument("--resume", action="store_true", help="continue the QAT run in OUT_DIR")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    add_report_arguments(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's C++ info lines are not for users
    from hearmask.quantize.qat_training import QatConfig
    from hearmask.quantize.quantize_model import quantize_model

    config = QatConfig(steps=args.qat_steps, calibration_batches=args.calibration_batches,
                       learning_rate=args.learning_rate, batch_size=args.batch_size,
                       segment_seconds=args.segment_seconds, distillation_weight=args.distillation_weight)
    with warnings.catch_warnings():
        # Brevitas notes on every linear with a zero-point input that it does not track the
        # accumulator's zero point; the int8 graph does not need it (biases are int32 at s_in·s_w).
        warnings.filterwarnings("ignore", message="Computing zero point of output accumulator")
        summary = quantize_model(args.model, args.out, config, resume=args.resume, progress=not args.no_progress)
    sizes = ", ".join(f"{size:,} bytes" for size in summary["int8_model_bytes"])
    arenas = ", ".join(f"{size:,} bytes" for size in summary["tflm_arena_bytes"])
    emit_result(args, summary, f"quantized after {summary['step']} QAT steps; int8 model {sizes}, TFLM arena {arenas}; "
                f"ops {', '.join(summary['ops'])}; files in {summary['out_dir']}")
    return 0
