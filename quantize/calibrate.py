"""The QAT system and its pre-quantization calibration pass.

:func:`build_qat_system` turns a float :class:`HearingAidSystem` into the same system
with every :class:`MaskNet` replaced by its :class:`QuantMaskNet` (the STFT, features
and variant logic are unchanged, so the training loss applies as is).

:func:`calibrate` runs real batches through the system inside Brevitas's
``calibration_mode``: quantization is off (the float network runs) while every
calibrated quantizer records the 0.001–99.999 % percentile range of its tensor, averaged
over calls; on exit those ranges become the initial scales and zero points that QAT then
trains. Fixed quantizers (sigmoid, tanh, state, audiogram) are untouched.
"""

from __future__ import annotations

import copy
from typing import Iterable

import torch
from brevitas.graph.calibrate import calibration_mode
from torch import nn

from hearmask.model.system import HearingAidSystem
from hearmask.quantize.qat_model import QuantMaskNet


def build_qat_system(float_system: HearingAidSystem) -> HearingAidSystem:
    """A copy of ``float_system`` whose networks are :class:`QuantMaskNet` (weights copied)."""
    qat_system = copy.deepcopy(float_system)
    qat_system.networks = nn.ModuleList(QuantMaskNet(network) for network in float_system.networks)
    return qat_system


@torch.no_grad()
def calibrate(qat_system: HearingAidSystem, batches: Iterable, progress: bool = False) -> int:
    """Collect activation ranges on ``batches`` (each with ``.noisy`` (B, T) and ``.audiogram``
    (B, 8)); returns the number of batches used. Leaves the system in training mode."""
    batches = list(batches)
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(batches), unit="batch", desc="calibrate", dynamic_ncols=True)
    count = 0
    with calibration_mode(qat_system):
        for batch in batches:
            qat_system.masks_db(qat_system.stft.stft(batch.noisy), batch.audiogram, fused_recurrence=False)
            count += 1
            if bar is not None:
                bar.update(1)
    if bar is not None:
        bar.close()
    qat_system.train()
    return count
