"""Shared fixtures: an in-thread agent on a pty, a fault-injecting transport, a tiny int8 .tflite."""

from __future__ import annotations

import os
import random
import subprocess
import sys
import textwrap
import threading
import tty
from dataclasses import dataclass
from pathlib import Path

import pytest
import serial

from hearmask.firmware_bridge.agent import AgentConfig, DeviceAgent
from hearmask.firmware_bridge.fake_runtime import FakeRuntimeForTests
from hearmask.firmware_bridge.runtime import file_sha256
from hearmask.firmware_bridge.transport import FdTransport



@dataclass
class PtyAgent:
    """An agent served by a thread on the slave side of a pty; the test holds the master."""

    agent: DeviceAgent
    master_fd: int
    thread: threading.Thread
    stop: threading.Event

    def transport(self, timeout: float = 0.02) -> FdTransport:
        return FdTransport(os.dup(self.master_fd), timeout=timeout, write_timeout=2.0)


@pytest.fixture
def make_pty_agent(tmp_path):
    """Factory: ``make_pty_agent(agent=None)`` -> PtyAgent (fake runtime, LOAD_MODEL into tmp_path)."""
    started: list[tuple[PtyAgent, serial.Serial, int]] = []

    def factory(agent: DeviceAgent | None = None) -> PtyAgent:
        if agent is None:
            config = AgentConfig(target_name="pty-test", model_dir=tmp_path / "model")
            agent = DeviceAgent(config, FakeRuntimeForTests(16), lambda path: FakeRuntimeForTests(16, file_sha256(path)))
        master_fd, slave_fd = os.openpty()
        tty.setraw(slave_fd)
        port = serial.Serial(os.ttyname(slave_fd), 115200, timeout=0.02)
        stop = threading.Event()
        thread = threading.Thread(target=_serve_quietly, args=(agent, port, stop), daemon=True)
        thread.start()
        handle = PtyAgent(agent, master_fd, thread, stop)
        started.append((handle, port, slave_fd))
        return handle

    yield factory
    for handle, port, slave_fd in started:
        handle.stop.set()
        handle.thread.join(timeout=5)
        port.close()
        os.close(slave_fd)
        os.close(handle.master_fd)


def _serve_quietly(agent: DeviceAgent, port, stop: threading.Event) -> None:
    try:
        agent.serve(port, stop)
    except (OSError, serial.SerialException):
        pass  # the test closed the pty


class FaultyTransport:
    """Wraps a transport and corrupts what the host writes and/or reads.

    ``flip_probability``: per byte, flip one random bit. ``drop_probability``: per byte, drop it.
    Deterministic for a given seed. Counts what it did in ``flipped`` and ``dropped``.
    """

    def __init__(self, inner, seed: int = 0, flip_probability: float = 0.0, drop_probability: float = 0.0,
                 on_write: bool = True, on_read: bool = True):
        self.inner = inner
        self.random = random.Random(seed)
        self.flip_probability = flip_probability
        self.drop_probability = drop_probability
        self.on_write = on_write
        self.on_read = on_read
        self.flipped = 0
        self.dropped = 0
        self.enabled = True

    def _damage(self, data: bytes) -> bytes:
        if not self.enabled:
            return data
        out = bytearray()
        for byte in data:
            if self.random.random() < self.drop_probability:
                self.dropped += 1
                continue
            if self.random.random() < self.flip_probability:
                byte ^= 1 << self.random.randrange(8)
                self.flipped += 1
            out.append(byte)
        return bytes(out)

    @property
    def timeout(self):
        return self.inner.timeout

    @timeout.setter
    def timeout(self, value):
        self.inner.timeout = value

    @property
    def in_waiting(self) -> int:
        return self.inner.in_waiting

    def read(self, size: int = 1) -> bytes:
        data = self.inner.read(size)
        return self._damage(data) if self.on_read else data

    def write(self, data: bytes) -> int:
        self.inner.write(self._damage(bytes(data)) if self.on_write else data)
        return len(data)

    def reset_input_buffer(self) -> None:
        self.inner.reset_input_buffer()

    def close(self) -> None:
        self.inner.close()


@pytest.fixture
def faulty_transport():
    """The :class:`FaultyTransport` class (fixtures, not imports: test files are not a package)."""
    return FaultyTransport


_TINY_MODEL_SCRIPT = textwrap.dedent(
    """
    import sys
    import numpy as np
    import tensorflow as tf

    class TwoLayer(tf.Module):
        # Two dense layers with a recurrent-style state output, like the step cell's I/O.
        def __init__(self):
            rng = np.random.default_rng(0)
            self.w1 = tf.constant(rng.normal(size=(16, 12)).astype("float32") * 0.3)
            self.w2 = tf.constant(rng.normal(size=(12, 8)).astype("float32") * 0.3)

        @tf.function(input_signature=[tf.TensorSpec([1, 8], tf.float32, name="features"),
                                      tf.TensorSpec([1, 8], tf.float32, name="state_in")])
        def __call__(self, features, state_in):
            hidden = tf.nn.relu(tf.matmul(tf.concat([features, state_in], axis=1), self.w1))
            mask = tf.tanh(tf.matmul(hidden, self.w2))
            return {"mask": mask, "state_out": tf.sigmoid(mask)}

    def representative():
        rng = np.random.default_rng(1)
        for _ in range(32):
            yield [rng.uniform(-1, 1, (1, 8)).astype("float32"), rng.uniform(-1, 1, (1, 8)).astype("float32")]

    model = TwoLayer()
    converter = tf.lite.TFLiteConverter.from_concrete_functions([model.__call__.get_concrete_function()], model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = representative
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.int8
    converter.inference_output_type = tf.int8
    open(sys.argv[1], "wb").write(converter.convert())
    """
)


@pytest.fixture(scope="session")
def tiny_tflite(tmp_path_factory) -> Path:
    """A 2-layer int8 .tflite (inputs features, state_in (1, 8); outputs mask, state_out (1, 8)).

    Converted in a subprocess so tensorflow never enters the test process's sys.modules.
    """
    path = tmp_path_factory.mktemp("tiny_model") / "tiny_int8.tflite"
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")
    result = subprocess.run([sys.executable, "-c", _TINY_MODEL_SCRIPT, str(path)], capture_output=True, text=True,
                            timeout=300, env=env)
    assert result.returncode == 0 and path.is_file(), result.stderr[-3000:]
    return path


class ScriptedDevice:
    """A hand-written 'device' on a pty slave: ``respond(frame) -> bytes`` decides what goes back.

    For misbehaviour the real agent never shows (malformed or stale replies, wrong nonces).
    """

    def __init__(self, respond):
        from hearmask.firmware_bridge.framing import FrameDecoder

        self.respond = respond
        self.master_fd, self.slave_fd = os.openpty()
        tty.setraw(self.slave_fd)
        self.decoder = FrameDecoder()
        self.received = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        import select

        while not self.stop.is_set():
            ready, _, _ = select.select([self.slave_fd], [], [], 0.02)
            if not ready:
                continue
            try:
                data = os.read(self.slave_fd, 65536)
            except OSError:
                return
            for frame in self.decoder.feed(data):
                self.received.append(frame)
                reply = self.respond(frame)
                if reply:
                    os.write(self.slave_fd, reply)

    def transport(self) -> FdTransport:
        return FdTransport(os.dup(self.master_fd), timeout=0.02, write_timeout=2.0)

    def close(self) -> None:
        self.stop.set()
        self.thread.join(timeout=5)
        os.close(self.slave_fd)
        os.close(self.master_fd)


@pytest.fixture
def scripted_device():
    devices = []

    def factory(respond) -> ScriptedDevice:
        device = ScriptedDevice(respond)
        devices.append(device)
        return device

    yield factory
    for device in devices:
        device.close()
