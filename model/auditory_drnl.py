"""Dual-resonance nonlinear (DRNL) filterbank: the auditory model's optional front end.

After Lopez-Poveda & Meddis, "A human nonlinear cochlear filterbank", JASA 110 (2001)
3107-3118. Each channel sums two parallel paths driven by stapes velocity:

- **linear path:** gain ``g`` -> 2 cascaded gammatones (``CF_lin``, ``BW_lin``) -> 4 cascaded
  2nd-order Butterworth low-passes (cutoff ``LP_lin``);
- **nonlinear path:** 3 cascaded gammatones (``CF_nlin``, ``BW_nlin``) -> broken stick
  ``y = sign(x) min(a |x|, b |x|^c)`` -> 3 more gammatones (same CF, BW) -> 3 low-passes
  (cutoff ``LP_nlin``).

Every parameter ``p`` of a channel with centre frequency ``CF`` (Hz) follows the paper's
regression for the average normal listener, ``log10(p) = p0 + m log10(CF)`` (the paper's
regression table; coefficients as the AMT's ``arg_lopezpoveda2001``/``lopezpoveda2001``
give them, read there, not copied): see :data:`DRNL_REGRESSION`. The paper fitted CFs of 250-8000 Hz;
channels below 250 Hz use the regression extrapolated. A "gammatone" of order ``n`` here
is ``t^(n-1) exp(-2 pi BW t) cos(2 pi CF t)`` with unit gain at its CF: the impulse response
of ``n`` cascaded first-order gammatones as the DRNL implementations (DSAM, AMT) build
them, with the table's BW as the decay rate. The cascade counts are the paper's
(AMT defaults): linear 2 gammatones + 4 low-passes, nonlinear 3 + 3 gammatones + 3 low-passes.

How it runs here: each linear stretch is one causal FIR (``filter_length_samples`` taps,
designed in float64 once) applied by FFT convolution, the broken stick is elementwise. A
forward pass is one rFFT of the input, then per channel an inverse FFT, an rFFT and a
final inverse FFT (the two paths' spectra are summed first), with no loop over samples.
The backward pass is written by hand (:class:`_DrnlResponse`) so that it, too, needs only
three real FFTs per channel.

**Level calibration** (our signals: RMS 1.0 = ``full_scale_db_spl``). The paper drives the
DRNL with stapes velocity in m/s, after outer- and middle-ear filters. We model neither
filter (the gammatone front end has none either) and convert with the paper's middle-ear
gain at 1 kHz: a 0 dB SPL tone gives a peak stapes velocity of about 8.2e-9 m/s (their
Fig. 2b, after Goode et al. 1994). So a sample value ``s`` is the stapes velocity
``v = K s`` with ``K = 8.2e-9 m/s * 10^(full_scale_db_spl / 20) / sqrt(2)`` (5.8e-4 m/s at
100 dB SPL). Away from 1 kHz the real middle ear passes less (Fig. 2b: about -9 dB at
250 Hz, -15 dB at 4 kHz), so our high-CF channels start to compress at lower SPLs than the
paper's. The DRNL output (basilar-membrane velocity, m/s) is divided by the same ``K`` and
multiplied by ``10^(output_gain_db / 20)`` before the IHC stage. The computation stays in
these signal units: ``b`` becomes ``b K^(c-1)``; ``a`` and ``g`` are dimensionless.

Measured here with the defaults (32 channels, 16 kHz; tones at the channel CF; see
tests/model/test_auditory_drnl.py). With ``output_gain_db = -20`` the tone thresholds (IHC
envelope = ``eps``) of the DRNL ear and the gammatone ear agree within 1.5 dB from 150 Hz
to 4.4 kHz (e.g. 4.4 vs 4.7 dB SPL at 1.1 kHz); at 7.5 kHz the DRNL ear is 9.5 dB more
sensitive (-16.6 vs -7.1 dB SPL). The I/O function is linear (1.00 dB/dB) at low levels
and compressive (0.15-0.35 dB/dB) above a knee at about 50 dB SPL at 480 Hz, 35 dB at
1.1 kHz, 20 dB at 2.2 kHz, 10 dB at 4.4 kHz and 5 dB at 7.5 kHz; channels below ~300 Hz
stay linear up to ~90 dB SPL. From 70-80 dB SPL up (1.1-4.4 kHz) the linear path takes
over and the slope returns to ~1. Near the crossover the two paths partly cancel: at
4.4 kHz the response grows by only 1.6 dB from 40 to 70 dB SPL, with a 0.6 dB dip between
50 and 60 dB: the two paths differ in phase at CF, so their sum can dip as one overtakes
the other.

**Hearing loss.** An OHC loss of ``L_ohc`` dB lowers both ``a`` and ``b`` by ``L_ohc`` dB,
i.e. scales the whole nonlinear path by ``10^(-L_ohc/20)`` (the knee stays where it is).
Low levels, where the nonlinear path dominates, lose gain; high levels, where the linear
path dominates, lose little: reduced compression and recruitment, as in the gammatone
ear. Once the nonlinear path sits well below the linear one, more OHC loss changes little.
The normal nonlinear path's low-level advantage over the linear one (the most an OHC loss
can lower a soft tone's response) was measured as 7 dB at 150 Hz, 18 dB at 480 Hz, 27 dB
at 1.1 kHz, 35 dB at 2.2 kHz, 43 dB at 4.4 kHz and 57 dB at 7.5 kHz. Where the OHC share
of a loss (capped by ``ohc_max_loss_db``: 35-60 dB) exceeds this advantage, the excess has
almost no effect, so below ~2 kHz the DRNL ear's threshold shift is smaller than the
audiogram's. IHC loss is applied after the IHC stage as for the gammatone ear.
"""

from __future__ import annotations

import math

import numpy as np
import scipy.signal
import torch
from torch import nn

from hearmask.errors import HearmaskError
from hearmask.model.auditory_filterbank import (
    gammatone_impulse_responses,
    next_fast_fft_size,
)

# (p0, m) of log10(parameter) = p0 + m log10(CF / Hz); Lopez-Poveda & Meddis (2001), normal hearing.
DRNL_REGRESSION: dict[str, tuple[float, float]] = {
    "linear_cf_hz": (-0.06762, 1.01679),
    "linear_bandwidth_hz": (0.03728, 0.78563),
    "linear_gain": (4.20405, -0.47909),
    "linear_lowpass_cutoff_hz": (-0.06762, 1.01679),
    "nonlinear_cf_hz": (-0.05252, 1.01650),
    "nonlinear_bandwidth_hz": (-0.03193, 0.77426),
    "nonlinear_lowpass_cutoff_hz": (-0.05252, 1.01650),
    "a": (1.40298, 0.81916),  # broken-stick linear gain (dimensionless)
    "b": (1.61912, -0.81867),  # broken-stick compressive gain, (m/s)^(1 - c)
    "c": (-0.60206, 0.0),  # compression exponent: 0.25 at every CF
}
LINEAR_GAMMATONES = 2
LINEAR_LOWPASSES = 4
NONLINEAR_GAMMATONES = 3  # before the broken stick, and again after it
NONLINEAR_LOWPASSES = 3
# Peak stapes velocity for a 0 dB SPL tone at 1 kHz (Lopez-Poveda & Meddis 2001, Fig. 2b).
STAPES_PEAK_VELOCITY_0_DB_SPL_M_PER_S = 8.2e-9
# |x| below this counts as 0 in the compressive branch's power (only its mask matters there).
_SMALLEST_MAGNITUDE = 1e-30


def drnl_channel_parameters(center_frequencies_hz: np.ndarray) -> dict[str, np.ndarray]:
    """Every :data:`DRNL_REGRESSION` parameter at each CF: name -> float64 array (C,)."""
    log_cf = np.log10(np.asarray(center_frequencies_hz, dtype=np.float64))
    return {name: 10.0 ** (p0 + m * log_cf) for name, (p0, m) in DRNL_REGRESSION.items()}


def drnl_highest_center_frequency_hz(sample_rate_hz: float) -> float:
    """Largest channel CF whose DRNL filter frequencies (CFs, low-pass cutoffs) all stay
    below Nyquist. 7785 Hz at 16 kHz."""
    names = ("linear_cf_hz", "nonlinear_cf_hz", "linear_lowpass_cutoff_hz", "nonlinear_lowpass_cutoff_hz")
    nyquist_hz = sample_rate_hz / 2
    return min(10.0 ** ((math.log10(nyquist_hz) - DRNL_REGRESSION[name][0]) / DRNL_REGRESSION[name][1])
               for name in names)


def stapes_velocity_per_unit_m_per_s(full_scale_db_spl: float) -> float:
    """``K``: stapes velocity in m/s of a sample value 1.0 (module docstring)."""
    return STAPES_PEAK_VELOCITY_0_DB_SPL_M_PER_S * 10.0 ** (full_scale_db_spl / 20.0) / math.sqrt(2.0)


def _butterworth_cascade(fir: np.ndarray, cutoffs_hz: np.ndarray, count: int, sample_rate_hz: float) -> np.ndarray:
    """Each row of ``fir`` (C, L) passed ``count`` times through a 2nd-order Butterworth
    low-pass (unit gain at DC) at that row's cutoff; truncated to L."""
    filtered = fir.copy()
    for row, cutoff_hz in enumerate(cutoffs_hz):
        sections = scipy.signal.butter(2, cutoff_hz, btype="low", fs=sample_rate_hz, output="sos")
        filtered[row] = scipy.signal.sosfilt(np.repeat(sections, count, axis=0), fir[row])
    return filtered


def drnl_impulse_responses(
    center_frequencies_hz: np.ndarray, sample_rate_hz: float, length_samples: int
) -> dict[str, np.ndarray]:
    """The three linear stretches of each channel as causal FIRs, float64, each (C, L):

    - ``linear``: ``g`` x 2 gammatones x 4 low-passes (the whole linear path);
    - ``nonlinear_before``: 3 gammatones (before the broken stick);
    - ``nonlinear_after``: 3 gammatones x 3 low-passes (after it).
    """
    params = drnl_channel_parameters(center_frequencies_hz)
    highest_hz = drnl_highest_center_frequency_hz(sample_rate_hz)
    if np.max(center_frequencies_hz) >= highest_hz:
        raise HearmaskError(
            f"DRNL channels need CF < {highest_hz:.0f} Hz at {sample_rate_hz:g} Hz (else a DRNL "
            f"filter frequency passes Nyquist), got {np.max(center_frequencies_hz):g} Hz"
        )
    linear_gammatone = gammatone_impulse_responses(
        params["linear_cf_hz"], sample_rate_hz, length_samples,
        bandwidths_hz=params["linear_bandwidth_hz"], order=LINEAR_GAMMATONES,
    )
    nonlinear_gammatone = gammatone_impulse_responses(
        params["nonlinear_cf_hz"], sample_rate_hz, length_samples,
        bandwidths_hz=params["nonlinear_bandwidth_hz"], order=NONLINEAR_GAMMATONES,
    )
    linear = _butterworth_cascade(
        linear_gammatone, params["linear_lowpass_cutoff_hz"], LINEAR_LOWPASSES, sample_rate_hz
    )
    return {
        "linear": params["linear_gain"][:, None] * linear,
        "nonlinear_before": nonlinear_gammatone,
        "nonlinear_after": _butterworth_cascade(
            nonlinear_gammatone, params["nonlinear_lowpass_cutoff_hz"], NONLINEAR_LOWPASSES, sample_rate_hz
        ),
    }


def broken_stick(signal: torch.Tensor, linear_gain: torch.Tensor, compressive_gain: torch.Tensor,
                 exponent: float, knee: torch.Tensor) -> torch.Tensor:
    """``sign(x) min(a |x|, b |x|^c)``, elementwise; ``a``, ``b``, ``knee`` broadcast to x.

    ``knee = (b / a)^(1 / (1 - c))`` is where the branches meet (precomputed). The
    compressive branch's power is only taken of ``max(|x|, tiny)``, so nothing is inf at 0.
    """
    magnitude = signal.abs()
    compressed = magnitude.clamp_min(_SMALLEST_MAGNITUDE).pow_(exponent).mul_(compressive_gain)
    return torch.copysign(torch.where(magnitude <= knee, magnitude * linear_gain, compressed), signal)


def broken_stick_slope(signal: torch.Tensor, output: torch.Tensor, linear_gain: torch.Tensor,
                       exponent: float, knee: torch.Tensor) -> torch.Tensor:
    """d output / d signal of :func:`broken_stick`, given its ``output``: ``a`` on the linear
    branch (|x| <= knee, also at 0), ``c b |x|^(c-1) = c y / x`` on the compressive one
    (|x| > knee > 0, so the division is safe; the masked-out entries divide by 1)."""
    on_linear_branch = signal.abs() <= knee
    compressive_slope = (output / torch.where(on_linear_branch, 1.0, signal)).mul_(exponent)
    return torch.where(on_linear_branch, linear_gain, compressive_slope)


class _DrnlResponse(torch.autograd.Function):
    """The DRNL from signal spectrum to output, with a hand-written backward.

    Autograd's own backward of ``rfft`` is a full complex FFT of the padded gradient; here
    every large transform in backward is real: forward = irfft, rfft, irfft per channel,
    backward = rfft, irfft, rfft per channel (the per-signal ones are B times smaller).
    Gradients flow to ``signal`` and ``path_scale`` (the OHC-loss factor of the nonlinear
    path, (B, C, 1)); the filters and broken-stick constants are fixed.
    """

    @staticmethod
    def forward(ctx, signal, path_scale, spectra, stick, fft_size: int):
        before_spectrum, after_spectrum, linear_spectrum = spectra
        linear_gain, compressive_gain, exponent, knee = stick
        num_samples = signal.shape[-1]
        signal_spectrum = torch.fft.rfft(signal, n=fft_size)[:, None, :]  # (B, 1, F)
        before = torch.fft.irfft(signal_spectrum * before_spectrum, n=fft_size)[..., :num_samples]
        nonlinear = broken_stick(before, linear_gain, compressive_gain, exponent, knee)
        # Both paths end in linear filters: sum their spectra, one inverse FFT per channel.
        summed = (torch.fft.rfft(nonlinear * path_scale, n=fft_size) * after_spectrum
                  + signal_spectrum * linear_spectrum)
        ctx.save_for_backward(before, nonlinear, path_scale)
        ctx.spectra, ctx.stick, ctx.fft_size = spectra, stick, fft_size
        return torch.fft.irfft(summed, n=fft_size)[..., :num_samples]

    @staticmethod
    def backward(ctx, grad_output):
        before, nonlinear, path_scale = ctx.saved_tensors
        before_spectrum, after_spectrum, linear_spectrum = ctx.spectra
        linear_gain, _, exponent, knee = ctx.stick
        fft_size, num_samples = ctx.fft_size, grad_output.shape[-1]
        # Adjoint of a causal convolution truncated to T: correlate, i.e. multiply by the
        # conjugate spectrum (the zero padding of rfft keeps the wrap-around out of [0, T)).
        grad_spectrum = torch.fft.rfft(grad_output, n=fft_size)
        grad_scaled = torch.fft.irfft(grad_spectrum * after_spectrum.conj(), n=fft_size)[..., :num_samples]
        grad_scale = None
        if ctx.needs_input_grad[1]:
            grad_scale = (grad_scaled * nonlinear).sum(-1, keepdim=True).sum_to_size(path_scale.shape)
        slope = broken_stick_slope(before, nonlinear, linear_gain, exponent, knee)
        grad_before = grad_scaled.mul_(path_scale).mul_(slope)
        grad_signal_spectrum = (torch.fft.rfft(grad_before, n=fft_size) * before_spectrum.conj()
                                + grad_spectrum * linear_spectrum.conj()).sum(dim=1)
        grad_signal = torch.fft.irfft(grad_signal_spectrum, n=fft_size)[..., :num_samples]
        return grad_signal, grad_scale, None, None, None


class DrnlFilterbank(nn.Module):
    """DRNL basilar-membrane response, (B, T) signal -> (B, C, T), in IHC-input units.

    Input: RMS 1 = ``full_scale_db_spl``. Output: basilar-membrane velocity / ``K`` x
    ``10^(output_gain_db / 20)`` (module docstring). Causal: output sample t depends on
    input samples <= t only.
    """

    def __init__(self, center_frequencies_hz: np.ndarray, sample_rate_hz: float, filter_length_samples: int,
                 full_scale_db_spl: float, output_gain_db: float) -> None:
        super().__init__()
        self.filter_length_samples = filter_length_samples
        params = drnl_channel_parameters(center_frequencies_hz)
        exponents = np.unique(params["c"])
        if exponents.size != 1:  # the published regression has m = 0 for c
            raise HearmaskError(f"DRNL_REGRESSION['c'] must not depend on CF, got exponents {exponents}")
        self.exponent = float(exponents[0])
        # b in signal units: b |K s|^c / K = (b K^(c-1)) |s|^c.
        velocity_per_unit = stapes_velocity_per_unit_m_per_s(full_scale_db_spl)
        compressive_gain = params["b"] * velocity_per_unit ** (self.exponent - 1.0)
        output_scale = 10.0 ** (output_gain_db / 20.0)
        responses = drnl_impulse_responses(center_frequencies_hz, sample_rate_hz, filter_length_samples)
        buffers = {
            "linear_response": output_scale * responses["linear"],
            "nonlinear_before_response": responses["nonlinear_before"],
            "nonlinear_after_response": output_scale * responses["nonlinear_after"],
            "linear_gain": params["a"][:, None],
            "compressive_gain": compressive_gain[:, None],
            "knee": ((compressive_gain / params["a"]) ** (1.0 / (1.0 - self.exponent)))[:, None],
        }
        # Not persistent: everything follows from the auditory model's config.
        for name, value in buffers.items():
            self.register_buffer(name, torch.tensor(value, dtype=torch.get_default_dtype()), persistent=False)

    def forward(self, signal: torch.Tensor, ohc_loss_db: torch.Tensor | None = None) -> torch.Tensor:
        """``signal`` (B, T); ``ohc_loss_db`` (B, C) or None (normal). Returns (B, C, T)."""
        fft_size = next_fast_fft_size(signal.shape[-1] + self.filter_length_samples - 1)
        dtype = signal.dtype
        spectra = tuple(
            torch.fft.rfft(response.to(dtype), n=fft_size)
            for response in (self.nonlinear_before_response, self.nonlinear_after_response, self.linear_response)
        )
        stick = (self.linear_gain.to(dtype), self.compressive_gain.to(dtype), self.exponent, self.knee.to(dtype))
        if ohc_loss_db is None:
            path_scale = signal.new_ones(1, self.linear_gain.shape[0], 1)
        else:  # a and b both lower by the OHC loss: the whole nonlinear path scales
            path_scale = torch.pow(10.0, -ohc_loss_db.to(dtype) / 20.0).unsqueeze(-1)
        return _DrnlResponse.apply(signal, path_scale, spectra, stick, fft_size)
