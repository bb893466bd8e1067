"""The agent's STREAM pipeline: the model manifest + :class:`~hearmask.firmware_bridge.live_processor.LiveProcessor`.

One per-hop int8 processor serves both the live loop and STREAM (DESIGN.md "Signal chain")::

    hop -> StreamingStft -> BandFeatures -> int8 step (LiteRT) -> dB (manifest "output_db")
        -> alpha·NR_dB + beta·HLC_dB (capped) -> ISTFT -> limiter -> hop out

The agent needs the model's ``manifest.json`` (STFT, features, dB rule): ``--manifest``, or
the one beside ``--model`` (a ``hearmask quantize`` folder or a Raspberry Pi bundle). The
manifest must describe the model that is loaded (SHA-256 of its int8 ``.tflite``); after a
LOAD_MODEL of another model, STREAM answers ``UNSUPPORTED`` and says why.

Listener settings: a stream starts (first hop after start-up, RESET or a new model) with the
settings in force at its first hop, without a ramp; SET_AUDIOGRAM / SET_STRENGTHS during
a stream ramp in over ``LiveProcessor``'s ``ramp_hops`` hops (no clicks). Before any
SET_AUDIOGRAM the audiogram is 0 dB HL at every frequency (normal hearing). Strengths up
to 4 are accepted, as SET_STRENGTHS allows (exaggeration).

The host reproduces a stream exactly with :func:`host_stream_processor` (same code, same
LiteRT kernels): ``host_stream_processor(model_dir, settings).process_signal(audio)``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np

from hearmask.errors import HearmaskError
from hearmask.firmware_bridge.errors import ValueOutOfRange
from hearmask.firmware_bridge.live_processor import AUDIOGRAM_POINTS, LiveProcessor, read_model_manifest
from hearmask.firmware_bridge.plugins import ListenerSettings
from hearmask.firmware_bridge.runtime import InferenceRuntime

NORMAL_HEARING_DB_HL = (0.0,) * AUDIOGRAM_POINTS  # until SET_AUDIOGRAM

RuntimeFactory = Callable[[Path], InferenceRuntime]


def settings_audiogram_db_hl(settings: ListenerSettings) -> tuple[float, ...]:
    return tuple(settings.audiogram_db_hl) if settings.audiogram_db_hl is not None else NORMAL_HEARING_DB_HL


def start_processor(manifest: dict, runtimes: list[InferenceRuntime], settings: ListenerSettings) -> LiveProcessor:
    """A fresh :class:`LiveProcessor` whose controls start at ``settings`` (no ramp from anything else)."""
    return LiveProcessor(manifest, runtimes, settings_audiogram_db_hl(settings), settings.alpha, settings.beta,
                         allow_exaggeration=True)


class ManifestStreamProcessor:
    """The agent's :class:`~hearmask.firmware_bridge.plugins.StreamProcessor` for one loaded model.

    Args:
        manifest: the model manifest (:func:`read_model_manifest`).
        model_dir: the manifest's folder (a cascade's second network is loaded from there).
        runtime: the agent's loaded runtime: the manifest's first network.
        runtime_factory: loads the other networks of a cascade, with the agent's runtime settings.

    Raises :class:`HearmaskError` when there is no model or the manifest describes another one.
    """

    def __init__(self, manifest: dict, model_dir: Path, runtime: InferenceRuntime | None,
                 runtime_factory: RuntimeFactory):
        if runtime is None:
            raise HearmaskError("no model is loaded (start the agent with --model, or send LOAD_MODEL)")
        networks = manifest["networks"]
        expected_sha = (networks[0].get("sha256") or {}).get("int8_tflite")
        if expected_sha and expected_sha != runtime.model_sha256.hex():
            raise HearmaskError(f"the loaded model (SHA-256 {runtime.model_sha256.hex()[:16]}...) is not the one the "
                                f"manifest in {str(model_dir)!r} describes ({expected_sha[:16]}...); give the agent the "
                                "manifest of this model with --manifest")
        self.manifest = manifest
        self.runtimes = [runtime] + [runtime_factory(Path(model_dir) / entry["files"]["int8_tflite"])
                                     for entry in networks[1:]]
        self.hop_samples = int(manifest["stft"]["hop_samples"])
        # One throwaway hop at start-up, so first-use costs (caches, the interpreter's first invoke)
        # are not counted in the first STREAM hop's device time. The runtimes keep no state between invokes.
        start_processor(manifest, self.runtimes, ListenerSettings()).process_hop(
            np.zeros(self.hop_samples, np.float32), ListenerSettings())
        self.processor: LiveProcessor | None = None

    def process_hop(self, hop: np.ndarray, settings: ListenerSettings) -> np.ndarray:
        """One hop ``(hop_samples,)`` float32 in [-1, 1] at the model rate -> the processed hop (float32)."""
        if hop.shape != (self.hop_samples,):
            raise ValueOutOfRange(f"STREAM hop of {hop.shape[0] if hop.ndim == 1 else hop.shape} samples; this model "
                                  f"takes hops of exactly {self.hop_samples} samples at "
                                  f"{self.manifest['stft'].get('sample_rate_hz', '?')} Hz")
        if self.processor is None:
            self.processor = start_processor(self.manifest, self.runtimes, settings)
        return self.processor.process_hop(hop, settings)

    def reset(self) -> None:
        """Forget the stream: the next hop starts a fresh one (STFT, recurrent state, limiter, controls)."""
        self.processor = None


def manifest_stream_factory(manifest_path: str | Path,
                            runtime_factory: RuntimeFactory) -> Callable[[InferenceRuntime | None], ManifestStreamProcessor]:
    """The agent's ``stream_processor_factory`` for the manifest at ``manifest_path`` (a file or its folder)."""
    manifest_path = Path(manifest_path)
    manifest = read_model_manifest(manifest_path)
    model_dir = manifest_path if manifest_path.is_dir() else manifest_path.parent
    return lambda runtime: ManifestStreamProcessor(manifest, model_dir, runtime, runtime_factory)


def host_stream_processor(model_dir: str | Path, settings: ListenerSettings = ListenerSettings(),
                          runtime_factory: RuntimeFactory | None = None) -> LiveProcessor:
    """What a fresh STREAM on the agent runs, on the host: the manifest's networks in LiteRT (optimised
    kernels unless ``runtime_factory`` says otherwise), controls starting at ``settings``."""
    from hearmask.firmware_bridge.live_processor import default_runtime_factory

    model_dir = Path(model_dir)
    manifest = read_model_manifest(model_dir)
    factory = runtime_factory or default_runtime_factory()
    runtimes = [factory(model_dir / entry["files"]["int8_tflite"]) for entry in manifest["networks"]]
    return start_processor(manifest, runtimes, settings)


def manifest_beside(model_path: Path | None) -> Path | None:
    """``manifest.json`` next to ``model_path`` if it exists and is a hearmask manifest, else None."""
    if model_path is None:
        return None
    candidate = Path(model_path).parent / "manifest.json"
    try:
        return candidate if json.loads(candidate.read_text()).get("format") == "hearmask-model-manifest" else None
    except (OSError, ValueError, AttributeError):
        return None
