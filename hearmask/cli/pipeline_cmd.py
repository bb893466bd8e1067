"""``hearmask pipeline --out DIR``: the main job end to end on the embedded defaults."""

from __future__ import annotations

import argparse
from pathlib import Path

from hearmask.cli.reporting import add_report_arguments, emit_result


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "pipeline",
        help="run the main job end to end on the embedded defaults",
        description="Synthesise a noisy sample (held-out real speech + procedural babble), compensate it for a "
        "standard listener with NAL-R in the streaming frame engine, run the trained model (the shipped default or "
        "--model) on it, and write wavs, an audiogram/gain plot and "
        "a JSON + Markdown report into --out.",
    )
    parser.add_argument("--out", type=Path, default=Path("out/pipeline"), help="output folder (default: out/pipeline)")
    parser.add_argument("--audiogram", default="N3", help="standard listener profile (default: N3)")
    parser.add_argument("--snr", type=float, default=5.0, help="SNR of the noisy sample in dB (default: 5)")
    parser.add_argument("--seed", type=int, default=0, help="seed for the sample (default: 0)")
    parser.add_argument("--model", type=Path, default=None,
                        help="RUN_DIR or CHECKPOINT for the model stage (default: the shipped model)")
    parser.add_argument("--int8-dir", type=Path, default=None,
                        help="a `hearmask quantize` folder for the validate/fit/export/profile stages "
                             "(default: the shipped model's, when --model is not given)")
    parser.add_argument("--audio-utterances", type=int, default=None, metavar="N",
                        help="held-out mixtures of the validate stage's audio check (default: hearmask validate's, "
                             "24; fewer make its verdict noise)")
    parser.add_argument("--skip-deploy", action="store_true",
                        help="stop after the model stage: no validate/fit/export/profile (a quick look)")
    add_report_arguments(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from hearmask.errors import HearmaskError
    from hearmask.pipeline import run_pipeline

    if args.audio_utterances is not None and args.audio_utterances < 1:
        raise HearmaskError(f"--audio-utterances must be >= 1, got {args.audio_utterances}")
    report = run_pipeline(args.out, audiogram_name=args.audiogram, snr_db=args.snr, seed=args.seed,
                          model_path=args.model, int8_dir=args.int8_dir, deploy=not args.skip_deploy,
                          audio_utterances=args.audio_utterances)
    emit_result(args, report, (Path(args.out) / "report.md").read_text())
    return 0
