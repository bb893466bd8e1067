"""An emulated MLPerf Tiny device under test (DUT), served by the agent with ``--protocol mlperf``.

It speaks the text protocol of the MLPerf Tiny reference firmware
(``mlcommons/tiny``, ``benchmark/api/internally_implemented.{h,cpp}`` and
``submitter_implemented.h``, EEMBC monitor 2.2.0), as summarised in PROTOCOL.md,
"MLPerf Tiny mode". Commands end with ``%``, tokens are separated by spaces, replies are
``\\r\\n`` lines and every command ends with ``m-ready``. The ``db`` buffer feeds the
model's first input as int8 bytes (other inputs are zeros); ``m-results-[...]`` lists the
first output dequantized (``scale·(q − zero_point)``).
"""

from __future__ import annotations

import os
import time

import numpy as np

from hearmask.firmware_bridge.runtime import InferenceRuntime

COMMAND_TERMINATOR = b"%"
MAX_COMMAND_CHARS = 80  # EE_CMD_SIZE of the reference firmware
MAX_DB_BYTES = 1 << 20  # the reference uses a fixed array (MAX_DB_INPUT_SIZE); ours is larger
DEFAULT_WARMUP = 10  # the reference's default when `infer N` gives no W
DEVICE_NAME = "dut"
FIRMWARE_VERSION = "hearmask emulated DUT (MLPerf Tiny monitor 2.2.0 protocol)"
READ_POLL_S = 0.05


class MlperfDut:
    """The DUT state machine: :meth:`handle_command` maps one command to reply lines."""

    def __init__(self, runtime: InferenceRuntime, vendor: str = "hearmask-emulated", model_version: str = "hearmask"):
        self.runtime = runtime
        self.vendor = vendor
        self.model_version = model_version
        self._buffer = bytearray()
        self._expected_bytes = 0
        self._pending = bytearray()
        self._overlong = False
        self._invoked = False  # `results` before any inference lists zeros
        self._epoch_ns = time.perf_counter_ns()

    def timestamp_us(self) -> int:
        """Microseconds since start, wrapping at 2**32 like the reference's ``unsigned long`` on a 32-bit MCU."""
        return ((time.perf_counter_ns() - self._epoch_ns) // 1000) & 0xFFFFFFFF

    def boot_lines(self) -> list[str]:
        return ["m-timestamp-mode-performance", f"m-lap-us-{self.timestamp_us()}", "m-init-done", "m-ready"]

    def feed(self, data: bytes) -> list[str]:
        """Characters from the line -> reply lines (each command's reply ends with ``m-ready``)."""
        lines: list[str] = []
        for byte in data:
            if byte == COMMAND_TERMINATOR[0]:
                command = self._pending.decode("ascii", errors="replace")
                overlong, self._overlong = self._overlong, False
                self._pending.clear()
                if overlong:
                    lines += [f"e-[Command longer than {MAX_COMMAND_CHARS} characters]", "m-ready"]
                else:
                    lines += self.handle_command(command) + ["m-ready"]
            elif byte in b"\r\n":
                continue  # terminals add line ends; the reference treats them as part of the command
            elif len(self._pending) < MAX_COMMAND_CHARS:
                self._pending.append(byte)
            else:
                self._overlong = True
        return lines

    def handle_command(self, command: str) -> list[str]:
        tokens = command.split()
        if not tokens:
            return ["e-[Unknown command: ]"]
        head, args = tokens[0], tokens[1:]
        if head == "name":
            return [f"m-name-{DEVICE_NAME}-[{self.vendor}]"]
        if head == "timestamp":
            return [f"m-lap-us-{self.timestamp_us()}"]
        if head == "profile":
            return [f"m-profile-[{FIRMWARE_VERSION}]", f"m-model-[{self.model_version}]"]
        if head == "help":
            return [FIRMWARE_VERSION, "name, timestamp, profile, db load N, db HEX, db print, infer N [W], results"]
        if head == "db":
            return self._db(args)
        if head == "infer":
            return self._infer(args)
        if head == "results":
            return [self._results_line()]
        return [f"e-[Unknown command: {head}]"]

    def _db(self, args: list[str]) -> list[str]:
        if not args:
            return ["e-[Command 'db' requires a subcommand]"]
        if args[0] == "load":
            if len(args) < 2:
                return ["e-[Command 'db load' requires the # of bytes]"]
            try:
                size = int(args[1])
            except ValueError:
                size = 0
            if size <= 0:
                return ["e-[Command 'db load' must be >0 bytes]"]
            if size > MAX_DB_BYTES:
                return [f"e-[Supplied buffer size {size} exceeds maximum of {MAX_DB_BYTES}]"]
            self._expected_bytes = size
            self._buffer = bytearray()
            return [f"m-[Expecting {size} bytes]"]
        if args[0] == "print":
            return [f"m-buffer-{'-'.join(f'{b:02x}' for b in self._buffer[i:i + 8])}" for i in range(0, len(self._buffer), 8)]
        digits = args[0]
        if len(digits) % 2:
            return ["e-[Insufficient number of hex digits]"]
        for index in range(0, len(digits), 2):
            pair = digits[index:index + 2]
            try:
                value = int(pair, 16)
            except ValueError:
                return [f"e-[Invalid hex digit '{pair}']"]
            if len(self._buffer) >= self._expected_bytes:
                break
            self._buffer.append(value)
            if len(self._buffer) == self._expected_bytes:
                return ["m-load-done"]  # the remainder of the digits is disregarded, as in the reference
        return []

    def _infer(self, args: list[str]) -> list[str]:
        try:
            runs = int(args[0]) if args else 1
            warmup = int(args[1]) if len(args) > 1 else DEFAULT_WARMUP
        except ValueError:
            return ["e-[Inference iterations must be >0]"]
        if runs <= 0:
            return ["e-[Inference iterations must be >0]"]
        if warmup < 0:
            return ["e-[Inference warmup must be >=0]"]
        first = self.runtime.input_specs[0]
        needed = int(np.prod(first.shape)) * np.dtype(first.dtype).itemsize
        if len(self._buffer) != needed:
            return [f"e-[Input db has {len(self._buffer)} bytes, expected {needed}]"]
        inputs = self.runtime.zero_inputs()
        inputs[first.name] = np.frombuffer(bytes(self._buffer), dtype=first.dtype).reshape(first.shape)
        self.runtime.set_inputs(inputs)
        lines = [f"m-warmup-start-{warmup}"]
        for _ in range(warmup):
            self.runtime.invoke()
        lines += ["m-warmup-done", f"m-infer-start-{runs}", f"m-lap-us-{self.timestamp_us()}"]
        for _ in range(runs):
            self.runtime.invoke()
        self._invoked = True
        lines += [f"m-lap-us-{self.timestamp_us()}", "m-infer-done", self._results_line()]
        return lines

    def _results_line(self) -> str:
        spec = self.runtime.output_specs[0]
        outputs = self.runtime.get_outputs() if self._invoked else {spec.name: spec.zeros()}
        quantized = np.asarray(outputs[spec.name]).astype(np.float64).ravel()
        values = spec.scale * (quantized - spec.zero_point) if spec.scale else quantized
        # 9 significant digits: float32 round-trips, so the host can recover the int8 values exactly.
        return "m-results-[" + ",".join(f"{v:.9g}" for v in values) + "]"

    def serve(self, port, parent_pid: int | None = None) -> None:
        """Serve until the port hangs up (its exception propagates) or ``parent_pid`` is no longer our parent."""
        port.write(_encode_lines(self.boot_lines()))
        while True:
            if parent_pid is not None and os.getppid() != parent_pid:
                return
            data = port.read(max(1, port.in_waiting))
            if data:
                lines = self.feed(data)
                if lines:
                    port.write(_encode_lines(lines))


def _encode_lines(lines: list[str]) -> bytes:
    return "".join(f"{line}\r\n" for line in lines).encode("ascii", errors="replace")
