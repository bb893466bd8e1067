"""``hearmask validate OUT_DIR --report DIR [--utterances N] [--seconds S]``."""

from __future__ import annotations

import argparse
import json
import os
import sys
import warnings
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "validate",
        help="compare float, fake-quant and int8 (LiteRT, TFLM) outputs of a quantized model",
        description="Run held-out utterances (validation split of the model's training data, state fed back hop by "
        "hop) through float torch, fake-quant torch, the int8 .tflite in LiteRT (default and reference kernels) and "
        "in the TFLM host interpreter. Writes DIR/report.json and DIR/report.md (SNR, errors in LSBs, cosine per "
        "stage and output; TFLM vs LiteRT per step and per op; a per-layer comparison naming the first layer that "
        "diverges). Exits 1 when a threshold fails: LiteRT vs fake-quant >= 45 dB, TFLM vs fake-quant >= 40 dB "
        "(every output), TFLM vs LiteRT reference kernels within 1 LSB per op with identical inputs.",
    )
    parser.add_argument("model_dir", type=Path, metavar="OUT_DIR", help="a folder written by hearmask quantize")
    parser.add_argument("--report", type=Path, required=True, metavar="DIR", help="folder for report.json and report.md")
    parser.add_argument("--utterances", type=int, default=4, help="held-out utterances (default 4)")
    parser.add_argument("--seconds", type=float, default=4.0, help="length of each utterance in seconds (default 4)")
    parser.add_argument("--layer-hops", type=int, default=50, help="hops of the per-layer comparison (default 50)")
    parser.add_argument("--litert-snr-db", type=float, default=45.0, help="LiteRT vs fake-quant minimum (default 45)")
    parser.add_argument("--tflm-snr-db", type=float, default=40.0, help="TFLM vs fake-quant minimum (default 40)")
    parser.add_argument("--json", action="store_true", help="print the report as JSON on stdout")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from hearmask.errors import HearmaskError
    from hearmask.quantize.validate import Thresholds, validate_model_dir, write_report

    if args.utterances < 1 or args.layer_hops < 1:
        raise HearmaskError(f"--utterances and --layer-hops must be >= 1, got {args.utterances}, {args.layer_hops}")
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Computing zero point of output accumulator")
        report = validate_model_dir(args.model_dir, utterances=args.utterances, seconds=args.seconds,
                                    layer_hops=args.layer_hops,
                                    thresholds=Thresholds(litert_snr_db=args.litert_snr_db, tflm_snr_db=args.tflm_snr_db))
    path = write_report(report, args.report)
    if args.json:
        json.dump(report, sys.stdout, indent=2, default=float)
        sys.stdout.write("\n")
    else:
        worst = {stage: min(values["snr_db"] for values in report[stage].values())
                 for stage in ("fake_quant", "litert", "litert_ref", "tflm")}
        print(f"{'passed' if report['passed'] else 'FAILED'}; lowest SNR per stage: "
              + ", ".join(f"{stage} {snr:.1f} dB" for stage, snr in worst.items()) + f"; report {path}")
    if not report["passed"]:
        layers = ", ".join(f"{key}: {point}" for key, point in report["first_diverging_layer"].items())
        print(f"hearmask validate: thresholds failed: {'; '.join(report['failures'])} (first diverging layer {layers})",
              file=sys.stderr)
        return 1
    return 0
