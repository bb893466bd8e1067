"""The model manifest (``manifest.json``): what a device or a later hearmask stage needs to run the files.

One JSON document beside the model files (STYLE.md "One artifact contract"):

- provenance: the source float checkpoint (path, SHA-256 of its weights), the QAT
  checkpoint, software versions;
- the DSP front end (STFT and feature configuration) and the audiogram input convention;
- per network (one, or two for the cascade): its files and their SHA-256, the int8
  model's inputs and outputs in subgraph order (name, position, shape, dtype, scale,
  zero point), the dB map of each mask output, the ops used (the exact op-resolver
  list), the parameter count, MACs per hop, model bytes and the TFLM arena measured with
  the TFLM host interpreter, and the scale and zero point of every quant point.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from hearmask.errors import HearmaskError
from hearmask.quantize.tflite_inspect import TfliteSummary

MANIFEST_NAME = "manifest.json"
MANIFEST_FORMAT = "hearmask-model-manifest"
MANIFEST_VERSION = 1

# What each tensor means, for readers of the manifest.
TENSOR_MEANINGS = {
    "features": "log band powers of the hop, (level_dB - offset_db) / scale_db per ERB band (see 'features')",
    "audiogram": "hearing thresholds in dB HL / 100 at audiogram.frequencies_hz",
    "state": "recurrent state: feed new_state of the previous hop; zeros at the start",
    "nr_fraction": "sigmoid of the NR logits per bin; nr_db = db_offset + db_span * value",
    "hlc_fraction": (
        "sigmoid of the HLC logits per bin; hlc_db = db_offset + span_db * value, span_db = "
        "min(max_db, ceiling_offset_db + ceiling_loss_fraction * max(loss_db, 0)) - db_offset per bin, "
        "loss_db = loss_to_bin (bins x 8) @ audiogram in dB HL"
    ),
    "new_state": "recurrent state after this hop (same quantization as the input state)",
}


def io_entries(summary: TfliteSummary) -> dict[str, list[dict[str, Any]]]:
    """Inputs and outputs of a converted model in subgraph order (position = TFLM index)."""

    def entry(item) -> dict[str, Any]:
        tensor = item.tensor
        spec = tensor.quantization
        return {
            "name": item.name,
            "position": item.position,
            "shape": list(tensor.shape),
            "dtype": tensor.dtype,
            "scale": None if spec is None else spec.scale,
            "zero_point": None if spec is None else spec.zero_point,
            "meaning": TENSOR_MEANINGS.get(item.name, ""),
        }

    return {"inputs": [entry(item) for item in summary.inputs], "outputs": [entry(item) for item in summary.outputs]}


def output_db_maps(config) -> dict[str, dict[str, Any]]:
    """How each mask output maps to dB (exact; applied after dequantization, see TENSOR_MEANINGS).

    NR: ``db = db_offset + db_span · fraction``. HLC: the span is per bin and fixed by the
    listener's audiogram (:func:`hearmask.model.network.hlc_span_db`), so the rule and its
    audiogram -> bin matrix are written out for device code.
    """
    from hearmask.model.network import audiogram_to_bin_matrix  # torch: only when writing a manifest
    return {
        "nr_fraction": {"db_offset": 0.0, "db_span": float(config.nr_floor_db),
                        "range_db": [float(config.nr_floor_db), 0.0]},
        "hlc_fraction": {"db_offset": float(config.hlc_min_db), "max_db": float(config.hlc_max_db),
                         "ceiling_loss_fraction": float(config.hlc_ceiling_loss_fraction),
                         "ceiling_offset_db": float(config.hlc_ceiling_offset_db),
                         "range_db": [float(config.hlc_min_db), float(config.hlc_max_db)],
                         "loss_to_bin": np.round(audiogram_to_bin_matrix(config), 7).tolist()},
    }


def write_manifest(out_dir: str | Path, manifest: dict[str, Any]) -> Path:
    path = Path(out_dir) / MANIFEST_NAME
    document = {"format": MANIFEST_FORMAT, "version": MANIFEST_VERSION, **manifest}
    path.write_text(json.dumps(document, indent=2) + "\n")
    return path


def read_manifest(path: str | Path) -> dict[str, Any]:
    """Read ``manifest.json`` (or the one in a folder), checking its format and version."""
    path = Path(path)
    if path.is_dir():
        path = path / MANIFEST_NAME
    if not path.is_file():
        raise HearmaskError(f"no model manifest at {str(path)!r}; give the folder written by hearmask quantize")
    try:
        document = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise HearmaskError(f"manifest {str(path)!r} is not valid JSON: {error}") from None
    if not isinstance(document, dict) or document.get("format") != MANIFEST_FORMAT:
        raise HearmaskError(f"{str(path)!r} is not a hearmask model manifest (expected \"format\": \"{MANIFEST_FORMAT}\")")
    if document.get("version") != MANIFEST_VERSION:
        raise HearmaskError(f"manifest {str(path)!r} has version {document.get('version')!r}; this hearmask reads "
                            f"version {MANIFEST_VERSION}")
    return document
