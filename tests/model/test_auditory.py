"""Auditory model: gradients, NH/HI behaviour, loss split, compression, causality."""

import math

import numpy as np
import pytest
import torch

from hearmask.errors import HearmaskError
from hearmask.model.auditory import AuditoryModel, AuditoryModelConfig, split_hearing_loss_db
from hearmask.profiles.interpolate import interpolate_db_hl

SAMPLE_RATE_HZ = 16000
AUDIOMETRIC_FREQUENCIES_HZ = [250.0, 500.0, 1000.0, 2000.0, 4000.0, 6000.0]


@pytest.fixture(scope="module")
def model() -> AuditoryModel:
    return AuditoryModel(AuditoryModelConfig())


def _tone(frequency_hz: float, level_db_spl: float, num_samples: int = 4000) -> torch.Tensor:
    """Sine at ``level_db_spl`` (RMS re the default 100 dB SPL full scale), shape (T,)."""
    amplitude = math.sqrt(2) * 10 ** ((level_db_spl - 100.0) / 20)
    time_s = np.arange(num_samples) / SAMPLE_RATE_HZ
    return torch.tensor(amplitude * np.sin(2 * np.pi * frequency_hz * time_s), dtype=torch.float32)


def _noise(num_signals: int, level_db_spl: float, num_samples: int = 4000, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    rms = 10 ** ((level_db_spl - 100.0) / 20)
    return rms * torch.randn(num_signals, num_samples, generator=generator)


def _steady_mean(output: torch.Tensor) -> torch.Tensor:
    """Mean over frames after the first 50 ms (filter ring-up)."""
    return output[..., 50:].mean(dim=-1)


def test_gradcheck_signal_and_hearing_loss():
    config = AuditoryModelConfig(
        num_channels=3, low_hz=300.0, high_hz=3000.0, filter_length_samples=64,
        ihc_lowpass_length_samples=16, output_hop_samples=4,
    )
    model = AuditoryModel(config).double()
    generator = torch.Generator().manual_seed(1)
    # ~74 dB SPL: samples span the linear and the compressive part of the cochlear gain.
    signal = (0.05 * torch.randn(2, 64, generator=generator, dtype=torch.float64)).requires_grad_()
    # Away from the kinks of the split (0 dB, OHC cap); 100 dB at 3 kHz is past the cap.
    loss_db = torch.tensor([[10.0, 40.0, 80.0], [5.0, 25.0, 100.0]], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(model, (signal, loss_db), eps=1e-6, atol=1e-6)


def test_output_shape_follows_hop():
    assert AuditoryModel()(_noise(2, 60.0, 1000)).shape == (2, 32, 1000 // 16)
    unpooled = AuditoryModel(AuditoryModelConfig(num_channels=8, output_hop_samples=1))
    assert unpooled(_noise(1, 60.0, 500)).shape == (1, 8, 500)


def test_zero_audiogram_gives_the_normal_output(model):
    signal = _noise(2, 70.0)
    zero_loss_db = model.channel_loss_db(AUDIOMETRIC_FREQUENCIES_HZ, np.zeros((2, 6)))
    torch.testing.assert_close(model(signal, zero_loss_db), model(signal), rtol=1e-6, atol=1e-6)


def test_larger_uniform_loss_lowers_every_channel_monotonically(model):
    losses_db = torch.arange(0.0, 101.0, 10.0)  # 11 listeners, flat audiograms
    signal = _noise(1, 70.0).expand(len(losses_db), -1)
    channel_loss_db = losses_db[:, None].expand(-1, model.num_channels)
    mean_output = _steady_mean(model(signal, channel_loss_db))  # (11, C)
    assert torch.all(mean_output[1:] < mean_output[:-1])


def test_pure_tone_at_center_frequency_excites_that_channel_most(model):
    channels = list(range(0, 32, 3))
    tones = torch.stack([_tone(model.center_frequencies_hz[c], 60.0) for c in channels])
    mean_output = _steady_mean(model(tones))  # (len(channels), C)
    assert mean_output.argmax(dim=1).tolist() == channels
    bm_rms = model.filterbank(tones)[..., 800:].square().mean(-1)
    assert bm_rms.argmax(dim=1).tolist() == channels


def test_future_samples_do_not_change_past_frames():
    model = AuditoryModel(AuditoryModelConfig(num_channels=8)).double()
    signal = _noise(1, 70.0, 2000).double()
    changed = signal.clone()
    change_at = 1000  # frames 0..61 end before sample 1000 (hop 16)
    changed[:, change_at:] = _noise(1, 90.0, 1000, seed=5).double()
    original_output, changed_output = model(signal), model(changed)
    past_frames = change_at // 16
    torch.testing.assert_close(
        changed_output[..., :past_frames], original_output[..., :past_frames], rtol=0, atol=1e-9
    )
    assert (changed_output[..., past_frames:] - original_output[..., past_frames:]).abs().max() > 0.5


def _io_slope_db_per_db(model: AuditoryModel, channel: int, loss_db: torch.Tensor | None) -> float:
    """Growth of the IHC envelope (dB) per dB of tone level between 40 and 80 dB SPL."""
    tones = torch.stack([_tone(model.center_frequencies_hz[channel], level) for level in (40.0, 80.0)])
    envelope = _steady_mean(model.ihc_envelope(tones, loss_db))[:, channel]
    return 20 * math.log10(envelope[1] / envelope[0]) / 40.0


def test_normal_ear_compresses_and_full_ohc_loss_makes_it_linear(model):
    channel = 20  # ~2.2 kHz, cochlear gain ~54.8 dB: compressive slope 1 - 54.8/70 ~ 0.22
    assert _io_slope_db_per_db(model, channel, None) < 0.35
    # A loss of 1.5 x OHC_max puts OHC at its maximum: no cochlear gain left, linear ear.
    full_ohc_loss_db = 1.5 * model.ohc_max_loss_db.expand(2, -1)
    assert _io_slope_db_per_db(model, channel, full_ohc_loss_db) == pytest.approx(1.0, abs=0.03)


def test_ihc_loss_alone_is_a_plain_attenuation():
    model = AuditoryModel(AuditoryModelConfig(num_channels=8, ohc_loss_fraction=0.0))
    signal = _noise(1, 70.0, 2000)
    loss_db = torch.linspace(0.0, 70.0, 8)
    expected = model.ihc_envelope(signal) * 10 ** (-loss_db / 20)[:, None]
    torch.testing.assert_close(model.ihc_envelope(signal, loss_db), expected, rtol=1e-5, atol=1e-12)


@pytest.mark.parametrize("channel", [14, 26])  # ~1.1 kHz, ~4.4 kHz
def test_tone_at_documented_threshold_reaches_eps(model, channel):
    # Module docstring: threshold = 20 log10(eps pi / sqrt 2) + full scale - G(f) dB SPL,
    # i.e. the level where the mean IHC envelope (A g / pi for a tone) equals eps.
    config = model.config
    gain_db = model.cochlear_gain_db[channel].item()
    eps_level_db = 20 * math.log10(config.eps * math.pi / math.sqrt(2))
    threshold_db_spl = eps_level_db + config.full_scale_db_spl - gain_db
    tone = _tone(model.center_frequencies_hz[channel], threshold_db_spl)[None]
    envelope = _steady_mean(model.ihc_envelope(tone))[0, channel]
    assert envelope.item() == pytest.approx(config.eps, rel=0.02)


def test_loss_split_follows_two_thirds_rule_and_ohc_cap():
    ohc_max_db = torch.tensor([35.0, 60.0])
    loss_db = torch.tensor([[30.0, 30.0], [90.0, 120.0], [-10.0, 0.0]])
    ohc_db, ihc_db = split_hearing_loss_db(loss_db, ohc_max_db)
    torch.testing.assert_close(ohc_db, torch.tensor([[20.0, 20.0], [35.0, 60.0], [0.0, 0.0]]))
    torch.testing.assert_close(ihc_db, torch.tensor([[10.0, 10.0], [55.0, 60.0], [0.0, 0.0]]))


def test_ohc_max_defaults_rise_from_35_to_60_db(model):
    ohc_max_db = model.config.ohc_max_loss_at([100.0, 250.0, 1000.0, 4000.0, 8000.0])
    np.testing.assert_allclose(ohc_max_db, [35, 35, 47.5, 60, 60])
    assert torch.all(model.ohc_max_loss_db[1:] >= model.ohc_max_loss_db[:-1])


def test_channel_loss_db_interpolates_audiograms_onto_channels(model):
    audiograms_db_hl = np.array([[10.0, 20.0, 30.0, 40.0, 60.0, 70.0], [0.0, 0.0, 5.0, 5.0, 5.0, 5.0]])
    loss_db = model.channel_loss_db(AUDIOMETRIC_FREQUENCIES_HZ, audiograms_db_hl)
    assert loss_db.shape == (2, 32) and loss_db.dtype == torch.float32
    expected = interpolate_db_hl(AUDIOMETRIC_FREQUENCIES_HZ, audiograms_db_hl, model.center_frequencies_hz)
    np.testing.assert_allclose(loss_db.numpy(), expected, rtol=1e-6)
    assert model.channel_loss_db(AUDIOMETRIC_FREQUENCIES_HZ, audiograms_db_hl[0]).shape == (32,)


def test_bad_config_and_inputs_raise_clear_errors(model):
    with pytest.raises(HearmaskError, match="high_hz=8000"):
        AuditoryModelConfig(high_hz=8000.0)
    with pytest.raises(HearmaskError, match="ohc_max_loss_db values must be in"):
        AuditoryModelConfig(ohc_max_loss_db=(35.0, 75.0))
    with pytest.raises(HearmaskError, match=r"shape \(2, 32\) or \(32,\)"):
        model(_noise(2, 60.0, 200), torch.zeros(2, 6))
    with pytest.raises(HearmaskError, match=r"shape \(batch, samples\), got \(200,\)"):
        model(_noise(1, 60.0, 200)[0])


@pytest.mark.parametrize("hop", [2, 5, 16])  # hop < 4 runs the strided convolution, else polyphase
def test_frames_are_averages_of_the_unpooled_ihc_output(hop):
    unpooled = AuditoryModel(AuditoryModelConfig(num_channels=4, output_hop_samples=1)).double()
    pooled = AuditoryModel(AuditoryModelConfig(num_channels=4, output_hop_samples=hop)).double()
    signal = _noise(2, 70.0, 1003).double()  # not a multiple of hop: the partial frame is dropped
    # Compare before the clamp at 0 of ihc_envelope (the low-pass can dip a hair below 0).
    compressed = unpooled._compress(unpooled.filterbank(signal), unpooled.cochlear_gain_db.view(1, -1, 1))
    expected = torch.nn.functional.avg_pool1d(unpooled._lowpass_and_pool(compressed), hop)
    # The kernels are float32 buffers (rounded ~1e-7) even in a double model.
    scale = expected.abs().max().item()
    torch.testing.assert_close(pooled._lowpass_and_pool(compressed), expected, rtol=0, atol=1e-6 * scale)


def test_config_accepts_lists_as_toml_gives_them():
    from_lists = AuditoryModelConfig(ohc_max_loss_frequencies_hz=[250, 4000], ohc_max_loss_db=[35, 60])
    assert from_lists == AuditoryModelConfig() and hash(from_lists) == hash(AuditoryModelConfig())
