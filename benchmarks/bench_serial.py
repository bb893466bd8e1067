"""Serial link efficiency: binary INFER frames vs MLPerf-Tiny-style hex, over an emulated, paced UART (issue 6).

For each line rate (unpaced pty, 115200, 921600 and 3 000 000 baud; 8N1 = 10 bits per
byte, paced in both directions by the emulated agent) and each tensor size N (int8
elements in and out):
  - binary: one INFER round trip (features N + state 8 in; mask N + state 8 out);
  - mlperf-hex: ``db load N%``, ``db HEX%`` in 31-byte chunks (one round trip each, as
    the MLPerf Tiny runner does), then ``infer 1 0%`` with ``m-results-[...]`` (N floats as
    text) back.
Reported: bytes on the wire both ways, median time per exchange, payload bytes per
second (int8 tensor bytes in + out) and that as a share of the line's byte rate
(baud/10); and the per-message overhead: framing bytes and the median round trip of
the smallest request (SET_STRENGTHS -> ACK) minus its wire time.
The device side is the real agent with the fake test runtime (no model work), run
as a subprocess on a pty of this machine: the figures are labelled "emulated".

    .venv/bin/python benchmarks/bench_serial.py [--sizes 16 1024] [--repeats 9]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

import numpy as np

from hearmask.firmware_bridge.client import DeviceClient
from hearmask.firmware_bridge.emulate import EmulatedDevice, EmulatorOptions
from hearmask.firmware_bridge.framing import FRAME_OVERHEAD_BYTES
from hearmask.firmware_bridge.mlperf import MlperfTinyClient
from hearmask.firmware_bridge.transport import UART_BITS_PER_BYTE

LINE_RATES_BAUD = (None, 115_200, 921_600, 3_000_000)  # None: unpaced pty (software overhead only)
STATE_SIZE = 8


def repeats_for(line_rate_baud: int | None, size: int, repeats: int) -> int:
    """Fewer repeats where one exchange takes seconds (large hex payloads at 115200 baud)."""
    if line_rate_baud is not None and line_rate_baud <= 115_200 and size >= 512:
        return max(3, repeats // 3)
    return repeats


def summarise(times: list[float], wire: list[int], small: list[tuple[float, int]]) -> dict:
    """Medians (and minima: the machine may be shared, and load only ever adds time)."""
    return {"time_s": statistics.median(times), "min_time_s": min(times), "wire_bytes": int(statistics.median(wire)),
            "small_rtt_s": statistics.median(t for t, _ in small), "small_min_rtt_s": min(t for t, _ in small),
            "small_wire_bytes": small[0][1]}


def bench_binary(line_rate_baud: int | None, size: int, repeats: int) -> dict:
    rng = np.random.default_rng(0)
    inputs = {"features": rng.integers(-128, 128, (1, size), dtype=np.int8),
              "state_in": rng.integers(-128, 128, (1, STATE_SIZE), dtype=np.int8)}
    options = EmulatorOptions(fake_size=size, line_rate_baud=line_rate_baud)
    with EmulatedDevice(options) as device, DeviceClient(device.url_label, transport=device.transport(), timeout_s=10) as client:
        client.infer(inputs)  # warm-up
        times, wire = [], []
        for _ in range(repeats):
            sent, received = client.stats.bytes_sent, client.stats.bytes_received
            start = time.perf_counter()
            client.infer(inputs)
            times.append(time.perf_counter() - start)
            wire.append(client.stats.bytes_sent - sent + client.stats.bytes_received - received)
        small = []
        for _ in range(repeats * 3):
            sent, received = client.stats.bytes_sent, client.stats.bytes_received
            start = time.perf_counter()
            client.set_strengths(1.0, 1.0)
            small.append((time.perf_counter() - start, client.stats.bytes_sent - sent + client.stats.bytes_received - received))
    return summarise(times, wire, small)


def bench_hex(line_rate_baud: int | None, size: int, repeats: int) -> dict:
    rng = np.random.default_rng(0)
    features = rng.integers(-128, 128, size, dtype=np.int8).tobytes()
    options = EmulatorOptions(fake_size=size, line_rate_baud=line_rate_baud, protocol="mlperf")
    with EmulatedDevice(options) as device:
        with MlperfTinyClient(device.url_label, transport=device.transport(), timeout_s=60) as dut:
            dut.load(features)
            dut.infer(1, 0)  # warm-up
            times, wire = [], []
            for _ in range(repeats):
                sent, received = dut.bytes_sent, dut.bytes_received
                start = time.perf_counter()
                dut.load(features)
                dut.infer(1, 0)
                times.append(time.perf_counter() - start)
                wire.append(dut.bytes_sent - sent + dut.bytes_received - received)
            small = []
            for _ in range(repeats * 3):
                sent, received = dut.bytes_sent, dut.bytes_received
                start = time.perf_counter()
                dut.command("db 00")  # the smallest data command: one byte, one round trip
                small.append((time.perf_counter() - start, dut.bytes_sent - sent + dut.bytes_received - received))
    return summarise(times, wire, small)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[16, 1024], help="int8 elements per tensor")
    parser.add_argument("--repeats", type=int, default=9)
    args = parser.parse_args()

    print("# Serial link efficiency (emulated device: real agent on a local pty, fake test runtime)")
    print(f"python {platform.python_version()}, {platform.machine()}, {platform.processor() or platform.platform()}")
    print(f"UART model: 8N1 ({UART_BITS_PER_BYTE} bits/byte), agent paces both directions; sizes {args.sizes}; "
          f"median of {args.repeats} exchanges (fewer for large hex at 115200), after 1 warm-up")
    print(f"binary frame overhead: {FRAME_OVERHEAD_BYTES} header+CRC bytes + 2 delimiters + COBS (1 per 254) per frame\n")
    print(f"load average at start: {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs\n")
    header = (f"{'line rate':>10} {'mode':>10} {'N':>5} {'payload B':>9} {'wire B':>7} {'median ms':>9} {'min ms':>8} "
              f"{'payload B/s':>11} {'% of line':>9}")
    print(header)
    print("-" * len(header))
    overhead_rows = []
    for line_rate_baud in LINE_RATES_BAUD:
        label = f"{line_rate_baud}" if line_rate_baud else "unpaced"
        for mode, bench in (("binary", bench_binary), ("mlperf-hex", bench_hex)):
            for size in args.sizes:
                result = bench(line_rate_baud, size, repeats_for(line_rate_baud, size, args.repeats))
                payload_bytes = 2 * size if mode == "mlperf-hex" else 2 * (size + STATE_SIZE)
                rate = payload_bytes / result["time_s"]
                share = f"{100 * rate / (line_rate_baud / UART_BITS_PER_BYTE):.1f}%" if line_rate_baud else "-"
                print(f"{label:>10} {mode:>10} {size:>5} {payload_bytes:>9} {result['wire_bytes']:>7} "
                      f"{result['time_s'] * 1e3:>9.2f} {result['min_time_s'] * 1e3:>8.2f} {rate:>11.0f} {share:>9}",
                      flush=True)
            wire_s = result["small_wire_bytes"] * UART_BITS_PER_BYTE / line_rate_baud if line_rate_baud else 0.0
            overhead_rows.append((label, mode, result["small_wire_bytes"], result["small_rtt_s"] * 1e6,
                                  result["small_min_rtt_s"] * 1e6, (result["small_rtt_s"] - wire_s) * 1e6))
    print("\n# Per-message overhead: smallest request/reply (binary: SET_STRENGTHS->ACK; hex: `db 00%` -> m-ready)")
    print(f"{'line rate':>10} {'mode':>10} {'wire B':>7} {'median RTT us':>13} {'min RTT us':>10} "
          f"{'median RTT - wire time us':>25}")
    for label, mode, wire_bytes, rtt_us, min_rtt_us, software_us in overhead_rows:
        print(f"{label:>10} {mode:>10} {wire_bytes:>7} {rtt_us:>13.0f} {min_rtt_us:>10.0f} {software_us:>25.0f}")


if __name__ == "__main__":
    main()
