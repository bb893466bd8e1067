"""``hearmask validate OUT_DIR --report DIR [--utterances N] [--seconds S] [--audio-seconds S] [--audiogram NAME]``."""

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
        description="Run held-out utterances (validation split of the model's training data) through float torch, "
        "fake-quant torch, the int8 .tflite in LiteRT (default and reference kernels) and in the TFLM host "
        "interpreter, per step (every stage starts each hop from the fake-quant state) and free-running (each "
        "feeds back its own state); enhance held-out speech in noise through the int8 streaming path and the float "
        "model. Writes DIR/report.json, DIR/report.md and plots (error histograms in LSBs, float vs int8 masks). "
        "Each runtime is compared with fake-quant computed in that runtime's requantization arithmetic "
        "(FULLY_CONNECTED / MUL rounded once or twice, as its kernels do); the difference from the float-rounded "
        "fake-quant is reported as the rounding effect. "
        "Exits 1 when a threshold fails: per step, LiteRT vs fake-quant >= 45 dB and TFLM vs fake-quant >= 40 dB "
        "on every output; every FULLY_CONNECTED / MUL value follows its runtime's documented rounding; TFLM vs "
        "LiteRT reference kernels within 1 LSB per op with identical inputs; int8 (LiteRT and TFLM) vs float "
        "mean drop of HASPI v2 <= 0.01, ESTOI <= 0.01, PESQ <= 0.1. Free-running SNRs are reported, not "
        "thresholded: one-LSB rounding differences fed back through the recurrent state drift apart over an "
        "utterance, and the audio check bounds what that does to the output.",
    )
    parser.add_argument("model_dir", type=Path, metavar="OUT_DIR", help="a folder written by hearmask quantize")
    parser.add_argument("--report", type=Path, required=True, metavar="DIR",
                        help="folder for report.json, report.md and the plots")
    parser.add_argument("--utterances", type=int, default=4, metavar="N",
                        help="held-out utterances of the golden chain (default 4)")
    parser.add_argument("--seconds", type=float, default=4.0,
                        help="length of each golden-chain utterance in seconds (default 4)")
    # The default lives in hearmask.quantize.validate (AUDIO_UTTERANCES); importing it here would load
    # torch for every hearmask command, so None means "that default" and the handler resolves it.
    parser.add_argument("--audio-utterances", type=int, default=None, metavar="N",
                        help="held-out mixtures of the audio check (default 24: fewer leave the mean "
                        "HASPI delta's standard error above its 0.01 threshold; 0 skips the check, which the report "
                        "and the summary line then say)")
    parser.add_argument("--audio-seconds", type=float, default=2.5,
                        help="length of each audio-check utterance in seconds, at least 1 (default 2.5)")
    parser.add_argument("--audiogram", default="N3", metavar="NAME|FILE",
                        help="listener of the audio check (HASPI v2 and the HLC gain; default N3)")
    parser.add_argument("--layer-hops", type=int, default=50, help="hops of the per-layer comparison (default 50)")
    parser.add_argument("--litert-snr-db", type=float, default=45.0,
                        help="LiteRT vs fake-quant minimum SNR per step (default 45)")
    parser.add_argument("--tflm-snr-db", type=float, default=40.0,
                        help="TFLM vs fake-quant minimum SNR per step (default 40)")
    parser.add_argument("--json", action="store_true", help="print the report as JSON on stdout")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from hearmask.errors import HearmaskError
    from hearmask.quantize.validate import (AUDIO_UTTERANCES, Thresholds, report_document, validate_model_dir,
                                            write_report)

    if args.utterances < 1 or args.layer_hops < 1:
        raise HearmaskError(f"--utterances and --layer-hops must be >= 1, got {args.utterances}, {args.layer_hops}")
    if args.audio_utterances is not None and args.audio_utterances < 0:
        raise HearmaskError(f"--audio-utterances must be >= 0 (0 skips the audio check), got {args.audio_utterances}")
    if not args.audio_seconds >= 1.0:
        raise HearmaskError(f"--audio-seconds must be at least 1 s, got {args.audio_seconds}")
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Computing zero point of output accumulator")
        report = validate_model_dir(args.model_dir, utterances=args.utterances, seconds=args.seconds,
                                    layer_hops=args.layer_hops,
                                    audio_utterances=(AUDIO_UTTERANCES if args.audio_utterances is None
                                                      else args.audio_utterances),
                                    audio_seconds=args.audio_seconds,
                                    audiogram_name=args.audiogram,
                                    thresholds=Thresholds(litert_snr_db=args.litert_snr_db,
                                                          tflm_snr_db=args.tflm_snr_db))
    path = write_report(report, args.report)
    if args.json:
        json.dump(report_document(report), sys.stdout, indent=2, default=float)
        sys.stdout.write("\n")
    else:
        def lowest(mode):
            return ", ".join(f"{stage} {min(v['snr_db'] for v in values.values()):.1f} dB"
                             for stage, values in report["stages"][mode].items())

        audio = report["audio"]
        deltas = (", ".join(f"{metric} {audio[metric]['mean_delta']:+.4f}" for metric in ("haspi", "estoi", "pesq"))
                  if audio["computed"] else "skipped, not checked")
        print(f"{'passed' if report['passed'] else 'FAILED'}; lowest SNR per step: {lowest('per_step')}; "
              f"free-running: {lowest('free_running')}; audio int8 - float: {deltas}; report {path}")
    if not report["passed"]:
        layers = ", ".join(f"{key}: {point}" for key, point in report["first_diverging_layer"].items())
        print(f"hearmask validate: thresholds failed: {'; '.join(report['failures'])} (first diverging layer {layers})",
              file=sys.stderr)
        for explanation in report["explanations"]:
            print(f"hearmask validate: why: {explanation}", file=sys.stderr)
        return 1
    return 0
