"""Linear stages of the auditory model: ERB-spaced gammatone FIRs, the IHC low-pass.

The impulse responses are designed in numpy (float64) once, when the model is built;
:func:`fft_convolve_causal` applies them to a batch in torch with one real FFT per
signal and one inverse FFT per (signal, channel), so training never loops over samples.

Sources
-------
- ERB and ERB-number scale: Glasberg & Moore, "Derivation of auditory filter shapes from
  notched-noise data", Hearing Research 47 (1990) 103-138:
  ``ERB(f) = 24.7 (4.37 f/1000 + 1)`` Hz and ``ERB-number(f) = 21.4 log10(4.37 f/1000 + 1)``.
- Gammatone: Patterson et al., "Complex sounds and auditory images" (1992);
  ``g(t) = t^(n-1) exp(-2 pi b t) cos(2 pi fc t)`` with ``n = 4`` and
  ``b = 1.019 ERB(fc)``, which gives the 4th-order filter an equivalent rectangular
  bandwidth of ERB(fc) (the factor is ``1 / (pi (2n-2)! 2^-(2n-2) / ((n-1)!)^2)``).
"""

from __future__ import annotations

import math

import numpy as np
import scipy.signal
import torch

from hearmask.model.erb import erb_bandwidth_hz, erb_number, erb_number_to_hz, erb_spaced_frequencies_hz  # noqa: F401 (re-exported)

# Gammatone order. The bandwidth factor below is exact only for this order.
GAMMATONE_ORDER = 4
# b / ERB for a 4th-order gammatone: pi * 6! / (2^6 * 3!^2) = 0.9817..., inverted.
GAMMATONE_BANDWIDTH_PER_ERB = 1.0 / (math.pi * math.factorial(6) / (2**6 * math.factorial(3) ** 2))


def gammatone_impulse_responses(
    center_frequencies_hz: np.ndarray,
    sample_rate_hz: float,
    length_samples: int,
    *,
    bandwidths_hz: np.ndarray | None = None,
    order: int = GAMMATONE_ORDER,
) -> np.ndarray:
    """Truncated, causal gammatone FIRs, one per centre frequency.

    Each response starts at sample 0 (causal, cosine phase) and is scaled so that its
    DTFT magnitude at its own centre frequency is exactly 1 (0 dB at fc).

    Args:
        center_frequencies_hz: shape (C,), each in (0, sample_rate_hz / 2).
        sample_rate_hz: sampling rate in Hz.
        length_samples: FIR length L. The response decays as ``t^3 exp(-2 pi b t)``; at
            80 Hz (b ~ 34 Hz) 1024 samples at 16 kHz keep the measured ERB within 0.2 %.
        bandwidths_hz: the ``b`` of ``exp(-2 pi b t)`` per channel, shape (C,); None
            (default) gives ``1.019 ERB(fc)``, the auditory-filter width of a 4th order.
        order: ``n`` in ``t^(n-1)``; a cascade of ``n`` first-order gammatones (the DRNL's
            "number of cascaded gammatone filters") has this impulse response.

    Returns:
        float64 array of shape (C, L).
    """
    center_frequencies_hz = np.asarray(center_frequencies_hz, dtype=np.float64)[:, None]
    time_s = np.arange(length_samples, dtype=np.float64)[None, :] / sample_rate_hz
    if bandwidths_hz is None:
        bandwidth_hz = GAMMATONE_BANDWIDTH_PER_ERB * erb_bandwidth_hz(center_frequencies_hz)
    else:
        bandwidth_hz = np.asarray(bandwidths_hz, dtype=np.float64)[:, None]
    envelope = time_s ** (order - 1) * np.exp(-2.0 * np.pi * bandwidth_hz * time_s)
    responses = envelope * np.cos(2.0 * np.pi * center_frequencies_hz * time_s)
    gain_at_center = np.abs(
        np.sum(responses * np.exp(-2j * np.pi * center_frequencies_hz * time_s), axis=1)
    )
    return responses / gain_at_center[:, None]


def butterworth_lowpass_impulse_response(
    cutoff_hz: float, sample_rate_hz: float, length_samples: int
) -> np.ndarray:
    """First ``length_samples`` of a 2nd-order Butterworth low-pass's impulse response.

    The IIR (bilinear transform, ``scipy.signal.butter(2, cutoff_hz)``) is truncated to an
    FIR so torch can apply it as a convolution; the taps are rescaled to sum to 1 (0 dB at
    DC). At 1 kHz / 16 kHz the response has decayed below 1e-7 after 64 samples. Shape (L,),
    float64. Note the Butterworth response has a small negative lobe (~ -1 % of its peak).
    """
    numerator, denominator = scipy.signal.butter(2, cutoff_hz, btype="low", fs=sample_rate_hz)
    impulse = np.zeros(length_samples)
    impulse[0] = 1.0
    response = scipy.signal.lfilter(numerator, denominator, impulse)
    return response / np.sum(response)


def fft_convolve_causal(
    signal: torch.Tensor, impulse_responses_spectrum: torch.Tensor, fft_size: int
) -> torch.Tensor:
    """Causal linear convolution of every signal with every FIR, by FFT.

    Args:
        signal: shape (B, T), real.
        impulse_responses_spectrum: ``torch.fft.rfft(h, fft_size)`` of the FIRs ``h`` of
            shape (C, L), i.e. shape (C, fft_size // 2 + 1), complex.
        fft_size: FFT length, at least ``T + L - 1`` so no output sample wraps around.

    Returns:
        shape (B, C, T): ``y[b, c, t] = sum_k h[c, k] x[b, t - k]`` (zero before t = 0).
    """
    num_samples = signal.shape[-1]
    signal_spectrum = torch.fft.rfft(signal, n=fft_size)  # (B, F)
    product = signal_spectrum[:, None, :] * impulse_responses_spectrum[None, :, :]
    return torch.fft.irfft(product, n=fft_size)[..., :num_samples]


def next_fast_fft_size(minimum_size: int) -> int:
    """Smallest 2^a 3^b 5^c >= ``minimum_size`` (sizes pocketfft transforms fastest)."""
    best = 1 << max(0, (minimum_size - 1).bit_length())
    power5 = 1
    while power5 < best:
        power35 = power5
        while power35 < best:
            size = power35
            while size < minimum_size:
                size *= 2
            best = min(best, size)
            power35 *= 3
        power5 *= 5
    return best
