"""Procedural noise, seeded, float32, at 16 kHz (or any rate).

Every generator returns shape ``(num_samples,)`` normalised to an RMS of
``NOISE_RMS_DBFS`` (-20 dBFS); impulsive kinds may peak above that by their crest factor.
The mixer rescales noise to the wanted SNR, so this level only matters for writing noise
on its own. ``make_noise(kind, …)`` dispatches over :data:`NOISE_KINDS`.

Coloured noise is white Gaussian noise shaped in the frequency domain so that its power
spectral density falls by ``slope_db_per_octave``: 0 (white), -3.01 (pink, 1/f), -6.02
(brown, 1/f²). Below ``min_frequency_hz`` (20 Hz) the spectrum is held flat, so that brown
noise is not dominated by its lowest bins; the DC bin is zero.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.signal import iirpeak, lfilter, welch

from hearmask.errors import HearmaskError
from hearmask.model.data.audio import MODEL_SAMPLE_RATE_HZ
from hearmask.model.data.sources import SpeechSource, draw_speech_segment

NOISE_KINDS = ("white", "pink", "brown", "modulated", "babble", "speech_shaped", "transients", "hum", "tones")
#: Kinds built from speech: they need a speech source (espeak-ng by default).
SPEECH_NOISE_KINDS = ("babble", "speech_shaped")
NOISE_RMS_DBFS = -20.0
PINK_SLOPE_DB_PER_OCTAVE = -10.0 * math.log10(2.0)  # -3.01 dB/octave: PSD ∝ 1/f
BROWN_SLOPE_DB_PER_OCTAVE = -20.0 * math.log10(2.0)  # -6.02 dB/octave: PSD ∝ 1/f²


def _normalise(noise: np.ndarray) -> np.ndarray:
    rms = float(np.sqrt(np.mean(np.square(noise, dtype=np.float64))))
    if rms <= 0.0:
        raise HearmaskError("generated noise is digital silence; this is a bug in the noise generator")
    return (noise * (10.0 ** (NOISE_RMS_DBFS / 20.0) / rms)).astype(np.float32)


def _check_request(num_samples: int, sample_rate_hz: int) -> None:
    if int(num_samples) < 1:
        raise HearmaskError(f"num_samples={num_samples}; expected at least 1")
    if int(sample_rate_hz) <= 0:
        raise HearmaskError(f"sample_rate_hz={sample_rate_hz}; expected a positive rate")


def _shape_spectrum(white: np.ndarray, amplitude_of: np.ndarray) -> np.ndarray:
    """Multiply the spectrum of ``white`` by ``amplitude_of`` (one gain per rfft bin)."""
    return np.fft.irfft(np.fft.rfft(white) * amplitude_of, n=white.size)


def coloured_noise(num_samples: int, slope_db_per_octave: float, rng: np.random.Generator,
                   sample_rate_hz: int = MODEL_SAMPLE_RATE_HZ, min_frequency_hz: float = 20.0) -> np.ndarray:
    """Gaussian noise whose PSD changes by ``slope_db_per_octave`` per octave (see module docstring)."""
    _check_request(num_samples, sample_rate_hz)
    white = rng.standard_normal(num_samples)
    if slope_db_per_octave == 0.0:
        return _normalise(white)
    frequencies_hz = np.fft.rfftfreq(num_samples, 1.0 / sample_rate_hz)
    exponent = slope_db_per_octave / (20.0 * math.log10(2.0))  # amplitude ∝ f^exponent
    amplitude = (np.maximum(frequencies_hz, min_frequency_hz) / 1000.0) ** exponent
    amplitude[0] = 0.0
    return _normalise(_shape_spectrum(white, amplitude))


def modulated_noise(num_samples: int, sample_rate_hz: int, rng: np.random.Generator) -> np.ndarray:
    """Coloured noise (slope -6..0 dB/oct) under a sinusoidal envelope of 0.5-10 Hz, depth 0.5-1."""
    carrier = coloured_noise(num_samples, float(rng.uniform(-6.0, 0.0)), rng, sample_rate_hz)
    rate_hz = float(rng.uniform(0.5, 10.0))
    depth = float(rng.uniform(0.5, 1.0))
    time_s = np.arange(num_samples) / sample_rate_hz
    envelope = 1.0 + depth * np.sin(2.0 * np.pi * rate_hz * time_s + rng.uniform(0.0, 2.0 * np.pi))
    return _normalise(carrier * envelope)


def _default_speech_source() -> SpeechSource:
    from hearmask.model.data.tts import EspeakSpeech  # imported late: it checks for espeak-ng

    return EspeakSpeech()


def babble_noise(num_samples: int, sample_rate_hz: int, rng: np.random.Generator,
                 speech_source: SpeechSource | None = None, num_talkers: int | None = None) -> np.ndarray:
    """The sum of ``num_talkers`` (default: 3-8, random) independent talkers at equal active level.

    Each talker is a stretch of random utterances of ``speech_source`` (espeak-ng if None),
    see :func:`~hearmask.model.data.sources.draw_speech_segment`.
    """
    _check_request(num_samples, sample_rate_hz)
    if sample_rate_hz != MODEL_SAMPLE_RATE_HZ:
        raise HearmaskError(f"babble is built from 16 kHz speech; got sample_rate_hz={sample_rate_hz}")
    source = speech_source if speech_source is not None else _default_speech_source()
    talkers = int(num_talkers) if num_talkers is not None else int(rng.integers(3, 9))
    if talkers < 1:
        raise HearmaskError(f"num_talkers={talkers}; expected at least 1")
    babble = np.zeros(num_samples, dtype=np.float64)
    for _ in range(talkers):
        talker, _ = draw_speech_segment(source, num_samples, rng)
        rms = float(np.sqrt(np.mean(np.square(talker, dtype=np.float64))))
        if rms > 0.0:
            babble += talker / rms
    return _normalise(babble)


def speech_shaped_noise(num_samples: int, sample_rate_hz: int, rng: np.random.Generator,
                        speech: np.ndarray | None = None, speech_source: SpeechSource | None = None) -> np.ndarray:
    """Gaussian noise with the long-term spectrum of ``speech`` (or of 4 random utterances).

    The long-term spectrum is a Welch estimate with 512-sample Hann segments; white noise
    is shaped by its square root in the frequency domain.
    """
    _check_request(num_samples, sample_rate_hz)
    if speech is None:
        source = speech_source if speech_source is not None else _default_speech_source()
        speech, _ = draw_speech_segment(source, 4 * 3 * MODEL_SAMPLE_RATE_HZ, rng)
        if sample_rate_hz != MODEL_SAMPLE_RATE_HZ:
            raise HearmaskError(f"speech-shaped noise from a source needs 16 kHz; got {sample_rate_hz} Hz")
    speech = np.asarray(speech, dtype=np.float64)
    if speech.size < 64 or not np.any(speech):
        raise HearmaskError(f"speech for speech-shaped noise has {speech.size} samples or is silent; expected speech")
    segment = min(512, speech.size)
    frequencies_hz, psd = welch(speech, fs=sample_rate_hz, nperseg=segment)
    amplitude = np.sqrt(np.interp(np.fft.rfftfreq(num_samples, 1.0 / sample_rate_hz), frequencies_hz, psd))
    amplitude[0] = 0.0
    return _normalise(_shape_spectrum(rng.standard_normal(num_samples), amplitude))


def transient_noise(num_samples: int, sample_rate_hz: int, rng: np.random.Generator) -> np.ndarray:
    """Clatter: 1-6 events per second of exponentially decaying noise bursts (5-60 ms time
    constant) through a random resonance (400-6000 Hz, Q 2-20), levels spread over 20 dB."""
    _check_request(num_samples, sample_rate_hz)
    duration_s = num_samples / sample_rate_hz
    num_events = max(1, int(rng.poisson(rng.uniform(1.0, 6.0) * duration_s)))
    clatter = np.zeros(num_samples, dtype=np.float64)
    nyquist_hz = sample_rate_hz / 2.0
    for _ in range(num_events):
        onset = int(rng.integers(num_samples))
        time_constant_s = float(rng.uniform(0.005, 0.06))
        length = min(num_samples - onset, max(1, int(6.0 * time_constant_s * sample_rate_hz)))
        burst = rng.standard_normal(length) * np.exp(-np.arange(length) / (time_constant_s * sample_rate_hz))
        centre_hz = float(np.exp(rng.uniform(np.log(400.0), np.log(min(6000.0, 0.8 * nyquist_hz)))))
        b, a = iirpeak(centre_hz, float(rng.uniform(2.0, 20.0)), fs=sample_rate_hz)
        # Half the burst stays broadband (the click), half rings at the resonance (the object).
        burst = 0.5 * burst + lfilter(b, a, burst)
        clatter[onset : onset + length] += burst * 10.0 ** (-rng.uniform(0.0, 20.0) / 20.0)
    return _normalise(clatter)


def hum_noise(num_samples: int, sample_rate_hz: int, rng: np.random.Generator) -> np.ndarray:
    """Mains hum: 50 or 60 Hz and its harmonics up to 40 (below Nyquist), amplitudes ∝
    k^-(0.5..2), odd harmonics raised by 0-6 dB (transformer buzz), random phases."""
    _check_request(num_samples, sample_rate_hz)
    fundamental_hz = float(rng.choice([50.0, 60.0]))
    num_harmonics = max(1, min(40, int((sample_rate_hz / 2.0 - 100.0) / fundamental_hz)))
    decay = float(rng.uniform(0.5, 2.0))
    odd_boost = 10.0 ** (rng.uniform(0.0, 6.0) / 20.0)
    time_s = np.arange(num_samples) / sample_rate_hz
    hum = np.zeros(num_samples, dtype=np.float64)
    for harmonic in range(1, num_harmonics + 1):
        amplitude = harmonic**-decay * (odd_boost if harmonic % 2 else 1.0)
        hum += amplitude * np.sin(2.0 * np.pi * fundamental_hz * harmonic * time_s + rng.uniform(0.0, 2.0 * np.pi))
    return _normalise(hum)


def tone_noise(num_samples: int, sample_rate_hz: int, rng: np.random.Generator) -> np.ndarray:
    """1-3 sine tones (200-5000 Hz, log-uniform), each steady or beeping (period 0.2-1.5 s,
    duty 0.2-0.8, 5 ms raised-cosine ramps), levels spread over 12 dB."""
    _check_request(num_samples, sample_rate_hz)
    time_s = np.arange(num_samples) / sample_rate_hz
    tones = np.zeros(num_samples, dtype=np.float64)
    top_hz = min(5000.0, 0.45 * sample_rate_hz)
    for _ in range(int(rng.integers(1, 4))):
        frequency_hz = float(np.exp(rng.uniform(np.log(200.0), np.log(top_hz))))
        tone = np.sin(2.0 * np.pi * frequency_hz * time_s + rng.uniform(0.0, 2.0 * np.pi))
        if rng.random() < 0.5:
            period_s, duty = float(rng.uniform(0.2, 1.5)), float(rng.uniform(0.2, 0.8))
            phase = (time_s + rng.uniform(0.0, period_s)) % period_s
            on_s = duty * period_s
            ramp_s = 0.005
            gate = np.clip(np.minimum(phase, on_s - phase) / ramp_s, 0.0, 1.0)
            tone *= 0.5 - 0.5 * np.cos(np.pi * gate)
        tones += tone * 10.0 ** (-rng.uniform(0.0, 12.0) / 20.0)
    if not np.any(tones):
        tones[0] = 1.0  # A gate closed over a very short request: keep the output non-silent.
    return _normalise(tones)


def make_noise(kind: str, num_samples: int, sample_rate_hz: int, rng: np.random.Generator, *,
               speech_source: SpeechSource | None = None) -> np.ndarray:
    """Noise of ``kind`` (one of :data:`NOISE_KINDS`), float32 ``(num_samples,)``, RMS -20 dBFS.

    ``speech_source`` feeds ``babble`` and ``speech_shaped`` (espeak-ng when None).
    """
    if kind == "white":
        return coloured_noise(num_samples, 0.0, rng, sample_rate_hz)
    if kind == "pink":
        return coloured_noise(num_samples, PINK_SLOPE_DB_PER_OCTAVE, rng, sample_rate_hz)
    if kind == "brown":
        return coloured_noise(num_samples, BROWN_SLOPE_DB_PER_OCTAVE, rng, sample_rate_hz)
    if kind == "modulated":
        return modulated_noise(num_samples, sample_rate_hz, rng)
    if kind == "babble":
        return babble_noise(num_samples, sample_rate_hz, rng, speech_source)
    if kind == "speech_shaped":
        return speech_shaped_noise(num_samples, sample_rate_hz, rng, speech_source=speech_source)
    if kind == "transients":
        return transient_noise(num_samples, sample_rate_hz, rng)
    if kind == "hum":
        return hum_noise(num_samples, sample_rate_hz, rng)
    if kind == "tones":
        return tone_noise(num_samples, sample_rate_hz, rng)
    raise HearmaskError(f"unknown noise kind {kind!r}; expected one of {', '.join(NOISE_KINDS)}")
