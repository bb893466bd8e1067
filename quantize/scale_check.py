"""Does a converted ``.tflite`` hold exactly the QAT model's activation quantization?

The TF mirror builds each quant point under a name scope equal to its name
(:mod:`hearmask.quantize.tf_mirror`), and the converter names each tensor after the op
that produced it, so ``"recurrent_layers.0.gate_sum/add"`` is the int8 tensor of quant
point ``recurrent_layers.0.gate_sum``. Slices and concatenations are made outside any
scope: they carry their input's quantization (checked separately: TFLite requires it).
"""

from __future__ import annotations

from hearmask.errors import HearmaskError
from hearmask.quantize.quant_spec import QuantSpec
from hearmask.quantize.tflite_inspect import TfliteSummary

PASS_THROUGH_OPS = ("STRIDED_SLICE", "CONCATENATION", "RESHAPE", "SPLIT")


def quant_point_of(tensor_name: str) -> str:
    """The quant point a converted tensor belongs to: the name scope of its first name part
    (``"recurrent_layers.0.gate_sum/add"`` -> ``"recurrent_layers.0.gate_sum"``)."""
    return tensor_name.split(";")[0].split("/")[0]


def scale_report(summary: TfliteSummary, specs: dict[str, QuantSpec],
                 relative_tolerance: float = 1e-6) -> dict[str, dict]:
    """Per quant point: the Brevitas and the ``.tflite`` quantization and whether they match
    (same zero point, scales equal within ``relative_tolerance``). Pass-through ops
    (slices, concatenations) are reported under ``"<op>:<tensor name>"`` with their input's
    quantization as the expected one."""
    report: dict[str, dict] = {}
    activations = [t for t in summary.tensors if not t.is_constant and t.dtype == "int8"]
    for tensor in activations:
        point = quant_point_of(tensor.name)
        if point in specs:
            expected = specs[point]
            report[point] = {"brevitas": expected.to_dict(),
                             "tflite": None if tensor.quantization is None else tensor.quantization.to_dict(),
                             "match": tensor.quantization is not None
                             and expected.matches(tensor.quantization, relative_tolerance)}
    for op in summary.ops:
        if op.name not in PASS_THROUGH_OPS:
            continue
        source = summary.tensors[op.inputs[0]].quantization
        for index in op.outputs:
            tensor = summary.tensors[index]
            report[f"{op.name}:{tensor.name}"] = {
                "brevitas": None if source is None else source.to_dict(),
                "tflite": None if tensor.quantization is None else tensor.quantization.to_dict(),
                "match": source is not None and tensor.quantization is not None
                and source.matches(tensor.quantization, relative_tolerance)}
    for point in specs:
        report.setdefault(point, {"brevitas": specs[point].to_dict(), "tflite": None, "match": False})
    return report


def check_scales_honoured(summary: TfliteSummary, specs: dict[str, QuantSpec], source: str = "model") -> dict:
    """:func:`scale_report`, raising :class:`HearmaskError` naming every quant point whose
    ``.tflite`` quantization differs from Brevitas's (or is missing)."""
    report = scale_report(summary, specs)
    wrong = {name: entry for name, entry in report.items() if not entry["match"]}
    if wrong:
        details = "; ".join(f"{name}: Brevitas {entry['brevitas']}, tflite {entry['tflite']}"
                            for name, entry in sorted(wrong.items())[:8])
        raise HearmaskError(f"{source} does not keep the QAT activation ranges at {len(wrong)} point(s): {details}")
    return report
