"""The live loop's part of the Raspberry Pi bundle: config section, units, and the config round trip."""

import json
import subprocess
import sys

import pytest

from hearmask.errors import HearmaskError
from hearmask.firmware_bridge.live import options_from_bundle_config
from hearmask.targets.live_unit import (
    LIVE_ENTRY_MODULES,
    jackd_command,
    jackd_systemd_unit,
    live_config_section,
    live_systemd_unit,
)


def bundle_config(live: dict) -> dict:
    """The shape hearmask.targets.bundle_rpi writes, with the live section added."""
    return {"format": "hearmask-rpi-agent-config", "version": 1, "serial": {"port": "/dev/ttyGS0", "baud": 115200},
            "model": "model_int8.tflite", "runtime": "litert-reference", "threads": 1,
            "listener": {"audiogram_name": "N3", "audiogram_db_hl": [35, 35, 40, 50, 55, 60, 65, 65],
                         "nr_strength": 0.8, "hlc_strength": 0.6},
            "live": live}


def test_the_config_section_round_trips_into_live_options(tmp_path):
    live = live_config_section(capture_ports=["system:capture_2"], max_output_dbfs=-12.0, max_gain_db=30.0, ramp_hops=4)
    path = tmp_path / "config.json"
    path.write_text(json.dumps(bundle_config(live)))
    options = options_from_bundle_config(path)
    assert options.model_dir == tmp_path
    assert options.capture_ports == ("system:capture_2",) and options.playback_ports is None
    assert (options.limiter.max_output_dbfs, options.limiter.max_gain_db, options.ramp_hops) == (-12.0, 30.0, 4)
    assert (options.alpha, options.beta, options.audiogram_name) == (0.8, 0.6, "N3")
    assert options.audiogram_db_hl == (35, 35, 40, 50, 55, 60, 65, 65)
    assert options.serial_url == "/dev/ttyGS0" and options.reference_kernels and not options.keyboard
    assert options.summary_path == tmp_path / "live-summary.json"


def test_a_config_without_a_live_section_is_refused_with_what_to_do(tmp_path):
    config = bundle_config({})
    del config["live"]
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    with pytest.raises(HearmaskError, match="re-export the bundle"):
        options_from_bundle_config(path)


@pytest.mark.parametrize("options, message", [({"max_output_dbfs": 3.0}, "max_output_dbfs"),
                                              ({"capture_ports": "system:capture_1"}, "capture_ports"),
                                              ({"ramp_hops": 0}, "ramp_hops")])
def test_bad_live_settings_are_refused(options, message):
    with pytest.raises(HearmaskError, match=message):
        live_config_section(**options)


def test_units_start_jack_then_the_loop_with_the_bundle_config():
    live = live_systemd_unit("/opt/hearmask-agent", "hearmask")
    assert ("ExecStart=/opt/hearmask-agent/.venv/bin/python -m hearmask.firmware_bridge.live "
            "--config /opt/hearmask-agent/config.json") in live
    assert "Environment=PYTHONPATH=/opt/hearmask-agent/agent" in live
    assert "Requires=hearmask-jackd.service" in live and "After=hearmask-jackd.service" in live
    assert "Conflicts=hearmask-agent.service" in live and "RestartPreventExitStatus=2" in live
    assert "StandardError=journal" in live
    jackd = jackd_systemd_unit("hearmask", device="hw:1", rate_hz=44100, period=256)
    assert "ExecStart=/usr/bin/jackd -R -P 70 -d alsa -d hw:1 -r 44100 -p 256 -n 2" in jackd
    assert "User=hearmask" in jackd and "LimitRTPRIO=95" in jackd
    with pytest.raises(HearmaskError, match="period"):
        jackd_command(period=8)
    with pytest.raises(HearmaskError, match="absolute"):
        live_systemd_unit("opt/x", "hearmask")


def test_the_live_modules_a_bundle_copies_import_without_torch_or_tensorflow():
    script = ("import importlib, sys\n"
              f"for name in {list(LIVE_ENTRY_MODULES)!r}: importlib.import_module(name)\n"
              "print(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'tensorflow', 'scipy')))\n")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
