"""``hearmask evaluate --model NAME=PATH [--model ...] --report DIR``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from hearmask.errors import HearmaskError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "evaluate",
        help="score models against unprocessed and NAL-R on a held-out set, for every standard listener",
        description=(
            "Evaluate models on a held-out set (real pocketsphinx-testdata speech and held-out synthetic "
            "voices, in procedural noise) for each audiogram and SNR: PESQ, ESTOI and SI-SDR of the noise "
            "reduction, HASPI v2 and HASQI v2 of the full output for the listener, and the auditory-model "
            "loss. Writes report.json, results.csv, results.md (paper-style tables) and plots to DIR; "
            "rows are saved as they finish, so an interrupted run continues with --resume. HASPI/HASQI "
            "cost about 1.3 s of CPU per second of audio (the default with two models: about 25 min on "
            "2 cores); shrink the run with --utterances, --snrs, --audiograms or --metrics."
        ),
    )
    parser.add_argument("--model", action="append", default=[], metavar="NAME=PATH",
                        help="a model to evaluate (run folder or checkpoint), repeatable; PATH alone is named "
                        "after its task variant; default: the shipped model")
    parser.add_argument("--report", type=Path, required=True, metavar="DIR", help="folder for the report files")
    parser.add_argument("--utterances", type=int, metavar="N", help="clean utterances, each mixed at every SNR "
                        "(default 4: 2 real, 2 synthetic)")
    parser.add_argument("--snrs", type=float, nargs="+", metavar="DB", help="SNRs in dB (default: 0 5 10)")
    parser.add_argument("--audiograms", nargs="+", metavar="NAME|FILE",
                        help="listeners: standard profiles or audiogram files (default: NH N1-N7 S1-S3)")
    parser.add_argument("--sweep-audiograms", nargs="+", metavar="NAME|FILE",
                        help="listeners for a joint model's strength sweep, among --audiograms (default: N1 N3 S2)")
    parser.add_argument("--sweep", type=float, nargs="+", metavar="S",
                        help="strengths of the sweep: alpha at beta=1 and beta at alpha=1 (default: 0 0.5 1)")
    parser.add_argument("--strengths", nargs="+", metavar="ALPHA,BETA",
                        help="evaluate every model at exactly these (alpha, beta) points instead of its "
                        "variant's defaults (joint: 1,1 1,0 0,1 and the sweep; nr: 1,0; hlc: 0,1; cascade: 1,1)")
    parser.add_argument("--metrics", nargs="+", metavar="NAME",
                        help="metrics to compute (default: pesq estoi si_sdr haspi hasqi auditory_loss)")
    parser.add_argument("--max-seconds", type=float, metavar="S", help="cut each utterance to S seconds (default 2.5)")
    parser.add_argument("--seed", type=int, metavar="N", help="seed of the held-out set (default 2026)")
    parser.add_argument("--workers", type=int, metavar="N", help="processes computing rows (default: one per CPU)")
    parser.add_argument("--resume", action="store_true", help="continue an interrupted evaluation in DIR")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON on stdout")
    parser.set_defaults(handler=run)


def parse_model_argument(text: str) -> tuple[str | None, str]:
    """``NAME=PATH`` -> (NAME, PATH); a bare PATH -> (None, PATH)."""
    name, separator, path = text.partition("=")
    if not separator:
        return None, text
    if not name.strip() or not path.strip():
        raise HearmaskError(f"--model {text!r}: expected NAME=PATH (e.g. joint=runs/joint) or a PATH")
    return name.strip(), path.strip()


def parse_strength_point(text: str) -> tuple[float, float]:
    try:
        alpha, beta = (float(value) for value in text.split(","))
    except ValueError:
        raise HearmaskError(f"--strengths {text!r}: expected ALPHA,BETA such as 1,0.5") from None
    if not (0.0 <= alpha <= 1.0 and 0.0 <= beta <= 1.0):
        raise HearmaskError(f"--strengths {text!r}: alpha and beta must be in [0, 1]")
    return alpha, beta


def model_specs(arguments: list[str], points):
    """ModelSpecs for the ``--model`` arguments, or the shipped default model when none is given."""
    from hearmask.model.checkpoint import load_checkpoint
    from hearmask.model.default_model import resolve_model_path
    from hearmask.model.evaluate import ModelSpec

    if not arguments:
        try:
            return [ModelSpec("default", resolve_model_path(None), points)]
        except HearmaskError as error:
            raise HearmaskError(f"{error}; pass one with --model NAME=PATH (repeatable), e.g. "
                                "--model joint=runs/joint --model cascade=runs/cascade") from None
    specs = []
    for text in arguments:
        name, path = parse_model_argument(text)
        if name is None:
            _, metadata = load_checkpoint(path)
            name = str(metadata.get("system", {}).get("variant", Path(path).stem))
        specs.append(ModelSpec(name, Path(path), points))
    return specs


def run(args: argparse.Namespace) -> int:
    from hearmask.model.evaluate import EvaluationConfig, evaluate

    points = tuple(parse_strength_point(text) for text in args.strengths) if args.strengths else None
    overrides = {
        "num_utterances": args.utterances, "snrs_db": tuple(args.snrs) if args.snrs else None,
        "audiograms": tuple(args.audiograms) if args.audiograms else None,
        "sweep_audiograms": tuple(args.sweep_audiograms) if args.sweep_audiograms else None,
        "sweep_strengths": tuple(args.sweep) if args.sweep else None,
        "metrics": tuple(args.metrics) if args.metrics else None, "max_seconds": args.max_seconds,
        "seed": args.seed, "workers": args.workers,
    }
    config = EvaluationConfig(**{key: value for key, value in overrides.items() if value is not None})
    result = evaluate(model_specs(args.model, points), args.report, config, resume=args.resume,
                      progress=not args.no_progress)
    if args.json:
        json.dump(result.to_dict(), sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        # The main table of results.md: the first run of table lines.
        markdown = Path(result.files["markdown"]).read_text().split("## ", 2)[1]
        print("\n".join(line for line in markdown.splitlines()[2:] if line.startswith("|")))
        print(f"\n{len(result.rows)} rows ({result.computed_rows} computed, {result.skipped_rows} resumed) in "
              f"{result.elapsed_s:.0f} s; report in {result.report_dir}")
    return 0
