"""Audiogram plot in audiological convention.

Log frequency axis with ticks at the octave frequencies, labelled in Hz/kHz; dB HL
increasing downward (-10 at the top, 120 at the bottom); right ear O (red), left ear X
(blue), as on clinical audiograms (ASHA, "Guidelines for audiometric symbols", 1990).
Mono thresholds are drawn as a plain line with dots.

matplotlib is imported inside :func:`plot_audiogram`, so ``import hearmask.profiles``
stays light; figures are rendered with the Agg canvas, never a display.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Sequence

from hearmask.errors import HearmaskError
from hearmask.profiles.audiogram import MAX_THRESHOLD_DB_HL, MIN_THRESHOLD_DB_HL, Audiogram

if TYPE_CHECKING:
    from matplotlib.axes import Axes

_OCTAVE_TICKS_HZ = (125.0, 250.0, 500.0, 1000.0, 2000.0, 4000.0, 8000.0, 16000.0)
_DEFAULT_SPAN_HZ = (180.0, 11000.0)  # shows 250..8000 Hz with a margin
_RIGHT_EAR = {"marker": "o", "color": "tab:red", "markerfacecolor": "none"}
_LEFT_EAR = {"marker": "x", "color": "tab:blue"}


def plot_audiogram(
    audiograms: Audiogram | Sequence[Audiogram],
    path: str | Path | None = None,
    ax: Axes | None = None,
) -> Axes:
    """Draw one or more audiograms; save to ``path`` (format from its suffix) if given.

    Args:
        audiograms: an Audiogram or a non-empty list of them.
        path: image file to write (e.g. ``plot.png``); parent folders are created.
        ax: matplotlib Axes to draw into; a new Agg figure (6.4 x 4.8 in) when None.

    Returns:
        The Axes drawn into (its y axis inverted, x axis log-scaled).
    """
    if isinstance(audiograms, Audiogram):
        audiograms = [audiograms]
    if not isinstance(audiograms, (list, tuple)) or not audiograms or not all(
        isinstance(audiogram, Audiogram) for audiogram in audiograms
    ):
        raise HearmaskError(
            f"plot_audiogram needs an Audiogram or a non-empty list of Audiograms, got {audiograms!r}"
        )
    audiograms = list(audiograms)

    from matplotlib.figure import Figure
    from matplotlib.ticker import FixedLocator, NullLocator

    if ax is None:
        from matplotlib.backends.backend_agg import FigureCanvasAgg

        figure = Figure(figsize=(6.4, 4.8))
        FigureCanvasAgg(figure)
        ax = figure.add_subplot()

    one_audiogram = len(audiograms) == 1
    for index, audiogram in enumerate(audiograms):
        # With several audiograms each gets a colour; the ear still shows in the marker.
        colour = None if one_audiogram else f"C{index % 10}"
        label_prefix = "" if one_audiogram else f"{audiogram.name} "
        if audiogram.right_db_hl is not None:
            style = dict(_RIGHT_EAR, color=colour or _RIGHT_EAR["color"])
            ax.plot(audiogram.frequencies_hz, audiogram.right_db_hl, label=f"{label_prefix}right", **style)
        if audiogram.left_db_hl is not None:
            style = dict(_LEFT_EAR, color=colour or _LEFT_EAR["color"])
            ax.plot(
                audiogram.frequencies_hz, audiogram.left_db_hl, label=f"{label_prefix}left",
                linestyle="--", **style,
            )
        if not audiogram.has_per_ear or audiogram.has_explicit_mono:
            ax.plot(
                audiogram.frequencies_hz, audiogram.thresholds_db_hl, marker=".",
                color=colour or "black", label=audiogram.name if not one_audiogram else "thresholds",
            )

    lowest_hz = min(audiogram.frequencies_hz[0] for audiogram in audiograms)
    highest_hz = max(audiogram.frequencies_hz[-1] for audiogram in audiograms)
    span_hz = (min(_DEFAULT_SPAN_HZ[0], lowest_hz / 1.2), max(_DEFAULT_SPAN_HZ[1], highest_hz * 1.2))
    ax.set_xscale("log")
    ax.set_xlim(*span_hz)
    ticks_hz = [tick for tick in _OCTAVE_TICKS_HZ if span_hz[0] <= tick <= span_hz[1]]
    ax.xaxis.set_major_locator(FixedLocator(ticks_hz))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xticklabels([_frequency_label(tick) for tick in ticks_hz])
    ax.set_xlabel("Frequency")
    # Audiological convention: better hearing at the top, so the y axis runs downward.
    ax.set_ylim(MAX_THRESHOLD_DB_HL, MIN_THRESHOLD_DB_HL)
    ax.set_yticks(range(int(MIN_THRESHOLD_DB_HL), int(MAX_THRESHOLD_DB_HL) + 1, 10))
    ax.set_ylabel("Hearing threshold (dB HL)")
    ax.grid(True, which="major", alpha=0.4)
    ax.set_title(audiograms[0].name if one_audiogram else "Audiograms")
    ax.legend(loc="lower left", fontsize="small")

    if path is not None:
        path = Path(path)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            ax.figure.savefig(path, dpi=100, bbox_inches="tight")
        except (OSError, ValueError) as error:
            raise HearmaskError(f"{path}: cannot write the audiogram plot: {error}") from error
    return ax


def _frequency_label(frequency_hz: float) -> str:
    """``250`` -> ``"250 Hz"``, ``1000`` -> ``"1 kHz"``, ``16000`` -> ``"16 kHz"``."""
    if frequency_hz >= 1000:
        return f"{frequency_hz / 1000:g} kHz"
    return f"{frequency_hz:g} Hz"
