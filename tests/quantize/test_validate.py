"""Golden-reference validation: every stage, mode and output reported; the kernels' arithmetic pinned;
report files and their content; thresholds enforced (a broken model, audio drops)."""

import json
import shutil

import numpy as np
import pytest

from hearmask.quantize.validate import (
    MODES,
    Thresholds,
    arithmetic_failures,
    explain_failures,
    threshold_failures,
    validate_model_dir,
    write_report,
)
from hearmask.quantize.validate_audio import AudioThresholds, audio_failures
from hearmask.quantize.validate_compare import OUTPUTS, RUNTIME_ARITHMETIC, RUNTIME_STAGES, STAGES, arithmetic_label

SMALL = {"utterances": 1, "seconds": 0.4, "layer_hops": 12, "audio_utterances": 1}


@pytest.fixture(scope="module")
def report(quantized_dir):
    return validate_model_dir(quantized_dir, **SMALL, audio_seconds=1.0)


@pytest.fixture(scope="module")
def report_dir(report, tmp_path_factory):
    path = tmp_path_factory.mktemp("validate_report")
    write_report(report, path)
    return path


def test_every_stage_mode_and_output_is_reported_and_per_step_thresholds_pass(report):
    hops = report["inputs"]["hops"]
    assert report["inputs"] == {"utterances": 1, "hops": 100, "layer_hops": 12,
                                "source": "validation split of the model's training data"}
    assert report["thresholds_apply_to"] == "per_step" and report["checks_skipped"] == []
    for mode in MODES:
        for stage in STAGES:
            for output in OUTPUTS:
                values = report["stages"][mode][stage][output]
                assert set(values) == {"reference", "arithmetic", "snr_db", "max_abs_lsb", "mean_abs_lsb", "cosine"}
                assert values["reference"] == ("float" if stage == "fake_quant" else "fake_quant")
                assert values["arithmetic"] == arithmetic_label(RUNTIME_ARITHMETIC.get(stage))
                # Histogram of the same comparison: one count per compared value.
                histogram = report["histograms"][mode][stage][output]
                width = 2 * 16 if output == "new_state" else 129  # state: 2 layers x 16 (TINY); 129 bins
                assert sum(histogram["count"]) == hops * width, (mode, stage, output)
                if stage != "fake_quant":  # int8 vs fake-quant: both on the output grid, whole-LSB errors
                    lsb, count = np.array(histogram["lsb"]), np.array(histogram["count"])
                    assert values["max_abs_lsb"] == pytest.approx(np.abs(lsb[count > 0]).max(), abs=1e-6)
                    assert values["mean_abs_lsb"] == pytest.approx((np.abs(lsb) * count).sum() / count.sum(), abs=1e-6)
    # Top-level stage entries are the thresholded (per-step) comparison.
    assert all(report[stage] == report["stages"]["per_step"][stage] for stage in STAGES)
    # Per step the int8 runtimes agree with fake-quant to well above the thresholds on this model.
    assert all(values["snr_db"] >= 45 for stage in ("litert", "litert_ref", "tflm")
               for values in report["stages"]["per_step"][stage].values())
    assert report["passed"] and report["failures"] == []


def test_kernel_arithmetic_pins_where_the_runtimes_differ(report):
    """TFLM rounds FULLY_CONNECTED and MUL requantization twice, LiteRT's reference kernels MUL only,
    the default kernels (XNNPACK) in float32; LOGISTIC/TANH agree with the float-rounded table."""
    arithmetic = report["kernel_arithmetic"]
    expected = {"tflm": {"FULLY_CONNECTED": "double", "MUL": "double"},
                "litert_ref": {"FULLY_CONNECTED": "single", "MUL": "double"},
                "litert": {"FULLY_CONNECTED": "fp32", "MUL": "fp32"}}
    for runtime, ops in expected.items():
        for op, rounding in ops.items():
            entry = arithmetic[runtime][op]
            assert entry[rounding] == entry["values"], (runtime, op, entry)
        for op in ("LOGISTIC", "TANH"):
            entry = arithmetic[runtime][op]
            assert entry["fixed_point"] == entry["float_rounded"] == entry["values"] > 0, (runtime, op)
    # The two roundings are told apart on this model (some FC values differ), so "follows" is meaningful.
    assert arithmetic["tflm"]["FULLY_CONNECTED"]["single"] < arithmetic["tflm"]["FULLY_CONNECTED"]["values"]
    assert arithmetic["tflm"]["FULLY_CONNECTED"]["follows"] == "double"
    assert arithmetic["litert_ref"]["FULLY_CONNECTED"]["follows"] == "single"


def test_each_runtime_is_closer_to_fake_quant_in_its_own_arithmetic(report):
    """The golden in a runtime's arithmetic predicts the runtime at least as well as the float-rounded
    fake-quant (the rounding effect), strictly better where the runtime rounds twice and the two differ."""
    assert report["runtime_arithmetic"] == RUNTIME_ARITHMETIC
    for mode in MODES:
        for stage in RUNTIME_STAGES:
            for output in OUTPUTS:
                own = report["stages"][mode][stage][output]
                effect = report["rounding_effect"][mode][stage][output]
                assert effect["arithmetic"] == arithmetic_label(None) and effect["reference"] == "fake_quant"
                assert own["snr_db"] >= effect["snr_db"], (mode, stage, output)
    per_step = report["stages"]["per_step"]
    effect = report["rounding_effect"]["per_step"]
    for stage in ("tflm", "litert_ref"):
        assert per_step[stage]["new_state"]["mean_abs_lsb"] < effect[stage]["new_state"]["mean_abs_lsb"], stage
    # In its own arithmetic each runtime is within one LSB per step on every output.
    assert all(values["max_abs_lsb"] <= 1 for stage in RUNTIME_STAGES for values in per_step[stage].values())


def test_a_runtime_that_does_not_round_as_documented_fails(report):
    arithmetic = report["kernel_arithmetic"]
    assert arithmetic_failures(arithmetic) == []
    swapped = {"tflm": {**arithmetic["tflm"], "FULLY_CONNECTED": {**arithmetic["tflm"]["FULLY_CONNECTED"]}}}
    entry = swapped["tflm"]["FULLY_CONNECTED"]
    entry["double"], entry["follows"] = entry["single"], "single"  # as if TFLM rounded once
    assert entry["double"] < entry["values"]
    assert arithmetic_failures(swapped) == [f"tflm FULLY_CONNECTED: {entry['single']} of {entry['values']} values "
                                            "follow the documented double rounding (follows: single)"]


def test_tflm_and_litert_ref_differ_only_in_fully_connected_by_one_lsb(report):
    per_op = report["tflm_vs_litert_ref"]["per_op"]["tflm_vs_litert_ref"]
    assert {"FULLY_CONNECTED", "ADD", "SUB", "MUL", "LOGISTIC", "TANH"} <= set(per_op)
    assert per_op["FULLY_CONNECTED"]["max_abs_lsb"] == 1
    assert all(entry["max_abs_lsb"] == 0 for op, entry in per_op.items() if op != "FULLY_CONNECTED")


def test_per_layer_each_runtime_matches_fake_quant_except_double_rounded_ops(report):
    """With inputs equal to fake-quant, every op is within 1 LSB; only the ops whose runtime rounds twice
    differ at all (fake-quant rounds once): TFLM's FC and MUL, LiteRT reference's MUL; never LiteRT's."""
    twice = {"tflm": {"FULLY_CONNECTED", "MUL"}, "litert_ref": {"MUL"}, "litert": set()}
    assert report["first_diverging_layer"] == {"litert": None, "litert_ref": None, "tflm": None}
    for runtime, layers in report["layers"].items():
        assert len(layers) == 34
        for layer in layers:
            assert layer["same_inputs_max_abs_lsb"] <= 1, (runtime, layer)
            assert layer["same_inputs_hops"] > 0 or runtime != "litert", layer  # LiteRT never leaves fake-quant
            if layer["op"] not in twice[runtime]:
                assert layer["same_inputs_fraction_differing"] == 0, (runtime, layer)


def test_audio_check_reports_float_and_int8_per_utterance(report):
    audio = report["audio"]
    assert audio["computed"] and audio["failures"] == [] and len(audio["per_utterance"]) == 1
    assert audio["conditions"]["int8_runtimes"] == ["litert", "tflm"]
    row = audio["per_utterance"][0]
    for metric in ("haspi", "estoi", "pesq"):
        for runtime in ("litert", "tflm"):
            assert row["delta"][runtime][metric] == pytest.approx(row["int8"][runtime][metric] - row["float"][metric])
            assert audio[metric]["by_runtime"][runtime]["mean_delta"] == pytest.approx(row["delta"][runtime][metric])
            assert audio[metric]["by_runtime"][runtime]["standard_error"] is None  # one utterance: no spread
        # The top-level figures are the worst runtime's.
        worst = audio[metric]["worst_runtime"]
        assert audio[metric]["mean_delta"] == min(v["mean_delta"] for v in audio[metric]["by_runtime"].values())
        assert audio[metric]["mean_delta"] == pytest.approx(audio[metric]["int8_mean"] - audio[metric]["float_mean"])
        assert audio[metric]["int8_mean"] == audio[metric]["by_runtime"][worst]["int8_mean"]
        assert -audio[metric]["mean_delta"] <= audio[metric]["max_drop"]
    assert 0 < row["float"]["haspi"] <= 1 and 1 <= row["float"]["pesq"] <= 4.7
    assert audio["conditions"]["utterances"] == 1 and audio["conditions"]["max_seconds"] == 1.0


def test_audio_thresholds_bound_the_mean_drop():
    limits = AudioThresholds()
    assert audio_failures({"haspi": -0.01, "estoi": 0.2, "pesq": -0.1}, limits) == []
    failures = audio_failures({"haspi": -0.0101, "estoi": -0.02, "pesq": -0.05}, limits, "tflm")
    assert failures == ["audio haspi: mean drop 0.0101 > 0.01 (tflm vs float)",
                        "audio estoi: mean drop 0.0200 > 0.01 (tflm vs float)"]


def test_report_files_hold_the_computed_numbers(report, report_dir):
    document = json.loads((report_dir / "report.json").read_text())
    assert document["passed"] is True and "_plot_data" not in document
    assert document["stages"]["free_running"]["tflm"]["nr_fraction"]["snr_db"] == pytest.approx(
        report["stages"]["free_running"]["tflm"]["nr_fraction"]["snr_db"])
    assert document["audio"]["haspi"]["mean_delta"] == pytest.approx(report["audio"]["haspi"]["mean_delta"])
    assert document["plots"] == {"error_histograms_per_step": "error_histograms_per_step.png",
                                 "error_histograms_free_running": "error_histograms_free_running.png",
                                 "mask_comparison": "mask_comparison.png"}
    import matplotlib.image

    for name in document["plots"].values():
        pixels = matplotlib.image.imread(report_dir / name)
        assert pixels.ndim == 3 and pixels.shape[0] > 300 and pixels.shape[1] > 600 and pixels.std() > 0.05, name
    markdown = (report_dir / "report.md").read_text()
    assert markdown.startswith(f"# Validation of {report['model_dir']}\n\n**PASSED**")
    tflm = report["stages"]["per_step"]["tflm"]["new_state"]
    assert (f"| tflm | new_state | fake_quant | FULLY_CONNECTED double, MUL double, ADD double, SUB double | "
            f"{tflm['snr_db']:.1f} | {tflm['max_abs_lsb']:.1f} |") in markdown
    effect = report["rounding_effect"]["per_step"]["tflm"]["new_state"]
    assert (f"| tflm | new_state | fake_quant | Brevitas float (as trained) | {effect['snr_db']:.1f} | "
            f"{effect['max_abs_lsb']:.1f} |") in markdown
    assert "| tflm | FULLY_CONNECTED |" in markdown and "| double |" in markdown
    # The mask comparison figure's numbers: free-running float vs int8, dB.
    masks = report["mask_comparison"]
    assert 0 <= masks["nr_db"]["mean_abs_difference_db"] <= masks["nr_db"]["max_abs_difference_db"]


def test_a_broken_model_fails_and_the_broken_layer_is_named(quantized_dir, tmp_path, corrupt_tflite_weights):
    broken = tmp_path / "broken"
    shutil.copytree(quantized_dir, broken)
    path = broken / "model_int8.tflite"
    path.write_bytes(corrupt_tflite_weights(path.read_bytes(), "nr_head"))
    report = validate_model_dir(broken, **{**SMALL, "audio_utterances": 0})
    assert not report["passed"] and report["checks_skipped"] == ["audio"] and report["audio"]["computed"] is False
    assert any(failure.startswith("litert nr_fraction: SNR") and failure.endswith("in its arithmetic (per step)")
               for failure in report["failures"])
    assert report["first_diverging_layer"] == {"litert": "nr_head", "litert_ref": "nr_head", "tflm": "nr_head"}
    assert report["explanations"] == [f"{runtime}: layer nr_head diverges from fake-quant with identical inputs "
                                      "(wrong weights or ranges there)" for runtime in ("litert", "litert_ref", "tflm")]
    assert report["litert"]["hlc_fraction"]["snr_db"] > report["litert"]["nr_fraction"]["snr_db"] + 10


def test_the_thresholds_are_enforced_per_step_and_per_op(report):
    """Thresholds just above what the model reaches fail it, naming the stage and output (it otherwise passes)."""
    per_step, per_op = report["stages"]["per_step"], report["tflm_vs_litert_ref"]["per_op"]
    assert threshold_failures(per_step, per_op, Thresholds()) == []
    # On this model every runtime is bit-exact with its golden (infinite SNR), so the thresholds are exercised
    # on the rounding-effect comparison (runtime vs float-rounded fake-quant), whose SNRs are finite.
    effect = report["rounding_effect"]["per_step"]
    finite = [(stage, name, values["snr_db"]) for stage in ("litert_ref", "tflm") for name, values in effect[stage].items()
              if np.isfinite(values["snr_db"])]
    stage, name, lowest = min(finite, key=lambda item: item[2])
    raised = Thresholds(litert_snr_db=lowest + 0.05) if stage != "tflm" else Thresholds(tflm_snr_db=lowest + 0.05)
    failures = threshold_failures(effect, per_op, raised)
    assert f"{stage} {name}: SNR {lowest:.1f} dB < {lowest + 0.05:g} dB vs fake_quant in its arithmetic (per step)" \
        in failures
    failures = threshold_failures(per_step, per_op, Thresholds(tflm_vs_litert_ref_max_lsb=0))
    assert failures == ["tflm_vs_litert_ref FULLY_CONNECTED: 1 LSB > 0 LSB with identical inputs"]


def test_a_failure_without_a_diverging_layer_is_explained_by_the_kernels_rounding(report):
    """When no op leaves 1 LSB, the report says whether the runtime's FC/MUL/ADD/SUB rounding is the documented one."""
    assert report["explanations"] == []
    none = {"litert": None, "litert_ref": None, "tflm": None}
    failures = ["litert_ref new_state: SNR 44.0 dB < 45 dB vs fake_quant in its arithmetic (per step)",
                "tflm nr_fraction: SNR 39.0 dB < 40 dB vs fake_quant in its arithmetic (per step)"]
    arithmetic = {**report["kernel_arithmetic"], "tflm": {**report["kernel_arithmetic"]["tflm"]}}
    arithmetic["tflm"]["MUL"] = {**arithmetic["tflm"]["MUL"], "double": 0, "follows": "single"}
    explanations = explain_failures(failures, none, arithmetic)
    assert explanations == [
        "litert_ref: every op is within 1 LSB of fake-quant with identical inputs; its FULLY_CONNECTED, MUL, ADD and "
        "SUB round as its golden does; the ops fake-quant computes in float (activations) differ by one LSB now and "
        "then; these one-LSB differences compound through the ops of a step",
        "tflm: every op is within 1 LSB of fake-quant with identical inputs; its MUL (follows single, documented "
        "double) requantization does not round as documented, so its golden is computed in the wrong arithmetic; "
        "these one-LSB differences compound through the ops of a step"]


def test_audio_standard_error_is_that_of_the_per_utterance_deltas():
    from hearmask.quantize.validate_audio import _standard_error

    deltas = [-0.07, 0.01, 0.02, -0.02]
    assert _standard_error(deltas) == pytest.approx(np.std(deltas, ddof=1) / 2.0)
    assert _standard_error([0.3]) is None
