"""The Raspberry Pi bundle: its files, the exported agent serving INFER bit-exact from the bundle folder, the unit, bad input."""

from __future__ import annotations

import configparser
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
import tty
from pathlib import Path

import numpy as np
import pytest

from hearmask.errors import HearmaskError
from hearmask.firmware_bridge.client import DeviceClient
from hearmask.firmware_bridge.framing import FrameDecoder
from hearmask.firmware_bridge.messages import MessageType
from hearmask.firmware_bridge.transport import FdTransport
from hearmask.targets.bundle_rpi import export_rpi_bundle, systemd_unit
from hearmask.targets.descriptors import load_target


@pytest.fixture(scope="module")
def bundle(quantized_dir, tmp_path_factory):
    return export_rpi_bundle(quantized_dir, load_target("rpi4"), tmp_path_factory.mktemp("out") / "pi-bundle",
                             audiogram="N3", nr_strength=0.5, hlc_strength=0.75, runtime="litert-reference",
                             port="/dev/serial0", baud=921600)


def test_the_bundle_holds_the_model_agent_config_unit_and_readme(bundle, quantized_dir):
    from hearmask.profiles import load_audiogram

    for name in ("model_int8.tflite", "manifest.json"):
        assert (bundle / name).read_bytes() == (quantized_dir / name).read_bytes()
    config = json.loads((bundle / "config.json").read_text())
    assert config["serial"] == {"port": "/dev/serial0", "baud": 921600}
    assert config["runtime"] == "litert-reference" and config["target"] == "rpi4"
    expected_db_hl = np.round(load_audiogram("N3").model_input() * 100, 1)
    assert np.array_equal(config["listener"]["audiogram_db_hl"], expected_db_hl)
    assert (config["listener"]["nr_strength"], config["listener"]["hlc_strength"]) == (0.5, 0.75)
    requirements = (bundle / "requirements.txt").read_text()
    assert {"numpy", "pyserial", "ai-edge-litert"} <= {line.split(">")[0] for line in requirements.splitlines()
                                                       if line and not line.startswith("#")}
    readme = (bundle / "README.md").read_text()
    assert "sudo systemctl enable --now hearmask-agent" in readme and "tflite-runtime" in readme
    assert "scp -r pi-bundle " in readme and "run_agent.py --config config.json" in readme
    provenance = json.loads((bundle / "bundle.json").read_text())
    assert provenance["model"]["sha256"] == hashlib.sha256((bundle / "model_int8.tflite").read_bytes()).hexdigest()
    for name, digest in provenance["sha256"].items():
        assert hashlib.sha256((bundle / name).read_bytes()).hexdigest() == digest, name
    assert "hearmask.firmware_bridge.agent" in provenance["agent_modules"]
    # STREAM runs the host's numpy streaming code, so exactly these model/quantize modules travel (all torch-free).
    shared = {m for m in provenance["agent_modules"] if m.startswith(("hearmask.model", "hearmask.quantize"))}
    assert shared <= {"hearmask.model", "hearmask.model.erb", "hearmask.model.features", "hearmask.model.gains",
                      "hearmask.model.stft_config", "hearmask.model.stft_stream", "hearmask.quantize",
                      "hearmask.quantize.quant_spec"}, shared


def test_the_bundled_agent_imports_only_its_own_modules_and_no_torch_or_tensorflow(bundle):
    code = ("import sys, run_agent, hearmask.firmware_bridge.agent, hearmask.firmware_bridge.runtime; "
            "print(sorted({m.__file__ for n, m in sys.modules.items() if n.startswith('hearmask')})); "
            "print([m for m in ('torch', 'tensorflow') if m in sys.modules])")
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    result = subprocess.run([sys.executable, "-c", code], cwd=bundle, capture_output=True, text=True, env=env,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    files_line, forbidden_line = result.stdout.strip().splitlines()[-2:]
    assert forbidden_line == "[]"
    files = eval(files_line)  # a printed list of paths
    assert files and all(Path(f).resolve().is_relative_to((bundle / "agent").resolve()) for f in files)


class BundleAgent:
    """``run_agent.py`` of a bundle in a subprocess on the slave side of a pty (like emulate://rpi)."""

    def __init__(self, bundle: Path, log_path: Path):
        self.master_fd, self.slave_fd = os.openpty()
        tty.setraw(self.slave_fd)
        env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
        self.log = open(log_path, "wb")
        self.log_path = log_path
        self.process = subprocess.Popen(
            [sys.executable, "run_agent.py", "--config", "config.json", "--port", os.ttyname(self.slave_fd),
             "--kind", "emulated", "--exit-on-hangup", "--parent-pid", str(os.getpid())],
            cwd=bundle, env=env, stdout=self.log, stderr=self.log, stdin=subprocess.DEVNULL, start_new_session=True)

    def wait_for_boot(self, timeout_s: float = 60.0) -> None:
        probe = FdTransport(self.master_fd, timeout=0.05, owns_fd=False)
        decoder = FrameDecoder()
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.log_path.read_text()
            if any(f.message_type == MessageType.INFO and f.seq == 0 for f in decoder.feed(probe.read(4096))):
                return
        raise AssertionError(f"no boot INFO: {self.log_path.read_text()}")

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)
        self.log.close()
        os.close(self.slave_fd)
        os.close(self.master_fd)


def test_the_exported_agent_answers_hello_and_infer_bit_exact_with_host_litert(bundle, tmp_path):
    from hearmask.quantize.runtimes import LiteRtRuntime

    model_bytes = (bundle / "model_int8.tflite").read_bytes()
    golden = LiteRtRuntime(model_bytes, reference_kernels=True)  # the bundle's runtime is litert-reference
    agent = BundleAgent(bundle, tmp_path / "agent.log")
    try:
        agent.wait_for_boot()
        client = DeviceClient("bundle-agent", transport=FdTransport(os.dup(agent.master_fd)), timeout_s=5.0)
        info = client.open()
        assert info.model_sha256 == hashlib.sha256(model_bytes).digest()
        assert info.target_name == "rpi4" and "reference kernels" in info.runtime_name
        assert info.kind.label == "emulated"
        rng = np.random.default_rng(3)
        state = {"state": np.zeros(golden.summary.input("state").tensor.shape, np.int8)}
        golden_state = dict(state)
        for _ in range(25):
            inputs = {entry.name: rng.integers(-128, 128, entry.tensor.shape).astype(np.int8)
                      for entry in golden.inputs if entry.name != "state"}
            reply = client.infer({**inputs, **state})
            expected = golden.invoke_codes({**inputs, **golden_state})
            assert sorted(reply.outputs) == sorted(expected)
            for name in expected:
                assert np.array_equal(reply.outputs[name], expected[name]), name
            state, golden_state = {"state": reply.outputs["new_state"]}, {"state": expected["new_state"]}
        client.close()
    finally:
        agent.close()
    log = (tmp_path / "agent.log").read_text()
    assert f"hearmask package {(bundle / 'agent' / 'hearmask').resolve()}" in log


def test_the_launcher_refuses_a_bad_config_with_exit_status_2(bundle, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(bundle, broken)
    config = json.loads((broken / "config.json").read_text())
    config["runtime"] = "gpu"
    (broken / "config.json").write_text(json.dumps(config))
    result = subprocess.run([sys.executable, "run_agent.py", "--port", "/dev/null"], cwd=broken, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 2
    assert "configuration error: runtime in" in result.stderr and "'gpu'" in result.stderr


def test_the_systemd_unit_parses(tmp_path):
    install_dir = tmp_path / "opt"
    (install_dir / ".venv" / "bin").mkdir(parents=True)
    os.symlink(sys.executable, install_dir / ".venv" / "bin" / "python")
    (install_dir / "run_agent.py").write_text("")
    unit = systemd_unit(str(install_dir), "root")
    parser = configparser.ConfigParser(strict=True, interpolation=None)
    parser.optionxform = str
    parser.read_string(unit)
    service = parser["Service"]
    assert service["Restart"] == "on-failure" and service["RestartPreventExitStatus"] == "2"
    assert service["StandardOutput"] == service["StandardError"] == "journal"
    assert service["ExecStart"].split() == [f"{install_dir}/.venv/bin/python", f"{install_dir}/run_agent.py", "--config",
                                            f"{install_dir}/config.json"]
    assert parser["Install"]["WantedBy"] == "multi-user.target"
    if shutil.which("systemd-analyze"):
        path = tmp_path / "hearmask-agent.service"
        path.write_text(unit)
        result = subprocess.run(["systemd-analyze", "verify", str(path)], capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("change, message", [
    ({"target": "cortex-m55-qemu"}, "needs a target of kind 'rpi'"),
    ({"port": ""}, "serial port '' is not accepted"),
    ({"baud": 0}, "baud rate 0 is not accepted"),
    ({"nr_strength": 1.5}, "strength nr_strength = 1.5 is above 1"),
    ({"audiogram": [10, 20, 30]}, "audiogram has 3 thresholds; expected 8"),
    ({"audiogram": "N9"}, "N9"),
    ({"runtime": "gpu"}, "runtime 'gpu' is not accepted"),
])
def test_bad_settings_are_refused_naming_the_value(quantized_dir, tmp_path, change, message):
    options = {"target": "rpi4", **change}
    target = load_target(options.pop("target"))
    with pytest.raises(HearmaskError, match=None) as caught:
        export_rpi_bundle(quantized_dir, target, tmp_path / "out", **options)
    assert message in str(caught.value)
    assert not (tmp_path / "out").exists()  # nothing is written before the inputs are checked


def test_bad_model_folders_and_out_folders_are_refused(quantized_dir, tmp_path):
    target = load_target("rpi5")
    with pytest.raises(HearmaskError, match="no model manifest"):
        export_rpi_bundle(tmp_path, target, tmp_path / "out")
    tampered = tmp_path / "tampered"
    shutil.copytree(quantized_dir, tampered)
    data = bytearray((tampered / "model_int8.tflite").read_bytes())
    data[-1] ^= 0xFF
    (tampered / "model_int8.tflite").write_bytes(bytes(data))
    with pytest.raises(HearmaskError, match="manifest says"):
        export_rpi_bundle(tampered, target, tmp_path / "out")
    occupied = tmp_path / "occupied"
    occupied.mkdir()
    (occupied / "notes.txt").write_text("mine")
    with pytest.raises(HearmaskError, match="is not empty and holds no bundle.json"):
        export_rpi_bundle(quantized_dir, target, occupied)
    assert (occupied / "notes.txt").read_text() == "mine"


def test_the_bundle_starts_the_live_loop_at_boot_with_its_config(bundle):
    config = json.loads((bundle / "config.json").read_text())
    from hearmask.firmware_bridge.live import options_from_bundle_config

    options = options_from_bundle_config(bundle / "config.json")  # the loop's own reader accepts it
    assert config["live"]["max_gain_db"] == 40.0 and options is not None
    live_unit = (bundle / "hearmask-live.service").read_text()
    assert "-m hearmask.firmware_bridge.live --config /opt/hearmask-agent/config.json" in live_unit
    assert "Requires=hearmask-jackd.service" in live_unit and "Conflicts=hearmask-agent.service" in live_unit
    assert "jackd" in (bundle / "hearmask-jackd.service").read_text()
    assert "JACK-Client" in (bundle / "requirements.txt").read_text()
    agent_modules = json.loads((bundle / "bundle.json").read_text())["agent_modules"]
    assert {"hearmask.firmware_bridge.live", "hearmask.firmware_bridge.live_jack"} <= set(agent_modules)
    assert "hearmask-live" in (bundle / "README.md").read_text()
