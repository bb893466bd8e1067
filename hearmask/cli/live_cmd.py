"""``hearmask live --model MODEL_DIR [--audiogram N3] [--nr A] [--hlc B] ...``: the hearing aid in real time (JACK)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from hearmask.cli.reporting import add_report_arguments, emit_result


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "live",
        help="run the int8 model live: sound card in -> NR + HLC -> sound card out (JACK), with listener controls",
        description="Capture -> streaming STFT -> int8 model (LiteRT) -> gains alpha*NR_dB + beta*HLC_dB -> ISTFT -> "
        "playback, hop by hop in the JACK process callback. Needs a running JACK server (Debian: jackd2), e.g. "
        "`jackd -R -d alsa -d hw:USB -r 48000 -p 128 -n 2` for a USB card or `jackd -R -d dummy -r 16000 -p 64` "
        "without one; other server rates are resampled. Keys (when stdin is a terminal): + / - NR strength, ] / [ HLC "
        "strength, 0 off, 1 full, q quit. A safety limiter is always on: no output sample above --max-output-dbfs, no "
        "bin gain above --max-gain-db. --in-file/--out-file play a file through the loop and record its output "
        "(testing); --measure-latency plays clicks through the loop and reports the latency it measured and how.",
    )
    parser.add_argument("--model", type=Path, required=True, metavar="MODEL_DIR",
                        help="folder written by hearmask quantize (model_int8.tflite + manifest.json), or a Pi bundle")
    parser.add_argument("--audiogram", default="NH", metavar="NAME|FILE",
                        help="standard profile (NH, N1-N7, S1-S3) or audiogram file (default NH)")
    parser.add_argument("--listener", metavar="ID", help="listener id inside a Clarity listeners file")
    parser.add_argument("--ear", choices=("mean", "left", "right"), default="mean",
                        help="which ear of a two-ear audiogram (default: their mean)")
    parser.add_argument("--nr", type=float, default=1.0, metavar="ALPHA", help="noise-reduction strength (default 1)")
    parser.add_argument("--hlc", type=float, default=1.0, metavar="BETA", help="compensation strength (default 1)")
    parser.add_argument("--allow-exaggeration", action="store_true", help="accept strengths above 1 (up to 4)")
    parser.add_argument("--max-output-dbfs", type=float, default=-6.0, metavar="DBFS",
                        help="output ceiling, sample peak in dB re full scale (default -6)")
    parser.add_argument("--max-gain-db", type=float, default=40.0, metavar="DB",
                        help="most gain any frequency bin may get, whatever the model asks (default 40)")
    parser.add_argument("--ramp-hops", type=int, default=8, metavar="N",
                        help="hops over which a control change ramps in (default 8 = 32 ms at the default hop)")
    parser.add_argument("--backend", choices=("jack",), default="jack", help="audio backend (JACK; the tested one)")
    parser.add_argument("--jack-server", metavar="NAME",
                        help="JACK server name (default: $JACK_DEFAULT_SERVER, else the default server)")
    parser.add_argument("--client-name", default="hearmask-live", help="JACK client name (default hearmask-live)")
    parser.add_argument("--input-port", action="append", metavar="PORT",
                        help="JACK port to capture from, e.g. system:capture_1 (default: the first physical capture port)")
    parser.add_argument("--output-port", action="append", metavar="PORT",
                        help="JACK port to play to; repeat for both ears (default: the first two physical playback ports)")
    parser.add_argument("--in-file", type=Path, metavar="WAV", help="play this file through the loop (with --out-file)")
    parser.add_argument("--out-file", type=Path, metavar="WAV", help="record the loop's output here (with --in-file)")
    parser.add_argument("--duration", type=float, metavar="S", help="stop after S seconds (default: run until q or Ctrl-C)")
    parser.add_argument("--measure-latency", action="store_true",
                        help="play clicks through the loop, detect them at its output and report the latency")
    parser.add_argument("--loopback", nargs=2, metavar=("PLAYBACK_PORT", "CAPTURE_PORT"),
                        help="with --measure-latency: a cable (or acoustic path) from PLAYBACK_PORT to CAPTURE_PORT, so "
                             "the figure includes the sound card (end to end)")
    parser.add_argument("--serial", metavar="URL",
                        help="accept SET_STRENGTHS / SET_AUDIOGRAM (hearmask protocol) on this serial port or pyserial URL")
    parser.add_argument("--baud", type=int, default=115200, help="baud rate of a real UART for --serial (default 115200)")
    parser.add_argument("--runtime", choices=("litert", "litert-reference"), default="litert",
                        help="LiteRT optimised kernels (default) or reference kernels (the bit-exact golden, slower)")
    parser.add_argument("--threads", type=int, default=1, help="LiteRT interpreter threads (default 1)")
    parser.add_argument("--label", default="JACK server (backend as started by the user)",
                        help="how the audio conditions are labelled in the summary, e.g. 'emulated (JACK dummy backend)'")
    parser.add_argument("--callback-delay-ms", type=float, default=0.0, help=argparse.SUPPRESS)  # tests: provoke xruns
    add_report_arguments(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from hearmask.errors import HearmaskError
    from hearmask.firmware_bridge.live import LiveOptions, run_live
    from hearmask.firmware_bridge.live_limiter import LimiterConfig
    from hearmask.profiles.audiogram import MODEL_AUDIOGRAM_FREQUENCIES_HZ, MODEL_INPUT_SCALE_DB
    from hearmask.profiles.io import load_audiogram

    if args.loopback and not args.measure_latency:
        raise HearmaskError("--loopback only applies to --measure-latency")
    if args.threads < 1:
        raise HearmaskError(f"--threads must be >= 1, got {args.threads}")
    audiogram = load_audiogram(args.audiogram, listener_id=args.listener).for_ear(args.ear)
    thresholds = tuple(round(float(v), 1) for v in
                       audiogram.model_input(MODEL_AUDIOGRAM_FREQUENCIES_HZ) * MODEL_INPUT_SCALE_DB)
    options = LiveOptions(
        model_dir=args.model, audiogram_db_hl=thresholds, audiogram_name=audiogram.name, alpha=args.nr, beta=args.hlc,
        allow_exaggeration=args.allow_exaggeration,
        limiter=LimiterConfig(max_output_dbfs=args.max_output_dbfs, max_gain_db=args.max_gain_db),
        ramp_hops=args.ramp_hops, reference_kernels=args.runtime == "litert-reference", threads=args.threads,
        server_name=args.jack_server or os.environ.get("JACK_DEFAULT_SERVER"), client_name=args.client_name,
        capture_ports=tuple(args.input_port) if args.input_port else None,
        playback_ports=tuple(args.output_port) if args.output_port else None,
        in_file=args.in_file, out_file=args.out_file, duration_s=args.duration, measure_latency=args.measure_latency,
        loopback=tuple(args.loopback) if args.loopback else None, serial_url=args.serial, serial_baud=args.baud,
        audio_label=args.label, callback_delay_s=args.callback_delay_ms / 1000.0)
    summary = run_live(options)
    emit_result(args, summary, _human_text(summary))
    return 0


def _human_text(summary: dict) -> str:
    times = summary["callback_us"]
    lines = [f"{summary['conditions']['audio']}: {summary['callbacks']} callbacks of {summary['period_ms']:.2f} ms, "
             f"callback median {_us(times['median'])}, p99 {_us(times['p99'])}, max {_us(times['max'])}; "
             f"xruns {summary['xruns']}, skipped cycles {summary['skipped_cycles']}, "
             f"late callbacks {summary['late_callbacks']}, process CPU {summary['process_cpu_percent']:.1f} %",
             f"loop latency budget {summary['latency_budget']['total_ms']:.2f} ms (STFT overlap "
             f"{summary['latency_budget']['stft_overlap_ms']:.2f}, block queue {summary['latency_budget']['block_queue_ms']:.2f}, "
             f"resampling {summary['latency_budget']['resample_down_ms'] + summary['latency_budget']['resample_up_ms']:.2f}) "
             "plus the sound card's capture and playback buffering"]
    latency = summary.get("latency")
    if latency:
        measured = "not detected" if latency["measured_ms"] is None else f"{latency['measured_ms']:.2f} ms"
        lines.append(f"measured latency: {measured}; {latency['method']}")
    if summary.get("file"):
        lines.append(f"wrote {summary['file']['out_file']}")
    return "\n".join(lines)


def _us(value) -> str:
    return "n/a" if value is None else f"{value:.0f} us"
