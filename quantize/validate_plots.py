"""Plots of the validation report (matplotlib, Agg): error histograms in LSBs and a float vs int8 mask comparison."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_error_histograms(histograms: dict[str, dict[str, dict[str, list[int]]]], path: Path, title: str) -> Path:
    """One panel per stage (rows) and output (columns): counts of the error in whole LSBs
    (``histograms[stage][output] = {"lsb": [...], "count": [...]}``), log count axis."""
    plt = _pyplot()
    stages = list(histograms)
    outputs = list(histograms[stages[0]])
    figure, axes = plt.subplots(len(stages), len(outputs), figsize=(3.6 * len(outputs), 2.2 * len(stages)),
                                squeeze=False, constrained_layout=True)
    for row, stage in enumerate(stages):
        for column, output in enumerate(outputs):
            axis = axes[row][column]
            histogram = histograms[stage][output]
            if histogram["lsb"]:
                axis.bar(histogram["lsb"], histogram["count"], width=0.8, color="tab:blue" if row else "tab:gray")
            axis.set_yscale("log")
            axis.set_title(f"{stage}: {output}", fontsize=9)
            axis.tick_params(labelsize=8)
            if row == len(stages) - 1:
                axis.set_xlabel("error (LSB)", fontsize=8)
            if column == 0:
                axis.set_ylabel("values", fontsize=8)
    figure.suptitle(title, fontsize=10)
    figure.savefig(path, dpi=90)
    plt.close(figure)
    return Path(path)


def plot_mask_comparison(masks: dict[str, dict[str, np.ndarray]], path: Path) -> Path:
    """NR and HLC masks (dB, frames × bins) of one utterance: float, int8 and their difference."""
    plt = _pyplot()
    figure, axes = plt.subplots(2, 3, figsize=(13, 6.5), constrained_layout=True)
    for row, (mask, label) in enumerate((("nr_db", "NR mask"), ("hlc_db", "HLC gain"))):
        float_db, int8_db = masks["float"][mask], masks["litert"][mask]
        low, high = float(min(float_db.min(), int8_db.min())), float(max(float_db.max(), int8_db.max()))
        difference = int8_db - float_db
        limit = max(float(np.abs(difference).max()), 1e-3)
        panels = ((float_db, f"{label}, float (dB)", "viridis", low, high),
                  (int8_db, f"{label}, int8 LiteRT (dB)", "viridis", low, high),
                  (difference, f"{label}, int8 − float (dB)", "coolwarm", -limit, limit))
        for column, (values, title, colormap, vmin, vmax) in enumerate(panels):
            axis = axes[row][column]
            image = axis.imshow(values.T, origin="lower", aspect="auto", cmap=colormap, vmin=vmin, vmax=vmax,
                                interpolation="nearest")
            axis.set_title(title, fontsize=10)
            axis.set_xlabel("frame (hop)", fontsize=9)
            axis.set_ylabel("frequency bin", fontsize=9)
            figure.colorbar(image, ax=axis)
    figure.suptitle("Masks of one held-out utterance, state fed back over the utterance (free-running)", fontsize=11)
    figure.savefig(path, dpi=80)
    plt.close(figure)
    return Path(path)
