"""The int8 model in LiteRT and TFLM with state feedback over many hops, against fake-quant torch.

Thresholds measured on tiny random calibrated networks (4 seeds, 300 hops, this machine):
LiteRT default kernels 60–330 dB per output (XNNPACK's float requantization is mostly
bit-exact with the fake-quant model), LiteRT reference kernels 40.7–53.9 dB, TFLM
40.5–52.0 dB; TFLM vs LiteRT reference kernels per step with identical inputs: at most
1 LSB on every output (3 % of steps on the state, 5–33 % on the masks).
"""

import numpy as np
import pytest
import torch

from hearmask.errors import HearmaskError
from hearmask.quantize.runtimes import LiteRtRuntime, TflmRuntime, tflm_arena_bytes

OUTPUTS = ("nr_fraction", "hlc_fraction", "new_state")
HOPS = 200


@pytest.fixture(scope="module")
def feedback_run(int8_model, tiny_networks, helpers):
    """Per runtime and output: (hops, size) arrays with each runtime feeding back its own state,
    and the fake-quant torch reference; plus the inputs."""
    network = tiny_networks[1]
    features = helpers.feature_sequence(HOPS, 32, 42)
    runtimes = [LiteRtRuntime(int8_model), LiteRtRuntime(int8_model, reference_kernels=True), TflmRuntime(int8_model)]
    states = {runtime.name: np.zeros((1, 32), np.float32) for runtime in runtimes}
    results = {name: {output: [] for output in OUTPUTS} for name in ["fake_quant", *states]}
    with torch.no_grad():  # the sequence form equals step-by-step with state feedback (test_qat_model)
        sequence = network.sequence_fractions(torch.as_tensor(features)[None], torch.as_tensor(helpers.audiogram))
    for output, value in zip(OUTPUTS, sequence):
        results["fake_quant"][output] = list(value[0].numpy())
    for hop in range(HOPS):
        inputs = {"features": features[hop : hop + 1], "audiogram": helpers.audiogram}
        for runtime in runtimes:
            values = runtime.step({**inputs, "state": states[runtime.name]})
            states[runtime.name] = values["new_state"]
            for output in OUTPUTS:
                results[runtime.name][output].append(values[output][0])
    return {name: {output: np.stack(values) for output, values in per.items()} for name, per in results.items()}


@pytest.mark.parametrize("runtime, threshold_db", [("litert", 55.0), ("litert_ref", 38.0), ("tflm", 37.0)])
def test_state_feedback_over_many_hops_tracks_fake_quant_torch(feedback_run, helpers, runtime, threshold_db):
    reference = feedback_run["fake_quant"]
    for output in OUTPUTS:
        assert helpers.snr_db(feedback_run[runtime][output], reference[output]) >= threshold_db, output
    assert np.std(reference["new_state"]) > 0.05 and np.std(reference["hlc_fraction"]) > 0.01  # it moved


def test_tflm_agrees_with_litert_reference_kernels_within_one_lsb_per_step(int8_model, helpers):
    """Same int8 inputs and state each hop (the state follows the LiteRT reference run)."""
    reference, micro = LiteRtRuntime(int8_model, reference_kernels=True), TflmRuntime(int8_model)
    features = helpers.feature_sequence(HOPS, 32, 7)
    spec = {entry.name: entry.tensor.quantization for entry in reference.inputs}
    state_codes = np.zeros((1, 32), np.int8)
    differing_steps = 0
    for hop in range(HOPS):
        codes = {"features": spec["features"].quantize(features[hop : hop + 1]),
                 "audiogram": spec["audiogram"].quantize(helpers.audiogram), "state": state_codes}
        expected, actual = reference.invoke_codes(codes), micro.invoke_codes(codes)
        lsb = {name: np.abs(expected[name].astype(int) - actual[name].astype(int)).max() for name in OUTPUTS}
        assert max(lsb.values()) <= 1, (hop, lsb)
        differing_steps += any(lsb.values())
        state_codes = expected["new_state"]
    assert differing_steps < HOPS // 2


def test_tflm_arena_measurement_is_the_smallest_that_works(int8_model):
    arena = tflm_arena_bytes(int8_model)
    assert 0 < arena["used"] < arena["minimum"] < 64 * 1024
    TflmRuntime(int8_model, arena_bytes=arena["minimum"])  # allocates
    with pytest.raises(HearmaskError, match="cannot allocate"):
        TflmRuntime(int8_model, arena_bytes=arena["minimum"] - 64)


def test_wrong_or_missing_inputs_are_clear_errors(int8_model):
    runtime = LiteRtRuntime(int8_model)
    good = {"features": np.zeros((1, 32), np.float32), "audiogram": np.zeros((1, 8), np.float32),
            "state": np.zeros((1, 32), np.float32)}
    with pytest.raises(HearmaskError, match=r"'state' must have shape \[1, 32\], got \[1, 16\]"):
        runtime.step({**good, "state": np.zeros((1, 16), np.float32)})
    with pytest.raises(HearmaskError, match="missing model input"):
        runtime.invoke_codes({"features": np.zeros((1, 32), np.int8)})
