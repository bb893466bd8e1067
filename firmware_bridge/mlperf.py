"""Host driver for devices speaking the MLPerf Tiny device-under-test text protocol.

Lets hearmask profile existing MLPerf Tiny firmware (PROTOCOL.md, "MLPerf Tiny mode").
The protocol, as implemented by the reference firmware (``mlcommons/tiny``,
``benchmark/api/internally_implemented.cpp``) and its host runner
(``benchmark/runner/device_under_test.py``):

- commands are ASCII, tokens separated by spaces, terminated by ``%`` (no newline); the
  firmware's command buffer holds 80 characters, so ``db`` payloads go in chunks (the
  runner uses 31 bytes = 62 hex digits per ``db`` command; we do the same by default);
- the DUT answers with lines ending ``\\r\\n``; ``m-`` lines are messages, ``e-`` lines
  errors, and every command's answer ends with ``m-ready``;
- ``name%`` -> ``m-name-dut-[VENDOR]``; ``profile%`` -> ``m-profile-[FW]`` and ``m-model-[ID]``;
  ``db load N%`` -> ``m-[Expecting N bytes]``; ``db HEX%`` -> ``m-load-done`` once N bytes arrived;
  ``infer N W%`` -> ``m-warmup-start-W``, ``m-warmup-done``, ``m-infer-start-N``,
  ``m-lap-us-T0``, ``m-lap-us-T1``, ``m-infer-done``, ``m-results-[v0,v1,...]``;
- time per inference = (T1 − T0) / N µs, from the DUT's own microsecond timer
  (performance mode; in energy mode the DUT toggles a GPIO instead and prints no laps).

Large tensors as hex on a serial line cost 2 characters per byte plus a round trip per
31-byte chunk: fine for compatibility, not for hearmask's own profiling (STYLE.md).
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass

from hearmask.firmware_bridge.errors import BridgeError, DeviceTimeout, ProtocolError, TransportClosed
from hearmask.firmware_bridge.transport import Transport, open_transport

DEFAULT_DB_CHUNK_BYTES = 31  # what the MLPerf Tiny runner sends per `db` command without a power manager
MAX_LINE_BYTES = 1 << 20  # a results line of many outputs is long; anything longer is garbage
READY_LINE = "m-ready"
_LAP_RE = re.compile(r"^m-lap-us-(\d+)$")
_RESULTS_RE = re.compile(r"^m-results-\[([^\]]*)\]$")
_NAME_RE = re.compile(r"^m-name-dut-\[([^\]]+)\]$")
_PROFILE_RE = re.compile(r"^m-(profile|model)-\[([^\]]+)\]$")


class MlperfDeviceError(BridgeError):
    """The DUT answered a command with an ``e-[...]`` line."""


@dataclass(frozen=True)
class MlperfInferResult:
    """One ``infer N W`` command.

    Attributes:
        runs, warmup: N and W as sent.
        results: the ``m-results-[...]`` values of the last inference.
        elapsed_us: T1 − T0 from the two ``m-lap-us`` lines (u32 wrap handled), µs of the DUT's timer.
        per_inference_us: elapsed_us / runs.
        lines: every line of the answer, for the record.
    """

    runs: int
    warmup: int
    results: tuple[float, ...]
    elapsed_us: int
    per_inference_us: float
    lines: tuple[str, ...]


class MlperfTinyClient:
    """A device speaking the MLPerf Tiny DUT protocol over ``url`` (any pyserial URL or ``emulate://rpi?protocol=mlperf``).

    Args:
        url: port or URL; the MLPerf Tiny firmware runs at 115200 baud 8N1 in performance mode.
        timeout_s: wait for ``m-ready`` after each command (``infer`` may need more: see :meth:`infer`).
        db_chunk_bytes: bytes per ``db HEX%`` command (keep 2·n + 4 <= 80 characters).
        sync_attempts: ``name%`` attempts when opening.
        transport: an already open transport (``url`` then only names it).
    """

    def __init__(self, url: str, baudrate: int = 115200, timeout_s: float = 5.0,
                 db_chunk_bytes: int = DEFAULT_DB_CHUNK_BYTES, sync_attempts: int = 3,
                 transport: Transport | None = None, poll_s: float = 0.02):
        if not 1 <= db_chunk_bytes <= 38:
            raise BridgeError(f"db_chunk_bytes must be 1..38 so a command fits 80 characters, got {db_chunk_bytes}")
        self.url = url
        self.baudrate = baudrate
        self.timeout_s = timeout_s
        self.db_chunk_bytes = db_chunk_bytes
        self.sync_attempts = sync_attempts
        self.transport = transport
        self.poll_s = poll_s
        self._partial = bytearray()
        self.bytes_sent = 0
        self.bytes_received = 0
        self.device_name: str | None = None

    def open(self) -> str:
        """Open the port, drop what the DUT printed before, and sync with ``name%``; returns the vendor name."""
        if self.transport is None:
            self.transport = open_transport(self.url, self.baudrate, timeout_s=self.poll_s)
        else:
            self.transport.timeout = self.poll_s
        self.transport.reset_input_buffer()
        self._partial.clear()
        for _ in range(self.sync_attempts):
            self._write("name%")
            deadline = time.monotonic() + self.timeout_s
            seen_name = None
            while time.monotonic() < deadline:
                line = self._read_line(deadline)
                if line is None:
                    break
                match = _NAME_RE.match(line)
                if match:
                    seen_name = match.group(1)
                elif line == READY_LINE and seen_name is not None:
                    self.device_name = seen_name
                    return seen_name
        raise DeviceTimeout(
            f"no MLPerf Tiny DUT answered name% with m-name-dut-[...] and m-ready at {self.url} after "
            f"{self.sync_attempts} attempts ({self.timeout_s} s each); is it in performance mode at {self.baudrate} baud?"
        )

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()
            self.transport = None

    def __enter__(self) -> "MlperfTinyClient":
        self.open()
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    # ------------------------------------------------------------------ commands

    def command(self, text: str, timeout_s: float | None = None) -> list[str]:
        """Send ``text%`` and return the answer's lines up to (not including) ``m-ready``.

        Raises :class:`MlperfDeviceError` for an ``e-`` line (after reading up to ``m-ready``,
        so the next command starts in step) and :class:`DeviceTimeout` without ``m-ready``.
        """
        if "%" in text:
            raise BridgeError(f"MLPerf command {text!r} must not contain '%' (the terminator)")
        if self.transport is None:
            raise BridgeError(f"the MLPerf client for {self.url} is not open; call open() first")
        self._write(f"{text}%")
        wait_s = timeout_s if timeout_s is not None else self.timeout_s
        deadline = time.monotonic() + wait_s
        lines: list[str] = []
        while True:
            line = self._read_line(deadline)
            if line is None:
                raise DeviceTimeout(f"no m-ready after {text!r} within {wait_s} s from {self.url}; got {lines[-5:]}")
            if line == READY_LINE:
                break
            lines.append(line)
        errors = [line for line in lines if line.startswith("e-")]
        if errors:
            raise MlperfDeviceError(f"DUT at {self.url} rejected {text[:40]!r}: {errors[0]}")
        return lines

    def name(self) -> str:
        for line in self.command("name"):
            match = _NAME_RE.match(line)
            if match:
                return match.group(1)
        raise ProtocolError(f"DUT at {self.url} answered name% without an m-name-dut-[...] line")

    def profile(self) -> dict[str, str]:
        """``{"profile": firmware, "model": model id}`` from ``profile%``."""
        found = {}
        for line in self.command("profile"):
            match = _PROFILE_RE.match(line)
            if match:
                found[match.group(1)] = match.group(2)
        if "model" not in found:
            raise ProtocolError(f"DUT at {self.url} answered profile% without m-model-[...]")
        return found

    def timestamp_us(self) -> int:
        for line in self.command("timestamp"):
            match = _LAP_RE.match(line)
            if match:
                return int(match.group(1))
        raise ProtocolError(f"DUT at {self.url} answered timestamp% without m-lap-us-N (energy mode?)")

    def load(self, data: bytes) -> None:
        """Fill the DUT's input buffer: ``db load N%`` then ``db HEX%`` chunks until ``m-load-done``."""
        data = bytes(data)
        if not data:
            raise BridgeError("MLPerf db load needs at least 1 byte")
        self.command(f"db load {len(data)}")
        done = False
        for start in range(0, len(data), self.db_chunk_bytes):
            lines = self.command("db " + data[start:start + self.db_chunk_bytes].hex())
            done = done or "m-load-done" in lines
        if not done:
            raise ProtocolError(f"DUT at {self.url} did not report m-load-done after {len(data)} bytes")

    def infer(self, runs: int, warmup: int = 0, timeout_s: float | None = None) -> MlperfInferResult:
        """``infer runs warmup%`` (W always sent: the firmware's default is 10). Timing from the two m-lap-us lines."""
        if runs < 1 or warmup < 0:
            raise BridgeError(f"infer needs runs >= 1 and warmup >= 0, got {runs}, {warmup}")
        lines = self.command(f"infer {runs} {warmup}", timeout_s)
        laps = [int(m.group(1)) for m in (_LAP_RE.match(line) for line in lines) if m]
        results = _parse_results(lines, self.url)
        if len(laps) < 2:
            raise ProtocolError(
                f"DUT at {self.url} answered infer with {len(laps)} m-lap-us lines; 2 needed (is it in energy mode?)"
            )
        elapsed_us = (laps[-1] - laps[0]) % (1 << 32)  # the reference's timer is an unsigned long: may wrap
        return MlperfInferResult(runs, warmup, results, elapsed_us, elapsed_us / runs, tuple(lines))

    def results(self) -> tuple[float, ...]:
        return _parse_results(self.command("results"), self.url)

    # ------------------------------------------------------------------ bytes

    def _write(self, text: str) -> None:
        data = text.encode("ascii")
        self.transport.write(data)
        self.bytes_sent += len(data)

    def _read_line(self, deadline: float) -> str | None:
        """The next line without its ``\\r\\n``, or None at the deadline."""
        while True:
            end = self._partial.find(b"\n")
            if end >= 0:
                line = bytes(self._partial[:end]).rstrip(b"\r")
                del self._partial[:end + 1]
                return line.decode("ascii", errors="replace").strip()
            if time.monotonic() >= deadline:
                return None
            try:
                data = self.transport.read(max(1, self.transport.in_waiting))
            except OSError as error:
                raise TransportClosed(f"cannot read from {self.url}: {error}") from None
            self.bytes_received += len(data)
            self._partial += data
            if len(self._partial) > MAX_LINE_BYTES:
                self._partial.clear()
                raise ProtocolError(f"DUT at {self.url} sent over {MAX_LINE_BYTES} bytes without a line end")


def _parse_results(lines: list[str], url: str) -> tuple[float, ...]:
    for line in lines:
        match = _RESULTS_RE.match(line)
        if match:
            body = match.group(1).strip()
            try:
                return tuple(float(value) for value in body.split(",")) if body else ()
            except ValueError:
                raise ProtocolError(f"DUT at {url} sent unparsable results: {line[:120]!r}") from None
    raise ProtocolError(f"DUT at {url} sent no m-results-[...] line")
