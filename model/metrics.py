"""Speech-quality and intelligibility metrics (DESIGN.md "Metrics"), one call per signal pair.

Every function takes a clean ``reference`` and a ``processed`` signal: mono, 1-D, the same
length, already time-aligned (the caller removes any processing delay; see
:mod:`hearmask.model.evaluate`), and returns a Python float. Bad input raises
:class:`~hearmask.errors.HearmaskError`, never a library's own exception.

- :func:`pesq_wb`: wide-band PESQ (ITU-T P.862.2), the ``pesq`` package; MOS-LQO 1.04-4.64.
- :func:`estoi`: extended STOI (Jensen & Taal, IEEE/ACM TASLP 24(11), 2016), ``pystoi``.
- :func:`si_sdr_db`: scale-invariant SDR (Le Roux, Wisdom, Erdogan & Hershey, "SDR - half-baked
  or well done?", ICASSP 2019), implemented here (eq. 2-3 of the paper, zero-mean signals).
- :func:`haspi_v2`, :func:`hasqi_v2`: Kates & Arehart's hearing-aid speech perception / quality
  indices, version 2, from pyclarity (``clarity.evaluator``), with the listener's audiogram.

Level calibration of HASPI/HASQI: pyclarity's ``level1`` is the SPL of a signal with RMS 1.
Here the caller states the presentation level of the *reference* instead:
``reference_level_db_spl`` is the SPL of the reference's active speech level (the energy
detector of :mod:`hearmask.model.data.mixer`, which also defines the mixing level).
The processed signal is given the same calibration, so any gain the processing applied
(compensation) reaches the ear model intact.

Cost per call on 3 s of speech, CPU time on this project's 2-core machine (shared with
training runs): HASPI v2 1.8-2.0 s and HASQI v2 1.8-2.0 s (0.6-0.67 s per second of audio
each), PESQ 0.04 s, ESTOI 0.06 s, SI-SDR < 1 ms. ``benchmarks/bench_metrics.py`` re-measures.
"""

from __future__ import annotations

import math
import warnings

import numpy as np

from hearmask.errors import HearmaskError
from hearmask.profiles.audiogram import Audiogram
from hearmask.profiles.interpolate import interpolate_db_hl

PESQ_SAMPLE_RATE_HZ = 16000
# Shortest signal every metric here accepts: PESQ needs 0.25 s, ESTOI 30 frames of
# 12.8 ms after silence removal, HASPI's modulation filters need a few envelope periods.
MIN_DURATION_S = 0.5
# pyclarity's HASPI/HASQI read the audiogram at these frequencies (Hz).
CLARITY_AUDIOGRAM_FREQUENCIES_HZ: tuple[float, ...] = (250.0, 500.0, 1000.0, 2000.0, 4000.0, 6000.0)
# SI-SDR of a perfect estimate is infinite; this cap keeps reports finite (JSON has no inf).
SI_SDR_CAP_DB = 200.0


def _check_pair(reference, processed, sample_rate_hz: float, metric: str) -> tuple[np.ndarray, np.ndarray]:
    """Validate a (reference, processed) pair; return both as float64 1-D arrays."""
    if not (isinstance(sample_rate_hz, (int, float)) and math.isfinite(sample_rate_hz) and sample_rate_hz > 0):
        raise HearmaskError(f"{metric}: sample rate {sample_rate_hz!r} Hz is not a positive number")
    arrays = []
    for label, signal in (("reference", reference), ("processed", processed)):
        array = np.asarray(signal, dtype=np.float64)
        if array.ndim != 1:
            raise HearmaskError(f"{metric}: {label} signal must be mono (1-D), got shape {array.shape}")
        if not np.all(np.isfinite(array)):
            raise HearmaskError(f"{metric}: {label} signal holds NaN or inf samples; expected finite audio")
        arrays.append(array)
    reference, processed = arrays
    if reference.size != processed.size:
        raise HearmaskError(
            f"{metric}: reference has {reference.size} samples and processed {processed.size}; "
            "expected equal lengths of time-aligned signals"
        )
    min_samples = int(math.ceil(MIN_DURATION_S * sample_rate_hz))
    if reference.size < min_samples:
        raise HearmaskError(
            f"{metric}: signals are {reference.size / sample_rate_hz:.3f} s long; at least "
            f"{MIN_DURATION_S} s ({min_samples} samples at {sample_rate_hz:g} Hz) is needed"
        )
    if not np.any(reference):
        raise HearmaskError(f"{metric}: the reference signal is digital silence; expected speech")
    return reference, processed


def _at_pesq_rate(signal: np.ndarray, sample_rate_hz: float) -> np.ndarray:
    if int(sample_rate_hz) == PESQ_SAMPLE_RATE_HZ:
        return signal
    from hearmask.model.data.audio import to_model_rate

    return np.asarray(to_model_rate(signal.astype(np.float32), int(sample_rate_hz)), dtype=np.float64)


def pesq_wb(reference, processed, sample_rate_hz: float = PESQ_SAMPLE_RATE_HZ) -> float:
    """Wide-band PESQ MOS-LQO of ``processed`` against ``reference``; other rates are resampled to 16 kHz."""
    from pesq import PesqError, pesq

    reference, processed = _check_pair(reference, processed, sample_rate_hz, "PESQ")
    reference = _at_pesq_rate(reference, sample_rate_hz)
    processed = _at_pesq_rate(processed, sample_rate_hz)
    if not np.any(processed):
        raise HearmaskError("PESQ: the processed signal is digital silence; PESQ is undefined for it")
    try:
        return float(pesq(PESQ_SAMPLE_RATE_HZ, reference, processed, "wb"))
    except PesqError as error:
        message = error.args[0].decode() if error.args and isinstance(error.args[0], bytes) else str(error)
        raise HearmaskError(f"PESQ failed: {message}") from None


def estoi(reference, processed, sample_rate_hz: float) -> float:
    """Extended STOI of ``processed`` against ``reference`` (about 0-1, higher is better)."""
    from pystoi import stoi

    reference, processed = _check_pair(reference, processed, sample_rate_hz, "ESTOI")
    with warnings.catch_warnings():
        # pystoi warns and returns 1e-5 when too few non-silent frames remain; make it an error.
        warnings.simplefilter("error", RuntimeWarning)
        try:
            return float(stoi(reference, processed, int(sample_rate_hz), extended=True))
        except RuntimeWarning as warning:
            raise HearmaskError(
                f"ESTOI: {warning}; the reference has too little active speech (need about 0.4 s "
                "within 40 dB of its loudest frame)"
            ) from None


def si_sdr_db(reference, processed) -> float:
    """Scale-invariant SDR in dB (Le Roux et al., ICASSP 2019), capped at :data:`SI_SDR_CAP_DB`.

    Both signals are made zero-mean; the target is the projection of ``processed`` on
    ``reference``: ``s_t = (<p, r> / ||r||²) r``, ``SI-SDR = 10 log10(||s_t||² / ||p - s_t||²)``.
    Invariant to the scale of ``processed``. Needs equal lengths, no minimum duration.
    """
    reference = np.asarray(reference, dtype=np.float64)
    processed = np.asarray(processed, dtype=np.float64)
    if reference.ndim != 1 or reference.shape != processed.shape or reference.size == 0:
        raise HearmaskError(
            f"SI-SDR: expected two non-empty 1-D signals of equal length, got shapes {reference.shape} "
            f"and {processed.shape}"
        )
    if not (np.all(np.isfinite(reference)) and np.all(np.isfinite(processed))):
        raise HearmaskError("SI-SDR: the signals hold NaN or inf samples; expected finite audio")
    reference = reference - reference.mean()
    processed = processed - processed.mean()
    reference_energy = float(np.dot(reference, reference))
    if reference_energy == 0.0:
        raise HearmaskError("SI-SDR: the reference is constant (silence); expected speech")
    target = (np.dot(processed, reference) / reference_energy) * reference
    target_energy = float(np.dot(target, target))
    error_energy = float(np.sum((processed - target) ** 2))
    if target_energy == 0.0:
        return -SI_SDR_CAP_DB  # processed is orthogonal to (or silent against) the reference
    if error_energy <= target_energy * 10.0 ** (-SI_SDR_CAP_DB / 10.0):
        return SI_SDR_CAP_DB
    return float(max(-SI_SDR_CAP_DB, 10.0 * np.log10(target_energy / error_energy)))


def clarity_audiogram(audiogram: Audiogram):
    """Our audiogram as pyclarity's, at :data:`CLARITY_AUDIOGRAM_FREQUENCIES_HZ`.

    Interpolated linearly on log-frequency, flat outside the measured range (the same rule
    as the network input), so pyclarity's own resampling is then a no-op.
    """
    from clarity.utils.audiogram import Audiogram as ClarityAudiogram

    levels_db_hl = interpolate_db_hl(audiogram.frequencies_hz, audiogram.thresholds_db_hl,
                                     CLARITY_AUDIOGRAM_FREQUENCIES_HZ)
    return ClarityAudiogram(levels=np.asarray(levels_db_hl, dtype=np.float64),
                            frequencies=np.asarray(CLARITY_AUDIOGRAM_FREQUENCIES_HZ))


def full_scale_db_spl(reference: np.ndarray, sample_rate_hz: float, reference_level_db_spl: float) -> float:
    """pyclarity's ``level1`` (SPL of RMS 1) that puts the reference's active speech level at the given SPL."""
    from hearmask.model.data.mixer import active_speech_power

    if not (math.isfinite(reference_level_db_spl) and 0.0 < reference_level_db_spl <= 120.0):
        raise HearmaskError(f"presentation level {reference_level_db_spl!r} dB SPL; expected 0-120 dB SPL")
    power = active_speech_power(reference, int(sample_rate_hz))
    return float(reference_level_db_spl - 10.0 * np.log10(power))


def _ear_model_inputs(reference, processed, sample_rate_hz, audiogram, reference_level_db_spl, metric):
    if not isinstance(audiogram, Audiogram):
        raise HearmaskError(f"{metric}: audiogram must be a hearmask Audiogram, got {type(audiogram).__name__}")
    reference, processed = _check_pair(reference, processed, sample_rate_hz, metric)
    level1_db_spl = full_scale_db_spl(reference, sample_rate_hz, reference_level_db_spl)
    return reference, processed, clarity_audiogram(audiogram), level1_db_spl


def haspi_v2(reference, processed, sample_rate_hz: float, audiogram: Audiogram,
             reference_level_db_spl: float = 65.0) -> float:
    """HASPI v2 (0-1) of ``processed`` heard by ``audiogram``'s listener; ``reference`` heard normally.

    ``reference_level_db_spl``: SPL of the reference's active speech level; the processed
    signal shares the calibration (module docstring). The reference must not be amplified.
    """
    from clarity.evaluator.haspi import haspi_v2 as clarity_haspi_v2

    reference, processed, listener, level1_db_spl = _ear_model_inputs(
        reference, processed, sample_rate_hz, audiogram, reference_level_db_spl, "HASPI")
    score, _ = clarity_haspi_v2(reference, sample_rate_hz, processed, sample_rate_hz, listener, level1_db_spl)
    return float(score)


def hasqi_v2(reference, processed, sample_rate_hz: float, audiogram: Audiogram,
             reference_level_db_spl: float = 65.0) -> float:
    """HASQI v2 combined quality (0-1) of ``processed`` for ``audiogram``'s listener.

    As pyclarity does by default (``equalisation=1``), the reference is NAL-R-equalised for
    the listener inside the ear model and both signals pass the impaired ear.
    """
    from clarity.evaluator.hasqi import hasqi_v2 as clarity_hasqi_v2

    reference, processed, listener, level1_db_spl = _ear_model_inputs(
        reference, processed, sample_rate_hz, audiogram, reference_level_db_spl, "HASQI")
    combined, _, _, _ = clarity_hasqi_v2(reference, sample_rate_hz, processed, sample_rate_hz, listener,
                                         equalisation=1, level1=level1_db_spl)
    return float(combined)
