"""The profile against emulate://rpi with a real int8 model: report interface, labels, bit-exactness, resume, power."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from hearmask.errors import HearmaskError
from hearmask.firmware_bridge import messages as msg
from hearmask.firmware_bridge.client import DeviceClient
from hearmask.firmware_bridge.errors import DeviceTimeout
from hearmask.firmware_bridge.profile import (
    RECORDS_FILE,
    ProfileConfig,
    ProfileInterrupted,
    RecordLog,
    device_label,
    golden_for,
    profile_device,
)

STREAM_URL = "emulate://rpi?stream_processor=hearmask.firmware_bridge.fake_runtime:DelayLineStreamProcessorForTests"
FAST = ProfileConfig(utterances=1, hops=30, bench_runs=20, bench_warmup=2, stream_hops=8)


@pytest.fixture(scope="module")
def full_report(quantized_dir, tmp_path_factory):
    report_dir = tmp_path_factory.mktemp("profile_report")
    return report_dir, profile_device(STREAM_URL, quantized_dir, report_dir, FAST, progress=False)


def test_the_report_has_the_interface_fields_labelled_emulated(full_report):
    report_dir, report = full_report
    assert report["device"]["kind"] == "emulated" and report["device"]["name"] == "emulated-rpi (host CPU)"
    assert report["device"]["runtime"].startswith("litert ") and "builtin kernels" in report["device"]["runtime"]
    for key in ("latency_us", "stream_hop_us", "round_trip_us", "bench_us"):
        stats = report[key]
        assert stats["min"] <= stats["median"] <= stats["p90"] <= stats["p99"] <= stats["max"], key
    assert report["latency_us"]["count"] == 30 and report["stream_hop_us"]["count"] == 8
    assert report["bench_us"]["count"] == 20
    assert report["latency_ms"]["median"] == pytest.approx(report["latency_us"]["median"] / 1000)
    assert report["power"] is None and report["load"]["bytes"] > 0
    assert report["labels"]["latency_us"] == report["labels"]["stream_hop_us"] == report["labels"]["device"] == "emulated"
    assert all(label.startswith("emulated") for label in report["labels"].values())
    assert report["real_time"]["hop_us"] == 4000.0
    assert json.loads((report_dir / "report.json").read_text()) == report
    markdown = (report_dir / "report.md").read_text()
    assert "| INFER, device time per hop |" in markdown and "(emulated)" in markdown
    assert (report_dir / "latency_histogram.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_device_outputs_are_bit_exact_with_the_golden_over_the_utterance(full_report):
    _, report = full_report
    validation = report["validation"]
    assert validation["bit_exact"] is True and validation["passed"] is True and validation["max_abs_lsb"] == 0
    assert validation["frames"] == 30 and validation["expectation"] == "bit-exact"
    assert set(validation["per_output"]) == {"nr_fraction", "hlc_fraction", "new_state"}
    assert validation["values_compared"] == 30 * sum(e["values"] // 30 for e in validation["per_output"].values())


def test_an_interrupted_profile_keeps_its_records_and_resumes_to_the_same_report(full_report, quantized_dir, tmp_path,
                                                                                   monkeypatch):
    _, uninterrupted = full_report
    real_infer = DeviceClient.infer
    calls = []

    def failing_infer(self, tensors):
        calls.append(1)
        if len(calls) == 12:
            raise DeviceTimeout("no valid INFER_RESULT reply to INFER (injected)")
        return real_infer(self, tensors)

    monkeypatch.setattr(DeviceClient, "infer", failing_infer)
    with pytest.raises(ProfileInterrupted, match="run the same command with --resume"):
        profile_device(STREAM_URL, quantized_dir, tmp_path, FAST, progress=False)
    kept = [json.loads(line) for line in (tmp_path / RECORDS_FILE).read_text().splitlines()]
    assert [r["hop"] for r in kept if r["record"] == "infer"] == list(range(11))
    assert not (tmp_path / "report.json").exists()
    monkeypatch.setattr(DeviceClient, "infer", real_infer)
    with pytest.raises(HearmaskError, match="pass --resume"):
        profile_device(STREAM_URL, quantized_dir, tmp_path, FAST, progress=False)
    with pytest.raises(HearmaskError, match="other conditions"):
        profile_device(STREAM_URL, quantized_dir, tmp_path, dataclasses.replace(FAST, hops=31), resume=True,
                       progress=False)
    resumed = profile_device(STREAM_URL, quantized_dir, tmp_path, FAST, resume=True, progress=False)
    records = [json.loads(line) for line in (tmp_path / RECORDS_FILE).read_text().splitlines()]
    assert [r["hop"] for r in records if r["record"] == "infer"] == list(range(30))
    assert resumed["sessions"] == 2
    assert resumed["validation"] == uninterrupted["validation"]
    assert resumed["inputs"] == uninterrupted["inputs"]
    assert resumed["latency_us"]["count"] == uninterrupted["latency_us"]["count"] == 30


def test_a_record_cut_short_by_a_kill_is_dropped_on_resume(tmp_path):
    path = tmp_path / RECORDS_FILE
    RecordLog(path, {"url": "no device answered"}, resume=False).close()
    log = RecordLog(path, {"url": "x"}, resume=False)  # only conditions were recorded: a fresh start, no --resume
    log.append({"record": "infer", "hop": 0})
    log.close()
    with open(path, "a") as handle:
        handle.write('{"record": "infer", "ho')  # the process died mid-write
    resumed = RecordLog(path, {"url": "x"}, resume=True)
    assert [r["record"] for r in resumed.records] == ["conditions", "infer"]
    resumed.append({"record": "infer", "hop": 1})
    resumed.close()
    assert [json.loads(line)["record"] for line in path.read_text().splitlines()] == ["conditions", "infer", "infer"]


def test_power_from_a_replayed_trace_is_labelled_and_energy_is_an_estimate(quantized_dir, tmp_path):
    trace = tmp_path / "trace.csv"
    # A slow ramp: readings taken later (under load) are higher than the idle ones taken first.
    trace.write_text("time_s,power_mw\n0,1000\n600,7000\n")
    config = dataclasses.replace(FAST, hops=5, stream_hops=0, bench_runs=50, power=f"replay:{trace}", power_readings=3)
    report = profile_device("emulate://rpi", quantized_dir, tmp_path / "report", config, progress=False)
    power = report["power"]
    assert power["sources"] == ["replay"] and "not a live measurement" in power["label"]
    assert report["labels"]["energy_per_inference_uj"] == "estimate"
    assert 1000 <= power["idle_mw"] < power["loaded_mw"] < 7000
    assert power["energy_per_inference_uj"] == pytest.approx(power["delta_mw"] * report["bench_us"]["median"] / 1000)


def _info(kind: msg.DeviceKind, runtime_name: str) -> msg.Info:
    return msg.Info(nonce=1, kind=kind, capabilities=msg.Capability.INFER, clock_hz=0, arena_bytes=0,
                    max_payload_bytes=65536, model_sha256=bytes(32), target_name="board", runtime_name=runtime_name)


def test_labels_follow_the_url_and_the_device_and_the_golden_follows_the_kernels(quantized_dir):
    from importlib.metadata import version

    hardware = _info(msg.DeviceKind.HARDWARE, f"litert {version('ai-edge-litert')} (builtin kernels)")
    assert device_label("/dev/ttyACM0", hardware) == "hardware"
    assert device_label("socket://localhost:4000", hardware) == "hardware"
    assert device_label("emulate://rpi", hardware) == "emulated"
    assert device_label("socket://localhost:4000", _info(msg.DeviceKind.EMULATED, "x")) == "emulated"
    model_bytes = (quantized_dir / "model_int8.tflite").read_bytes()
    # Optimised kernels on real hardware may round differently from this host's: a tolerance, not bit-exactness.
    assert golden_for(hardware, "hardware", model_bytes).bit_exact_expected is False
    assert golden_for(hardware, "emulated", model_bytes).bit_exact_expected is True
    reference = golden_for(_info(msg.DeviceKind.HARDWARE, "litert 2.3.0 (reference kernels)"), "hardware", model_bytes)
    assert reference.bit_exact_expected and "reference kernels" in reference.description
    tflm = golden_for(_info(msg.DeviceKind.EMULATED, "tflm (reference kernels)"), "emulated", model_bytes)
    assert tflm.runtime.name == "tflm" and tflm.bit_exact_expected


def test_bad_profile_settings_are_refused():
    with pytest.raises(HearmaskError, match="profile hops must be an integer >= 1, got 0"):
        ProfileConfig(hops=0)
    with pytest.raises(HearmaskError, match="<= 100000"):
        ProfileConfig(bench_runs=200_000)
    assert np.isfinite(ProfileConfig().snr_db)
