"""A GRU cell written out from primitive ops (linear, add, sub, mul, sigmoid, tanh, slice).

TFLite/TFLM have no usable GRU op: ``nn.GRU`` unrolls or becomes a WHILE loop
(DESIGN.md "Quantization and conversion"). Written out like this, one step maps onto
FULLY_CONNECTED, ADD, SUB, MUL, LOGISTIC, TANH and STRIDED_SLICE, and a QAT wrapper can
put a quantizer after each named sub-module.

Equations and weight layout are PyTorch's ``nn.GRU`` (gates ordered r, z, n; Cho et al.
2014, with the reset gate applied after the hidden projection):

    r = σ(W_ir x + b_ir + W_hr h + b_hr)
    z = σ(W_iz x + b_iz + W_hz h + b_hz)
    n = tanh(W_in x + b_in + r ⊙ (W_hn h + b_hn))
    h' = n + z ⊙ (h − n)            (= (1 − z) ⊙ n + z ⊙ h)

so ``input_linear.weight``/``hidden_linear.weight`` are ``weight_ih_l0``/``weight_hh_l0`` of
an ``nn.GRU`` with the same sizes.
"""

from __future__ import annotations

import torch
from torch import nn


class PrimitiveGruCell(nn.Module):
    """One GRU layer. ``input_size`` -> ``hidden_size``; state ``(B, hidden_size)``."""

    def __init__(self, input_size: int, hidden_size: int):
        super().__init__()
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.input_linear = nn.Linear(input_size, 3 * hidden_size)  # W_i[r|z|n] x + b_i[r|z|n]
        self.hidden_linear = nn.Linear(hidden_size, 3 * hidden_size)  # W_h[r|z|n] h + b_h[r|z|n]
        self.gate_activation = nn.Sigmoid()
        self.candidate_activation = nn.Tanh()
        # nn.GRU's initialisation: uniform(±1/sqrt(hidden)) for every weight and bias.
        bound = hidden_size**-0.5
        for parameter in self.parameters():
            nn.init.uniform_(parameter, -bound, bound)

    def step_from_projection(self, input_projection: torch.Tensor, hidden: torch.Tensor) -> torch.Tensor:
        """One step given ``input_linear(x)`` ``(B, 3H)`` and ``h`` ``(B, H)``; returns ``h'`` ``(B, H)``."""
        size = self.hidden_size
        hidden_projection = self.hidden_linear(hidden)
        gates = self.gate_activation(input_projection[:, : 2 * size] + hidden_projection[:, : 2 * size])
        reset_gate = gates[:, :size]
        update_gate = gates[:, size:]
        candidate = self.candidate_activation(
            input_projection[:, 2 * size :] + reset_gate * hidden_projection[:, 2 * size :]
        )
        return candidate + update_gate * (hidden - candidate)

    def step(self, inputs: torch.Tensor, hidden: torch.Tensor) -> torch.Tensor:
        """``inputs`` ``(B, input_size)``, ``hidden`` ``(B, H)`` -> new hidden ``(B, H)``."""
        return self.step_from_projection(self.input_linear(inputs), hidden)

    def forward(self, inputs: torch.Tensor, hidden: torch.Tensor, fused: bool = False) -> torch.Tensor:
        """Sequence form: ``inputs`` ``(B, K, input_size)``, initial ``hidden`` ``(B, H)`` -> ``(B, K, H)``.

        ``fused=False``: the primitive ops of :meth:`step`, looped over frames (the input
        projection of all frames is one matmul); this is the path QAT must use, since it
        goes through the (possibly quantized) sub-modules.
        ``fused=True``: the same equations and weights through PyTorch's fused GRU kernel
        (``torch.gru``, as ``nn.GRU`` calls it), about 5x faster on CPU for float training.
        It reads the float weights directly, so it bypasses any quantizer wrapped around
        the sub-modules.
        """
        if fused:
            weights = [
                self.input_linear.weight, self.hidden_linear.weight, self.input_linear.bias, self.hidden_linear.bias
            ]
            # torch.gru(input, hx, params, has_biases, num_layers, dropout, train, bidirectional, batch_first)
            outputs, _ = torch.gru(
                inputs, hidden.unsqueeze(0).contiguous(), weights, True, 1, 0.0, self.training, False, True
            )
            return outputs
        input_projections = self.input_linear(inputs)
        outputs = []
        for frame in range(inputs.shape[1]):
            hidden = self.step_from_projection(input_projections[:, frame], hidden)
            outputs.append(hidden)
        return torch.stack(outputs, dim=1)

    def macs_per_step(self) -> int:
        """Multiply-accumulates of the two matmuls of one step (bias adds and gating not counted)."""
        return 3 * self.hidden_size * (self.input_size + self.hidden_size)
