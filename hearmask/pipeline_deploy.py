"""The main job's int8 and device stages: validate -> fit -> export -> profile.

Input: a model folder written by ``hearmask quantize`` (the shipped default model's folder
holds one: ``model_int8.tflite``, ``manifest.json`` and the QAT checkpoint). Stages:

1. ``validate``: the golden chain float -> fake-quant -> LiteRT -> TFLM host interpreter and the
   audio-level check (:func:`hearmask.quantize.validate.validate_model_dir`), small settings.
2. ``fit``: the model against a Raspberry Pi 4 and a Cortex-M7 (STM32F746) budget
   (:func:`hearmask.targets.fit.fit_model`; compute figures are estimates).
3. ``export``: a Raspberry Pi 4 bundle (:func:`hearmask.targets.bundle_rpi.export_rpi_bundle`).
4. ``profile``: the bundle's own agent on an emulated Raspberry Pi over a pty
   (``emulate://rpi``), INFER checked bit for bit against the host golden, BENCH, STREAM
   (:func:`hearmask.firmware_bridge.profile.profile_device`). Every figure is labelled
   ``emulated``: it is this machine's CPU, not a Pi's.
5. ``cortex-m55``: when ``arm-none-eabi-gcc`` and ``qemu-system-arm`` are installed, the
   generated-C firmware for QEMU's mps3-an547 (Cortex-M55) is built and profiled over its
   UART: INFER bit-exact against the TFLM host interpreter, BENCH in QEMU instruction counts
   (never cycles or time). Otherwise the report says how to install them.

Each stage writes into its own sub-folder of the pipeline's output and returns a short
summary for the pipeline report; a failed check is recorded (``passed``/``fits`` false),
not hidden.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

FIT_TARGETS = ("rpi4", "cortex-m7-stm32f746")
EXPORT_TARGET = "rpi4"
QEMU_TARGET = "cortex-m55-qemu"
TOOLCHAIN_HINT = ("install Debian's gcc-arm-none-eabi, libnewlib-arm-none-eabi and qemu-system-arm "
                  "(bash scripts/setup.sh does) to build and profile the Cortex-M55 firmware")


def run_deploy_stages(int8_dir: Path, out_dir: Path, audiogram_name: str, progress: bool = False,
                      audio_utterances: int | None = None) -> dict[str, Any]:
    """Run validate, fit, export and profile for ``int8_dir``; return the report part.
    ``audio_utterances``: mixtures of the audio check (None: :data:`AUDIO_UTTERANCES`)."""
    from hearmask.firmware_bridge.profile import ProfileConfig, profile_device
    from hearmask.quantize.validate import AUDIO_UTTERANCES, validate_model_dir, write_report
    from hearmask.targets.bundle_rpi import export_rpi_bundle
    from hearmask.targets.descriptors import load_target
    from hearmask.targets.fit import fit_model

    # The golden chain is bit-exact or not on any input, so one short utterance shows it; the audio
    # check's verdict is a mean over mixtures and needs its full count (AUDIO_UTTERANCES).
    validation = validate_model_dir(int8_dir, utterances=1, seconds=2.0, layer_hops=20,
                                    audio_utterances=audio_utterances or AUDIO_UTTERANCES, audio_seconds=2.0,
                                    audiogram_name=audiogram_name)
    write_report(validation, out_dir / "validation")
    fits = {name: fit_model(int8_dir, load_target(name)) for name in FIT_TARGETS}
    bundle = export_rpi_bundle(int8_dir, load_target(EXPORT_TARGET), out_dir / "pi-bundle", audiogram=audiogram_name)
    profile = profile_device("emulate://rpi", bundle, out_dir / "profile",
                             ProfileConfig(utterances=1, hops=100, bench_runs=100, bench_warmup=10, stream_hops=100,
                                           audiogram=audiogram_name),
                             progress=progress)
    return {
        "model_dir": str(int8_dir),
        "cortex_m55": _cortex_m55_stage(int8_dir, out_dir, audiogram_name, progress),
        "validation": {
            "passed": validation["passed"],
            "thresholds_apply_to": validation.get("thresholds_apply_to"),
            "snr_db_per_step": {stage: _lowest_snr(validation.get(stage)) for stage in ("litert", "litert_ref", "tflm")},
            "audio_utterances": (validation.get("audio") or {}).get("conditions", {}).get("utterances"),
            "audio_deltas": {metric: (validation.get("audio") or {}).get(metric, {}).get("mean_delta")
                             for metric in ("haspi", "estoi", "pesq")},
            "report": str(out_dir / "validation" / "report.md"),
        },
        "fit": {name: {"fits": report.fits, "verdict": report.verdict} for name, report in fits.items()},
        "export": {"target": EXPORT_TARGET, "bundle": str(bundle)},
        "profile": {
            "device": profile["device"],
            "latency_us": profile.get("latency_us"),
            "stream_hop_us": profile.get("stream_hop_us"),
            "validation": profile.get("validation"),
            "report": str(out_dir / "profile" / "report.md"),
        },
        "labels": {"profile": "emulated: the Raspberry Pi agent on this machine's CPU over a pty, not Pi hardware",
                   "fit": "compute and code-size figures are estimates; the TFLM arena is measured"},
    }


def _cortex_m55_stage(int8_dir: Path, out_dir: Path, audiogram_name: str, progress: bool) -> dict[str, Any]:
    """Build and profile the generated-C firmware on QEMU's Cortex-M55, or say why not."""
    from hearmask.firmware_bridge.profile import ProfileConfig, profile_device
    from hearmask.targets.bundle_cortex_m import export_cortex_m_bundle
    from hearmask.targets.firmware_build import toolchain_available
    from hearmask.targets.qemu import qemu_available

    if not (toolchain_available() and qemu_available()):
        return {"skipped": TOOLCHAIN_HINT}
    bundle = export_cortex_m_bundle(int8_dir, QEMU_TARGET, out_dir / "m55-bundle")
    profile = profile_device("qemu://cortex-m55", bundle, out_dir / "profile-m55",
                             ProfileConfig(utterances=1, hops=50, bench_runs=20, bench_warmup=2, stream_hops=0,
                                           audiogram=audiogram_name),
                             progress=progress)
    return {
        "bundle": str(bundle),
        "device": profile["device"],
        "instructions_per_hop": profile.get("instructions_per_hop"),
        "validation": profile.get("validation"),
        "report": str(out_dir / "profile-m55" / "report.md"),
        "label": "QEMU instruction counts (mps3-an547, -icount shift=0): not cycles, not time on hardware",
    }


def _lowest_snr(stage: dict | None) -> float | None:
    """The lowest per-output SNR (dB) of a validation stage entry, or None when absent."""
    if not isinstance(stage, dict):
        return None
    values = [entry.get("snr_db") for entry in stage.values() if isinstance(entry, dict) and "snr_db" in entry]
    return min(values) if values else None
