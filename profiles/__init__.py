"""Listener profiles: audiograms, standard sets, files, validation, interpolation, sampling.

Imports only numpy (matplotlib is imported by ``plot_audiogram`` when called), so the
device-side code can use it. Modules: ``audiogram`` (the type and its validation),
``standard`` (NH, Bisgaard N1-N7, S1-S3), ``interpolate`` (log-frequency interpolation),
``io`` (JSON/CSV/Clarity files, ``load_audiogram``), ``sampling`` (training sampler),
``plot`` (audiological plot).
"""

from hearmask.profiles.audiogram import MODEL_AUDIOGRAM_FREQUENCIES_HZ, Audiogram
from hearmask.profiles.interpolate import interpolate_db_hl
from hearmask.profiles.io import load_audiogram, save_audiogram
from hearmask.profiles.sampling import AudiogramSampler
from hearmask.profiles.standard import STANDARD_PROFILE_NAMES, standard_audiogram

__all__ = [
    "MODEL_AUDIOGRAM_FREQUENCIES_HZ",
    "STANDARD_PROFILE_NAMES",
    "Audiogram",
    "AudiogramSampler",
    "interpolate_db_hl",
    "load_audiogram",
    "save_audiogram",
    "standard_audiogram",
]
