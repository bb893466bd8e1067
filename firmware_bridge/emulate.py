"""Emulated devices: the real agent in a subprocess on a local pty (``emulate://rpi``).

:class:`EmulatedDevice` opens a pty pair, starts
``python -m hearmask.firmware_bridge.agent --port /dev/pts/N --kind emulated`` on the
slave side and keeps the master for the host. The master side of a pty has no path a
second program could open, so the host gets it as a :class:`~transport.FdTransport`
(:meth:`EmulatedDevice.transport`), or through the URL ``emulate://rpi?...`` that
:class:`~client.DeviceClient` and :class:`~mlperf.MlperfTinyClient` accept.

Clean shutdown on every exit path: the context manager stops the agent (SIGTERM, then
SIGKILL); the agent also exits when the pty hangs up (``--exit-on-hangup``) or when its
parent changes (``--parent-pid``), so a host that dies leaves no orphan.

URL options (query string): ``line_rate`` (baud for UART pacing), ``runtime``
(``fake-test`` default, ``litert``, ``litert-reference``), ``model`` (path), ``size``
(fake runtime size), ``protocol`` (``binary``/``mlperf``), ``stream_processor``,
``power_backend`` (``module:factory``). Example:
``emulate://rpi?runtime=litert&model=out/model.tflite&line_rate=921600``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
import tty
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from hearmask.firmware_bridge.errors import BridgeError, DeviceTimeout
from hearmask.firmware_bridge.framing import FrameDecoder
from hearmask.firmware_bridge.messages import MessageType
from hearmask.firmware_bridge.transport import FdTransport

AGENT_MODULE = "hearmask.firmware_bridge.agent"
DEFAULT_STARTUP_TIMEOUT_S = 30.0
STOP_GRACE_S = 3.0
EMULATED_TARGETS = {"rpi": "emulated-rpi (host CPU)"}


@dataclass(frozen=True)
class EmulatorOptions:
    """How to start the emulated agent (see the module docstring for the URL form)."""

    target: str = "rpi"
    runtime: str = "fake-test"
    model_path: Path | None = None
    model_dir: Path | None = None
    fake_size: int = 16
    line_rate_baud: int | None = None
    protocol: str = "binary"
    stream_processor: str | None = None
    power_backend: str | None = None

    @classmethod
    def from_url(cls, url: str) -> "EmulatorOptions":
        parts = urlsplit(url)
        target = parts.netloc or parts.path.strip("/")
        if target not in EMULATED_TARGETS:
            raise BridgeError(f"emulated target {target!r} in {url!r} is unknown; accepted: {', '.join(EMULATED_TARGETS)}")
        query = {key: values[-1] for key, values in parse_qs(parts.query).items()}
        known = {"line_rate", "runtime", "model", "model_dir", "size", "protocol", "stream_processor", "power_backend"}
        unknown = set(query) - known
        if unknown:
            raise BridgeError(f"unknown option(s) {sorted(unknown)} in {url!r}; accepted: {sorted(known)}")
        try:
            return cls(
                target=target,
                runtime=query.get("runtime", "fake-test"),
                model_path=Path(query["model"]) if "model" in query else None,
                model_dir=Path(query["model_dir"]) if "model_dir" in query else None,
                fake_size=int(query.get("size", 16)),
                line_rate_baud=int(query["line_rate"]) if "line_rate" in query else None,
                protocol=query.get("protocol", "binary"),
                stream_processor=query.get("stream_processor"),
                power_backend=query.get("power_backend"),
            )
        except ValueError as error:
            raise BridgeError(f"bad number in {url!r}: {error}") from None

    def agent_arguments(self, port_path: str, model_dir: Path) -> list[str]:
        args = [
            "--port", port_path, "--kind", "emulated", "--target", EMULATED_TARGETS[self.target],
            "--runtime", self.runtime, "--fake-size", str(self.fake_size), "--protocol", self.protocol,
            "--model-dir", str(self.model_dir or model_dir), "--exit-on-hangup", "--parent-pid", str(os.getpid()),
        ]
        if self.model_path is not None:
            args += ["--model", str(self.model_path)]
        if self.line_rate_baud:
            args += ["--line-rate", str(self.line_rate_baud)]
        if self.stream_processor:
            args += ["--stream-processor", self.stream_processor]
        if self.power_backend:
            args += ["--power-backend", self.power_backend]
        return args


class EmulatedDevice:
    """The real agent on a local pty. Use as a context manager::

        with EmulatedDevice(EmulatorOptions(line_rate_baud=921600)) as device:
            client = DeviceClient(device.url_label, transport=device.transport())

    ``start()`` returns once the agent has announced itself (its boot INFO, or the
    MLPerf ``m-ready``), so the first HELLO is never flushed by the agent's port open.
    """

    def __init__(self, options: EmulatorOptions = EmulatorOptions(), startup_timeout_s: float = DEFAULT_STARTUP_TIMEOUT_S):
        self.options = options
        self.startup_timeout_s = startup_timeout_s
        self.process: subprocess.Popen | None = None
        self.master_fd = -1
        self._slave_fd = -1
        self.port_path = ""
        self._workdir: tempfile.TemporaryDirectory | None = None
        self._log_handle = None
        self.starts = 0

    @property
    def url_label(self) -> str:
        return f"emulate://{self.options.target} ({self.port_path})"

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    @property
    def log_path(self) -> Path:
        return Path(self._workdir.name) / "agent.log"

    def agent_log(self) -> str:
        """The agent's stderr so far (for error messages)."""
        try:
            return self.log_path.read_text(errors="replace")
        except (OSError, AttributeError):
            return ""

    def start(self) -> "EmulatedDevice":
        if self.process is not None:
            raise BridgeError("the emulated device is already running")
        self._workdir = tempfile.TemporaryDirectory(prefix="hearmask-emulated-")
        self.master_fd, self._slave_fd = os.openpty()
        # Raw before the agent opens it: no echo or line editing of binary frames meanwhile.
        tty.setraw(self._slave_fd)
        self.port_path = os.ttyname(self._slave_fd)
        os.set_blocking(self.master_fd, False)
        try:
            self._spawn(wait_until_ready=True)
        except BaseException:
            self.stop()
            raise
        return self

    def _spawn(self, wait_until_ready: bool) -> None:
        model_dir = Path(self._workdir.name) / "model"
        command = [sys.executable, "-m", AGENT_MODULE, *self.options.agent_arguments(self.port_path, model_dir)]
        self._log_handle = open(self.log_path, "ab")
        # Own session: terminal signals aimed at the host's process group do not reach it.
        self.process = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=self._log_handle, stderr=self._log_handle,
            start_new_session=True, close_fds=True,
        )
        self.starts += 1
        if wait_until_ready:
            self._wait_until_ready()

    def _wait_until_ready(self) -> None:
        deadline = time.monotonic() + self.startup_timeout_s
        probe = FdTransport(self.master_fd, timeout=0.05, owns_fd=False)
        decoder = FrameDecoder()
        text = b""
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise BridgeError(
                    f"the emulated agent exited with status {self.process.returncode} during start-up:\n{self.agent_log()[-2000:]}"
                )
            data = probe.read(4096)
            if not data:
                continue
            if self.options.protocol == "mlperf":
                text += data
                if b"m-ready" in text:
                    return
            elif any(f.message_type == MessageType.INFO and f.seq == 0 for f in decoder.feed(data)):
                return
        raise DeviceTimeout(
            f"the emulated agent did not announce itself within {self.startup_timeout_s} s:\n{self.agent_log()[-2000:]}"
        )

    def transport(self, timeout: float = 0.02, write_timeout: float = 5.0) -> FdTransport:
        """A new transport on the pty master (its own descriptor; closing it leaves the device running)."""
        if self.master_fd < 0:
            raise BridgeError("the emulated device is not running")
        return FdTransport(os.dup(self.master_fd), timeout=timeout, write_timeout=write_timeout)

    def kill_agent(self) -> None:
        """Kill the agent process abruptly (SIGKILL), as a power cut would; the pty stays."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
        if self.process is not None:
            self.process.wait()
        self.process = None

    def restart(self) -> None:
        """Kill the agent and start a new one on the same pty (a device reset mid-run).

        Returns without waiting: the new agent's boot INFO (or ``m-ready``) is left for
        the host to see, as it would be after a real reset.
        """
        self.kill_agent()
        self._spawn(wait_until_ready=False)

    def pause(self) -> None:
        """Freeze the agent (SIGSTOP): a device that stops answering."""
        os.kill(self.process.pid, signal.SIGSTOP)

    def resume(self) -> None:
        os.kill(self.process.pid, signal.SIGCONT)

    def stop(self) -> None:
        """Stop the agent (SIGTERM, then SIGKILL after a grace period) and release the pty. Idempotent."""
        process, self.process = self.process, None
        if process is not None:
            if process.poll() is None:
                try:
                    os.kill(process.pid, signal.SIGCONT)  # a paused agent cannot handle SIGTERM
                    process.terminate()
                    process.wait(timeout=STOP_GRACE_S)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
                except ProcessLookupError:
                    process.wait()
            else:
                process.wait()
        for name in ("master_fd", "_slave_fd"):
            fd = getattr(self, name)
            if fd >= 0:
                os.close(fd)
                setattr(self, name, -1)
        if self._log_handle is not None:
            self._log_handle.close()
            self._log_handle = None
        if self._workdir is not None:
            self._workdir.cleanup()
            self._workdir = None

    def __enter__(self) -> "EmulatedDevice":
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

    def __del__(self):  # last resort if a caller forgot the context manager
        try:
            self.stop()
        except Exception:
            pass


class EmulatedTransport(FdTransport):
    """The transport behind ``emulate://`` URLs: owns its :class:`EmulatedDevice` and stops it on close."""

    def __init__(self, device: EmulatedDevice, timeout: float, write_timeout: float):
        self.device = device
        super().__init__(os.dup(device.master_fd), timeout=timeout, write_timeout=write_timeout)

    def close(self) -> None:
        super().close()
        self.device.stop()


def open_emulated_transport(url: str, timeout_s: float = 0.02, write_timeout_s: float = 5.0) -> EmulatedTransport:
    """Start the emulated device named by ``url`` and return a transport to it."""
    device = EmulatedDevice(EmulatorOptions.from_url(url)).start()
    try:
        return EmulatedTransport(device, timeout_s, write_timeout_s)
    except BaseException:
        device.stop()
        raise
