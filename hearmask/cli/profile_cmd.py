"""``hearmask profile --port URL --model MODEL_DIR|--bundle DIR --report DIR [--hops N] [--bench-runs N] [--resume]``."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "profile",
        help="measure latency, correctness and power of a model on a device over a serial line",
        description="Profile a model on a device speaking the hearmask protocol: HELLO/INFO, LOAD_MODEL when the "
        "device runs another model (Raspberry Pi agent), SET_AUDIOGRAM/SET_STRENGTHS, INFER over held-out utterances "
        "(real speech in noise through the DSP front end, state fed back) compared with the host golden in LSBs, "
        "BENCH (device-timed invokes), STREAM when the device has a pipeline, POWER with --power. Writes "
        "DIR/records.jsonl as it goes (--resume continues an interrupted profile), then DIR/report.json, report.md "
        "and latency_histogram.png. Every figure is labelled hardware, emulated or estimate: emulated when the URL is "
        "emulate:// (the real agent on a local pty) or the device says so in INFO. Exits 1 when the device outputs "
        "disagree with the golden beyond the expectation.",
    )
    parser.add_argument("--port", required=True, metavar="URL",
                        help="pyserial URL (/dev/ttyACM0, socket://host:port), emulate://rpi[?line_rate=BAUD], or "
                             "qemu://cortex-m3|cortex-m33|cortex-m55 (the firmware of a Cortex-M bundle for that board, "
                             "else generated and built into the report folder; counts are QEMU instruction counts)")
    parser.add_argument("--model", "--bundle", dest="model_dir", type=Path, required=True, metavar="DIR",
                        help="a folder written by hearmask quantize, or a bundle written by hearmask export")
    parser.add_argument("--report", "--out", dest="report_dir", type=Path, required=True, metavar="DIR",
                        help="folder for records.jsonl, report.json, report.md and plots")
    parser.add_argument("--hops", "--frames", type=int, default=200, metavar="N",
                        help="INFER hops per utterance (default 200)")
    parser.add_argument("--utterances", type=int, default=2, metavar="N", help="held-out utterances (default 2)")
    parser.add_argument("--bench-runs", "--repeat", type=int, default=200, metavar="N",
                        help="device-timed invokes in BENCH, 0 to skip (default 200)")
    parser.add_argument("--warmup", type=int, default=20, metavar="W", help="untimed BENCH invokes first (default 20)")
    parser.add_argument("--stream-hops", type=int, default=100, metavar="N",
                        help="STREAM hops when the device has a stream pipeline, 0 to skip (default 100)")
    parser.add_argument("--audiogram", default="N3", metavar="NAME|FILE", help="listener for the device (default N3)")
    parser.add_argument("--nr", type=float, default=1.0, metavar="ALPHA", help="noise-reduction strength (default 1)")
    parser.add_argument("--hlc", type=float, default=1.0, metavar="BETA", help="compensation strength (default 1)")
    parser.add_argument("--power", metavar="SPEC",
                        help="measure power: emulate:// URLs give SPEC (rpi5-pmic, ina219[:ADDR[:OHMS]], "
                             "replay:TRACE.csv) to the emulated agent; a real device reads the sensor its agent runs "
                             "(bundle config power_backend) and the report names the source it reports")
    parser.add_argument("--tolerance-lsb", type=int, default=1, metavar="N",
                        help="allowed difference where bit-exactness is not expected (default 1)")
    parser.add_argument("--baud", type=int, default=115200, help="baud rate of a real UART (default 115200)")
    parser.add_argument("--timeout", type=float, default=5.0, metavar="S", help="reply timeout in s (default 5)")
    parser.add_argument("--resume", action="store_true", help="continue the profile recorded in the report folder")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.add_argument("--json", action="store_true", help="print the report as JSON on stdout")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from hearmask.firmware_bridge.profile import ProfileConfig, profile_device

    config = ProfileConfig(utterances=args.utterances, hops=args.hops, bench_runs=args.bench_runs,
                           bench_warmup=args.warmup, stream_hops=args.stream_hops, audiogram=args.audiogram,
                           nr_strength=args.nr, hlc_strength=args.hlc, power=args.power,
                           tolerance_lsb=args.tolerance_lsb)
    report = profile_device(args.port, args.model_dir, args.report_dir, config, resume=args.resume,
                            progress=not args.no_progress, baudrate=args.baud, timeout_s=args.timeout)
    validation = report["validation"]
    if args.json:
        json.dump(report, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        latency = report["latency_ms"]
        timing = (f"INFER median {latency['median']:.3f} ms, p99 {latency['p99']:.3f} ms" if latency else
                  f"{report['instructions_per_hop']['median']:.0f} instructions per hop" if report["instructions_per_hop"]
                  else "no device timings")
        agreement = "bit-exact" if validation["bit_exact"] else f"max {validation['max_abs_lsb']} LSB"
        print(f"{report['device']['name']} ({report['device']['kind']}): {timing}; {agreement} over "
              f"{validation['frames']} hops ({validation['expectation']} expected); report {args.report_dir / 'report.json'}")
    if not validation["passed"]:
        print(f"hearmask profile: device outputs differ from the golden ({validation['golden']}) by up to "
              f"{validation['max_abs_lsb']} LSB; expected {validation['expectation']}", file=sys.stderr)
        return 1
    return 0
