"""``hearmask enhance IN -o OUT --audiogram NAME|FILE --method nalr``."""

from __future__ import annotations

import argparse
from pathlib import Path

from hearmask.cli.reporting import add_report_arguments, emit_result


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "enhance",
        help="process a sound file for a listener",
        description=(
            "Process a sound file causally in the streaming frame engine. Any sample rate is "
            "resampled to the model rate and back; the output has the input's length and rate "
            "and is delayed by the STFT's algorithmic latency. Multi-channel input: --channels "
            "mix (default) averages the channels to mono and writes mono; --channels each "
            "processes every channel independently and writes them all."
        ),
    )
    parser.add_argument("input", type=Path, metavar="IN", help="input sound file (wav, flac, ogg)")
    parser.add_argument("-o", "--output", type=Path, required=True, metavar="OUT", help="output sound file")
    parser.add_argument(
        "--audiogram", required=True, metavar="NAME|FILE",
        help="a standard profile (NH, N1-N7, S1-S3) or an audiogram file (JSON, CSV, Clarity listener JSON)",
    )
    parser.add_argument("--listener", metavar="ID", help="listener id inside a Clarity listeners file")
    parser.add_argument("--ear", choices=("mean", "left", "right"), default="mean",
                        help="which ear's thresholds to use when the audiogram has both (default: mean)")
    parser.add_argument("--method", choices=("model", "nalr"), default="model",
                        help="model: the network's streaming step form (default); nalr: the NAL-R prescription")
    parser.add_argument("--model", metavar="RUN_DIR|CHECKPOINT",
                        help="trained model for --method model (default: the model shipped with hearmask)")
    parser.add_argument("--nr", type=float, default=1.0, metavar="ALPHA",
                        help="noise-reduction strength alpha in [0, 1] (default 1)")
    parser.add_argument("--hlc", type=float, default=1.0, metavar="BETA",
                        help="hearing-loss-compensation strength beta in [0, 1] (default 1)")
    parser.add_argument("--allow-exaggeration", action="store_true", help="accept strengths above 1")
    parser.add_argument("--stft", metavar="NAME",
                        help="STFT configuration for nalr: default (8 ms), low_latency (4 ms), symmetric_8ms; "
                        "a model always uses the one it was trained with")
    parser.add_argument("--channels", choices=("mix", "each"), default="mix", help="multi-channel handling (see above)")
    parser.add_argument(
        "--on-overload", choices=("float", "normalize", "clip"), default="float",
        help="when the output exceeds full scale in a PCM file: write 32-bit float (default, keeps every "
        "sample), normalize to a -1 dBFS peak, or clip",
    )
    add_report_arguments(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from hearmask.model.enhance import enhance_file
    from hearmask.model.stft_config import shipped_stft_config
    from hearmask.profiles.io import load_audiogram

    audiogram = load_audiogram(args.audiogram, listener_id=args.listener).for_ear(args.ear)
    options = {}
    if args.method == "model":
        options = dict(model_path=args.model, nr_strength=args.nr, hlc_strength=args.hlc,
                       allow_exaggeration=args.allow_exaggeration)
    stft_config = shipped_stft_config(args.stft) if args.stft else None
    result = enhance_file(args.input, args.output, audiogram, args.method, stft_config, args.channels,
                          args.on_overload, **options)
    summary = (
        f"wrote {result.output_path} ({result.duration_s:.2f} s, {result.input_sample_rate_hz} Hz, "
        f"{result.num_channels_out} ch) with {result.method_description} for {result.audiogram_name}; "
        f"algorithmic latency {result.algorithmic_latency_ms:.1f} ms"
    )
    if result.overload_action != "none":
        summary += f"; output peaked at {result.output_peak_dbfs:+.1f} dBFS, handled by --on-overload {result.overload_action}"
    emit_result(args, result.to_dict(), summary)
    return 0
