"""DRNL front end (filterbank = "drnl"): gradients, NH/HI behaviour, I/O compression, loss."""

import math

import numpy as np
import pytest
import torch

from hearmask.errors import HearmaskError
from hearmask.model.auditory import AuditoryModel, AuditoryModelConfig
from hearmask.model.auditory_drnl import (
    broken_stick,
    broken_stick_slope,
    drnl_channel_parameters,
    drnl_highest_center_frequency_hz,
    drnl_impulse_responses,
    stapes_velocity_per_unit_m_per_s,
)

SAMPLE_RATE_HZ = 16000
AUDIOMETRIC_FREQUENCIES_HZ = [250.0, 500.0, 1000.0, 2000.0, 4000.0, 6000.0]


@pytest.fixture(scope="module")
def model() -> AuditoryModel:
    return AuditoryModel(AuditoryModelConfig(filterbank="drnl"))


def _tones(frequency_hz: float, levels_db_spl, num_samples: int = 4000) -> torch.Tensor:
    """Sines at ``levels_db_spl`` (RMS re the default 100 dB SPL full scale), shape (L, T)."""
    time_s = np.arange(num_samples) / SAMPLE_RATE_HZ
    amplitudes = math.sqrt(2) * 10 ** ((np.asarray(levels_db_spl, dtype=np.float64) - 100.0) / 20)
    return torch.tensor(amplitudes[:, None] * np.sin(2 * np.pi * frequency_hz * time_s), dtype=torch.float32)


def _noise(num_signals: int, level_db_spl: float, num_samples: int = 4000, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return 10 ** ((level_db_spl - 100.0) / 20) * torch.randn(num_signals, num_samples, generator=generator)


def _bm_level_db(model: AuditoryModel, channel: int, levels_db_spl, ohc_loss_db=None) -> np.ndarray:
    """Steady-state RMS level (dB) of the DRNL output of ``channel`` for tones at its CF."""
    tones = _tones(model.center_frequencies_hz[channel], levels_db_spl)
    loss = None if ohc_loss_db is None else torch.full((len(tones), model.num_channels), ohc_loss_db)
    response = model.drnl(tones, loss)[:, channel, 800:]  # after 50 ms of ring-up
    return 10 * np.log10(response.double().square().mean(-1).numpy())


def test_parameters_follow_the_published_regression_at_1khz():
    # Lopez-Poveda & Meddis (2001) regression at CF = 1 kHz: 10^(p0 + 3 m).
    params = drnl_channel_parameters(np.array([1000.0]))
    assert params["a"][0] == pytest.approx(10 ** (1.40298 + 3 * 0.81916))
    assert params["b"][0] == pytest.approx(10 ** (1.61912 - 3 * 0.81867))
    assert params["c"][0] == pytest.approx(0.25, abs=1e-5)
    assert params["linear_gain"][0] == pytest.approx(10 ** (4.20405 - 3 * 0.47909))
    assert params["nonlinear_cf_hz"][0] == pytest.approx(993.0, abs=1.0)  # the paths' CFs differ
    assert params["linear_cf_hz"][0] == pytest.approx(961.0, abs=1.0)


def test_stapes_calibration_gives_the_papers_velocity_at_0_db_spl():
    # A 0 dB SPL sine has peak sample value sqrt(2) * 10^(-100/20) at 100 dB SPL full scale.
    peak_sample = math.sqrt(2) * 10 ** (-100 / 20)
    assert stapes_velocity_per_unit_m_per_s(100.0) * peak_sample == pytest.approx(8.2e-9)


def test_filter_stretches_have_the_papers_gains_at_cf():
    center_hz = np.array([500.0, 2000.0])
    responses = drnl_impulse_responses(center_hz, SAMPLE_RATE_HZ, 1024)
    params = drnl_channel_parameters(center_hz)
    time_s = np.arange(1024) / SAMPLE_RATE_HZ

    def gain_at(fir, frequency_hz):
        return np.abs(np.sum(fir * np.exp(-2j * np.pi * frequency_hz[:, None] * time_s), axis=1))

    # 3 gammatones: 0 dB at the nonlinear CF. The table gives the low-pass cutoffs the same
    # regression as the path CFs, so at CF each 2nd-order Butterworth is at -3 dB.
    np.testing.assert_allclose(gain_at(responses["nonlinear_before"], params["nonlinear_cf_hz"]), 1.0, rtol=1e-9)
    np.testing.assert_allclose(
        gain_at(responses["nonlinear_after"], params["nonlinear_cf_hz"]), 0.5**1.5, rtol=1e-3
    )
    np.testing.assert_allclose(
        gain_at(responses["linear"], params["linear_cf_hz"]), params["linear_gain"] * 0.5**2, rtol=1e-3
    )


def test_broken_stick_matches_its_formula_and_slope_is_finite_at_zero():
    linear_gain = torch.tensor([[100.0]], dtype=torch.float64)
    compressive_gain = torch.tensor([[2.0]], dtype=torch.float64)
    knee = (compressive_gain / linear_gain) ** (1 / 0.75)
    signal = torch.tensor([[[-1.0, -1e-4, 0.0, 1e-7, 1e-3, 0.5]]], dtype=torch.float64)
    output = broken_stick(signal, linear_gain, compressive_gain, 0.25, knee)
    expected = torch.sign(signal) * torch.minimum(100 * signal.abs(), 2 * signal.abs() ** 0.25)
    torch.testing.assert_close(output, expected)
    slope = broken_stick_slope(signal, output, linear_gain, 0.25, knee)
    # Away from 0 the plain formula's autograd slope is finite: compare with it.
    nonzero = signal[..., [0, 1, 3, 4, 5]].clone().requires_grad_()
    (torch.sign(nonzero) * torch.minimum(100 * nonzero.abs(), 2 * nonzero.abs() ** 0.25)).sum().backward()
    torch.testing.assert_close(slope[..., [0, 1, 3, 4, 5]], nonzero.grad)
    assert slope[0, 0, 2] == 100.0  # linear slope at 0, where |x|^(c-1) would be inf


def test_gradcheck_signal_and_hearing_loss():
    config = AuditoryModelConfig(
        filterbank="drnl", num_channels=3, low_hz=500.0, high_hz=4000.0, filter_length_samples=32,
        ihc_lowpass_length_samples=16, output_hop_samples=4,
    )
    model = AuditoryModel(config).double()
    generator = torch.Generator().manual_seed(1)
    # ~74 dB SPL: samples on both branches of the broken stick.
    signal = (0.05 * torch.randn(2, 40, generator=generator, dtype=torch.float64)).requires_grad_()
    loss_db = torch.tensor([[10.0, 40.0, 80.0], [5.0, 25.0, 100.0]], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(model, (signal, loss_db), eps=1e-6, atol=1e-6)


def test_zero_audiogram_gives_the_normal_output(model):
    signal = _noise(2, 70.0)
    zero_loss_db = model.channel_loss_db(AUDIOMETRIC_FREQUENCIES_HZ, np.zeros((2, 6)))
    torch.testing.assert_close(model(signal, zero_loss_db), model(signal), rtol=0, atol=0)


def test_larger_uniform_loss_lowers_every_channel_monotonically(model):
    losses_db = torch.arange(0.0, 101.0, 10.0)  # 11 listeners, flat audiograms
    signal = _noise(1, 70.0).expand(len(losses_db), -1)
    mean_output = model(signal, losses_db[:, None].expand(-1, model.num_channels))[..., 50:].mean(-1)
    assert torch.all(mean_output[1:] < mean_output[:-1])


@pytest.mark.parametrize("channel", [14, 20, 26])  # ~1.1, 2.2, 4.4 kHz
def test_io_function_at_cf_is_linear_at_low_and_compressive_at_mid_levels(model, channel):
    level_db = _bm_level_db(model, channel, [-20.0, 0.0, 40.0, 80.0])
    assert (level_db[1] - level_db[0]) / 20 == pytest.approx(1.0, abs=0.03)
    assert (level_db[3] - level_db[2]) / 40 < 0.5


def test_full_ohc_loss_leaves_the_linear_path(model):
    channel = 20
    levels = [0.0, 40.0, 80.0]
    impaired_db = _bm_level_db(model, channel, levels, ohc_loss_db=80.0)
    np.testing.assert_allclose(np.diff(impaired_db) / 40, 1.0, atol=0.03)
    normal_db = _bm_level_db(model, channel, levels)
    # Low levels lose ~the nonlinear path's advantage; loud ones barely change (recruitment).
    assert normal_db[0] - impaired_db[0] > 25.0
    assert normal_db[2] - impaired_db[2] < normal_db[0] - impaired_db[0] - 15.0


def test_tone_threshold_at_1khz_is_close_to_the_gammatone_ears():
    # The default drnl_output_gain_db is chosen for this (module docstring of auditory_drnl).
    channel = 14
    levels = np.arange(-10.0, 21.0, 2.0)
    thresholds = []
    for filterbank in ("gammatone", "drnl"):
        ear = AuditoryModel(AuditoryModelConfig(filterbank=filterbank))
        tones = _tones(ear.center_frequencies_hz[channel], levels)
        envelope = ear.ihc_envelope(tones)[:, channel, 50:].mean(-1).double().numpy()
        thresholds.append(np.interp(0.0, 20 * np.log10(envelope / ear.config.eps), levels))
    assert abs(thresholds[1] - thresholds[0]) < 3.0


def test_future_samples_do_not_change_past_frames():
    model = AuditoryModel(AuditoryModelConfig(filterbank="drnl", num_channels=8)).double()
    signal = _noise(1, 70.0, 2000).double()
    changed = signal.clone()
    changed[:, 1000:] = _noise(1, 90.0, 1000, seed=5).double()
    past_frames = 1000 // 16
    original, after_change = model(signal), model(changed)
    torch.testing.assert_close(after_change[..., :past_frames], original[..., :past_frames], rtol=0, atol=1e-9)
    assert (after_change[..., past_frames:] - original[..., past_frames:]).abs().max() > 0.5


def test_bad_filterbank_and_drnl_range_raise_clear_errors():
    with pytest.raises(HearmaskError, match=r"filterbank must be one of gammatone, drnl, got 'drln'"):
        AuditoryModelConfig(filterbank="drln")
    highest_hz = drnl_highest_center_frequency_hz(SAMPLE_RATE_HZ)
    assert 7500.0 < highest_hz < 8000.0
    with pytest.raises(HearmaskError, match=r"filterbank 'drnl' needs high_hz < 77\d\d Hz.*high_hz=7900"):
        AuditoryModelConfig(filterbank="drnl", high_hz=7900.0)
    AuditoryModelConfig(filterbank="gammatone", high_hz=7900.0)  # the gammatone bank has no such limit


def test_training_loss_runs_forward_and_backward_through_the_drnl():
    from hearmask.model.losses import MultiTaskLoss
    from hearmask.model.stft_config import shipped_stft_config
    from hearmask.model.system import HearingAidSystem, build_masknet_configs

    torch.manual_seed(0)
    stft_config = shipped_stft_config("default")
    system = HearingAidSystem("joint", stft_config, build_masknet_configs(
        "joint", stft_config, "default", {"hidden_size": 8, "encoder_size": 8}))
    ear = AuditoryModel(AuditoryModelConfig(filterbank="drnl", sample_rate_hz=stft_config.sample_rate_hz))
    loss = MultiTaskLoss(ear, "joint")
    clean = 0.03 * torch.randn(2, 4000)
    noisy = clean + 0.03 * torch.randn(2, 4000)
    channel_loss_db = ear.channel_loss_db(AUDIOMETRIC_FREQUENCIES_HZ, np.full((2, 6), 50.0))
    terms = loss(system, noisy, clean, torch.full((2, 8), 0.5), channel_loss_db)
    terms.total.backward()
    values = terms.as_floats()
    assert math.isfinite(values["loss"]) and values["nr_loss"] > 0 and values["hlc_loss"] > 0
    gradients = [p.grad for p in system.parameters() if p.requires_grad]
    assert gradients and all(g is not None and torch.isfinite(g).all() for g in gradients)
    assert sum(float(g.abs().sum()) for g in gradients) > 0
