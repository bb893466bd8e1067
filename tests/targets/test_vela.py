"""Vela for Ethos-U targets: summary parsing, settings, and both paths (installed, unavailable).

The run on a real int8 model is in test_fit.py (it shares that file's model).
"""

import dataclasses

import pytest

from hearmask.errors import HearmaskError
from hearmask.targets import vela
from hearmask.targets.descriptors import load_target

VELA_INSTALLED = vela.vela_version() is not None

# One row of the summary CSV in the columns ethos-u-vela 5.2.0 writes (a subset; values made up for the test).
SUMMARY_ROW = {"core_clock": "200000000.0", "cycles_npu": "15034", "cycles_total": "137312",
               "sram_memory_used": "1.5", "on_chip_flash_memory_used": "0.0", "off_chip_flash_memory_used": "67.25",
               "nn_macs": "68928"}
STDOUT = "Total SRAM used    1.50 KiB\n\nCPU operators = 2 (6.7%)\nNPU operators = 28 (93.3%)\n"


def test_summary_row_becomes_an_estimate_with_time_from_cycles_and_clock():
    estimate = vela._parse_summary([SUMMARY_ROW], STDOUT, "m.tflite", "ethos-u55-128", "Sys", "Shared_Sram")
    assert estimate.inference_time_us == pytest.approx(1e6 * 137312 / 200e6)
    assert (estimate.cycles_npu, estimate.cycles_total, estimate.nn_macs) == (15034, 137312, 68928)
    assert estimate.sram_bytes == 1536 and estimate.flash_bytes == round(67.25 * 1024)
    assert (estimate.npu_ops, estimate.cpu_ops) == (28, 2)


def test_a_summary_vela_changed_is_a_clear_error():
    with pytest.raises(vela.VelaError, match="could not read vela's summary for m.tflite"):
        vela._parse_summary([{"core_clock": "1e8"}], "", "m.tflite", "ethos-u55-128", "Sys", "Shared_Sram")
    with pytest.raises(vela.VelaError, match="has 2 rows; expected 1"):
        vela._parse_summary([SUMMARY_ROW, SUMMARY_ROW], "", "m.tflite", "ethos-u55-128", "Sys", "Shared_Sram")


def test_settings_come_from_the_descriptor_or_vela_defaults():
    target = load_target("cortex-m55-alif-e7-u55")
    assert vela.vela_settings(target) == ("ethos-u55-128", "Ethos_U55_Deep_Embedded", "Shared_Sram")
    plain = dataclasses.replace(target, ethos_u="ethos-u65-256", vela_system_config=None, vela_memory_mode=None)
    assert vela.vela_settings(plain) == ("ethos-u65-256", "Ethos_U65_Embedded", "Shared_Sram")
    with pytest.raises(HearmaskError, match="has no Ethos-U NPU"):
        vela.vela_settings(load_target("cortex-m55-alif-e7"))


def test_unavailable_vela_gives_a_reason_and_no_numbers(tmp_path, monkeypatch):
    monkeypatch.setattr(vela, "VELA_MODULE", "hearmask_no_such_package.vela")
    assert vela.vela_version() is None
    outcome = vela.estimate_ethos_u([tmp_path / "model.tflite"], load_target("cortex-m55-alif-e7-u55"))
    assert not outcome.available and outcome.estimates == () and outcome.inference_time_us is None
    assert outcome.reason == "Vela unavailable: the ethos-u-vela package is not installed (pip install ethos-u-vela)"
    assert outcome.to_dict()["inference_time_us"] is None


@pytest.mark.skipif(not VELA_INSTALLED, reason="ethos-u-vela is not installed")
def test_vela_failing_on_a_model_is_reported_not_hidden(tmp_path):
    model = tmp_path / "garbage.tflite"
    model.write_bytes(b"not a flatbuffer" * 8)
    outcome = vela.estimate_ethos_u([model], load_target("cortex-m55-alif-e7-u55"))
    assert not outcome.available and outcome.estimates == ()
    assert outcome.reason.startswith("Vela unavailable: vela exited with status") and "garbage.tflite" in outcome.reason
