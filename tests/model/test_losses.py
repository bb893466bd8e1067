"""Auditory-model losses: zero where they must be, the weighting formula, the auxiliary mask term."""

import math

import pytest
import torch

from hearmask.errors import HearmaskError
from hearmask.model.auditory import AuditoryModel
from hearmask.model.losses import MultiTaskLoss, band_irm_mask_loss, delay_signal
from hearmask.model.stft_config import shipped_stft_config
from hearmask.model.system import HearingAidSystem, build_masknet_configs


class FixedMasks(HearingAidSystem):
    """A system whose masks are given constants, to test the losses in isolation."""

    def __init__(self, variant, nr_db, hlc_db):
        config = shipped_stft_config("default")
        super().__init__(variant, config, build_masknet_configs(variant, config, "default",
                                                                {"hidden_size": 8, "encoder_size": 8}))
        self.fixed = (nr_db, hlc_db)

    def masks_db(self, spectrum, audiogram, fused_recurrence=True):
        shape = spectrum.shape
        return torch.full(shape, self.fixed[0]), torch.full(shape, self.fixed[1])


@pytest.fixture(scope="module")
def signals():
    torch.manual_seed(0)
    clean = torch.randn(2, 8000) * 0.02
    return clean, clean + torch.randn(2, 8000) * 0.02


def test_identity_masks_on_clean_input_give_zero_losses(signals):
    clean, _ = signals
    loss = MultiTaskLoss(AuditoryModel(), "joint", weighting="fixed")
    terms = loss(FixedMasks("joint", 0.0, 0.0), clean, clean, torch.zeros(2, 8), torch.zeros(2, 32))
    assert float(terms.nr) < 1e-6 and float(terms.hlc) < 1e-6


def test_hlc_loss_rewards_gain_for_a_loss(signals):
    _, noisy = signals
    loss = MultiTaskLoss(AuditoryModel(), "hlc", weighting="fixed")
    impaired = torch.full((2, 32), 40.0)
    no_gain = loss(FixedMasks("hlc", 0.0, 0.0), noisy, noisy, torch.zeros(2, 8), impaired).hlc
    some_gain = loss(FixedMasks("hlc", 0.0, 20.0), noisy, noisy, torch.zeros(2, 8), impaired).hlc
    assert float(some_gain) < float(no_gain)


def test_nr_loss_prefers_attenuation_of_noise_only_input():
    noise = torch.randn(1, 8000) * 0.02
    silence = torch.zeros(1, 8000)
    loss = MultiTaskLoss(AuditoryModel(), "nr", weighting="fixed")
    keep = loss(FixedMasks("nr", 0.0, 0.0), noise, silence, torch.zeros(1, 8), torch.zeros(1, 32)).nr
    cut = loss(FixedMasks("nr", -20.0, 0.0), noise, silence, torch.zeros(1, 8), torch.zeros(1, 32)).nr
    assert float(cut) < float(keep)


def test_uncertainty_weighting_formula():
    loss = MultiTaskLoss(AuditoryModel(), "joint")
    with torch.no_grad():
        loss.log_variances.copy_(torch.tensor([0.5, -0.25]))
    total = loss._combine(torch.tensor(2.0), torch.tensor(3.0))
    assert float(total) == pytest.approx(math.exp(-0.5) * 2 + 0.5 + math.exp(0.25) * 3 - 0.25, rel=1e-6)
    only_nr = MultiTaskLoss(AuditoryModel(), "nr", weighting="fixed", nr_weight=2.0)
    assert float(only_nr._combine(torch.tensor(1.5), torch.tensor(9.0))) == pytest.approx(3.0)


def test_band_irm_loss_is_zero_at_its_target_and_positive_elsewhere(signals):
    clean, noisy = signals
    system = FixedMasks("joint", 0.0, 0.0)
    spectrum = system.stft.stft(noisy)
    clean_spectrum = system.stft.stft(clean)
    pooling = system.features.pooling_matrix
    clean_power = clean_spectrum.abs() ** 2 @ pooling
    noise_power = (spectrum - clean_spectrum).abs() ** 2 @ pooling
    irm_db = (10 * torch.log10(clean_power / (clean_power + noise_power + 1e-12) + 1e-12)).clamp(-25, 0)
    target = torch.nn.functional.linear(irm_db, system.networks[0].band_to_bin)
    assert float(band_irm_mask_loss(system, spectrum, clean, target)) < 1e-5
    assert float(band_irm_mask_loss(system, spectrum, clean, torch.zeros_like(target))) > 0.01


def test_delay_signal():
    signal = torch.arange(1.0, 6.0)[None]
    assert delay_signal(signal, 2).tolist() == [[0.0, 0.0, 1.0, 2.0, 3.0]]


def test_end_to_end_term_scores_the_product_of_both_masks(signals):
    clean, noisy = signals
    impaired = torch.full((2, 32), 40.0)
    plain = MultiTaskLoss(AuditoryModel(), "joint", weighting="fixed")
    with_term = MultiTaskLoss(AuditoryModel(), "joint", weighting="fixed", combined_weight=2.0)
    # On clean input with no loss and identity masks the term is zero, like the task losses.
    identity = with_term(FixedMasks("joint", 0.0, 0.0), clean, clean, torch.zeros(2, 8), torch.zeros(2, 32))
    assert float(identity.combined) < 1e-6
    # The NR mask cuts 10 dB and the HLC gives 10 dB back: the product is the identity, so the
    # term equals the HI-vs-NH(clean) distance of the unmasked noisy input, whatever each mask alone does.
    cancelled = with_term(FixedMasks("joint", -10.0, 10.0), noisy, clean, torch.zeros(2, 8), impaired)
    unmasked = with_term(FixedMasks("joint", 0.0, 0.0), noisy, clean, torch.zeros(2, 8), impaired)
    assert float(cancelled.combined) == pytest.approx(float(unmasked.combined), rel=1e-5)
    base = plain(FixedMasks("joint", -10.0, 10.0), noisy, clean, torch.zeros(2, 8), impaired)
    assert base.combined is None
    assert float(cancelled.total) == pytest.approx(float(base.total) + 2.0 * float(cancelled.combined), rel=1e-5)
    # A gain for the impaired ear lowers the term (the product is what the listener hears).
    gained = with_term(FixedMasks("joint", 0.0, 20.0), noisy, clean, torch.zeros(2, 8), impaired)
    assert float(gained.combined) < float(unmasked.combined)


def test_end_to_end_term_is_refused_outside_the_joint_variant():
    with pytest.raises(HearmaskError, match="joint' only, got variant 'cascade'"):
        MultiTaskLoss(AuditoryModel(), "cascade", weighting="fixed", combined_weight=1.0)
