"""Byte transports: any pyserial URL, the master side of a pty, and UART line-rate pacing.

The client and the agent use only ``read(size)``, ``write(data)``, ``in_waiting``,
``timeout``, ``reset_input_buffer()`` and ``close()`` (the pyserial subset in
:class:`Transport`), so a pyserial port, :class:`FdTransport` and test wrappers that
inject faults are interchangeable.
"""

from __future__ import annotations

import errno
import fcntl
import os
import select
import termios
import time
from typing import Protocol

from hearmask.firmware_bridge.errors import BridgeError, DeviceTimeout, TransportClosed

UART_BITS_PER_BYTE = 10  # 8N1: start bit, 8 data bits, stop bit
EMULATE_SCHEME = "emulate://"
QEMU_SCHEME = "qemu://"  # qemu://cortex-m3|cortex-m33|cortex-m55?firmware=FW.elf (hearmask.targets.qemu)


class Transport(Protocol):
    """The part of ``serial.Serial`` the protocol code uses."""

    timeout: float | None

    def read(self, size: int = 1) -> bytes: ...

    def write(self, data: bytes) -> int | None: ...

    @property
    def in_waiting(self) -> int: ...

    def reset_input_buffer(self) -> None: ...

    def close(self) -> None: ...


def open_transport(url: str, baudrate: int = 115200, timeout_s: float = 0.02, write_timeout_s: float = 5.0) -> Transport:
    """Open ``url``: ``emulate://...`` (a local agent on a pty, see :mod:`emulate`), ``qemu://BOARD?firmware=FW.elf``
    (firmware in QEMU, see :mod:`hearmask.targets.qemu`; closing the transport stops QEMU) or any pyserial URL.

    pyserial URLs: a device path (``/dev/ttyUSB0``), ``socket://host:port`` (e.g. QEMU's
    UART), ``loop://``, ``rfc2217://``... ``timeout_s`` is the read poll interval.
    """
    if url.startswith(EMULATE_SCHEME):
        from hearmask.firmware_bridge.emulate import open_emulated_transport

        return open_emulated_transport(url, timeout_s=timeout_s, write_timeout_s=write_timeout_s)
    if url.startswith(QEMU_SCHEME):
        from hearmask.targets.qemu import open_qemu_transport

        return open_qemu_transport(url, timeout_s=timeout_s, write_timeout_s=write_timeout_s)
    import serial

    try:
        return serial.serial_for_url(url, baudrate=baudrate, timeout=timeout_s, write_timeout=write_timeout_s)
    except (serial.SerialException, ValueError) as error:
        raise BridgeError(
            f"cannot open serial port {url!r}: {error}. Accepted: a device path (/dev/ttyACM0), "
            "socket://host:port, loop://, emulate://rpi, or qemu://cortex-m55?firmware=FW.elf"
        ) from None


class FdTransport:
    """A :class:`Transport` over a file descriptor (the master side of a pty).

    Reads wait at most ``timeout`` seconds; writes at most ``write_timeout`` seconds, so
    a stopped peer with a full pty buffer raises :class:`DeviceTimeout` instead of hanging.
    """

    def __init__(self, fd: int, timeout: float | None = 0.02, write_timeout: float = 5.0, owns_fd: bool = True):
        self.fd = fd
        self.timeout = timeout
        self.write_timeout = write_timeout
        self._owns_fd = owns_fd
        os.set_blocking(fd, False)

    @property
    def is_open(self) -> bool:
        return self.fd >= 0

    @property
    def in_waiting(self) -> int:
        self._check_open()
        raw = fcntl.ioctl(self.fd, termios.FIONREAD, b"\x00\x00\x00\x00")
        return int.from_bytes(raw, "little")

    def _check_open(self) -> None:
        if self.fd < 0:
            raise TransportClosed("the transport is closed")

    def read(self, size: int = 1) -> bytes:
        self._check_open()
        deadline = None if self.timeout is None else time.monotonic() + self.timeout
        data = bytearray()
        while len(data) < size:
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            ready, _, _ = select.select([self.fd], [], [], remaining)
            if not ready:
                break
            try:
                chunk = os.read(self.fd, size - len(data))
            except BlockingIOError:
                continue
            except OSError as error:
                if error.errno == errno.EIO:
                    raise TransportClosed("the other end of the pty hung up") from None
                raise
            if not chunk:
                raise TransportClosed("the other end of the pty hung up")
            data += chunk
        return bytes(data)

    def write(self, data: bytes) -> int:
        self._check_open()
        view = memoryview(bytes(data))
        deadline = time.monotonic() + self.write_timeout
        while view:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise DeviceTimeout(
                    f"write of {len(data)} bytes stalled for {self.write_timeout} s "
                    f"({len(data) - len(view)} written): the device is not reading"
                )
            _, writable, _ = select.select([], [self.fd], [], remaining)
            if not writable:
                continue
            try:
                written = os.write(self.fd, view)
            except BlockingIOError:
                continue
            view = view[written:]
        return len(data)

    def flush(self) -> None:
        pass

    def reset_input_buffer(self) -> None:
        self._check_open()
        try:
            termios.tcflush(self.fd, termios.TCIFLUSH)
        except termios.error:
            pass
        while True:  # tcflush does not drain a pty master on every kernel: read what is there
            try:
                if not os.read(self.fd, 65536):
                    break
            except (BlockingIOError, OSError):
                break

    def close(self) -> None:
        if self.fd >= 0 and self._owns_fd:
            os.close(self.fd)
        self.fd = -1


def sleep_until(deadline: float) -> None:
    """Sleep until ``time.monotonic()`` reaches ``deadline``; spins the last 0.3 ms for precision."""
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return
        if remaining > 0.0003:
            time.sleep(remaining - 0.0003)


class PacedTransport:
    """Paces a transport as a real UART at ``line_rate_baud`` (8N1, 10 bits per byte) would.

    Writes go out in chunks of about 1 ms of line time, each released when its last byte
    would have left the UART (one schedule per write: sleep overshoot does not add up).
    Reads return when the last byte read would have arrived: received bytes are charged
    ``len·10/baud`` seconds after the later of the previous reception's end and the
    earliest time they can have started arriving (now for bytes waited for; for bytes
    already buffered, the later of our previous read and our previous write, which
    assumes request/response traffic). Both directions are otherwise independent.
    Used by the emulated device so link figures reflect the chosen baud rate.
    """

    def __init__(self, inner: Transport, line_rate_baud: int):
        if line_rate_baud <= 0:
            raise BridgeError(f"line rate must be a positive baud rate, got {line_rate_baud}")
        self.inner = inner
        self.line_rate_baud = line_rate_baud
        self.seconds_per_byte = UART_BITS_PER_BYTE / line_rate_baud
        self.chunk_bytes = max(1, line_rate_baud // UART_BITS_PER_BYTE // 1000)
        self._tx_free_at = 0.0
        self._rx_done_at = 0.0
        self._last_read_at = 0.0
        self._last_write_at = 0.0

    @property
    def timeout(self) -> float | None:
        return self.inner.timeout

    @timeout.setter
    def timeout(self, value: float | None) -> None:
        self.inner.timeout = value

    @property
    def in_waiting(self) -> int:
        return self.inner.in_waiting

    def read(self, size: int = 1) -> bytes:
        already_waiting = self.inner.in_waiting > 0
        data = self.inner.read(size)
        now = time.monotonic()
        if data:
            # Bytes we waited for started arriving just now. Bytes already buffered arrived after
            # our last read and, request/response being the protocol, after our last write.
            earliest_start = max(self._last_read_at, self._last_write_at) if already_waiting else now
            self._rx_done_at = max(self._rx_done_at, earliest_start) + len(data) * self.seconds_per_byte
            sleep_until(self._rx_done_at)
        self._last_read_at = time.monotonic()
        return data

    def write(self, data: bytes) -> int:
        data = bytes(data)
        # One schedule per write, so sleep overshoot does not accumulate over a long frame.
        start_at = max(self._tx_free_at, time.monotonic())
        for start in range(0, len(data), self.chunk_bytes):
            chunk = data[start:start + self.chunk_bytes]
            self._tx_free_at = start_at + (start + len(chunk)) * self.seconds_per_byte
            sleep_until(self._tx_free_at)  # the chunk's last byte has left the UART
            self.inner.write(chunk)
        self._last_write_at = time.monotonic()
        return len(data)

    def flush(self) -> None:
        flush = getattr(self.inner, "flush", None)
        if flush is not None:
            flush()

    def reset_input_buffer(self) -> None:
        self.inner.reset_input_buffer()

    def close(self) -> None:
        self.inner.close()
