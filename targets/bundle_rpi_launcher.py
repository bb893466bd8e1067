"""Start the device agent of a Raspberry Pi bundle from its ``config.json`` (copied into the bundle as ``run_agent.py``).

Runs on the Pi with numpy + pyserial + LiteRT only. In a bundle, the agent's modules lie
in ``agent/hearmask/...`` beside this file and are put first on ``sys.path``, so the Pi
needs no hearmask installation (and an installed hearmask cannot shadow them)::

    .venv/bin/python run_agent.py --config config.json
    .venv/bin/python run_agent.py --config config.json --port /dev/ttyUSB0   # override the port

``config.json`` (written by :func:`hearmask.targets.bundle_rpi.export_rpi_bundle`, every
key documented in the bundle README):

    {"format": "hearmask-rpi-agent-config", "version": 1,
     "serial": {"port": "/dev/ttyGS0", "baud": 115200},
     "model": "model_int8.tflite", "runtime": "litert", "threads": 1,
     "loaded_model_dir": "loaded-model", "target": "raspberry-pi-4", "power_backend": null,
     "listener": {"audiogram_name": "N3", "audiogram_db_hl": [8 values at 250..8000 Hz],
                  "nr_strength": 1.0, "hlc_strength": 1.0}}

The listener settings are the agent's settings at start (what SET_AUDIOGRAM /
SET_STRENGTHS would set; a host may change them, RESET forgets them). Exit status 2
means the configuration or the model is wrong: the systemd unit does not restart then
(``RestartPreventExitStatus=2``), it restarts on any other failure.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

BUNDLE_DIR = Path(__file__).resolve().parent
# In a bundle, the agent package lies in agent/; put it first so nothing else named hearmask is imported.
if (BUNDLE_DIR / "agent" / "hearmask").is_dir():
    sys.path.insert(0, str(BUNDLE_DIR / "agent"))

CONFIG_FORMAT = "hearmask-rpi-agent-config"
CONFIG_VERSION = 1
CONFIG_ERROR_EXIT = 2
RUNTIMES = ("litert", "litert-reference")
AUDIOGRAM_POINTS = 8  # thresholds at 250, 500, 1k, 2k, 3k, 4k, 6k, 8k Hz (PROTOCOL.md 4.8)


class ConfigError(ValueError):
    """config.json is missing, unreadable or has a bad value (the message names it)."""


def read_config(path: Path) -> dict:
    """Read and check ``config.json``; returns it with paths resolved against its folder."""
    try:
        config = json.loads(path.read_text())
    except OSError as error:
        raise ConfigError(f"cannot read the agent config {str(path)!r}: {error}") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ConfigError(f"agent config {str(path)!r} is not valid JSON: {error}") from None
    if not isinstance(config, dict) or config.get("format") != CONFIG_FORMAT:
        raise ConfigError(f"{str(path)!r} is not a hearmask agent config (expected \"format\": \"{CONFIG_FORMAT}\")")
    if config.get("version") != CONFIG_VERSION:
        raise ConfigError(f"agent config {str(path)!r} has version {config.get('version')!r}; expected {CONFIG_VERSION}")
    serial = _section(config, "serial", path)
    listener = _section(config, "listener", path)
    if not isinstance(serial.get("port"), str) or not serial["port"]:
        raise ConfigError(f"serial.port in {str(path)!r} must be a device path or pyserial URL, got {serial.get('port')!r}")
    if not _is_int(serial.get("baud")) or not 0 < serial["baud"] <= 4_000_000:
        raise ConfigError(f"serial.baud in {str(path)!r} must be an integer in 1..4000000, got {serial.get('baud')!r}")
    if config.get("runtime") not in RUNTIMES:
        raise ConfigError(f"runtime in {str(path)!r} is {config.get('runtime')!r}; accepted: {', '.join(RUNTIMES)}")
    if not _is_int(config.get("threads")) or config["threads"] < 1:
        raise ConfigError(f"threads in {str(path)!r} must be an integer >= 1, got {config.get('threads')!r}")
    thresholds = listener.get("audiogram_db_hl")
    if not (isinstance(thresholds, list) and len(thresholds) == AUDIOGRAM_POINTS
            and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in thresholds)):
        raise ConfigError(f"listener.audiogram_db_hl in {str(path)!r} must be {AUDIOGRAM_POINTS} numbers in dB HL "
                          f"(250, 500, 1k, 2k, 3k, 4k, 6k, 8k Hz), got {thresholds!r}")
    for key in ("nr_strength", "hlc_strength"):
        if not isinstance(listener.get(key), (int, float)) or isinstance(listener.get(key), bool):
            raise ConfigError(f"listener.{key} in {str(path)!r} must be a number, got {listener.get(key)!r}")
    model = path.parent / str(config.get("model", ""))
    if not model.is_file():
        raise ConfigError(f"model {str(model)!r} named in {str(path)!r} does not exist; expected the bundle's .tflite")
    backend = config.get("power_backend")
    if backend is not None and (not isinstance(backend, str) or not backend):
        raise ConfigError(f"power_backend in {str(path)!r} must be null or a spec such as 'rpi5-pmic', got {backend!r}")
    return {**config, "model_path": model, "loaded_model_path": path.parent / str(config.get("loaded_model_dir", "loaded-model"))}


def _section(config: dict, name: str, path: Path) -> dict:
    section = config.get(name)
    if not isinstance(section, dict):
        raise ConfigError(f"{str(path)!r} needs an object {name!r}, got {section!r}")
    return section


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def agent_arguments(config: dict, port: str | None = None, kind: str = "hardware") -> list[str]:
    """The command line of ``hearmask.firmware_bridge.agent`` that ``config`` stands for."""
    arguments = [
        "--port", port or config["serial"]["port"], "--baud", str(config["serial"]["baud"]),
        "--model", str(config["model_path"]), "--model-dir", str(config["loaded_model_path"]),
        "--runtime", config["runtime"], "--threads", str(config["threads"]), "--kind", kind,
        "--target", str(config.get("target") or "raspberry-pi"),
    ]
    if config.get("power_backend"):
        arguments += ["--power-backend", config["power_backend"]]
    return arguments


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="run_agent.py", description="Run the hearmask device agent of this bundle.")
    parser.add_argument("--config", type=Path, default=BUNDLE_DIR / "config.json", help="default: config.json beside this file")
    parser.add_argument("--port", help="override serial.port of the config")
    parser.add_argument("--kind", choices=("hardware", "emulated"), default="hardware",
                        help="label for every timing the agent reports (emulated when not on the Pi; default hardware)")
    parser.add_argument("--exit-on-hangup", action="store_true", help="exit when the port hangs up (emulation)")
    parser.add_argument("--parent-pid", type=int, help="exit when this process is no longer our parent (emulation)")
    return parser


def main(argv: list[str] | None = None) -> int:
    options = build_parser().parse_args(argv)
    import serial

    from hearmask.firmware_bridge import agent as agent_module
    from hearmask.firmware_bridge import messages as msg
    from hearmask.firmware_bridge.errors import BridgeError
    from hearmask.firmware_bridge.plugins import ListenerSettings

    try:
        config = read_config(options.config)
        listener = config["listener"]
        audiogram = tuple(float(v) for v in listener["audiogram_db_hl"])
        strengths = msg.SetStrengths(float(listener["nr_strength"]), float(listener["hlc_strength"]))
        msg.SetAudiogram(audiogram).to_payload()  # the protocol's own range checks
        strengths.to_payload()
        args = agent_module.build_parser().parse_args(agent_arguments(config, options.port, options.kind))
        agent = agent_module.build_agent(args)
    except (ConfigError, BridgeError) as error:
        print(f"hearmask agent: configuration error: {error}", file=sys.stderr)
        return CONFIG_ERROR_EXIT
    agent.settings = ListenerSettings(audiogram, strengths.alpha, strengths.beta)
    package_dir = Path(agent_module.__file__).resolve().parents[1]
    print(f"hearmask agent: serving {args.port} at {args.baud} baud; model {config['model_path'].name} "
          f"(sha256 {agent.runtime.model_sha256.hex()[:16]}...), {agent.runtime.name}; hearmask package {package_dir}",
          file=sys.stderr, flush=True)
    try:
        port = agent_module.open_port(args)
    except (OSError, serial.SerialException) as error:
        print(f"hearmask agent: cannot open serial port {args.port!r}: {error}", file=sys.stderr)
        return 1
    return agent_module.serve_until_closed(agent, port, options.parent_pid, options.exit_on_hangup)


if __name__ == "__main__":
    sys.exit(main())
