"""Run hearmask firmware in QEMU with its UART on a local TCP socket (``socket://127.0.0.1:PORT``).

    with QemuMachine("cortex-m55", image.elf_path) as machine:
        with DeviceClient(machine.url) as device:
            device.bench(100)

QEMU runs with ``-icount shift=0``: the guest's virtual clock advances exactly 1 ns per
instruction, so the firmware's SysTick readings convert to deterministic **QEMU
instruction counts** (not cycles, not time on hardware). UART0 is served on
``127.0.0.1:PORT`` (``server=on,wait=off,nodelay=on``); there is no monitor and no display.

No orphan QEMU: the context manager stops it (SIGTERM, then SIGKILL) also when the body
raises; an ``atexit`` hook stops any still running at interpreter exit; and QEMU is started
with ``PR_SET_PDEATHSIG`` so the kernel kills it if this process dies on a signal (even
SIGKILL; Linux ties that to the thread that started QEMU, so start it from a thread that
outlives the run). ``qemu://cortex-m55?firmware=FW.elf`` (:func:`open_qemu_transport`) is the URL form
the firmware_bridge transport accepts.
"""

from __future__ import annotations

import atexit
import ctypes
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import weakref
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from hearmask.errors import HearmaskError

QEMU_BINARY = "qemu-system-arm"
QEMU_SCHEME = "qemu://"
DEFAULT_STARTUP_TIMEOUT_S = 10.0
STOP_GRACE_S = 3.0
PORT_ATTEMPTS = 3  # a free port picked here can be taken before QEMU binds it: retry with another
_PR_SET_PDEATHSIG = 1


@dataclass(frozen=True)
class QemuBoard:
    """A QEMU machine the firmware supports, with what the build needs to know about it.

    Memory maps and clocks: QEMU 7.2 ``info mtree`` of each machine and hw/arm/mps2.c,
    hw/arm/mps2-tz.c (Arm AN385, AN505, AN547); see targets/firmware/README.md.
    """

    machine: str  # qemu-system-arm -M name
    cpu: str  # gcc -mcpu
    define: str  # -D board selector of targets/firmware/src/board.h
    linker_script: str  # in targets/firmware/boards/
    sysclk_hz: int  # SysTick clock: one tick is 1e9 / sysclk_hz QEMU instructions
    target_name: str  # the targets/boards descriptor of this machine

    @property
    def instructions_per_tick(self) -> float:
        """Resolution of the firmware's counts under ``-icount shift=0`` (1 instruction per ns)."""
        return 1e9 / self.sysclk_hz


QEMU_BOARDS: dict[str, QemuBoard] = {
    board.machine: board
    for board in (
        QemuBoard("mps2-an385", "cortex-m3", "HM_BOARD_MPS2_AN385", "mps2_an385.ld", 25_000_000, "cortex-m3-qemu"),
        QemuBoard("mps2-an505", "cortex-m33", "HM_BOARD_MPS2_AN505", "mps2_an505.ld", 20_000_000, "cortex-m33-qemu"),
        QemuBoard("mps3-an547", "cortex-m55", "HM_BOARD_MPS3_AN547", "mps3_an547.ld", 32_000_000, "cortex-m55-qemu"),
    )
}


def resolve_board(name: str | QemuBoard) -> QemuBoard:
    """A board by QEMU machine (``mps3-an547``), core (``cortex-m55``) or target name (``cortex-m55-qemu``)."""
    if isinstance(name, QemuBoard):
        return name
    key = str(name).strip().lower()
    for board in QEMU_BOARDS.values():
        if key in (board.machine, board.cpu, board.target_name):
            return board
    accepted = ", ".join(f"{b.machine} ({b.cpu}, {b.target_name})" for b in QEMU_BOARDS.values())
    raise HearmaskError(f"QEMU board {name!r} is unknown; accepted: {accepted}")


def qemu_available(binary: str = QEMU_BINARY) -> bool:
    return shutil.which(binary) is not None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _die_with_parent() -> None:  # runs in the child between fork and exec
    try:
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        pass  # not Linux: the context manager and atexit still stop QEMU
    os.setsid()  # terminal signals aimed at the host's process group do not reach QEMU


_RUNNING: "weakref.WeakSet[QemuMachine]" = weakref.WeakSet()
_RUNNING_LOCK = threading.Lock()


@atexit.register
def _stop_all_at_exit() -> None:
    with _RUNNING_LOCK:
        machines = list(_RUNNING)
    for machine in machines:
        machine.stop()


class QemuMachine:
    """One QEMU instance running ``firmware`` on ``board``; :attr:`url` is its UART.

    Args:
        board: ``mps2-an385`` / ``cortex-m3``, ``mps2-an505`` / ``cortex-m33``, ``mps3-an547`` / ``cortex-m55``.
        firmware: the ELF to boot (``FirmwareImage.elf_path``).
        startup_timeout_s: how long to wait for QEMU to listen on its port.
        qemu_binary: ``qemu-system-arm`` (Debian package ``qemu-system-arm``).
        control: also open a QMP control socket on 127.0.0.1, for :meth:`system_reset` (fault tests).
    """

    def __init__(self, board: str | QemuBoard, firmware: str | Path,
                 startup_timeout_s: float = DEFAULT_STARTUP_TIMEOUT_S, qemu_binary: str = QEMU_BINARY,
                 control: bool = False):
        self.board = resolve_board(board)
        self.control = control
        self.control_port = 0
        self.firmware = Path(firmware)
        self.startup_timeout_s = startup_timeout_s
        self.qemu_binary = qemu_binary
        self.process: subprocess.Popen | None = None
        self.port = 0
        self._log: tempfile.SpooledTemporaryFile | None = None

    @property
    def url(self) -> str:
        """The pyserial URL of UART0."""
        if self.process is None:
            raise HearmaskError("QEMU is not running: call start() or use the machine as a context manager")
        return f"socket://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    def command(self, port: int, control_port: int = 0) -> list[str]:
        command = [
            self.qemu_binary, "-machine", self.board.machine, "-kernel", str(self.firmware),
            "-nographic", "-monitor", "none",
            "-serial", f"tcp:127.0.0.1:{port},server=on,wait=off,nodelay=on",
            "-icount", "shift=0",  # 1 instruction = 1 ns of virtual time: deterministic counts
        ]
        if control_port:
            command += ["-qmp", f"tcp:127.0.0.1:{control_port},server=on,wait=off"]
        return command

    def log(self) -> str:
        """What QEMU printed (for error messages)."""
        if self._log is None:
            return ""
        self._log.seek(0)
        return self._log.read().decode(errors="replace")

    def start(self) -> "QemuMachine":
        if self.process is not None:
            raise HearmaskError("this QEMU machine is already running")
        if not self.firmware.is_file():
            raise HearmaskError(f"firmware {str(self.firmware)!r} does not exist; build it with build_firmware()")
        if not qemu_available(self.qemu_binary):
            raise HearmaskError(
                f"{self.qemu_binary!r} is not installed; on Debian/Ubuntu: apt-get install qemu-system-arm"
            )
        problem = ""
        for _ in range(PORT_ATTEMPTS):
            self.port = _free_port()
            self.control_port = _free_port() if self.control else 0
            self._log = tempfile.SpooledTemporaryFile(max_size=1 << 20)
            self.process = subprocess.Popen(
                self.command(self.port, self.control_port), stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT,
                preexec_fn=_die_with_parent, close_fds=True,
            )
            with _RUNNING_LOCK:
                _RUNNING.add(self)
            try:
                if self._wait_for_port():
                    return self
            except BaseException:
                self.stop()
                raise
            problem = self.log().strip()
            self.stop()
            if "Address already in use" not in problem:
                break
        raise HearmaskError(
            f"QEMU {self.board.machine} did not open its UART port within {self.startup_timeout_s} s: "
            f"{problem or 'no output'}"
        )

    def _wait_for_port(self) -> bool:
        deadline = time.monotonic() + self.startup_timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                return False
            try:
                # QEMU listens again after this probe disconnects; the boot INFO it may swallow
                # is not needed: the host handshakes with HELLO.
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return True
            except OSError:
                time.sleep(0.05)
        return False

    def system_reset(self, timeout_s: float = 5.0) -> None:
        """Reset the emulated board (QMP ``system_reset``), as pressing its reset button would.

        The firmware reboots and announces itself with a boot INFO (seq 0); the UART socket
        stays connected. Needs ``control=True``.
        """
        if self.process is None or not self.control_port:
            raise HearmaskError("system_reset needs a running machine started with control=True")
        with socket.create_connection(("127.0.0.1", self.control_port), timeout=timeout_s) as link:
            replies = link.makefile("rb")
            _qmp_reply(replies)  # greeting
            for command in ("qmp_capabilities", "system_reset"):
                link.sendall(json.dumps({"execute": command}).encode() + b"\n")
                reply = _qmp_reply(replies)
                if "return" not in reply:
                    raise HearmaskError(f"QEMU refused {command}: {reply}")

    def stop(self) -> None:
        """Stop QEMU (SIGTERM, then SIGKILL after a grace period) and reap it. Idempotent."""
        process, self.process = self.process, None
        with _RUNNING_LOCK:
            _RUNNING.discard(self)
        if process is not None:
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=STOP_GRACE_S)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
            else:
                process.wait()

    def __enter__(self) -> "QemuMachine":
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

    def __del__(self):  # last resort if a caller forgot stop()
        try:
            self.stop()
        except Exception:
            pass


def _qmp_reply(lines) -> dict:
    """The next QMP message that is not an asynchronous event."""
    while True:
        line = lines.readline()
        if not line:
            raise HearmaskError("QEMU closed its QMP control socket")
        message = json.loads(line)
        if "event" not in message:
            return message


# ---------------------------------------------------------------------------- qemu:// URLs


def parse_qemu_url(url: str) -> tuple[QemuBoard, Path]:
    """``qemu://cortex-m55?firmware=PATH.elf`` -> (board, firmware path)."""
    parts = urlsplit(url)
    board = resolve_board(parts.netloc or parts.path.strip("/"))
    query = {key: values[-1] for key, values in parse_qs(parts.query).items()}
    unknown = set(query) - {"firmware"}
    if unknown:
        raise HearmaskError(f"unknown option(s) {sorted(unknown)} in {url!r}; accepted: ['firmware']")
    if "firmware" not in query:
        raise HearmaskError(
            f"{url!r} names no firmware; expected qemu://{board.cpu}?firmware=PATH.elf "
            "(build one with hearmask.targets.firmware_build.build_firmware)"
        )
    return board, Path(query["firmware"])


class QemuTransport:
    """A pyserial ``socket://`` port to a :class:`QemuMachine` it owns: closing it stops QEMU."""

    def __init__(self, machine: QemuMachine, port):
        self.machine = machine
        self.port = port

    @property
    def timeout(self):
        return self.port.timeout

    @timeout.setter
    def timeout(self, value) -> None:
        self.port.timeout = value

    @property
    def in_waiting(self) -> int:
        return self.port.in_waiting

    def read(self, size: int = 1) -> bytes:
        return self.port.read(size)

    def write(self, data: bytes) -> int:
        return self.port.write(data)

    def flush(self) -> None:
        self.port.flush()

    def reset_input_buffer(self) -> None:
        self.port.reset_input_buffer()

    def close(self) -> None:
        try:
            self.port.close()
        finally:
            self.machine.stop()


def open_qemu_transport(url: str, timeout_s: float = 0.02, write_timeout_s: float = 5.0) -> QemuTransport:
    """Start QEMU for ``qemu://BOARD?firmware=FW.elf`` and connect to its UART."""
    import serial

    board, firmware = parse_qemu_url(url)
    machine = QemuMachine(board, firmware).start()
    try:
        port = serial.serial_for_url(machine.url, timeout=timeout_s, write_timeout=write_timeout_s)
        return QemuTransport(machine, port)
    except BaseException:
        machine.stop()
        raise
