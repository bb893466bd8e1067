"""Standard listener profiles: normal hearing and the Bisgaard et al. (2010) audiograms.

Source: N. Bisgaard, M. S. M. G. Vlaming, M. Dahlquist, "Standard audiograms for the
IEC 60118-15 measurement procedure", Trends in Amplification 14(2), 113-120, 2010,
table as copied in DESIGN.md ("Standard audiograms"). N1-N7 are flat and moderately
sloping losses from very mild to profound; S1-S3 are steeply sloping losses.

The table stops at 6 kHz; 8 kHz copies the 6 kHz value (DESIGN.md, "Audiogram input").
The profiles describe both ears alike, so they carry mono thresholds only.
"""

from __future__ import annotations

import difflib

from hearmask.errors import HearmaskError
from hearmask.profiles.audiogram import Audiogram

# Bisgaard's frequencies (Hz) plus 8 kHz, which copies 6 kHz.
STANDARD_FREQUENCIES_HZ: tuple[float, ...] = (
    250.0, 375.0, 500.0, 750.0, 1000.0, 1500.0, 2000.0, 3000.0, 4000.0, 6000.0, 8000.0,
)

# dB HL at 250, 375, 500, 750, 1k, 1.5k, 2k, 3k, 4k, 6k Hz (Bisgaard et al. 2010).
_BISGAARD_TO_6KHZ_DB_HL: dict[str, tuple[float, ...]] = {
    "N1": (10, 10, 10, 10, 10, 10, 15, 20, 30, 40),
    "N2": (20, 20, 20, 22.5, 25, 30, 35, 40, 45, 50),
    "N3": (35, 35, 35, 35, 40, 45, 50, 55, 60, 65),
    "N4": (55, 55, 55, 55, 55, 60, 65, 70, 75, 80),
    "N5": (65, 67.5, 70, 72.5, 75, 80, 80, 80, 80, 80),
    "N6": (75, 77.5, 80, 82.5, 85, 90, 90, 95, 100, 100),
    "N7": (90, 92.5, 95, 100, 105, 105, 105, 105, 105, 105),
    "S1": (10, 10, 10, 10, 10, 10, 15, 30, 55, 70),
    "S2": (20, 20, 20, 22.5, 25, 35, 55, 75, 95, 95),
    "S3": (30, 30, 35, 47.5, 60, 70, 75, 80, 80, 85),
}

# Category names as Bisgaard et al. (2010) give them.
STANDARD_PROFILE_DESCRIPTIONS: dict[str, str] = {
    "NH": "normal hearing, 0 dB HL at every frequency",
    "N1": "Bisgaard N1: very mild, flat/moderately sloping",
    "N2": "Bisgaard N2: mild, flat/moderately sloping",
    "N3": "Bisgaard N3: moderate, flat/moderately sloping",
    "N4": "Bisgaard N4: moderate/severe, flat/moderately sloping",
    "N5": "Bisgaard N5: severe, flat/moderately sloping",
    "N6": "Bisgaard N6: severe, flat/moderately sloping",
    "N7": "Bisgaard N7: profound, flat/moderately sloping",
    "S1": "Bisgaard S1: very mild, steep sloping",
    "S2": "Bisgaard S2: mild, steep sloping",
    "S3": "Bisgaard S3: moderate, steep sloping",
}

STANDARD_PROFILE_NAMES: tuple[str, ...] = tuple(STANDARD_PROFILE_DESCRIPTIONS)


def _build_standard_profiles() -> dict[str, Audiogram]:
    profiles = {"NH": Audiogram("NH", STANDARD_FREQUENCIES_HZ, (0.0,) * len(STANDARD_FREQUENCIES_HZ))}
    for name, to_6khz_db_hl in _BISGAARD_TO_6KHZ_DB_HL.items():
        profiles[name] = Audiogram(
            name, STANDARD_FREQUENCIES_HZ, tuple(to_6khz_db_hl) + (to_6khz_db_hl[-1],)
        )
    return profiles


# Audiograms are immutable, so one shared instance per name is safe.
_STANDARD_PROFILES = _build_standard_profiles()


def is_standard_profile_name(name: str) -> bool:
    """True if ``name`` (any case, surrounding spaces ignored) is a standard profile."""
    return isinstance(name, str) and name.strip().upper() in _STANDARD_PROFILES


def standard_audiogram(name: str) -> Audiogram:
    """The standard audiogram called ``name`` (case-insensitive: ``"n3"`` is ``"N3"``).

    Unknown names raise HearmaskError naming the closest standard name and all of them.
    """
    if not isinstance(name, str):
        raise HearmaskError(
            f"profile name must be a string, got {type(name).__name__} {name!r}"
        )
    key = name.strip().upper()
    if key in _STANDARD_PROFILES:
        return _STANDARD_PROFILES[key]
    raise HearmaskError(unknown_profile_message(name))


def closest_profile_name(name: str) -> str | None:
    """The standard name most like ``name`` (difflib ratio), or None if none is close.

    Ties go to the name with the same first letter and the nearest number, so ``"N8"``
    suggests ``"N7"`` rather than ``"NH"``.
    """
    # Spaces, dashes and a "Bisgaard" prefix carry no information about the profile.
    key = name.upper().replace("BISGAARD", "")
    key = "".join(character for character in key if character.isalnum())
    if not key:
        return None

    def closeness(candidate: str) -> tuple[float, bool, float]:
        ratio = difflib.SequenceMatcher(None, key, candidate).ratio()
        same_letter = key[0] == candidate[0]
        number_distance = (
            abs(int(key[1:]) - int(candidate[1:]))
            if key[1:].isdigit() and candidate[1:].isdigit()
            else float("inf")
        )
        return ratio, same_letter, -number_distance

    best = max(STANDARD_PROFILE_NAMES, key=closeness)
    return best if closeness(best)[0] >= 0.4 else None


def unknown_profile_message(name: str) -> str:
    """Message for an unknown profile name: the closest standard name, then all of them."""
    closest = closest_profile_name(name)
    hint = f"; did you mean {closest!r}?" if closest else "."
    return (
        f"unknown listener profile {name!r}{hint} Accepted names: "
        f"{', '.join(STANDARD_PROFILE_NAMES)}, or a path to an audiogram file (.json, .csv)"
    )
