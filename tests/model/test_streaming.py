"""The step-form streaming path equals the batch system, and strengths act as promised."""

import numpy as np
import pytest
import torch

from hearmask.model.stft_config import shipped_stft_config
from hearmask.model.streaming import StreamingEnhancer
from hearmask.model.system import VARIANTS, HearingAidSystem, build_masknet_configs
from hearmask.profiles.standard import standard_audiogram


def make_system(variant, seed=0, head_scale=20.0):
    """A small random system whose heads are scaled up so masks vary strongly (an untrained
    net sits near its initial gains, which would make these tests weak)."""
    torch.manual_seed(seed)
    config = shipped_stft_config("default")
    system = HearingAidSystem(variant, config, build_masknet_configs(variant, config, "default",
                                                                     {"hidden_size": 16, "encoder_size": 16}))
    with torch.no_grad():
        for network in system.networks:
            network.nr_head.weight.mul_(head_scale)
            network.hlc_head.weight.mul_(head_scale)
    return system.eval()


def noisy_speechlike(seconds=1.0, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(int(16000 * seconds)) / 16000
    voiced = sum(np.sin(2 * np.pi * 140 * k * t) / k for k in range(1, 15)) * (1 + np.sin(2 * np.pi * 4 * t))
    return (0.02 * voiced + 0.01 * rng.standard_normal(len(t))).astype(np.float32)


@pytest.mark.parametrize("variant", VARIANTS)
def test_streaming_step_form_equals_batch_sequence_form(variant):
    system = make_system(variant)
    audiogram = standard_audiogram("N4")
    signal = noisy_speechlike()
    streamed = StreamingEnhancer(system, audiogram, 0.8, 1.0).process_signal(signal)
    with torch.no_grad():
        batch = system.enhance(torch.as_tensor(signal)[None], torch.as_tensor(audiogram.model_input())[None], 0.8, 1.0)
    batch = batch[0].numpy()
    # float32 network, float64 numpy STFT: compare relative to the signal scale.
    assert np.max(np.abs(streamed - batch)) <= 1e-4 * np.max(np.abs(batch))


def test_zero_strengths_return_the_delayed_input():
    system = make_system("joint")
    signal = noisy_speechlike()
    output = StreamingEnhancer(system, standard_audiogram("N7"), 0.0, 0.0).process_signal(signal)
    delay = system.stft_config.algorithmic_latency_samples
    error = output[delay:] - signal[:-delay]
    assert 10 * np.log10(np.sum(signal[:-delay] ** 2) / np.sum(error**2)) > 60


def band_energy_db(signal):
    return 10 * np.log10(np.mean(signal**2))


def test_more_nr_strength_attenuates_more():
    system = make_system("joint")
    signal = noisy_speechlike()
    energies = [band_energy_db(StreamingEnhancer(system, standard_audiogram("NH"), alpha, 0.0).process_signal(signal))
                for alpha in (0.0, 0.5, 1.0)]
    assert energies[0] > energies[1] > energies[2]


def test_more_hlc_strength_gives_more_gain_for_a_loss_and_audiogram_matters():
    system = make_system("joint")
    signal = noisy_speechlike()
    levels = [band_energy_db(StreamingEnhancer(system, standard_audiogram("N5"), 0.0, beta).process_signal(signal))
              for beta in (0.0, 0.5, 1.0)]
    # The HLC gain's sign is learned; for a random net it may be a cut. Monotone either way:
    assert (levels[0] < levels[1] < levels[2]) or (levels[0] > levels[1] > levels[2])
    other = band_energy_db(StreamingEnhancer(system, standard_audiogram("NH"), 0.0, 1.0).process_signal(signal))
    assert abs(other - levels[2]) > 0.1  # conditioning on the audiogram changes the output
