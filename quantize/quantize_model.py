"""``hearmask quantize``: float checkpoint -> calibration + QAT -> int8/float ``.tflite``, ONNX, manifest.

Files written to ``OUT_DIR`` (one set per network; the cascade's second network gets the
suffix ``_stage2``, its first ``_stage1``):

- ``qat_checkpoint.json`` + ``.safetensors``: the QAT state (resumable; see
  :mod:`hearmask.quantize.qat_training`);
- ``model_int8.tflite``: fully int8, checked for the int8 op set and for every activation
  scale equal to Brevitas's before it is written into the manifest;
- ``model_float.tflite`` and ``model_float.onnx``: the float source network's step form;
- ``manifest.json`` (:mod:`hearmask.quantize.manifest`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hearmask.model.checkpoint import sha256_of_file, software_versions
from hearmask.model.system import HearingAidSystem
from hearmask.profiles.audiogram import MODEL_AUDIOGRAM_FREQUENCIES_HZ, MODEL_INPUT_SCALE_DB
from hearmask.quantize.manifest import io_entries, output_db_maps, write_manifest
from hearmask.quantize.qat_training import QAT_CHECKPOINT_NAME, QatConfig, QatTrainer
from hearmask.quantize.scale_check import check_scales_honoured
from hearmask.quantize.tflite_inspect import check_int8_target, inspect_tflite

# What each variant's network(s) contribute: (role, outputs the system uses).
NETWORK_ROLES = {
    "joint": [("joint", ["nr_fraction", "hlc_fraction"])],
    "nr": [("nr", ["nr_fraction"])],
    "hlc": [("hlc", ["hlc_fraction"])],
    "cascade": [("nr_stage", ["nr_fraction"]), ("hlc_stage", ["hlc_fraction"])],
}


def model_file_names(network_index: int, network_count: int) -> dict[str, str]:
    suffix = "" if network_count == 1 else f"_stage{network_index + 1}"
    return {"int8_tflite": f"model_int8{suffix}.tflite", "float_tflite": f"model_float{suffix}.tflite",
            "onnx": f"model_float{suffix}.onnx"}


def export_model_files(qat_system: HearingAidSystem, float_system: HearingAidSystem, out_dir: str | Path,
                       provenance: dict[str, Any]) -> dict[str, Any]:
    """Convert every network, check the int8 files, write them and ``manifest.json``; return the manifest."""
    from hearmask.quantize.convert import convert_float, convert_int8, export_onnx
    from hearmask.quantize.runtimes import tflm_arena_bytes

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    stft = float_system.stft_config
    networks = []
    count = len(float_system.networks)
    for index, (qat_network, float_network) in enumerate(zip(qat_system.networks, float_system.networks)):
        role, uses = NETWORK_ROLES[float_system.variant][index]
        names = model_file_names(index, count)
        int8_bytes = convert_int8(qat_network)
        int8_summary = inspect_tflite(int8_bytes, names["int8_tflite"])
        check_int8_target(int8_summary, names["int8_tflite"])
        specs = qat_network.eval().activation_specs()
        check_scales_honoured(int8_summary, specs, names["int8_tflite"])
        float_bytes = convert_float(float_network)
        float_summary = inspect_tflite(float_bytes, names["float_tflite"])
        onnx_bytes = export_onnx(float_network)
        for key, data in (("int8_tflite", int8_bytes), ("float_tflite", float_bytes), ("onnx", onnx_bytes)):
            (out_dir / names[key]).write_bytes(data)
        arena = tflm_arena_bytes(int8_bytes)
        config = float_network.config
        networks.append({
            "role": role,
            "uses": uses,
            "files": names,
            "sha256": {key: sha256_of_file(out_dir / name) for key, name in names.items()},
            **io_entries(int8_summary),
            "float_tflite_io": io_entries(float_summary),
            "output_db": output_db_maps(config),
            "ops": int8_summary.op_counts,
            "op_resolver": sorted(int8_summary.op_counts),
            "config": config.to_dict(),
            "parameters": float_network.count_parameters(),
            "macs_per_hop": float_network.macs_per_frame(),
            "macs_per_second": float_network.macs_per_second(stft.frames_per_second),
            "int8_model_bytes": len(int8_bytes),
            "float_model_bytes": len(float_bytes),
            "onnx_bytes": len(onnx_bytes),
            "tflm_arena_bytes": arena["minimum"],
            "tflm_arena_used_bytes": arena["used"],
            "tflm_arena_note": "TFLM host interpreter (64-bit): smallest arena that allocates and invokes, and the "
                               "allocator's reported use; 32-bit targets need somewhat less",
            "activation_quantization": {name: spec.to_dict() for name, spec in specs.items()},
        })
    manifest = {
        **provenance,
        "variant": float_system.variant,
        "stft": stft.to_dict(),
        "features": float_system.feature_config.to_dict(),
        "hop_samples": stft.hop_samples,
        "frames_per_second": stft.frames_per_second,
        "sample_rate_hz": stft.sample_rate_hz,
        "algorithmic_latency_ms": stft.algorithmic_latency_ms,
        "audiogram": {"frequencies_hz": [float(f) for f in MODEL_AUDIOGRAM_FREQUENCIES_HZ],
                      "input": f"dB HL / {MODEL_INPUT_SCALE_DB:g}"},
        "parameters": sum(entry["parameters"] for entry in networks),
        "macs_per_second": sum(entry["macs_per_second"] for entry in networks),
        "networks": networks,
        "versions": _versions(),
    }
    write_manifest(out_dir, manifest)
    return manifest


def _versions() -> dict[str, str]:
    import ai_edge_litert
    import brevitas
    import tensorflow as tf

    return {**software_versions(), "brevitas": brevitas.__version__, "tensorflow": tf.__version__,
            "ai_edge_litert": getattr(ai_edge_litert, "__version__", "unknown")}


def quantize_model(source: str | Path, out_dir: str | Path, config: QatConfig = QatConfig(), *,
                   resume: bool = False, progress: bool = True) -> dict[str, Any]:
    """Calibrate, fine-tune (QAT) and export; returns a summary (see the module docstring for the files)."""
    trainer = QatTrainer(source, out_dir, config, resume=resume, progress=progress)
    qat_summary = trainer.run()
    out_dir = Path(out_dir)
    provenance = {
        "source_checkpoint": {"path": str(trainer.source_path), "weights_sha256": trainer.source_sha256},
        "qat_checkpoint": {"file": QAT_CHECKPOINT_NAME,
                           "weights_sha256": sha256_of_file((out_dir / QAT_CHECKPOINT_NAME).with_suffix(".safetensors")),
                           "steps": trainer.step, "calibration_batches": config.calibration_batches},
    }
    manifest = export_model_files(trainer.qat_system, trainer.float_system, out_dir, provenance)
    return {
        **qat_summary,
        "out_dir": str(out_dir),
        "files": sorted([QAT_CHECKPOINT_NAME, "manifest.json"]
                        + [name for entry in manifest["networks"] for name in entry["files"].values()]),
        "int8_model_bytes": [entry["int8_model_bytes"] for entry in manifest["networks"]],
        "tflm_arena_bytes": [entry["tflm_arena_bytes"] for entry in manifest["networks"]],
        "ops": manifest["networks"][0]["op_resolver"],
    }
