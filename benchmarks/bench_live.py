"""Live-loop benchmark under a virtual sound card: callback time per hop and xruns (issue 8).

Starts its own JACK server with the dummy backend (``jackd -n NAME -R -d dummy -r RATE -p
PERIOD``: no sound card; the server calls the process callback in real time, RATE/PERIOD
times a second), runs ``hearmask live`` in file mode on it for ``--seconds`` of white noise
at -20 dBFS (played into the loop's input port and recorded from its output, through
JACK ports), and prints the conditions and the accounting: callback time per callback
(median, p99, max), server-reported xruns, skipped cycles, late callbacks, JACK DSP load,
process CPU, the loop's latency budget, and the xrun causes jackd logs (its dummy driver
waking up late, i.e. this machine's timer jitter, versus a client not finishing in time). Every figure is labelled "emulated (JACK
dummy backend)": the callback runs on this machine's CPU, not on a device, and no
converter or USB buffering is in the path.

    .venv/bin/python benchmarks/bench_live.py MODEL_DIR [--seconds 60] [--rate 16000] [--period 64] [--report out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile

LABEL = "emulated (JACK dummy backend)"


def xrun_causes(server_log: str) -> dict:
    """Count jackd's own xrun lines: the dummy driver waking up late (timer jitter of this machine,
    independent of any client) versus a client that had not finished its cycle."""
    clients: dict[str, int] = {}
    for match in re.finditer(r"client = (\S+) was not finished", server_log):
        clients[match.group(1)] = clients.get(match.group(1), 0) + 1
    return {"driver_woke_late": len(re.findall(r"JackTimedDriver::Process XRun", server_log)),
            "client_not_finished": clients}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model_dir", type=Path, help="a folder written by hearmask quantize")
    parser.add_argument("--seconds", type=float, default=60.0, help="length of the run (default 60)")
    parser.add_argument("--rate", type=int, default=16000, help="JACK sample rate (default 16000, the model rate)")
    parser.add_argument("--period", type=int, default=64, help="JACK period in frames (default 64 = one hop)")
    parser.add_argument("--no-realtime", action="store_true", help="start jackd with -r instead of -R")
    parser.add_argument("--report", type=Path, help="also write the results as JSON here")
    args = parser.parse_args(argv)

    from hearmask.firmware_bridge.live import LiveOptions, run_live
    from hearmask.firmware_bridge.live_jack import open_jack_client
    from hearmask.firmware_bridge.live_processor import read_model_manifest

    manifest = read_model_manifest(args.model_dir)
    server = f"hearmask-bench-{os.getpid()}"
    command = ["jackd", "-n", server, "-r" if args.no_realtime else "-R", "-d", "dummy", "-r", str(args.rate),
               "-p", str(args.period)]
    load_before = os.getloadavg()
    server_log = tempfile.NamedTemporaryFile("w+", suffix=".jackd.log")
    process = subprocess.Popen(command, stdout=server_log, stderr=subprocess.STDOUT)
    try:
        open_jack_client("probe", server).close()
        with tempfile.TemporaryDirectory() as folder:
            signal = (0.1 * np.random.default_rng(0).standard_normal(int(args.seconds * args.rate))).astype(np.float32)
            soundfile.write(Path(folder) / "in.wav", signal, args.rate, subtype="FLOAT")
            options = LiveOptions(model_dir=args.model_dir, audiogram_db_hl=(35.0, 35.0, 40.0, 50.0, 55.0, 60.0, 65.0, 65.0),
                                  audiogram_name="N3", alpha=1.0, beta=1.0, server_name=server,
                                  in_file=Path(folder) / "in.wav", out_file=Path(folder) / "out.wav", audio_label=LABEL)
            started = time.monotonic()
            summary = run_live(options, log=lambda text: None)
            wall_s = time.monotonic() - started
    finally:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
    server_log.seek(0)
    causes = xrun_causes(server_log.read())
    server_log.close()
    network = manifest["networks"][0]
    result = {
        "label": LABEL,
        "conditions": {
            "jackd": " ".join(command),
            "realtime_requested": not args.no_realtime,
            "seconds_of_audio": args.seconds,
            "wall_s": wall_s,
            "machine": f"{platform.machine()}, {platform.processor() or platform.platform()}, {os.cpu_count()} CPUs",
            "load_average_before": [round(v, 2) for v in load_before],
            "python": platform.python_version(),
            "model_dir": str(args.model_dir),
            "variant": manifest.get("variant"),
            "parameters": manifest.get("parameters"),
            "hidden_size": network["config"]["hidden_size"],
            "int8_model_bytes": network.get("int8_model_bytes"),
            "runtime": summary["conditions"]["runtime"],
            "listener": "N3, alpha = beta = 1",
            "input": "white noise at -20 dBFS, through the loop's JACK ports (file mode)",
        },
        "callbacks": summary["callbacks"],
        "hops_per_callback": summary["hops_per_callback"],
        "period_ms": summary["period_ms"],
        "callback_us": summary["callback_us"],
        "callback_start_delay_us": summary["callback_start_delay_us"],
        "xruns": summary["xruns"],
        "xrun_causes_from_jackd_log": causes,
        "skipped_cycles": summary["skipped_cycles"],
        "late_callbacks": summary["late_callbacks"],
        "output_underruns": summary["output_underruns"],
        "jack_dsp_load_percent": summary["jack_dsp_load_percent"],
        "process_cpu_percent": summary["process_cpu_percent"],
        "latency_budget": summary["latency_budget"],
    }
    times = result["callback_us"]
    print(f"{LABEL}; {result['conditions']['jackd']}")
    print(f"machine {result['conditions']['machine']}, load average before {result['conditions']['load_average_before']}")
    print(f"model {args.model_dir} ({result['conditions']['variant']}, {result['conditions']['parameters']} parameters, "
          f"{result['conditions']['runtime']}); {args.seconds:g} s of audio in {wall_s:.1f} s wall")
    print(f"callback per {result['period_ms']:.2f} ms period ({result['hops_per_callback']:g} hop): median "
          f"{times['median']:.0f} us, p99 {times['p99']:.0f} us, max {times['max']:.0f} us over {result['callbacks']} callbacks")
    delay = result["callback_start_delay_us"]
    print(f"callback start after its cycle began (wake-up, GIL): median {delay['median']:.0f} us, p99 {delay['p99']:.0f} us, "
          f"max {delay['max']:.0f} us")
    print(f"xruns {result['xruns']}, skipped cycles {result['skipped_cycles']}, late callbacks {result['late_callbacks']}, "
          f"output underruns {result['output_underruns']}; JACK DSP load {result['jack_dsp_load_percent']}, "
          f"process CPU {result['process_cpu_percent']:.1f} %")
    print(f"xrun causes in the jackd log: {causes}")
    print(f"latency budget: {json.dumps(result['latency_budget'])} (+ the card's capture and playback periods)")
    if args.report:
        args.report.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
