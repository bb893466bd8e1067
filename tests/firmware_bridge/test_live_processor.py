"""The live per-hop int8 pipeline: dB map, int8 step, timeline, control ramps, gain cap and limiter."""

from __future__ import annotations

import numpy as np
import pytest

from hearmask.errors import HearmaskError
from hearmask.firmware_bridge.live_limiter import LimiterConfig, OutputLimiter
from hearmask.firmware_bridge.live_processor import LiveProcessor, MaskDbMap, read_model_manifest
from hearmask.firmware_bridge.plugins import ListenerSettings
from hearmask.firmware_bridge.runtime import InferenceRuntime, TensorSpec

N3_DB_HL = (35.0, 35.0, 40.0, 50.0, 55.0, 60.0, 65.0, 65.0)  # Bisgaard N3 at 250..8000 Hz (8 kHz copies 6 kHz)
N7_DB_HL = (90.0, 95.0, 105.0, 105.0, 105.0, 105.0, 105.0, 105.0)


@pytest.fixture(scope="module")
def model_dir(quantized_dir):
    return quantized_dir  # the shared tiny int8 folder (tests/conftest.py)


class ConstantMaskRuntime(InferenceRuntime):
    """Stand-in for LiteRT that always emits the same fractions (so only the controls change the gain)."""

    name = "constant-mask-test"
    model_sha256 = bytes(32)

    def __init__(self, num_bins: int, nr_fraction: float, hlc_fraction: float, state_size: int = 8):
        sigmoid = dict(scale=1 / 256, zero_point=-128)
        self.input_specs = (TensorSpec("features", (1, 32), np.dtype(np.int8), 0.01, 0),
                            TensorSpec("audiogram", (1, 8), np.dtype(np.int8), 0.01, 0),
                            TensorSpec("state", (1, state_size), np.dtype(np.int8), 1 / 128, 0))
        self.output_specs = (TensorSpec("nr_fraction", (1, num_bins), np.dtype(np.int8), **sigmoid),
                             TensorSpec("hlc_fraction", (1, num_bins), np.dtype(np.int8), **sigmoid),
                             TensorSpec("new_state", (1, state_size), np.dtype(np.int8), 1 / 128, 0))
        code = lambda fraction: np.full((1, num_bins), min(round(fraction * 256) - 128, 127), np.int8)  # noqa: E731
        self.outputs = {"nr_fraction": code(nr_fraction), "hlc_fraction": code(hlc_fraction),
                        "new_state": np.zeros((1, state_size), np.int8)}
        self.invocations = 0

    def set_inputs(self, inputs):
        self.last_inputs = dict(inputs)

    def invoke(self):
        self.invocations += 1

    def get_outputs(self):
        return {name: value.copy() for name, value in self.outputs.items()}


def constant_mask_processor(nr_fraction=0.4, hlc_fraction=0.5, **options):
    """A processor on a manifest written by the real writer functions, with :class:`ConstantMaskRuntime`."""
    from hearmask.model.features import FeatureConfig
    from hearmask.model.network import MaskNetConfig
    from hearmask.model.stft_config import StftConfig
    from hearmask.quantize.manifest import output_db_maps

    stft = StftConfig()
    manifest = {"variant": "joint", "stft": stft.to_dict(), "features": FeatureConfig().to_dict(),
                "networks": [{"role": "joint", "uses": ["nr_fraction", "hlc_fraction"],
                              "output_db": output_db_maps(MaskNetConfig())}]}
    runtime = ConstantMaskRuntime(stft.num_bins, nr_fraction, hlc_fraction)
    audiogram = options.pop("audiogram", N3_DB_HL)
    alpha, beta = options.pop("alpha", 0.0), options.pop("beta", 0.0)
    return LiveProcessor(manifest, [runtime], audiogram, alpha, beta, **options)


def noise(seconds: float, level: float = 0.05, seed: int = 0) -> np.ndarray:
    return (level * np.random.default_rng(seed).standard_normal(int(16000 * seconds))).astype(np.float32)


# ---------------------------------------------------------------------- the dB map and the int8 step


def test_db_map_from_the_manifest_equals_the_networks_rule(model_dir):
    import torch

    from hearmask.model.network import MaskNetConfig, audiogram_to_bin_matrix, hlc_span_db, mask_db_from_fractions

    entry = read_model_manifest(model_dir)["networks"][0]
    config = MaskNetConfig.from_dict(entry["config"])
    db_map = MaskDbMap(entry["output_db"])
    rng = np.random.default_rng(1)
    for thresholds in (N3_DB_HL, N7_DB_HL, (-10.0,) * 8):
        audiogram = np.asarray(thresholds) / 100.0
        expected_span = hlc_span_db(config, torch.tensor(audiogram[None], dtype=torch.float64),
                                    torch.tensor(audiogram_to_bin_matrix(config)))[0].numpy()
        span = db_map.hlc_span_db(np.asarray(thresholds))
        np.testing.assert_allclose(span, expected_span, atol=1e-4)
        fractions = rng.uniform(0, 1, (2, config.num_bins))
        expected_nr, expected_hlc = mask_db_from_fractions(config, fractions[0], fractions[1], expected_span)
        np.testing.assert_allclose(db_map.nr_db(fractions[0]), expected_nr, atol=1e-9)
        np.testing.assert_allclose(db_map.hlc_db(fractions[1], span), expected_hlc, atol=1e-4)


def test_int8_step_and_masks_equal_the_quantize_runtime_with_fed_back_state(model_dir):
    """Per hop, the processor's masks are LiteRtRuntime.step (quantize/runtimes) + mask_db_from_fractions."""
    from hearmask.model.features import BandFeatures
    from hearmask.model.network import MaskNetConfig, audiogram_to_bin_matrix, hlc_span_db, mask_db_from_fractions
    from hearmask.model.stft_stream import StreamingStft
    from hearmask.quantize.runtimes import LiteRtRuntime

    manifest = read_model_manifest(model_dir)
    entry = manifest["networks"][0]
    config = MaskNetConfig.from_dict(entry["config"])
    processor = LiveProcessor.from_model_dir(model_dir, N3_DB_HL, 0.7, 0.9)
    golden = LiteRtRuntime((model_dir / entry["files"]["int8_tflite"]).read_bytes())
    state = np.zeros((1, config.state_size), np.float32)
    audiogram = (np.asarray(N3_DB_HL, np.float32) / 100.0)[None]
    span = hlc_span_db(config, audiogram.astype(np.float64), audiogram_to_bin_matrix(config))
    stft = StreamingStft(processor.stft_config)  # an independent front end fed the same hops
    signal = noise(0.4, 0.1)
    for index in range(len(signal) // 64):
        hop = signal[64 * index:64 * (index + 1)]
        features = BandFeatures(stft.config, processor.feature_config)(stft.analyze_hop(hop))[None]
        outputs = golden.step({"features": features, "audiogram": audiogram, "state": state})
        state = outputs["new_state"]
        nr_db, hlc_db = mask_db_from_fractions(config, outputs["nr_fraction"], outputs["hlc_fraction"], span)
        processor.process_hop(hop)
        np.testing.assert_allclose(processor.trace.nr_db, nr_db[0], atol=1e-4)
        np.testing.assert_allclose(processor.trace.hlc_db, hlc_db[0], atol=1e-3)
        np.testing.assert_allclose(processor.trace.gain_db, np.minimum(0.7 * nr_db[0] + 0.9 * hlc_db[0], 40.0),
                                   atol=1e-3)


def test_zero_strengths_give_the_input_delayed_by_the_stft_overlap(model_dir):
    processor = LiveProcessor.from_model_dir(model_dir, N3_DB_HL, 0.0, 0.0)
    signal = noise(0.5, 0.1)
    output = processor.process_signal(signal)
    delay = processor.hop_delay_samples
    assert delay == 64
    error = output[delay + 256:] - signal[256:len(signal) - delay]
    assert np.max(np.abs(error)) < 1e-4 * np.max(np.abs(signal))
    assert np.max(np.abs(output[:delay])) < 1e-12  # nothing before the first synthesised sample (FFT rounding only)


# ---------------------------------------------------------------------- controls: linear ramps, no steps


def test_strength_change_ramps_the_applied_gain_by_one_equal_step_per_hop():
    processor = constant_mask_processor(alpha=0.0, beta=0.0, ramp_hops=8)
    hop = noise(0.004, 0.01)
    for _ in range(3):
        processor.process_hop(hop)
    nr_db, hlc_db = processor.trace.nr_db.copy(), processor.trace.hlc_db.copy()
    assert np.all(processor.trace.gain_db == 0.0)
    processor.set_strengths(1.0, 0.5)
    ramp_step_db = (1.0 * nr_db + 0.5 * hlc_db) / 8
    gains = []
    for _ in range(12):
        processor.process_hop(hop)
        gains.append(processor.trace.gain_db.copy())
    changes = np.diff(np.vstack([np.zeros_like(gains[0])] + gains), axis=0)
    # Every hop of the ramp moves by exactly one step; then the gain holds at the target.
    np.testing.assert_allclose(changes[:8], np.broadcast_to(ramp_step_db, (8, len(ramp_step_db))), atol=1e-9)
    np.testing.assert_allclose(changes[8:], 0.0, atol=1e-12)
    np.testing.assert_allclose(gains[-1], nr_db + 0.5 * hlc_db, atol=1e-9)
    assert np.max(np.abs(changes)) <= np.max(np.abs(ramp_step_db)) + 1e-9


def test_a_new_target_mid_ramp_ramps_from_where_the_gain_is():
    processor = constant_mask_processor(alpha=0.0, beta=0.0, ramp_hops=4)
    hop = noise(0.004, 0.01)
    processor.set_strengths(1.0, 0.0)
    alphas = []
    for index in range(10):
        if index == 2:
            processor.set_strengths(0.0, 0.0)
        processor.process_hop(hop)
        alphas.append(processor.trace.alpha)
    np.testing.assert_allclose(alphas, [0.25, 0.5, 0.375, 0.25, 0.125, 0.0, 0.0, 0.0, 0.0, 0.0])


def test_audiogram_change_moves_every_threshold_linearly_and_the_span_with_it():
    processor = constant_mask_processor(alpha=0.0, beta=1.0, ramp_hops=5)
    hop = noise(0.004, 0.01)
    processor.process_hop(hop)
    before = processor.trace.hlc_db.copy()
    processor.set_audiogram(N7_DB_HL)
    thresholds = []
    for _ in range(6):
        processor.process_hop(hop)
        thresholds.append(processor.trace.audiogram_db_hl.copy())
    expected = [np.asarray(N3_DB_HL) + (np.asarray(N7_DB_HL) - np.asarray(N3_DB_HL)) * k / 5 for k in range(1, 6)]
    np.testing.assert_allclose(thresholds[:5], expected, atol=1e-9)
    np.testing.assert_allclose(thresholds[5], N7_DB_HL)
    assert np.all(processor.trace.hlc_db >= before)  # more loss -> a higher ceiling -> more HLC gain
    assert np.max(processor.trace.hlc_db - before) > 5.0


def test_protocol_settings_reach_the_processor_and_none_keeps_the_audiogram():
    processor = constant_mask_processor(alpha=0.0, beta=0.0, ramp_hops=1)
    hop = noise(0.004, 0.01)
    processor.process_hop(hop, ListenerSettings(audiogram_db_hl=None, alpha=0.6, beta=0.2))
    assert (processor.trace.alpha, processor.trace.beta) == (0.6, 0.2)
    np.testing.assert_allclose(processor.trace.audiogram_db_hl, N3_DB_HL)
    processor.apply_settings(ListenerSettings(audiogram_db_hl=N7_DB_HL, alpha=0.1, beta=0.3))
    processor.process_hop(hop)
    np.testing.assert_allclose(processor.trace.audiogram_db_hl, N7_DB_HL)


@pytest.mark.parametrize("call, message", [
    (lambda p: p.set_strengths(1.5, 0.0), "above 1"),
    (lambda p: p.set_strengths(-0.1, 0.0), "negative"),
    (lambda p: p.set_audiogram((30.0,) * 7), "8 finite thresholds"),
    (lambda p: p.set_audiogram((30.0,) * 7 + (130.0,)), "130.0 dB HL"),
])
def test_bad_controls_are_refused_with_the_value_and_the_target_is_kept(call, message):
    processor = constant_mask_processor(alpha=0.3, beta=0.4)
    with pytest.raises(HearmaskError, match=message):
        call(processor)
    assert (processor.target.alpha, processor.target.beta) == (0.3, 0.4)


def test_a_missing_model_folder_is_named(tmp_path):
    with pytest.raises(HearmaskError, match="no model manifest"):
        LiveProcessor.from_model_dir(tmp_path, N3_DB_HL)


# ---------------------------------------------------------------------- safety: gain cap and limiter


def test_gain_cap_holds_when_the_model_asks_for_much_more():
    processor = constant_mask_processor(nr_fraction=0.0, hlc_fraction=1.0, audiogram=N7_DB_HL, alpha=0.0, beta=4.0,
                                        allow_exaggeration=True, limiter=LimiterConfig(max_gain_db=25.0), ramp_hops=1)
    processor.process_hop(noise(0.004, 0.001))
    assert np.max(processor.trace.requested_gain_db) > 150.0  # 4 x the N7 ceiling of 50 dB
    assert np.max(processor.trace.gain_db) == 25.0
    np.testing.assert_array_equal(processor.trace.gain_db, np.minimum(processor.trace.requested_gain_db, 25.0))


def test_a_loud_input_never_exceeds_the_output_ceiling():
    limiter = LimiterConfig(max_output_dbfs=-12.0, max_gain_db=30.0)
    processor = constant_mask_processor(nr_fraction=0.0, hlc_fraction=1.0, alpha=0.0, beta=1.0, limiter=limiter)
    t = np.arange(16000) / 16000
    loud = (0.99 * np.sign(np.sin(2 * np.pi * 440 * t))).astype(np.float32)  # full-scale square wave
    output = processor.process_signal(np.concatenate([loud, noise(0.5, 0.001)]))
    ceiling = 10 ** (-12.0 / 20)
    assert np.max(np.abs(output)) <= ceiling
    assert np.max(np.abs(output[:16000])) > 0.9 * ceiling  # limited, not muted
    assert processor.limiter.limited_hops > 200


def test_limiter_releases_smoothly_and_mutes_non_finite_hops():
    limiter = OutputLimiter(LimiterConfig(max_output_dbfs=-6.0, release_ms=20.0), 16000)
    limiter.process(np.full(64, 1.0))
    assert limiter.gain == pytest.approx(10 ** (-6 / 20))
    gains = []
    for _ in range(40):  # 160 ms of quiet: the gain recovers towards 1, never jumping
        limiter.process(np.full(64, 0.01))
        gains.append(limiter.gain)
    assert np.all(np.diff(gains) > 0) and gains[-1] > 0.999
    assert np.max(np.diff(gains)) < 0.2
    hop = np.full(64, 0.1)
    hop[3] = np.nan
    assert np.all(limiter.process(hop) == 0.0)
    assert limiter.muted_hops == 1


@pytest.mark.parametrize("field, value", [("max_output_dbfs", 3.0), ("max_gain_db", -1.0), ("release_ms", 0.0),
                                          ("max_gain_db", float("nan"))])
def test_bad_limiter_settings_are_refused(field, value):
    with pytest.raises(HearmaskError, match=field):
        LimiterConfig(**{field: value})
