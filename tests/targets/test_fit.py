"""``fit_model`` on a real int8 cascade (two networks) written by the quantize export: every figure
follows from the manifest, the files and the descriptor; verdicts follow from the figures."""

import dataclasses
import json
from types import SimpleNamespace

import pytest

from hearmask.errors import HearmaskError
from hearmask.quantize.manifest import read_manifest
from hearmask.targets import vela
from hearmask.targets.descriptors import load_target
from hearmask.targets.fit import COMPUTE_BUDGET_FRACTION, DEFAULT_LATENCY_BUDGET_MS, fit_model
from hearmask.targets.fit_report import REPORT_JSON, REPORT_MARKDOWN, format_fit_text, write_fit_report


@pytest.fixture(scope="module")
def cascade_dir(tmp_path_factory):
    """``hearmask quantize``'s export of a tiny calibrated cascade (hidden 8): two int8 networks + manifest."""
    import torch

    from hearmask.model.stft_config import shipped_stft_config
    from hearmask.model.system import HearingAidSystem, build_masknet_configs
    from hearmask.quantize.calibrate import build_qat_system, calibrate
    from hearmask.quantize.quantize_model import export_model_files

    stft = shipped_stft_config("default")
    torch.manual_seed(0)
    float_system = HearingAidSystem("cascade", stft, build_masknet_configs("cascade", stft, "default", {
        "hidden_size": 8, "encoder_size": 8})).eval()
    qat_system = build_qat_system(float_system)
    generator = torch.Generator().manual_seed(1)
    batches = [SimpleNamespace(noisy=0.1 * torch.randn(2, 1600, generator=generator),
                               audiogram=torch.rand(2, 8, generator=generator)) for _ in range(2)]
    calibrate(qat_system, batches)
    out = tmp_path_factory.mktemp("fit") / "cascade"
    export_model_files(qat_system, float_system, out, {"source_checkpoint": {"path": "test"}})
    return out


def _item(budget, name):
    return next(item for item in budget.items if item.name == name)


def test_figures_follow_from_the_manifest_files_and_descriptor(cascade_dir):
    manifest = read_manifest(cascade_dir)
    networks = manifest["networks"]
    assert len(networks) == 2
    target = load_target("cortex-m4f-nrf52840")
    report = fit_model(cascade_dir, target)
    flash, ram, compute, latency = (report.budgets[name] for name in ("flash", "ram", "compute", "latency"))

    model_bytes = sum((cascade_dir / n["files"]["int8_tflite"]).stat().st_size for n in networks)
    assert model_bytes == sum(n["int8_model_bytes"] for n in networks)
    assert _item(flash, "int8 model(s)").value == model_bytes and _item(flash, "int8 model(s)").label == "measured"
    assert flash.needed == sum(item.value for item in flash.items) > model_bytes
    assert flash.available == target.flash_bytes and flash.label == "estimate"

    arena = sum(n["tflm_arena_bytes"] for n in networks)
    assert _item(ram, "TFLM arena").value == arena and _item(ram, "TFLM arena").label == "measured"
    state_bytes = sum(entry["shape"][-1] for n in networks for entry in n["inputs"] if entry["name"] == "state")
    assert _item(ram, "recurrent state").value == state_bytes > 0
    stft = manifest["stft"]
    assert _item(ram, "DSP working buffers").value >= 4 * (2 * stft["analysis_window_samples"] + 2 * stft["fft_size"])
    assert _item(ram, "audio I/O buffers").value == 2 * 2 * 2 * stft["hop_samples"]
    assert ram.needed == sum(item.value for item in ram.items) >= arena
    assert ram.available == target.ram_bytes

    macs = sum(n["macs_per_hop"] for n in networks)
    hop_us = 1e6 * stft["hop_samples"] / stft["sample_rate_hz"]
    assert compute.needed == pytest.approx(1e6 * macs / (target.mac_per_cycle * target.clock_hz))
    assert compute.available == pytest.approx(COMPUTE_BUDGET_FRACTION * hop_us)
    assert compute.label == "estimate" and _item(compute, "MACs per hop").value == macs

    algorithmic_ms = 1000 * stft["synthesis_window_samples"] / stft["sample_rate_hz"]
    assert algorithmic_ms == manifest["algorithmic_latency_ms"]
    assert latency.needed == pytest.approx(algorithmic_ms + compute.needed / 1000)
    assert latency.available == DEFAULT_LATENCY_BUDGET_MS

    for budget in report.budgets.values():
        assert budget.verdict == ("fits" if budget.needed <= budget.available else "does not fit")
    assert report.fits == all(budget.fits for budget in report.budgets.values())
    entries = report.to_dict()["budgets"]
    assert set(entries) == {"flash", "ram", "compute", "latency"}
    assert all({"needed", "available", "fits", "label"} <= set(entry) for entry in entries.values())
    assert all(item["label"] in report.to_dict()["labels"] for entry in entries.values() for item in entry["breakdown"])


def test_a_tiny_board_does_not_fit_and_says_which_budget(cascade_dir):
    roomy = load_target("cortex-m7-stm32h7")
    assert fit_model(cascade_dir, roomy).fits  # the tiny cascade fits a large M7
    tiny_ram = dataclasses.replace(roomy, name="tiny", ram_bytes=8 * 1024)
    report = fit_model(cascade_dir, tiny_ram)
    assert not report.fits and report.verdict == "does not fit"
    assert report.budgets["ram"].verdict == "does not fit" and report.budgets["ram"].fits is False
    assert all(report.budgets[name].verdict == "fits" for name in ("flash", "compute", "latency"))
    tiny_flash = dataclasses.replace(roomy, flash_bytes=16 * 1024)
    assert fit_model(cascade_dir, tiny_flash).budgets["flash"].verdict == "does not fit"
    slow = dataclasses.replace(roomy, clock_hz=1_000_000)
    budgets = fit_model(cascade_dir, slow).budgets
    assert budgets["compute"].verdict == budgets["latency"].verdict == "does not fit"
    # The stated budgets are parameters.
    fraction = fit_model(cascade_dir, roomy, compute_budget_fraction=0.25).budgets["compute"]
    assert fraction.available == pytest.approx(0.25 * 4000)
    assert fit_model(cascade_dir, roomy, latency_budget_ms=7.0).budgets["latency"].verdict == "does not fit"


def test_raspberry_pi_flash_and_ram_are_not_binding_but_compute_applies(cascade_dir):
    report = fit_model(cascade_dir, load_target("rpi3b+"))
    for name in ("flash", "ram"):
        assert report.budgets[name].verdict == "not applicable" and report.budgets[name].fits is None
        assert "not binding" in report.budgets[name].note
    assert report.budgets["compute"].verdict == "fits" and report.fits
    starved = dataclasses.replace(load_target("rpi3b+"), clock_hz=1_000_000, mac_per_cycle=0.01)
    assert not fit_model(cascade_dir, starved).fits


def test_emulated_boards_are_labelled(cascade_dir):
    report = fit_model(cascade_dir, load_target("cortex-m3-qemu"))
    assert report.to_dict()["target"]["device_kind"] == "emulated"
    assert any("QEMU runs give instruction counts" in note for note in report.notes)
    assert "QEMU does not model time" in report.budgets["compute"].note


@pytest.mark.skipif(vela.vela_version() is None, reason="ethos-u-vela is not installed")
def test_ethos_u_target_uses_vela_estimate_per_network(cascade_dir):
    target = load_target("cortex-m55-alif-e7-u55")
    report = fit_model(cascade_dir, target)
    outcome = report.ethos_u
    assert outcome["available"] and outcome["version"] == vela.vela_version()
    assert [n["network"] for n in outcome["networks"]] == ["model_int8_stage1.tflite", "model_int8_stage2.tflite"]
    for network in outcome["networks"]:
        assert network["inference_time_us"] == pytest.approx(1e6 * network["cycles_total"] / network["npu_clock_hz"])
        assert network["cycles_total"] >= network["cycles_npu"] > 0 and network["sram_bytes"] > 0
    compute = report.budgets["compute"]
    assert compute.needed == pytest.approx(sum(n["inference_time_us"] for n in outcome["networks"]))
    assert compute.label == "estimate (Vela performance model)"


def test_ethos_u_target_without_vela_says_so_and_uses_the_cpu_estimate(cascade_dir, monkeypatch):
    monkeypatch.setattr(vela, "VELA_MODULE", "hearmask_no_such_package.vela")
    target = load_target("cortex-m55-alif-e7-u55")
    report = fit_model(cascade_dir, target)
    reason = "Vela unavailable: the ethos-u-vela package is not installed (pip install ethos-u-vela)"
    assert report.ethos_u["available"] is False and report.ethos_u["reason"] == reason
    assert reason in report.notes and reason in report.budgets["compute"].note
    macs = sum(n["macs_per_hop"] for n in report.networks)
    assert report.budgets["compute"].needed == pytest.approx(1e6 * macs / (target.mac_per_cycle * target.clock_hz))
    assert report.budgets["compute"].label == "estimate"


def test_report_files_hold_the_same_figures(cascade_dir, tmp_path):
    report = fit_model(cascade_dir, load_target("cortex-m33-nrf5340"))
    path = write_fit_report(report, tmp_path / "report")
    assert path == tmp_path / "report" / REPORT_JSON
    assert json.loads(path.read_text()) == json.loads(json.dumps(report.to_dict()))
    markdown = (tmp_path / "report" / REPORT_MARKDOWN).read_text()
    text = format_fit_text(report)
    for name, budget in report.budgets.items():
        assert f"## {name}" in markdown and f"| {name} |" in markdown
        assert budget.verdict in text
    assert report.verdict.upper() in markdown and f"overall: {report.verdict.upper()}" in text


def test_bad_model_folders_are_clear_errors(cascade_dir, tmp_path):
    target = load_target("cortex-m4f-nrf52840")
    with pytest.raises(HearmaskError, match="no model manifest at"):
        fit_model(tmp_path, target)
    copy = tmp_path / "copy"
    copy.mkdir()
    for path in cascade_dir.iterdir():
        (copy / path.name).write_bytes(path.read_bytes())
    (copy / "model_int8_stage2.tflite").unlink()
    with pytest.raises(HearmaskError, match="no .tflite file at .*model_int8_stage2.tflite"):
        fit_model(copy, target)
    (copy / "model_int8_stage2.tflite").write_bytes((cascade_dir / "model_int8_stage2.tflite").read_bytes())
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["networks"][1]["sha256"]["int8_tflite"] = "0" * 64  # the file no longer matches what quantize wrote
    (copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(HearmaskError, match="SHA-256 does not match the manifest"):
        fit_model(copy, target)
    with pytest.raises(HearmaskError, match="latency budget must be > 0 ms"):
        fit_model(cascade_dir, target, latency_budget_ms=0)
    with pytest.raises(HearmaskError, match=r"compute budget fraction must be in \(0, 1\]"):
        fit_model(cascade_dir, target, compute_budget_fraction=1.5)
