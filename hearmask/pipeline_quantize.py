"""The main job's ``quantize`` stage: rebuild the shipped int8 model from its QAT checkpoint.

Full QAT of the default model takes about 50 minutes on one CPU core (1,000 steps), too long
for the main job, so the shipped QAT checkpoint (``model/default_model/qat_checkpoint.*``,
which holds the finished QAT state) is resumed with ``hearmask quantize --resume``: no
optimiser step is left, and the real conversion runs — TensorFlow mirror, ``TFLiteConverter``,
the int8 op-set and scale checks, float ``.tflite``, ONNX, the TFLM arena measured, the
manifest. The stage then checks that the rebuilt files equal the shipped ones byte for byte
(SHA-256 against the shipped manifest), so the int8 model the job validates and deploys is
shown to come from the shipped QAT state.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import fields
from pathlib import Path
from typing import Any

from hearmask.errors import HearmaskError

QAT_FILES = ("qat_checkpoint.json", "qat_checkpoint.safetensors")


def run_quantize_stage(model_dir: Path, out_dir: Path) -> dict[str, Any]:
    """Resume ``model_dir``'s QAT checkpoint into ``out_dir`` (conversion only); return the report part.

    ``model_dir`` holds ``checkpoint.json`` (the float model), the QAT checkpoint and the manifest
    of the shipped int8 files.
    """
    from hearmask.model.checkpoint import sha256_of_file
    from hearmask.quantize.qat_training import QatConfig
    from hearmask.quantize.quantize_model import quantize_model
    from hearmask.quantize.manifest import read_manifest

    missing = [name for name in (*QAT_FILES, "checkpoint.json", "manifest.json") if not (model_dir / name).is_file()]
    if missing:
        raise HearmaskError(f"{model_dir}: no {', '.join(missing)}; the quantize stage needs a shipped QAT checkpoint "
                            "and manifest beside the float checkpoint")
    out_dir.mkdir(parents=True, exist_ok=True)
    for name in QAT_FILES:
        shutil.copyfile(model_dir / name, out_dir / name)
    stored = json.loads((model_dir / "qat_checkpoint.json").read_text())
    accepted = {field.name for field in fields(QatConfig)}
    config = QatConfig(**{key: value for key, value in stored["qat_config"].items() if key in accepted})
    summary = quantize_model(model_dir / "checkpoint.json", out_dir, config, resume=True, progress=False)
    shipped = read_manifest(model_dir)
    reproduced = {}
    for entry in shipped["networks"]:
        for key, name in entry["files"].items():
            reproduced[name] = sha256_of_file(out_dir / name) == entry["sha256"][key]
    return {
        "dir": str(out_dir),
        "qat_steps": summary.get("step", config.steps),
        "int8_model_bytes": summary["int8_model_bytes"],
        "tflm_arena_bytes": summary["tflm_arena_bytes"],
        "ops": summary["ops"],
        "reproduces_shipped": reproduced,
        "labels": {"qat": f"resumed from the shipped QAT checkpoint ({config.steps} steps done): conversion only"},
    }
