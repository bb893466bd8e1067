"""256-entry int8 lookup tables for LOGISTIC and TANH, computed at generation time.

An int8 LOGISTIC/TANH output depends only on the input code, so the generated model can
look it up instead of evaluating the fixed-point function per element (about half of
the tiny model's run time on a Cortex-M55 went to LOGISTIC). Each entry is the exact
integer result of the TFLM reference kernel, taken from the one integer model of the
kernels, :mod:`hearmask.quantize.int8_reference` (gemmlowp-style Q4.27 fixed point). The
tests compare the tables with the C kernels ``hm_logistic`` / ``hm_tanh`` of
``c/hm_kernels.c`` for every input code over many scales, and both with the TFLM interpreter.
"""

from __future__ import annotations

import numpy as np

from hearmask.quantize.int8_reference import logistic_table, tanh_table


def activation_table(op_name: str, input_zero_point: int, input_scale: float) -> np.ndarray:
    """int8 outputs of int8 LOGISTIC (scale 1/256, zero point -128) or TANH (1/128, 0) for the
    input codes -128..127, in that order (index = code + 128); (256,) int8."""
    table = logistic_table if op_name == "LOGISTIC" else tanh_table
    return np.array(table(float(input_scale), int(input_zero_point)), dtype=np.int8)
