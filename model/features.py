"""Per-frame network input: log power in ERB-spaced bands (numpy only: runs on a device agent).

The mask network sees one feature vector per STFT frame: the frame's power pooled into
``num_bands`` bands spaced on the ERB-number scale, in dB, with a fixed affine
normalisation. The torch twin (:mod:`hearmask.model.features_torch`, training) uses the
same matrices and gives the same values (tested).

Bands are "hat" (triangular) functions of frequency centred on ``centres_hz``; neighbouring
hats overlap so that the hats of all bands sum to 1 at every bin (a partition of unity).
The same hats serve both directions:

- bins -> bands (:attr:`BandLayout.analysis_matrix`, ``(num_bands, num_bins)``): each row
  is a hat normalised to sum 1, so a band's value is a weighted mean of bin powers;
- bands -> bins (:attr:`BandLayout.interpolation_matrix`, ``(num_bins, num_bands)``): the
  transposed hats, i.e. piecewise-linear interpolation in frequency between band centres
  (flat beyond the first and last centre); rows sum to 1, so interpolated values stay
  inside the range of the band values.

ERB-number scale: Glasberg & Moore, "Derivation of auditory filter shapes from
notched-noise data", Hearing Research 47, 1990: ``E(f) = 21.4·log10(1 + 0.00437·f)``.
Below about 350 Hz one ERB is narrower than a 62.5 Hz bin, so band centres are kept at
least one bin apart there (as RNNoise and DeepFilterNet do with their minimum band width);
above, they are equally spaced in ERB number up to Nyquist.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from functools import cached_property

import numpy as np

from hearmask.dataclass_dict import dataclass_from_dict
from hearmask.errors import HearmaskError
from hearmask.model.erb import erb_number, erb_number_to_hz
from hearmask.model.stft_config import StftConfig


def band_centres_hz(bin_frequencies_hz: np.ndarray, num_bands: int) -> np.ndarray:
    """Band centre frequencies in Hz, shape ``(num_bands,)``, strictly increasing.

    The first centre is the first non-DC bin, the last is the top bin (Nyquist). Each next
    centre is placed by spreading the remaining ERB-number span evenly over the remaining
    bands, but never closer than one bin spacing to the previous centre.
    """
    bin_frequencies_hz = np.asarray(bin_frequencies_hz, dtype=np.float64)
    num_bins = len(bin_frequencies_hz)
    if num_bands < 2 or num_bands > num_bins - 1:
        raise HearmaskError(
            f"num_bands must be between 2 and num_bins - 1 = {num_bins - 1} (one bin per band at least), "
            f"got {num_bands}"
        )
    bin_spacing_hz = bin_frequencies_hz[1] - bin_frequencies_hz[0]
    lowest_hz, highest_hz = bin_frequencies_hz[1], bin_frequencies_hz[-1]
    top_erb = erb_number(highest_hz)
    centres = [lowest_hz]
    for band in range(1, num_bands):
        remaining_bands = num_bands - band
        erb_step = (top_erb - erb_number(centres[-1])) / remaining_bands
        next_hz = float(erb_number_to_hz(erb_number(centres[-1]) + erb_step))
        centres.append(max(next_hz, centres[-1] + bin_spacing_hz))
    centres_hz = np.array(centres)
    if centres_hz[-1] > highest_hz + 1e-6 * bin_spacing_hz:
        # Only possible when nearly every bin is its own band; the check above keeps us out.
        raise HearmaskError(f"{num_bands} bands do not fit in {num_bins} bins")
    centres_hz[-1] = highest_hz
    return centres_hz


def hat_matrix(bin_frequencies_hz: np.ndarray, centres_hz: np.ndarray) -> np.ndarray:
    """Triangular weights ``(num_bands, num_bins)``; each column (bin) sums to exactly 1.

    Hat ``b`` rises linearly from centre ``b-1`` to centre ``b`` and falls to centre ``b+1``;
    the first hat is 1 below the first centre and the last is 1 above the last.
    """
    bin_frequencies_hz = np.asarray(bin_frequencies_hz, dtype=np.float64)
    # np.interp of a one-hot vector over the centres is exactly the hat of that band.
    eye = np.eye(len(centres_hz))
    return np.stack([np.interp(bin_frequencies_hz, centres_hz, eye[band]) for band in range(len(centres_hz))])


@dataclass(frozen=True)
class BandLayout:
    """ERB-spaced bands over the one-sided bins of an even-length FFT."""

    sample_rate_hz: int  # sample rate of the STFT, Hz
    num_bins: int  # one-sided bins, fft_size // 2 + 1 (fft_size even)
    num_bands: int  # bands the network works in

    def __post_init__(self) -> None:
        for field in ("sample_rate_hz", "num_bins", "num_bands"):
            value = getattr(self, field)
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value <= 0:
                raise HearmaskError(f"band layout {field} must be a positive integer, got {value!r}")
        if self.num_bins < 3:
            raise HearmaskError(f"band layout needs at least 3 bins, got {self.num_bins}")
        band_centres_hz(self.bin_frequencies_hz, self.num_bands)  # validates num_bands

    @classmethod
    def for_stft(cls, stft_config: StftConfig, num_bands: int) -> "BandLayout":
        if stft_config.fft_size % 2:
            raise HearmaskError(f"band features need an even FFT size, got {stft_config.fft_size}")
        return cls(stft_config.sample_rate_hz, stft_config.num_bins, num_bands)

    @property
    def bin_frequencies_hz(self) -> np.ndarray:
        """Bin centres in Hz, ``(num_bins,)``: 0 to Nyquist (even FFT length)."""
        return np.linspace(0.0, self.sample_rate_hz / 2.0, self.num_bins)

    @cached_property
    def centres_hz(self) -> np.ndarray:
        """Band centres in Hz, ``(num_bands,)``."""
        return band_centres_hz(self.bin_frequencies_hz, self.num_bands)

    @cached_property
    def analysis_matrix(self) -> np.ndarray:
        """bins -> bands pooling, float64 ``(num_bands, num_bins)``, non-negative, rows sum to 1."""
        hats = hat_matrix(self.bin_frequencies_hz, self.centres_hz)
        return hats / hats.sum(axis=1, keepdims=True)

    @cached_property
    def interpolation_matrix(self) -> np.ndarray:
        """bands -> bins linear interpolation, float64 ``(num_bins, num_bands)``, rows sum to 1."""
        return hat_matrix(self.bin_frequencies_hz, self.centres_hz).T.copy()


@dataclass(frozen=True)
class FeatureConfig:
    """Log band power features. Defaults put speech and noise at -90..+10 dB into [-1, 1]."""

    num_bands: int = 32  # ERB-spaced bands (= the network's feature size)
    floor_db: float = -90.0  # power floor, dB re unit-variance white noise; keeps log(0) finite
    offset_db: float = -40.0  # band level mapped to feature 0
    scale_db: float = 50.0  # dB per feature unit

    def __post_init__(self) -> None:
        if not isinstance(self.num_bands, (int, np.integer)) or isinstance(self.num_bands, bool) or self.num_bands < 2:
            raise HearmaskError(f"feature num_bands must be an integer >= 2, got {self.num_bands!r}")
        for field in ("floor_db", "offset_db", "scale_db"):
            value = getattr(self, field)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise HearmaskError(f"feature {field} must be a finite number of dB, got {value!r}")
        if self.scale_db <= 0:
            raise HearmaskError(f"feature scale_db must be > 0, got {self.scale_db}")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "FeatureConfig":
        return dataclass_from_dict(cls, values, "feature config")


def power_normaliser(stft_config: StftConfig) -> float:
    """``1 / sum(w_a²)``: scales ``|X|²`` so white noise of variance σ² reads σ² in every bin.

    Band levels are then in dB re a full-scale (variance 1) white noise, independent of
    the window.
    """
    analysis_window, _ = stft_config.windows()
    return float(1.0 / np.sum(analysis_window**2))


class BandFeatures:
    """Numpy feature extractor: spectrum ``(..., num_bins)`` complex -> features ``(..., num_bands)`` float32.

    ``feature = (10·log10(P_band + 10^(floor_db/10)) − offset_db) / scale_db`` with
    ``P_band = analysis_matrix @ (|X|² · power_normaliser)``. Works per hop ``(num_bins,)``
    or on any batch of frames.
    """

    def __init__(self, stft_config: StftConfig, feature_config: FeatureConfig = FeatureConfig()):
        self.stft_config = stft_config
        self.feature_config = feature_config
        self.layout = BandLayout.for_stft(stft_config, feature_config.num_bands)
        # Fold the power normaliser into the pooling matrix: one matmul per frame.
        self.pooling_matrix = self.layout.analysis_matrix * power_normaliser(stft_config)
        self.floor_power = 10.0 ** (feature_config.floor_db / 10.0)

    def __call__(self, spectrum: np.ndarray) -> np.ndarray:
        spectrum = np.asarray(spectrum)
        if spectrum.shape[-1:] != (self.stft_config.num_bins,):
            raise HearmaskError(
                f"features take spectra of shape (..., {self.stft_config.num_bins}), got {spectrum.shape}"
            )
        power = spectrum.real**2 + spectrum.imag**2
        band_power = power @ self.pooling_matrix.T
        config = self.feature_config
        level_db = 10.0 * np.log10(band_power + self.floor_power)
        return ((level_db - config.offset_db) / config.scale_db).astype(np.float32)
