"""The Raspberry Pi deployment bundle: what ``hearmask export MODEL_DIR --target rpi4 --out DIR`` writes.

A folder to copy to the Pi, which then needs only Python (3.11, as on Raspberry Pi OS
Bookworm, is what is tested) with numpy, pyserial and
LiteRT (``ai-edge-litert``, or ``tflite-runtime`` on older images; DESIGN.md
"Deployment targets"):

- ``model_int8.tflite`` and ``manifest.json``: the model and its manifest, unchanged (so
  the bundle folder is also a model folder for ``hearmask profile``);
- ``agent/hearmask/...``: the device agent (:mod:`hearmask.firmware_bridge.agent`) and exactly
  the hearmask modules it imports, found by importing it in a fresh interpreter and checked
  to pull neither torch nor tensorflow;
- ``run_agent.py``: starts the agent from ``config.json`` (:mod:`hearmask.targets.bundle_rpi_launcher`);
- ``config.json``: serial port and baud, runtime, the listener's audiogram and strengths;
- ``hearmask-agent.service``: a systemd unit (journal logging, restart on failure, no
  restart on a configuration error);
- ``requirements.txt``, ``README.md`` (the exact commands on the Pi) and ``bundle.json``
  (provenance: source model folder and checkpoint, target, SHA-256 of every file).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hearmask import __version__
from hearmask.errors import HearmaskError
from hearmask.targets.descriptors import target_of_kind
from hearmask.targets.live_unit import (
    JACKD_SERVICE_NAME,
    LIVE_ENTRY_MODULES,
    LIVE_REQUIREMENTS,
    LIVE_SERVICE_NAME,
    jackd_systemd_unit,
    live_config_section,
    live_systemd_unit,
)

BUNDLE_FORMAT = "hearmask-rpi-bundle"
BUNDLE_VERSION = 1
BUNDLE_FILE = "bundle.json"
CONFIG_FILE = "config.json"
LAUNCHER_FILE = "run_agent.py"
SERVICE_NAME = "hearmask-agent"
AGENT_DIR = "agent"
DEFAULT_PORT = "/dev/ttyGS0"  # USB gadget serial (g_serial) on a Pi 4/5 (or Zero) connected by USB-C
DEFAULT_BAUD = 115200
DEFAULT_INSTALL_DIR = "/opt/hearmask-agent"
DEFAULT_SERVICE_USER = "hearmask"
RUNTIMES = ("litert", "litert-reference")
# What the agent imports on the Pi: the agent itself, the power backends it loads by name,
# UART pacing and the MLPerf Tiny mode (both imported lazily by the agent).
AGENT_ENTRY_MODULES = (
    "hearmask.firmware_bridge.agent",
    "hearmask.firmware_bridge.runtime",
    "hearmask.firmware_bridge.power",
    "hearmask.firmware_bridge.transport",
    "hearmask.firmware_bridge.mlperf_dut",
    # The live hearing-aid loop (hearmask-live.service) runs from the same package.
    *LIVE_ENTRY_MODULES,
)
FORBIDDEN_ON_DEVICE = ("torch", "tensorflow")
# pip requirement lines; tflite-runtime is the fallback the README installs when ai-edge-litert has no wheel.
REQUIREMENTS = ("numpy>=1.21", "pyserial>=3.5", "ai-edge-litert>=1.0", *LIVE_REQUIREMENTS)


def export_rpi_bundle(
    model_dir: str | Path,
    target,
    out_dir: str | Path,
    *,
    audiogram: str | Path | Sequence[float] = "NH",
    nr_strength: float = 1.0,
    hlc_strength: float = 1.0,
    allow_exaggeration: bool = False,
    port: str = DEFAULT_PORT,
    baud: int = DEFAULT_BAUD,
    runtime: str = "litert",
    threads: int = 1,
    power_backend: str | None = None,
    install_dir: str = DEFAULT_INSTALL_DIR,
    service_user: str = DEFAULT_SERVICE_USER,
) -> Path:
    """Write the Raspberry Pi bundle of ``model_dir`` for ``target`` into ``out_dir``; returns ``out_dir``.

    Args:
        model_dir: a folder written by ``hearmask quantize`` (int8 ``.tflite`` + ``manifest.json``).
        target: a :class:`hearmask.targets.descriptors.TargetDescriptor` of kind ``"rpi"``, or its name.
        out_dir: created if missing; must be empty or an earlier bundle (then rewritten).
        audiogram: a standard profile name (``N3``), an audiogram file, or 8 thresholds in dB HL
            at 250, 500, 1k, 2k, 3k, 4k, 6k, 8k Hz: the agent's listener at start.
        nr_strength, hlc_strength: alpha and beta (gain dB = alpha·NR_dB + beta·HLC_dB), in [0, 1]
            unless ``allow_exaggeration`` (then up to 4, the protocol's limit).
        port, baud: the Pi's serial device (``/dev/ttyGS0`` USB gadget, ``/dev/serial0`` UART...) and rate.
        runtime: ``litert`` (optimised kernels) or ``litert-reference`` (reference kernels: bit-exact
            with the host golden, slower).
        threads: LiteRT interpreter threads.
        power_backend: the agent's power sensor (``rpi5-pmic``, ``ina219[:ADDR[:OHMS]]``) or None.
        install_dir, service_user: where the README installs the bundle on the Pi and the user
            the systemd unit runs as (both appear in the unit file).

    Raises :class:`HearmaskError` for a missing or inconsistent model folder, a cascade model
    (two networks; the agent serves one), a non-Raspberry-Pi target and bad settings.
    """
    from hearmask.firmware_bridge import messages as msg
    from hearmask.model.gains import validate_strength
    from hearmask.quantize.manifest import read_manifest
    from hearmask.quantize.tflite_inspect import read_tflite

    model_dir = Path(model_dir)
    target = target_of_kind(target, "rpi", "the Raspberry Pi bundle")
    manifest = read_manifest(model_dir)
    networks = manifest.get("networks") or []
    if len(networks) != 1:
        raise HearmaskError(
            f"model {str(model_dir)!r} is a {manifest.get('variant')!r} model with {len(networks)} networks; the Raspberry "
            "Pi agent serves one network. Export a joint, nr or hlc model")
    network = networks[0]
    model_name = network["files"]["int8_tflite"]
    model_path = model_dir / model_name
    if not model_path.is_file():
        raise HearmaskError(f"no int8 model {model_name!r} in {str(model_dir)!r} (named by its manifest.json)")
    expected_sha = network.get("sha256", {}).get("int8_tflite")
    actual_sha = _sha256(model_path)
    if expected_sha and expected_sha != actual_sha:
        raise HearmaskError(f"{str(model_path)!r} has SHA-256 {actual_sha}, its manifest says {expected_sha}: the model "
                            "changed after hearmask quantize wrote it; re-run hearmask quantize")
    read_tflite(model_path, manifest=network)  # parses, checks int8 and the manifest's I/O
    alpha = validate_strength("nr_strength", nr_strength, allow_exaggeration)
    beta = validate_strength("hlc_strength", hlc_strength, allow_exaggeration)
    msg.SetStrengths(alpha, beta).to_payload()  # within what the device accepts
    audiogram_name, thresholds_db_hl = _audiogram_thresholds(audiogram)
    msg.SetAudiogram(thresholds_db_hl).to_payload()
    _check_serial(port, baud)
    if runtime not in RUNTIMES:
        raise HearmaskError(f"runtime {runtime!r} is not accepted; expected one of {', '.join(RUNTIMES)}")
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise HearmaskError(f"threads must be an integer >= 1, got {threads!r}")
    if power_backend is not None:
        _check_power_backend(power_backend)
    if not install_dir.startswith("/"):
        raise HearmaskError(f"install_dir must be an absolute path on the Pi, got {install_dir!r}")

    out_dir = _prepare_out_dir(Path(out_dir))
    shutil.copyfile(model_path, out_dir / model_name)
    shutil.copyfile(model_dir / "manifest.json", out_dir / "manifest.json")
    agent_files = copy_agent_package(out_dir / AGENT_DIR)
    shutil.copyfile(Path(__file__).with_name("bundle_rpi_launcher.py"), out_dir / LAUNCHER_FILE)
    config = {
        "format": "hearmask-rpi-agent-config",
        "version": 1,
        "serial": {"port": port, "baud": int(baud)},
        "model": model_name,
        "runtime": runtime,
        "threads": threads,
        "loaded_model_dir": "loaded-model",
        "target": target.name,
        "power_backend": power_backend,
        "listener": {"audiogram_name": audiogram_name, "audiogram_db_hl": list(thresholds_db_hl),
                     "nr_strength": alpha, "hlc_strength": beta},
        "live": live_config_section(),
    }
    (out_dir / CONFIG_FILE).write_text(json.dumps(config, indent=2) + "\n")
    # The live loop at boot: the JACK server on the USB card, then the loop with this config.
    (out_dir / f"{JACKD_SERVICE_NAME}.service").write_text(jackd_systemd_unit(service_user))
    (out_dir / f"{LIVE_SERVICE_NAME}.service").write_text(live_systemd_unit(install_dir, service_user))
    (out_dir / "requirements.txt").write_text(requirements_text())
    (out_dir / f"{SERVICE_NAME}.service").write_text(systemd_unit(install_dir, service_user))
    (out_dir / "README.md").write_text(readme_text(target, manifest, config, install_dir, service_user, out_dir.name))
    files = sorted(str(p.relative_to(out_dir)) for p in out_dir.rglob("*") if p.is_file() and p.name != BUNDLE_FILE)
    bundle = {
        "format": BUNDLE_FORMAT,
        "version": BUNDLE_VERSION,
        "hearmask_version": __version__,
        "target": {"name": target.name, "kind": target.kind, "runtime": getattr(target, "runtime", None),
                   "clock_hz": getattr(target, "clock_hz", None), "cores": getattr(target, "cores", None)},
        "source_model_dir": str(model_dir.resolve()),
        "source_checkpoint": manifest.get("source_checkpoint"),
        "model": {"file": model_name, "sha256": actual_sha, "variant": manifest.get("variant")},
        "agent_modules": agent_files,
        "sha256": {name: _sha256(out_dir / name) for name in files},
    }
    (out_dir / BUNDLE_FILE).write_text(json.dumps(bundle, indent=2) + "\n")
    return out_dir



def _audiogram_thresholds(audiogram) -> tuple[str, tuple[float, ...]]:
    """(name, 8 thresholds in dB HL at the protocol's frequencies) from a profile name, a file or 8 numbers."""
    from hearmask.profiles import MODEL_AUDIOGRAM_FREQUENCIES_HZ, load_audiogram
    from hearmask.profiles.audiogram import MODEL_INPUT_SCALE_DB, Audiogram

    if isinstance(audiogram, (str, Path)):
        audiogram = load_audiogram(audiogram)
    if isinstance(audiogram, Audiogram):
        values = audiogram.model_input(MODEL_AUDIOGRAM_FREQUENCIES_HZ) * MODEL_INPUT_SCALE_DB
        return audiogram.name, tuple(round(float(v), 1) for v in values)
    try:
        values = tuple(float(v) for v in audiogram)
    except (TypeError, ValueError):
        raise HearmaskError(f"audiogram {audiogram!r} is not accepted; expected a profile name (N3), an audiogram file "
                            "or 8 thresholds in dB HL at 250, 500, 1k, 2k, 3k, 4k, 6k, 8k Hz") from None
    if len(values) != len(MODEL_AUDIOGRAM_FREQUENCIES_HZ):
        raise HearmaskError(f"audiogram has {len(values)} thresholds; expected {len(MODEL_AUDIOGRAM_FREQUENCIES_HZ)} "
                            "(dB HL at 250, 500, 1k, 2k, 3k, 4k, 6k, 8k Hz)")
    return "custom", values


def _check_serial(port: str, baud: int) -> None:
    if not isinstance(port, str) or not port.strip() or any(c.isspace() for c in port):
        raise HearmaskError(f"serial port {port!r} is not accepted; expected a device path such as /dev/ttyGS0, "
                            "/dev/serial0 or /dev/ttyUSB0 (no spaces)")
    if isinstance(baud, bool) or not isinstance(baud, int) or not 0 < baud <= 4_000_000:
        raise HearmaskError(f"baud rate {baud!r} is not accepted; expected an integer in 1..4000000 (e.g. 115200, 921600)")


def _check_power_backend(spec: str) -> None:
    name = spec.partition(":")[0]
    if spec != "rpi5-pmic" and name != "ina219" and ":" not in spec:
        raise HearmaskError(f"power backend {spec!r} is not accepted; expected rpi5-pmic, ina219[:ADDRESS[:SHUNT_OHMS]] "
                            "or package.module:factory")


def _prepare_out_dir(out_dir: Path) -> Path:
    if out_dir.exists() and not out_dir.is_dir():
        raise HearmaskError(f"--out {str(out_dir)!r} is a file; expected a folder for the bundle")
    if out_dir.is_dir() and any(out_dir.iterdir()):
        if not (out_dir / BUNDLE_FILE).is_file():
            raise HearmaskError(f"--out {str(out_dir)!r} is not empty and holds no {BUNDLE_FILE}; give an empty or new "
                                "folder, or an earlier bundle to rewrite")
        shutil.rmtree(out_dir / AGENT_DIR, ignore_errors=True)  # an earlier bundle: its agent is replaced whole
    out_dir.mkdir(parents=True, exist_ok=True)
    return out_dir


def agent_module_files(entry_modules: Sequence[str] = AGENT_ENTRY_MODULES) -> dict[str, Path]:
    """``{module name: source file}`` of every hearmask module the agent imports, found by importing
    ``entry_modules`` in a fresh interpreter. Raises :class:`HearmaskError` if torch or tensorflow
    come along (the Pi has neither)."""
    script = (
        "import importlib, json, sys\n"
        f"for name in {list(entry_modules)!r}: importlib.import_module(name)\n"
        "found = {n: m.__file__ for n, m in sys.modules.items() if (n == 'hearmask' or n.startswith('hearmask.'))"
        " and getattr(m, '__file__', None)}\n"
        f"bad = sorted(n for n in sys.modules if n.split('.')[0] in {list(FORBIDDEN_ON_DEVICE)!r})\n"
        "print(json.dumps({'modules': found, 'forbidden': bad}))\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    if result.returncode != 0:
        raise HearmaskError(f"cannot import the device agent to collect its modules: {result.stderr.strip()[-1500:]}")
    found = json.loads(result.stdout.strip().splitlines()[-1])
    if found["forbidden"]:
        raise HearmaskError(f"the device agent's imports pull {', '.join(found['forbidden'])}, which a Raspberry Pi "
                            "bundle cannot carry; this is a hearmask bug (device-side code must be numpy-only)")
    return {name: Path(path) for name, path in sorted(found["modules"].items())}


def copy_agent_package(agent_dir: Path) -> list[str]:
    """Copy the agent's modules into ``agent_dir`` as the package tree ``hearmask/...``; returns their module names."""
    modules = agent_module_files()
    for name, source in modules.items():
        parts = name.split(".")
        is_package = source.name == "__init__.py"
        destination = agent_dir.joinpath(*parts, "__init__.py") if is_package else agent_dir.joinpath(*parts[:-1],
                                                                                                        source.name)
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, destination)
        if is_package:  # package data (e.g. profile JSON files) travels with its package
            for data in source.parent.glob("*.json"):
                shutil.copyfile(data, destination.parent / data.name)
    return sorted(modules)


def requirements_text() -> str:
    return ("# The device agent's only dependencies (the Pi needs neither torch nor tensorflow).\n"
            "# If ai-edge-litert has no wheel for this Pi's Python, install tflite-runtime instead (README).\n"
            + "\n".join(REQUIREMENTS) + "\n")


def systemd_unit(install_dir: str = DEFAULT_INSTALL_DIR, service_user: str = DEFAULT_SERVICE_USER) -> str:
    """The unit file: the agent as a simple service, logging to the journal, restarted on failure
    except for a configuration error (exit status 2, see the launcher)."""
    return f"""[Unit]
Description=hearmask device agent (serial protocol, LiteRT)
Documentation=file://{install_dir}/README.md
After=local-fs.target
# A serial port that appears late (USB gadget, USB adapter) is retried forever.
StartLimitIntervalSec=0

[Service]
Type=simple
User={service_user}
SupplementaryGroups=dialout
WorkingDirectory={install_dir}
Environment=PYTHONUNBUFFERED=1
ExecStart={install_dir}/.venv/bin/python {install_dir}/{LAUNCHER_FILE} --config {install_dir}/{CONFIG_FILE}
Restart=on-failure
RestartSec=2
RestartPreventExitStatus=2
StandardOutput=journal
StandardError=journal
SyslogIdentifier={SERVICE_NAME}

[Install]
WantedBy=multi-user.target
"""


def readme_text(target, manifest: dict[str, Any], config: dict[str, Any], install_dir: str, service_user: str,
                bundle_name: str) -> str:
    network = manifest["networks"][0]
    serial = config["serial"]
    listener = config["listener"]
    return f"""# hearmask device agent for {target.name}

Model `{config['model']}` ({manifest.get('variant')} variant, {network.get('int8_model_bytes', '?')} bytes, int8), written by
hearmask {__version__}. The agent serves the hearmask serial protocol (PROTOCOL.md in the hearmask
repository) on `{serial['port']}` at {serial['baud']} baud with LiteRT (`{config['runtime']}`). It needs Python
(tested with 3.11, Raspberry Pi OS Bookworm's) with numpy, pyserial and LiteRT only: no torch, no tensorflow, no hearmask installation (its modules
are in `agent/`). `bundle.json` records where the model came from and the SHA-256 of every file.

## Install on the Pi

```bash
# on the host, in the folder that holds the bundle (replace pi@raspberrypi with your Pi's login)
scp -r {bundle_name} pi@raspberrypi:/tmp/hearmask-agent

# on the Pi
sudo mkdir -p {install_dir}
sudo cp -r /tmp/hearmask-agent/. {install_dir}/
sudo useradd --system --no-create-home --groups dialout,video,i2c {service_user} 2>/dev/null || true
sudo apt-get install -y python3-venv
sudo python3 -m venv {install_dir}/.venv
sudo {install_dir}/.venv/bin/pip install -r {install_dir}/requirements.txt \\
  || sudo {install_dir}/.venv/bin/pip install numpy pyserial tflite-runtime   # older images: no ai-edge-litert wheel
sudo mkdir -p {install_dir}/loaded-model && sudo chown {service_user} {install_dir}/loaded-model
```

## Run it by hand (stop with Ctrl-C)

```bash
cd {install_dir}
sudo -u {service_user} .venv/bin/python run_agent.py --config config.json
sudo -u {service_user} .venv/bin/python run_agent.py --config config.json --port /dev/ttyUSB0   # another port
```

## Run it as a service (starts at boot, restarts on failure, logs to the journal)

```bash
sudo cp {install_dir}/{SERVICE_NAME}.service /etc/systemd/system/
sudo systemctl daemon-reload
sudo systemctl enable --now {SERVICE_NAME}
journalctl -u {SERVICE_NAME} -f            # its log
sudo systemctl restart {SERVICE_NAME}      # after editing config.json
```

A configuration error (exit status 2, message in the journal) stops the service instead of
restarting it; fix `config.json` and restart.

## Or: the live hearing aid at boot (microphone -> model -> earpiece)

With a USB audio interface: `sudo apt-get install -y jackd2` (answer "No" to the realtime
question; the units grant it), find the card with `aplay -l` (`hw:USB` is assumed in
`{JACKD_SERVICE_NAME}.service`; edit it for another card), then:

```bash
sudo cp {install_dir}/{JACKD_SERVICE_NAME}.service {install_dir}/{LIVE_SERVICE_NAME}.service /etc/systemd/system/
sudo systemctl daemon-reload
sudo systemctl disable --now {SERVICE_NAME}     # both serve the serial port
sudo systemctl enable --now {JACKD_SERVICE_NAME} {LIVE_SERVICE_NAME}
journalctl -u {LIVE_SERVICE_NAME} -f            # a status line a minute: callback time, xruns, DSP load
```

The loop reads the listener, strengths and limiter from `config.json` (section `live`); a host
changes strengths and audiogram over the serial port without a restart (SET messages).

## Serial port

`{serial['port']}` is the port on the Pi. `/dev/ttyGS0` is USB gadget serial: on a Pi 4/5 or Zero
connected to the host by USB-C, add `dtoverlay=dwc2` to `/boot/firmware/config.txt` and `modules-load=dwc2,g_serial`
after `rootwait` in `/boot/firmware/cmdline.txt`, then reboot; the host sees `/dev/ttyACM0`. For the GPIO UART
use `/dev/serial0` (enable it with `raspi-config`, disable the serial console). A USB-serial adapter on the Pi
is `/dev/ttyUSB0`.

## Profile it from the host

```bash
hearmask profile --port /dev/ttyACM0 --bundle {bundle_name} --report out/profile
```

## config.json

| key | meaning |
|---|---|
| `serial.port`, `serial.baud` | the Pi's serial device and its baud rate (ignored by USB gadget serial) |
| `model` | the `.tflite` loaded at start (a host may replace it with LOAD_MODEL; that one is kept in `loaded_model_dir`) |
| `runtime` | `litert` (optimised kernels) or `litert-reference` (reference kernels: bit-exact with the host golden, slower) |
| `threads` | LiteRT interpreter threads (1 gives the steadiest per-hop time) |
| `target` | the name the agent reports in INFO |
| `power_backend` | `null`, `rpi5-pmic` (Pi 5 PMIC rails via `vcgencmd`, below wall power) or `ina219[:ADDRESS[:SHUNT_OHMS]]` (needs `pip install smbus2` and I2C) |
| `listener.audiogram_db_hl` | the listener at start: dB HL at 250, 500, 1k, 2k, 3k, 4k, 6k, 8k Hz (now: {listener['audiogram_name']}) |
| `listener.nr_strength`, `listener.hlc_strength` | alpha and beta at start: gain dB = alpha·NR_dB + beta·HLC_dB (now {listener['nr_strength']:g}, {listener['hlc_strength']:g}) |
"""


def _sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()
