"""`hearmask export`: a Raspberry Pi bundle from the command line, dispatch on the target kind, one-line errors."""

from __future__ import annotations

import json

import pytest

from hearmask import cli
from hearmask.cli import export_cmd


def test_export_writes_a_raspberry_pi_bundle_with_the_given_settings(quantized_dir, tmp_path, capsys):
    out = tmp_path / "bundle"
    status = cli.main(["export", str(quantized_dir), "--target", "rpi5", "--out", str(out), "--audiogram", "S2",
                       "--nr", "0.3", "--hlc", "0.9", "--port", "/dev/ttyAMA0", "--baud", "460800", "--json"])
    assert status == 0
    result = json.loads(capsys.readouterr().out)
    assert result["kind"] == "rpi" and result["target"] == "rpi5"
    assert {"model_int8.tflite", "manifest.json", "config.json", "run_agent.py", "hearmask-agent.service",
            "requirements.txt", "README.md", "bundle.json", "agent/hearmask/firmware_bridge/agent.py"} <= set(result["files"])
    config = json.loads((out / "config.json").read_text())
    assert config["serial"] == {"port": "/dev/ttyAMA0", "baud": 460800}
    assert config["listener"]["audiogram_name"] == "S2"
    assert (config["listener"]["nr_strength"], config["listener"]["hlc_strength"]) == (0.3, 0.9)
    # Exporting again into the same bundle rewrites it.
    assert cli.main(["export", str(quantized_dir), "--target", "rpi5", "--out", str(out), "--nr", "0.6"]) == 0
    assert json.loads((out / "config.json").read_text())["listener"]["nr_strength"] == 0.6
    assert capsys.readouterr().out.startswith("rpi bundle for rpi5 in ")


def test_cortex_m_targets_go_to_their_exporter_or_say_it_is_not_available(quantized_dir, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(export_cmd.EXPORTERS, "cortex-m", ("hearmask.targets.no_such_exporter", "export"))
    assert cli.main(["export", str(quantized_dir), "--target", "cortex-m55-qemu", "--out", str(tmp_path / "m55")]) == 1
    error = capsys.readouterr().err
    assert error.startswith("hearmask export: error: Cortex-M export not available yet (target 'cortex-m55-qemu'")
    calls = []
    monkeypatch.setitem(export_cmd.EXPORTERS, "cortex-m", ("hearmask.cli.export_cmd", "_recording_exporter"))
    monkeypatch.setattr(export_cmd, "_recording_exporter", lambda *args, **kw: calls.append((args, kw)) or args[2],
                        raising=False)
    (tmp_path / "m55").mkdir()
    assert cli.main(["export", str(quantized_dir), "--target", "cortex-m55-qemu", "--out", str(tmp_path / "m55")]) == 0
    (model_dir, target, out_dir), options = calls[0]
    assert (model_dir, target.name, out_dir, options) == (quantized_dir, "cortex-m55-qemu", tmp_path / "m55", {})


@pytest.mark.parametrize("arguments, message", [
    (["--target", "rpi9"], "unknown target 'rpi9'; accepted:"),
    (["--target", "cortex-m4f-nrf52840", "--port", "/dev/ttyACM0"], "--port apply to Raspberry Pi targets only"),
    (["--target", "rpi4", "--hlc", "2"], "strength hlc_strength = 2.0 is above 1"),
    (["--target", "rpi4", "--baud", "-5"], "baud rate -5 is not accepted"),
])
def test_bad_arguments_are_one_line_errors(quantized_dir, tmp_path, capsys, arguments, message):
    assert cli.main(["export", str(quantized_dir), "--out", str(tmp_path / "out"), *arguments]) == 1
    error = capsys.readouterr().err
    assert error.startswith("hearmask export: error: ") and message in error and error.count("\n") == 1
