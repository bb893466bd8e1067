"""Each system minus NAL-R, per audiogram, with a 95 % confidence interval over utterances.

Why: a held-out set is small (the shipped model card: 6 utterances × 2 SNRs), so a mean
HASPI difference of 0.02 can come from one or two mixtures. Every system hears the same
mixtures (a paired design), so the per-utterance differences carry the comparison, and the
interval says how far the held-out mean is from settling the question "at least NAL-R's".

The unit is the utterance, not the mixture: an utterance's SNR conditions share its clean
speech and its noise, so they are not independent. For system ``s`` and utterance ``u``::

    d_u = mean over SNRs of (metric(s, u, snr) - metric(nalr, u, snr))

and the interval is Student's t over the ``d_u`` (``scipy.stats.ttest_1samp``, n - 1 degrees
of freedom; deterministic, unlike a bootstrap, and honest about n = 6 where a percentile
bootstrap is too narrow). The "mean" column averages ``d_u`` over the audiograms first, so its
interval treats the audiograms of one utterance as one observation too. Utterances where a
metric failed (None) for either system are left out of that comparison.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

CONFIDENCE_LEVEL = 0.95
BASELINE_SYSTEM = "nalr"


def _per_utterance(rows: Sequence[dict[str, Any]], system: str, audiogram: str, metric: str) -> dict[float, list]:
    """``{snr_db: [value or None per utterance]}`` of one system and audiogram."""
    return {row["snr_db"]: list(row.get("per_utterance", {}).get(metric) or [])
            for row in rows if row["system"] == system and row["audiogram"] == audiogram and not row["sweep"]}


def utterance_differences(rows: Sequence[dict[str, Any]], system: str, audiogram: str, metric: str,
                          baseline: str = BASELINE_SYSTEM) -> np.ndarray:
    """``d_u`` (module docstring) for every utterance both systems scored at every shared SNR; shape (n,)."""
    mine = _per_utterance(rows, system, audiogram, metric)
    theirs = _per_utterance(rows, baseline, audiogram, metric)
    snrs = sorted(set(mine) & set(theirs))
    if not snrs:
        return np.zeros(0)
    count = min(len(values) for snr in snrs for values in (mine[snr], theirs[snr]))
    differences = []
    for utterance in range(count):
        pairs = [(mine[snr][utterance], theirs[snr][utterance]) for snr in snrs]
        if all(a is not None and b is not None for a, b in pairs):
            differences.append(float(np.mean([a - b for a, b in pairs])))
    return np.asarray(differences)


def mean_with_interval(differences: np.ndarray) -> dict[str, Any]:
    """Mean of ``differences`` with its Student-t interval (None below two values or with no spread)."""
    from scipy import stats

    entry: dict[str, Any] = {"utterances": int(differences.size), "mean_difference": None, "ci_low": None,
                             "ci_high": None, "at_least_baseline": int(np.sum(differences >= 0.0))}
    if differences.size == 0:
        return entry
    entry["mean_difference"] = float(np.mean(differences))
    if differences.size >= 2 and float(np.std(differences)) > 0.0:
        interval = stats.ttest_1samp(differences, 0.0).confidence_interval(CONFIDENCE_LEVEL)
        entry["ci_low"], entry["ci_high"] = float(interval.low), float(interval.high)
    return entry


def paired_comparisons(rows: Sequence[dict[str, Any]], audiograms: Sequence[str], metric: str = "haspi",
                       baseline: str = BASELINE_SYSTEM) -> list[dict[str, Any]]:
    """One entry per (model system at a main point, audiogram or ``"mean"``); [] without the baseline.

    Each entry: ``system``, ``audiogram``, ``metric``, ``baseline``, ``utterances``,
    ``mean_difference``, ``ci_low``, ``ci_high`` (95 %), ``at_least_baseline`` (utterances
    with ``d_u >= 0``).
    """
    if not any(row["system"] == baseline for row in rows):
        return []
    systems = list(dict.fromkeys(row["system"] for row in rows if row["model"] is not None and not row["sweep"]))
    entries = []
    for system in systems:
        by_audiogram = {name: utterance_differences(rows, system, name, metric, baseline) for name in audiograms}
        by_audiogram = {name: values for name, values in by_audiogram.items() if values.size}
        for name, values in by_audiogram.items():
            entries.append({"system": system, "audiogram": name, "metric": metric, "baseline": baseline,
                            **mean_with_interval(values)})
        sizes = {values.size for values in by_audiogram.values()}
        if len(sizes) == 1:  # the same utterances everywhere: average per utterance over audiograms
            overall = np.mean(np.stack(list(by_audiogram.values())), axis=0)
            entries.append({"system": system, "audiogram": "mean", "metric": metric, "baseline": baseline,
                            **mean_with_interval(overall)})
    return entries


def _signed(value: float | None, digits: int) -> str:
    return "–" if value is None or not math.isfinite(value) else f"{value:+.{digits}f}"


def format_difference(entry: dict[str, Any], digits: int = 3) -> str:
    """``+0.012 (-0.010, +0.034)``: the mean difference and its interval."""
    text = _signed(entry["mean_difference"], digits)
    if entry["ci_low"] is not None:
        text += f" ({_signed(entry['ci_low'], digits)}, {_signed(entry['ci_high'], digits)})"
    return text
