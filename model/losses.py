"""Training losses through the differentiable auditory model (DESIGN.md, "Auditory model").

- NR loss:  ``D(NH(x·M_NR), NH(clean))``
- HLC loss: ``D(HI(x·M_HLC; audiogram), NH(x))``: the impaired ear hearing the compensated
  input should respond like a normal ear hearing the input itself.
- Joint: ``e^-s1·L_NR + e^-s2·L_HLC + s1 + s2`` with learned ``s`` (Kendall, Gal & Cipolla,
  CVPR 2018, as used by Gonzalez et al., arXiv:2603.20387), or fixed weights.

``x·M`` is synthesised on the real-time timeline (delayed by the STFT's latency), so every
reference signal is delayed by the same latency before the auditory model sees it.
For the cascade, the HLC stage's input and reference are the NR stage's output.

Optional end-to-end term (joint, ``combined_weight`` > 0):
``D(HI(x·M_NR·M_HLC; audiogram), NH(clean))`` — the impaired ear hearing the output at the
default working point (alpha, beta) = (1, 1) should respond like a normal ear hearing clean
speech. Why: with the two task losses alone the HLC head learns to compensate the
*unattenuated* input, so wherever the NR mask attenuates speech the impaired listener loses
it uncompensated (measured in issue 4: NR at alpha = 1 cost impaired listeners 0.02–0.10
HASPI). The term mirrors how HASPI scores the output (impaired model of the output vs normal
model of the clean reference); the two task losses stay, so each mask alone keeps its meaning.
Measured (session 4, `benchmarks/RESULTS.md`): at weight 2 beside NR 4 : HLC 1, 2,750
warm-started steps left the term's validation value (1.82 -> 1.81) and dev-set HASPI at (1, 1)
about unchanged; weights 8 and 16 (session 5, fine-tuning the shipped model) weakened the NR
mask and did not raise HASPI on a 6-utterance development set.

Optional auxiliary NR term (``nr_mask_weight`` > 0): L1 between the NR mask and the
band ideal ratio mask ``10·log10(P_clean / (P_clean + P_noise))`` (clipped to the mask's
range, on the network's own bands, interpolated to bins), divided by the floor's size so
it is O(1). Measured here (tests/notes of issue 4): the auditory NR loss clearly prefers
this oracle mask (loss 0.70 vs 1.28 for no processing; ESTOI 0.84 vs 0.37 at 0 dB SNR),
but a small network trained only through the auditory model for 1,500 steps found only
a broad attenuation (ESTOI 0.34). The direct target shortens that search; the auditory
losses stay the objective.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from hearmask.errors import HearmaskError
from hearmask.model.auditory import AuditoryModel
from hearmask.model.system import HearingAidSystem


def delay_signal(signal: torch.Tensor, delay_samples: int) -> torch.Tensor:
    """``(B, T)`` -> ``(B, T)`` delayed by ``delay_samples`` (zeros enter, the tail drops)."""
    return F.pad(signal, (delay_samples, 0))[..., : signal.shape[-1]]


def auditory_distance(estimate: torch.Tensor, reference: torch.Tensor, distance: str) -> torch.Tensor:
    if distance == "l1":
        return (estimate - reference).abs().mean()
    if distance == "mse":
        return (estimate - reference).pow(2).mean()
    raise HearmaskError(f"unknown distance {distance!r}; accepted: l1, mse")


@dataclass
class LossTerms:
    """Scalar tensors of one batch; ``total`` is what is minimised."""

    total: torch.Tensor
    nr: torch.Tensor
    hlc: torch.Tensor
    combined: torch.Tensor | None = None  # end-to-end (1, 1) term, when enabled

    def as_floats(self) -> dict[str, float]:
        return {"loss": float(self.total.detach()), "nr_loss": float(self.nr.detach()), "hlc_loss": float(self.hlc.detach())}


class MultiTaskLoss(nn.Module):
    """The loss of a :class:`HearingAidSystem` variant; holds the learned uncertainty weights."""

    def __init__(self, auditory_model: AuditoryModel, variant: str, weighting: str = "uncertainty",
                 nr_weight: float = 1.0, hlc_weight: float = 1.0, distance: str = "l1", nr_mask_weight: float = 0.0,
                 combined_weight: float = 0.0):
        super().__init__()
        if combined_weight > 0 and variant != "joint":
            raise HearmaskError(f"combined_weight applies to variant 'joint' only, got variant {variant!r}")
        self.combined_weight = combined_weight
        self.nr_mask_weight = nr_mask_weight
        self.auditory_model = auditory_model
        self.variant = variant
        self.weighting = weighting
        self.distance = distance
        self.fixed_weights = (nr_weight, hlc_weight)
        # s_i = log variance of task i; starts at 0 (weight 1).
        self.log_variances = nn.Parameter(torch.zeros(2)) if weighting == "uncertainty" else None

    def forward(self, system: HearingAidSystem, noisy: torch.Tensor, clean: torch.Tensor,
                audiogram: torch.Tensor, channel_loss_db: torch.Tensor) -> LossTerms:
        """``noisy``, ``clean`` (B, T); ``audiogram`` (B, 8) network input; ``channel_loss_db`` (B, C)."""
        length = noisy.shape[-1]
        latency = system.stft_config.algorithmic_latency_samples
        hear = self.auditory_model
        spectrum = system.stft.stft(noisy)
        nr_db, hlc_db = system.masks_db(spectrum, audiogram)
        zero = noisy.new_zeros(())
        nr_loss = hlc_loss = zero
        extra_terms = zero  # the optional auxiliary and end-to-end terms, already weighted
        # NH(clean): the reference of every term but the HLC-only one.
        clean_heard = hear(delay_signal(clean, latency)) if self.variant != "hlc" else None
        if self.variant in ("joint", "nr", "cascade"):
            denoised = system.synthesize(spectrum, nr_db, length)
            nr_loss = auditory_distance(hear(denoised), clean_heard, self.distance)
            if self.nr_mask_weight > 0:
                extra_terms = self.nr_mask_weight * band_irm_mask_loss(system, spectrum, clean, nr_db)
        if self.variant in ("joint", "hlc"):
            compensated = system.synthesize(spectrum, hlc_db, length)
            target = hear(delay_signal(noisy, latency))
            hlc_loss = auditory_distance(hear(compensated, channel_loss_db), target, self.distance)
        combined_loss = None
        if self.combined_weight > 0:
            both = system.synthesize(spectrum, nr_db + hlc_db, length)
            combined_loss = auditory_distance(hear(both, channel_loss_db), clean_heard, self.distance)
            extra_terms = extra_terms + self.combined_weight * combined_loss
        if self.variant == "cascade":
            compensated = system.synthesize(spectrum, nr_db + hlc_db, length)
            hlc_loss = auditory_distance(hear(compensated, channel_loss_db), hear(denoised), self.distance)
        return LossTerms(self._combine(nr_loss, hlc_loss) + extra_terms, nr_loss, hlc_loss, combined_loss)

    def _combine(self, nr_loss: torch.Tensor, hlc_loss: torch.Tensor) -> torch.Tensor:
        active = {"joint": (1, 1), "nr": (1, 0), "hlc": (0, 1), "cascade": (1, 1)}[self.variant]
        if self.log_variances is None:
            return active[0] * self.fixed_weights[0] * nr_loss + active[1] * self.fixed_weights[1] * hlc_loss
        total = nr_loss.new_zeros(())
        for is_active, loss, log_variance in zip(active, (nr_loss, hlc_loss), self.log_variances):
            if is_active:
                total = total + torch.exp(-log_variance) * loss + log_variance
        return total


def band_irm_mask_loss(system: HearingAidSystem, noisy_spectrum: torch.Tensor, clean: torch.Tensor,
                       nr_db: torch.Tensor) -> torch.Tensor:
    """Mean |nr_db − band IRM (dB)| / |floor|; shapes (B, K, bins). See the module docstring."""
    network = system.networks[0]
    floor_db = network.config.nr_floor_db
    clean_spectrum = system.stft.stft(clean)
    pooling = system.features.pooling_matrix.to(clean_spectrum.real.dtype)  # (bins, bands)
    clean_power = (clean_spectrum.real**2 + clean_spectrum.imag**2) @ pooling
    noise_spectrum = noisy_spectrum - clean_spectrum
    noise_power = (noise_spectrum.real**2 + noise_spectrum.imag**2) @ pooling
    irm_db = 10.0 * torch.log10(clean_power / (clean_power + noise_power + 1e-12) + 1e-12)
    target_db = nn.functional.linear(irm_db.clamp(floor_db, 0.0), network.band_to_bin)
    return (nr_db - target_db.detach()).abs().mean() / abs(floor_db)
